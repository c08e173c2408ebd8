"""The Python baseline for `npm run bench -- stream`: what a user might write with nats-py and onnxruntime.

    a JetStream durable pull consumer on the events' subject, in micro-batches of --batch messages
      -> the model's feature columns from each event (metadata.json's input columns, in order)
      -> onnxruntime InferenceSession.run on the batch
      -> one JSON record per event published to --out-subject with Nats-Msg-Id = the event id
      -> every message of the batch acknowledged (ack_sync: the server confirmed it)

The same work per event as the benchmark's floor (bench/stream.ts: pull -> infer -> publish -> ack,
no Temporal). ONNX Runtime is configured like the Inferflow worker: one intra-op thread,
sequential execution, all graph optimizations, no spinning. Prints one JSON object on stdout:
events/s from the consumer's creation to the last acknowledgement (as the floor counts), and the process's peak RSS.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import resource
import time

import nats
import numpy as np
import onnxruntime as ort
from nats.errors import TimeoutError as NatsTimeout


def session(model: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


async def run(a: argparse.Namespace) -> dict:
    with open(a.metadata, encoding="utf8") as f:
        meta = json.load(f)
    spec = meta["inputs"][0]
    columns: list[str] = spec["columns"]
    classes = meta["class_labels"]
    positive = classes.index(meta["positive_class"])
    sess = session(a.model)
    nc = await nats.connect(a.nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(a.subject, durable=a.durable, stream=a.stream)
    done = 0
    started = time.perf_counter()
    while done < a.events:
        try:
            msgs = await sub.fetch(a.batch, timeout=1)
        except NatsTimeout:
            continue
        events = [json.loads(m.data) for m in msgs]
        x = np.array([[float(e[c]) for c in columns] for e in events], dtype=np.float32)
        labels, probs = sess.run([meta["outputs"]["label"], meta["outputs"]["probabilities"]], {spec["name"]: x})
        at = datetime.datetime.now(datetime.timezone.utc).isoformat()
        await asyncio.gather(
            *(
                js.publish(
                    a.out_subject,
                    json.dumps(
                        {
                            "key": e[a.id_field],
                            "entity": str(e[a.key_field]),
                            "outputs": {"label": int(labels[i]), "score": float(probs[i][positive])},
                            "model": {"name": meta["name"], "version": a.model_version},
                            "predictedAt": at,
                        }
                    ).encode(),
                    headers={"Nats-Msg-Id": str(e[a.id_field])},
                )
                for i, e in enumerate(events)
            )
        )
        await asyncio.gather(*(m.ack_sync() for m in msgs))
        done += len(msgs)
    seconds = time.perf_counter() - started
    await nc.close()
    return {"events": done, "seconds": seconds, "events_per_second": done / seconds, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nats-url", required=True)
    p.add_argument("--stream", required=True)
    p.add_argument("--subject", required=True, help="subject of the events")
    p.add_argument("--durable", default="python-baseline")
    p.add_argument("--out-subject", required=True)
    p.add_argument("--events", type=int, required=True, help="stop after this many events")
    p.add_argument("--batch", type=int, default=500, help="messages per fetch (micro-batch)")
    p.add_argument("--model", required=True, help="model.onnx")
    p.add_argument("--metadata", required=True, help="the model's metadata.json (input columns, outputs, classes)")
    p.add_argument("--model-version", type=int, default=1)
    p.add_argument("--id-field", default="transaction_id")
    p.add_argument("--key-field", default="customer_id")
    print(json.dumps(asyncio.run(run(p.parse_args()))))


if __name__ == "__main__":
    main()
