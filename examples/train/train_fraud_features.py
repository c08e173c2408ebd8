"""Train the feature-store example model: raw request data + point-in-time features +
on-demand features + fitted transforms, the way a training job would, and write the files
the TypeScript pipeline serves with.

The set-up (seeded, synthetic):
  * a feature view `customer_stats`, one snapshot per customer per day (with gaps and some
    missing counts): avg_amount_30d, txn_count_7d, home_lat, home_lon;
  * card transactions (the spine): transaction_id, customer_id, event_timestamp, amount,
    merchant_category, lat, lon;
  * on-demand features computed from both (examples/features/fraud.ts is the TypeScript twin
    of `on_demand` below): amount_ratio, hour_of_day, distance_km;
  * a ColumnTransformer (log1p, standard / robust / min-max scaling, imputation, one-hot) whose
    fitted statistics go into metadata.json as an inferflow.transforms/v1 spec, and a
    gradient-boosted classifier on its output, exported to ONNX.

Training rows get their features point-in-time (pandas merge_asof: latest snapshot at or
before the transaction, at most TTL old), exactly the rule lib/features applies, so serving
sees the same values the model was trained on.

Writes:
  examples/data/customer_stats.parquet            the feature view's offline source
  examples/data/card_requests.parquet             a scoring spine (later transactions)
  examples/data/card_requests_expected.parquet    Python's scores for the spine (test fixture)
  examples/models/fraud-features/model.onnx       the classifier (input `features`, float32)
  examples/models/fraud-features/metadata.json    inputs, transforms, outputs, metrics

Run from the repository root (outputs are committed; the demo and tests never need Python):
  python3 -m pip install -r examples/train/requirements.txt
  python3 examples/train/train_fraud_features.py
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_transform_fixtures import column_transformer_spec  # noqa: E402
from train_fraud import binary_metrics, export_binary_classifier  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
START = datetime(2026, 9, 1, tzinfo=timezone.utc)
DAYS = 45
TTL = pd.Timedelta(days=2)  # the view's ttl "2d"
VIEW = "customer_stats"
MCC = ["grocery", "fuel", "restaurant", "travel", "electronics", "online_gaming", "jewelry", "pharmacy"]
MCC_P = [0.3, 0.15, 0.2, 0.07, 0.1, 0.05, 0.03, 0.1]
MCC_RISK = dict(zip(MCC, [0.02, 0.03, 0.03, 0.08, 0.12, 0.20, 0.18, 0.02]))
CITIES = np.array([[52.52, 13.40], [48.86, 2.35], [40.42, -3.70], [45.46, 9.19], [51.51, -0.13], [50.85, 4.35]])
RAW = ["amount", "amount_ratio", "hour_of_day", "distance_km", f"{VIEW}__txn_count_7d", "merchant_category"]


def customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    city = rng.integers(0, len(CITIES), size=n)
    home = CITIES[city] + rng.normal(0, 0.05, size=(n, 2))
    return pd.DataFrame({
        "customer_id": np.arange(1, n + 1, dtype=np.int64),
        "typical": np.exp(rng.normal(3.5, 0.8, size=n)),
        "home_lat": home[:, 0],
        "home_lon": home[:, 1],
        "activity": rng.gamma(2.0, 1.0, size=n),
    })


def snapshots(cust: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Daily feature snapshots; ~8% of days have no snapshot, ~4% a null txn_count_7d."""
    rows = []
    for d in range(DAYS):
        keep = rng.random(len(cust)) > 0.08
        c = cust[keep]
        n = len(c)
        count = rng.poisson(c["activity"].to_numpy() * 7).astype("float64")
        count[rng.random(n) < 0.04] = np.nan
        rows.append(pd.DataFrame({
            "customer_id": c["customer_id"].to_numpy(),
            "event_timestamp": pd.Timestamp(START + timedelta(days=d)),
            "avg_amount_30d": np.round(c["typical"].to_numpy() * np.exp(rng.normal(0, 0.08, size=n)), 2),
            "txn_count_7d": pd.array(count, dtype="Int64"),
            "home_lat": np.round(c["home_lat"].to_numpy(), 5),
            "home_lon": np.round(c["home_lon"].to_numpy(), 5),
        }))
    return pd.concat(rows, ignore_index=True)


def transactions(cust: pd.DataFrame, n: int, first_day: int, last_day: int, seed: int, prefix: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    c = cust.iloc[rng.integers(0, len(cust), size=n)].reset_index(drop=True)
    seconds = np.sort(rng.integers(first_day * 86400, last_day * 86400, size=n))
    ts = pd.Timestamp(START) + pd.to_timedelta(seconds, unit="s")
    mcc = rng.choice(len(MCC), size=n, p=MCC_P)
    foreign = rng.random(n) < 0.06
    lat = np.where(foreign, rng.uniform(-40, 60, size=n), c["home_lat"] + rng.normal(0, 0.08, size=n))
    lon = np.where(foreign, rng.uniform(-120, 140, size=n), c["home_lon"] + rng.normal(0, 0.08, size=n))
    amount = c["typical"].to_numpy() * np.exp(rng.normal(0, 0.6, size=n))
    return pd.DataFrame({
        "transaction_id": [f"{prefix}-{i:07d}" for i in range(n)],
        "customer_id": c["customer_id"].to_numpy(),
        "event_timestamp": ts,
        "amount": np.round(amount, 2),
        "merchant_category": [MCC[i] for i in mcc],
        "lat": np.round(lat, 5),
        "lon": np.round(lon, 5),
    })


def point_in_time(spine: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """Latest snapshot with event time <= the transaction's, at most TTL old (lib/features' rule)."""
    s = stats.rename(columns={c: f"{VIEW}__{c}" for c in ["avg_amount_30d", "txn_count_7d", "home_lat", "home_lon"]})
    s = s.rename(columns={"event_timestamp": "feature_ts"}).sort_values("feature_ts")
    order = spine.sort_values("event_timestamp", kind="stable")
    joined = pd.merge_asof(order, s, left_on="event_timestamp", right_on="feature_ts", by="customer_id",
                           direction="backward", allow_exact_matches=True, tolerance=TTL)
    return joined.drop(columns=["feature_ts"]).set_index(order.index).loc[spine.index]


def haversine_km(lat1, lon1, lat2, lon2):
    r = np.pi / 180
    a = np.sin((lat2 - lat1) * r / 2) ** 2 + np.cos(lat1 * r) * np.cos(lat2 * r) * np.sin((lon2 - lon1) * r / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(a))


def on_demand(df: pd.DataFrame) -> pd.DataFrame:
    """The Python twin of examples/features/fraud.ts (same formulas, float64)."""
    out = df.copy()
    out["amount_ratio"] = df["amount"] / df[f"{VIEW}__avg_amount_30d"].astype("float64")
    out["hour_of_day"] = df["event_timestamp"].dt.hour.astype("float64")
    out["distance_km"] = haversine_km(df["lat"], df["lon"], df[f"{VIEW}__home_lat"].astype("float64"), df[f"{VIEW}__home_lon"].astype("float64"))
    out[f"{VIEW}__txn_count_7d"] = df[f"{VIEW}__txn_count_7d"].astype("float64")
    return out


def labels(df: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    ratio = df["amount_ratio"].fillna(1.0).to_numpy()
    dist = df["distance_km"].fillna(5.0).to_numpy()
    hour = df["hour_of_day"].to_numpy()
    count = df[f"{VIEW}__txn_count_7d"].fillna(7).to_numpy()
    risk = df["merchant_category"].map(MCC_RISK).to_numpy()
    logit = -6.0 + 1.7 * np.log1p(ratio) + 0.9 * ((hour <= 4) | (hour >= 23)) + 0.5 * np.log1p(dist / 50) + 12.0 * risk + 0.05 * np.maximum(count - 14, 0)
    return (rng.random(len(df)) < 1 / (1 + np.exp(-logit))).astype(np.int64)


def transformer() -> ColumnTransformer:
    log1p = lambda: FunctionTransformer(np.log1p)  # noqa: E731
    return ColumnTransformer([
        ("amount", Pipeline([("log", log1p()), ("scale", StandardScaler())]), ["amount"]),
        ("ratio", Pipeline([("impute", SimpleImputer(strategy="median")), ("log", log1p()), ("scale", StandardScaler())]), ["amount_ratio"]),
        ("distance", Pipeline([("impute", SimpleImputer(strategy="median")), ("log", log1p()), ("scale", RobustScaler())]), ["distance_km"]),
        ("count", Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", MinMaxScaler())]), [f"{VIEW}__txn_count_7d"]),
        ("hour", "passthrough", ["hour_of_day"]),
        ("mcc", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["merchant_category"]),
    ], verbose_feature_names_out=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--train-rows", type=int, default=120_000)
    ap.add_argument("--score-rows", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    cust = customers(args.customers, rng)
    stats = snapshots(cust, rng)
    train_spine = transactions(cust, args.train_rows, 3, 38, args.seed + 1, "tr")
    train = on_demand(point_in_time(train_spine, stats))
    y = labels(train, rng)

    ct = transformer()
    X = ct.fit_transform(train[RAW]).astype(np.float32)
    spec, order = column_transformer_spec(ct)
    split = int(len(X) * 0.8)  # time-ordered split: train on the past, test on the future
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, learning_rate=0.1, random_state=args.seed)
    model.fit(X[:split], y[:split])
    metrics = binary_metrics(y, y[split:], model.predict_proba(X[split:])[:, 1], split)

    out_dir = ROOT / "examples" / "models" / "fraud-features"
    onx_bytes = export_binary_classifier(
        model,
        id(model),
        out_dir,
        "fraud-features",
        "Fraud classifier over request data, point-in-time customer features, on-demand features and fitted transforms (seeded, synthetic).",
        metrics,
        {
            "algorithm": "sklearn.ensemble.GradientBoostingClassifier",
            "params": {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1},
            "raw_features": RAW,
            "feature_views": [VIEW],
            "on_demand": "examples/features/fraud.ts (amountRatio, hourOfDay, homeDistance)",
            "seed": args.seed,
        },
        columns=order,
        extra={"transforms": spec},
    )

    # A scoring spine from later days, with a merchant category the model never saw.
    score = transactions(cust, args.score_rows, 38, DAYS, args.seed + 2, "tx")
    unseen = np.random.default_rng(args.seed + 3).choice(len(score), size=25, replace=False)
    score.loc[unseen, "merchant_category"] = "crypto_exchange"
    data = ROOT / "examples" / "data"
    stats.to_parquet(data / "customer_stats.parquet", index=False, compression="zstd")
    score.to_parquet(data / "card_requests.parquet", index=False, compression="zstd")

    feats = on_demand(point_in_time(score, stats))
    Xs = ct.transform(feats[RAW]).astype(np.float32)
    sess = ort.InferenceSession(onx_bytes, providers=["CPUExecutionProvider"])
    label, proba = sess.run(["label", "probabilities"], {"features": Xs})
    pd.DataFrame({"transaction_id": score["transaction_id"], "label": label.astype(np.int64), "score": proba[:, 1].astype(np.float32)}).to_parquet(
        data / "card_requests_expected.parquet", index=False, compression="zstd")
    print(json.dumps({"metrics": metrics, "columns": order, "snapshot_rows": len(stats), "model_bytes": (out_dir / "model.onnx").stat().st_size,
                      "missing_avg_in_scoring": int(feats[f"{VIEW}__avg_amount_30d"].isna().sum())}, indent=2))


if __name__ == "__main__":
    main()
