"""Train the example embedding model, and write Python's vectors for the scoring rows.

A transformer, not a predictor: each card transaction becomes a dense float vector (for a
vector index, similarity search, or as the input of another model). scikit-learn pipeline over
the columns of examples/data/transactions.parquet (train_fraud.py's generator, seeded):

  StandardScaler → PolynomialFeatures(degree 2) → PCA(8 components)

  examples/models/transaction-embedding/{model.onnx,metadata.json}   task "embedding", output [N, 8]
  examples/data/transaction_embedding_expected.parquet               transaction_id, e0 … e7 (scikit-learn's)

Run from the repository root (after train_fraud.py, which writes transactions.parquet):
  python3 -m pip install -r examples/train/requirements.txt
  python3 examples/train/train_embedding.py
The outputs are committed, so the demo and the tests never need Python.
"""
from __future__ import annotations

import json
import pathlib
from datetime import datetime, timezone

import numpy as np
import onnxruntime as rt
import pandas as pd
import sklearn
import skl2onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from train_fraud import FEATURES, START, generate

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED = 13
TRAIN_ROWS = 20_000
EXPECTED_ROWS = 2_000
DIMENSIONS = 8


def main() -> None:
    train = generate(TRAIN_ROWS, SEED, START)
    score = pd.read_parquet(ROOT / "examples" / "data" / "transactions.parquet").head(EXPECTED_ROWS)

    X = train[FEATURES].to_numpy(dtype=np.float32)
    model = make_pipeline(StandardScaler(), PolynomialFeatures(degree=2, include_bias=False), PCA(n_components=DIMENSIONS, random_state=SEED))
    model.fit(X)
    onx = to_onnx(model, initial_types=[("features", FloatTensorType([None, len(FEATURES)]))], target_opset={"": 17, "ai.onnx.ml": 3})
    outputs = [(o.name, [d.dim_value or None for d in o.type.tensor_type.shape.dim]) for o in onx.graph.output]
    if len(outputs) != 1 or outputs[0][1] != [None, DIMENSIONS]:
        raise SystemExit(f"unexpected ONNX outputs {outputs}")

    out_dir = ROOT / "examples" / "models" / "transaction-embedding"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(onx.SerializeToString())
    pca = model.named_steps["pca"]
    metadata = {
        "name": "transaction-embedding",
        "description": f"An {DIMENSIONS}-dimensional embedding of a card transaction (standardised features, their pairwise products, PCA); fitted on synthetic data (seeded).",
        "task": "embedding",
        "inputs": [{"name": "features", "dtype": "float32", "columns": FEATURES}],
        "outputs": {"embedding": outputs[0][0]},
        "id_column": "transaction_id",
        "metrics": {"explained_variance_ratio": round(float(pca.explained_variance_ratio_.sum()), 4), "train_rows": TRAIN_ROWS},
        "training": {
            "algorithm": "sklearn.pipeline(StandardScaler, PolynomialFeatures(2), PCA)",
            "params": {"n_components": DIMENSIONS},
            "seed": SEED,
            "sklearn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "trained_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        },
    }
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")

    Xs = score[FEATURES].to_numpy(dtype=np.float32)
    vectors = model.transform(Xs)
    expected = pd.DataFrame({"transaction_id": score["transaction_id"]})
    for j in range(DIMENSIONS):
        expected[f"e{j}"] = vectors[:, j]
    expected.to_parquet(ROOT / "examples" / "data" / "transaction_embedding_expected.parquet", index=False)

    # The exported graph must agree with scikit-learn (float32 arithmetic: a relative tolerance).
    got = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"features": Xs})[0]
    worst = float(np.max(np.abs(got - vectors) / (1e-3 + np.abs(vectors))))
    if worst > 1e-3:
        raise SystemExit(f"ONNX and scikit-learn differ: worst relative difference {worst}")
    print(json.dumps({"onnx_output": outputs[0][0], "dimensions": DIMENSIONS, "worst_relative_difference": worst}))


if __name__ == "__main__":
    main()
