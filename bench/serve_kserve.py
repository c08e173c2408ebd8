"""The serve benchmark's Python peer (run by bench/serve.ts): a KServe ModelServer (PyPI kserve)
serving the same ONNX model over the V2 REST protocol with the same Redis lookup as the floor
(bench/serve-floor.ts): one HMGET of the customer's features, one session.run on a 1-row block.

    BENCH_PORT, BENCH_MODEL, BENCH_REDIS_URL, BENCH_KEY_PREFIX
"""

import math
import os
import uuid
from datetime import datetime

import numpy as np
import onnxruntime as ort
import redis.asyncio as aioredis
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

FIELDS = ["_ts", "avg_amount_30d", "txn_count_7d", "home_lat", "home_lon"]
COLUMNS = 13


class FraudFeatures(Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.session = None
        self.redis = None
        self.prefix = os.environ["BENCH_KEY_PREFIX"]
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(os.environ["BENCH_MODEL"], options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.redis = aioredis.from_url(os.environ["BENCH_REDIS_URL"])
        self.ready = True
        return self.ready

    async def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        col = {i.name: i.data[0] for i in payload.inputs}
        stored = await self.redis.hmget(f"{self.prefix}{col['customer_id']}", FIELDS)
        num = lambda v, d: float(v) if v is not None else d  # noqa: E731
        amount = float(col["amount"])
        avg = num(stored[1], math.nan)
        x = np.zeros((1, COLUMNS), dtype=np.float32)
        x[0, 0] = math.log1p(amount)
        x[0, 1] = amount / avg if avg > 0 else 1.0
        x[0, 2] = math.hypot(float(col["lat"]) - num(stored[3], 0.0), float(col["lon"]) - num(stored[4], 0.0))
        x[0, 3] = num(stored[2], 0.0)
        x[0, 4] = datetime.fromisoformat(str(col["event_timestamp"]).replace("Z", "+00:00")).hour
        label = self.session.run(None, {self.input: x})[0]
        out = InferOutput(name="label", shape=[1], datatype="INT64", data=[int(label[0])])
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id or str(uuid.uuid4()))


if __name__ == "__main__":
    ModelServer(http_port=int(os.environ["BENCH_PORT"]), enable_grpc=False, workers=1).start([FraudFeatures("fraud-features")])
