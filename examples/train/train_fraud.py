"""Train the example fraud model and write the files the TypeScript side uses.

A seeded, synthetic card-transaction dataset (it resembles the usual fraud set-up: a
customer's history, the transaction amount, where and when it happened) is generated,
a gradient-boosted classifier is trained on it, and we write:

  examples/models/fraud-detector/model.onnx      the model (ONNX, probabilities as a tensor)
  examples/models/fraud-detector/metadata.json   inputs, feature order, labels, metrics
  examples/data/transactions.parquet             a scoring set (new rows, same generator)

Run from the repository root:
  python3 -m pip install -r examples/train/requirements.txt
  python3 examples/train/train_fraud.py
The outputs are committed, so the demo and the tests never need Python.
"""
from __future__ import annotations

import argparse
import json
import pathlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import sklearn
import skl2onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

ROOT = pathlib.Path(__file__).resolve().parents[2]
MCC = ["grocery", "fuel", "restaurant", "travel", "electronics", "online_gaming", "jewelry", "pharmacy"]
MCC_RISK = np.array([0.02, 0.03, 0.03, 0.08, 0.12, 0.20, 0.18, 0.02])
FEATURES = [
    "amount",
    "customer_avg_amount_30d",
    "customer_txn_count_24h",
    "distance_from_home_km",
    "hour_of_day",
    "is_foreign",
    "merchant_risk",
]


def generate(n: int, seed: int, start: datetime) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_customers = max(1000, n // 20)
    customer = rng.integers(1, n_customers + 1, size=n)
    # Each customer has a typical spend; amounts are log-normal around it.
    typical = np.exp(rng.normal(3.5, 0.8, size=n_customers + 1))
    avg_30d = typical[customer] * np.exp(rng.normal(0, 0.1, size=n))
    seconds = np.sort(rng.integers(0, 30 * 24 * 3600, size=n))
    event_time = pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")
    hour = event_time.hour.to_numpy()
    mcc = rng.choice(len(MCC), size=n, p=[0.3, 0.15, 0.2, 0.07, 0.1, 0.05, 0.03, 0.1])
    is_foreign = (rng.random(n) < 0.06).astype(np.int64)
    distance = np.where(is_foreign == 1, rng.gamma(3.0, 900.0, size=n), rng.gamma(1.2, 12.0, size=n))
    count_24h = rng.poisson(2.0, size=n)
    amount = avg_30d * np.exp(rng.normal(0, 0.6, size=n))

    # Latent fraud process: unusual amount, night, far away, risky merchant, bursts.
    ratio = amount / avg_30d
    logit = (
        -6.2
        + 1.6 * np.log1p(ratio)
        + 0.9 * ((hour <= 4) | (hour >= 23))
        + 0.0006 * np.minimum(distance, 5000)
        + 14.0 * MCC_RISK[mcc]
        + 0.35 * np.maximum(count_24h - 3, 0)
        + 0.8 * is_foreign
    )
    fraud = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    # Fraudsters push amounts up.
    amount = np.where(fraud == 1, amount * rng.uniform(1.5, 6.0, size=n), amount)

    return pd.DataFrame(
        {
            "transaction_id": [f"tx-{seed}-{i:07d}" for i in range(n)],
            "customer_id": customer.astype(np.int64),
            "event_time": event_time,
            "merchant_category": [MCC[i] for i in mcc],
            "amount": np.round(amount, 2),
            "customer_avg_amount_30d": np.round(avg_30d, 2),
            "customer_txn_count_24h": count_24h.astype(np.int64),
            "distance_from_home_km": np.round(distance, 3),
            "hour_of_day": hour.astype(np.int64),
            "is_foreign": is_foreign,
            "merchant_risk": MCC_RISK[mcc],
            "is_fraud": fraud,
        }
    )


def binary_metrics(y_all: np.ndarray, y_test: np.ndarray, proba: np.ndarray, train_rows: int) -> dict:
    """Held-out metrics written into a model's metadata.json."""
    return {
        "roc_auc": round(float(roc_auc_score(y_test, proba)), 4),
        "average_precision": round(float(average_precision_score(y_test, proba)), 4),
        "accuracy": round(float(accuracy_score(y_test, (proba >= 0.5).astype(int))), 4),
        "fraud_rate": round(float(y_all.mean()), 4),
        "train_rows": int(train_rows),
        "test_rows": int(len(y_test)),
    }


def export_binary_classifier(model, zipmap_key, out_dir: pathlib.Path, name: str, description: str, metrics: dict, training: dict,
                             columns: list[str] = FEATURES, extra: dict | None = None) -> bytes:
    """Write model.onnx (input `features` float32 [N, len(columns)]; outputs `label`,
    `probabilities`) and metadata.json in the format the registry reads (`extra` adds fields
    such as fitted `transforms`). Returns the serialized model."""
    onx = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, len(columns)]))],
        options={zipmap_key: {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    outputs = [o.name for o in onx.graph.output]
    if outputs != ["label", "probabilities"]:
        raise SystemExit(f"unexpected ONNX outputs {outputs}; expected ['label', 'probabilities']")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(onx.SerializeToString())
    metadata = {
        "name": name,
        "description": description,
        "task": "binary_classification",
        "inputs": [{"name": "features", "dtype": "float32", "columns": columns}],
        **(extra or {}),
        "outputs": {"label": "label", "probabilities": "probabilities"},
        "class_labels": [0, 1],
        "positive_class": 1,
        "id_column": "transaction_id",
        "metrics": metrics,
        "training": {
            **training,
            "sklearn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "trained_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        },
    }
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return onx.SerializeToString()


START = datetime(2026, 9, 1, tzinfo=timezone.utc)


def training_args(doc: str, score_rows: bool) -> argparse.Namespace:
    """The command line shared by the scripts that train on `generate`'s data."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-rows", type=int, default=200_000)
    if score_rows:
        ap.add_argument("--score-rows", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=7)
    return ap.parse_args()


def training_split(rows: int, seed: int):
    """(y, X_train, X_test, y_train, y_test) from `rows` generated rows: a stratified 80/20 split."""
    df = generate(rows, seed, START)
    X = df[FEATURES].to_numpy(dtype=np.float32)
    y = df["is_fraud"].to_numpy()
    return (y, *train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y))


def main() -> None:
    args = training_args(__doc__, score_rows=True)
    y, X_tr, X_te, y_tr, y_te = training_split(args.train_rows, args.seed)
    model = GradientBoostingClassifier(n_estimators=80, max_depth=3, learning_rate=0.1, random_state=args.seed)
    model.fit(X_tr, y_tr)
    proba = model.predict_proba(X_te)[:, 1]
    metrics = binary_metrics(y, y_te, proba, len(y_tr))
    model_bytes = len(export_binary_classifier(
        model,
        id(model),
        ROOT / "examples" / "models" / "fraud-detector",
        "fraud-detector",
        "Gradient-boosted fraud classifier on synthetic card transactions (seeded).",
        metrics,
        {
            "algorithm": "sklearn.ensemble.GradientBoostingClassifier",
            "params": {"n_estimators": 80, "max_depth": 3, "learning_rate": 0.1},
            "seed": args.seed,
        },
    ))

    score = generate(args.score_rows, args.seed + 1, START + timedelta(days=30))
    data_dir = ROOT / "examples" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    score.drop(columns=["is_fraud"]).to_parquet(data_dir / "transactions.parquet", index=False, compression="zstd")
    print(json.dumps({"metrics": metrics, "model_bytes": model_bytes}, indent=2))


if __name__ == "__main__":
    main()
