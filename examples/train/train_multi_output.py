"""Train the example models that answer with more than one score, and write Python's outputs.

Both read the columns of examples/data/transactions.parquet (train_fraud.py's generator, seeded):

  risk-tier       a multi-class classifier (3 tiers: 0 low, 1 medium, 2 high; multinomial
                  logistic regression) → examples/models/risk-tier/{model.onnx,metadata.json}
  spend-forecast  a multi-output regressor (next 7 and 30 days' spend; linear regression with
                  two targets) → examples/models/spend-forecast/{model.onnx,metadata.json}

and scikit-learn's own outputs for the first --expected-rows rows of transactions.parquet:

  examples/data/risk_tier_expected.parquet       transaction_id, label, prob_0, prob_1, prob_2
  examples/data/spend_forecast_expected.parquet  transaction_id, spend_7d, spend_30d

Run from the repository root (after train_fraud.py, which writes transactions.parquet):
  python3 -m pip install -r examples/train/requirements.txt
  python3 examples/train/train_multi_output.py
The outputs are committed, so the demo and the tests never need Python.
"""
from __future__ import annotations

import json
import pathlib
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import sklearn
import skl2onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LinearRegression, LogisticRegression

from train_fraud import START, generate

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED = 11
TRAIN_ROWS = 20_000
EXPECTED_ROWS = 2_000
TIER_FEATURES = ["amount", "customer_avg_amount_30d", "distance_from_home_km", "merchant_risk", "is_foreign"]
SPEND_FEATURES = ["amount", "customer_avg_amount_30d", "customer_txn_count_24h"]
SPEND_TARGETS = ["spend_7d", "spend_30d"]


def tiers(df: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """A latent risk score cut into three tiers, with noise so that probabilities are not 0/1."""
    z = (
        np.log1p(df["amount"] / df["customer_avg_amount_30d"])
        + 0.0008 * np.minimum(df["distance_from_home_km"], 3000)
        + 8.0 * df["merchant_risk"]
        + 0.7 * df["is_foreign"]
        + rng.normal(0, 0.35, size=len(df))
    )
    return np.digitize(z, np.quantile(z, [0.6, 0.9])).astype(np.int64)


def spend(df: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    avg = df["customer_avg_amount_30d"].to_numpy()
    count = df["customer_txn_count_24h"].to_numpy()
    amount = df["amount"].to_numpy()
    s7 = 7 * avg * (0.6 + 0.1 * count) + 0.3 * amount + rng.normal(0, 5, size=len(df))
    s30 = 30 * avg * (0.55 + 0.08 * count) + 0.5 * amount + rng.normal(0, 15, size=len(df))
    return np.stack([s7, s30], axis=1)


def write_model(onx, out_dir: pathlib.Path, metadata: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(onx.SerializeToString())
    metadata["training"] = {**metadata["training"], "sklearn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                            "trained_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")


def main() -> None:
    rng = np.random.default_rng(SEED)
    train = generate(TRAIN_ROWS, SEED, START)
    score = pd.read_parquet(ROOT / "examples" / "data" / "transactions.parquet").head(EXPECTED_ROWS)
    data_dir = ROOT / "examples" / "data"

    # Multi-class: every class's probability as well as the top class.
    X = train[TIER_FEATURES].to_numpy(dtype=np.float32)
    y = tiers(train, rng)
    clf = LogisticRegression(max_iter=2000)
    clf.fit(X, y)
    onx = to_onnx(clf, initial_types=[("features", FloatTensorType([None, len(TIER_FEATURES)]))],
                  options={id(clf): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    outputs = [o.name for o in onx.graph.output]
    if outputs != ["label", "probabilities"]:
        raise SystemExit(f"unexpected ONNX outputs {outputs}")
    write_model(onx, ROOT / "examples" / "models" / "risk-tier", {
        "name": "risk-tier",
        "description": "Multi-class risk tier of a card transaction (0 low, 1 medium, 2 high); multinomial logistic regression on synthetic data (seeded).",
        "task": "multiclass_classification",
        "inputs": [{"name": "features", "dtype": "float32", "columns": TIER_FEATURES}],
        "outputs": {"label": "label", "probabilities": "probabilities"},
        "class_labels": [int(c) for c in clf.classes_],
        "id_column": "transaction_id",
        "metrics": {"train_accuracy": round(float(clf.score(X, y)), 4), "train_rows": TRAIN_ROWS},
        "training": {"algorithm": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 2000}, "seed": SEED},
    })
    Xs = score[TIER_FEATURES].to_numpy(dtype=np.float32)
    proba = clf.predict_proba(Xs)
    expected = pd.DataFrame({"transaction_id": score["transaction_id"], "label": clf.predict(Xs).astype(np.int64)})
    for j, c in enumerate(clf.classes_):
        expected[f"prob_{c}"] = proba[:, j]
    expected.to_parquet(data_dir / "risk_tier_expected.parquet", index=False)

    # Multi-output regression: one vector of targets per row.
    X = train[SPEND_FEATURES].to_numpy(dtype=np.float32)
    targets = spend(train, rng)
    reg = LinearRegression()
    reg.fit(X, targets)
    onx = to_onnx(reg, initial_types=[("features", FloatTensorType([None, len(SPEND_FEATURES)]))], target_opset={"": 17, "ai.onnx.ml": 3})
    write_model(onx, ROOT / "examples" / "models" / "spend-forecast", {
        "name": "spend-forecast",
        "description": "Next 7 and 30 days' spend of the card's customer (two outputs per row); linear regression on synthetic data (seeded).",
        "task": "regression",
        "inputs": [{"name": "features", "dtype": "float32", "columns": SPEND_FEATURES}],
        "outputs": {"value": onx.graph.output[0].name},
        "id_column": "transaction_id",
        "metrics": {"train_r2": round(float(reg.score(X, targets)), 4), "train_rows": TRAIN_ROWS},
        "training": {"algorithm": "sklearn.linear_model.LinearRegression", "seed": SEED},
    })
    pred = reg.predict(score[SPEND_FEATURES].to_numpy(dtype=np.float32))
    pd.DataFrame({"transaction_id": score["transaction_id"], SPEND_TARGETS[0]: pred[:, 0], SPEND_TARGETS[1]: pred[:, 1]}).to_parquet(
        data_dir / "spend_forecast_expected.parquet", index=False)
    print(json.dumps({"risk_tier_classes": [int(c) for c in clf.classes_], "onnx_outputs": outputs}))


if __name__ == "__main__":
    main()
