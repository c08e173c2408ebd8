"""Train the example recommender (the "weekly playlist") and write the files the TypeScript side uses.

A seeded, synthetic music-streaming set: users with taste (energy, acousticness), songs with
the same traits and a popularity, and for each user a list of candidate songs. A
gradient-boosted classifier learns whether the user plays a candidate; its probability is the
ranking score. We write:

  examples/models/recommender/model.onnx        the model (ONNX, probabilities as a tensor)
  examples/models/recommender/metadata.json     inputs, feature order, labels, metrics
  examples/data/playlist_candidates.parquet     user × song candidate pairs to rank (new users)
  examples/data/playlist_expected.parquet       per user: the top-k songs and their scores,
                                                ONNX Runtime (Python) on the same rows, ties
                                                broken by song id

Run from the repository root:
  python3 -m pip install -r examples/train/requirements.txt
  python3 examples/train/train_recommender.py
The outputs are committed, so the tests never need Python.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split

from train_fraud import binary_metrics, export_binary_classifier

ROOT = pathlib.Path(__file__).resolve().parents[2]
FEATURES = ["user_energy", "user_acousticness", "song_energy", "song_acousticness", "song_popularity", "taste_distance"]
SONGS = 500
TOP_K = 10
SEED = 11


def songs(rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "song_id": [f"song-{i:04d}" for i in range(SONGS)],
        "song_energy": rng.random(SONGS).round(3),
        "song_acousticness": rng.random(SONGS).round(3),
        "song_popularity": rng.beta(2.0, 5.0, SONGS).round(3),
    })


def candidates(rng: np.random.Generator, catalog: pd.DataFrame, users: int, per_user: int, first_user: int) -> pd.DataFrame:
    """`per_user` distinct candidate songs for each user, with the pair's features."""
    rows = []
    for u in range(first_user, first_user + users):
        energy, acoustic = rng.random(2).round(3)
        picks = rng.choice(SONGS, size=per_user, replace=False)
        c = catalog.iloc[picks].copy()
        c.insert(0, "user_id", np.int64(u))
        c["user_energy"] = energy
        c["user_acousticness"] = acoustic
        rows.append(c)
    df = pd.concat(rows, ignore_index=True)
    df["taste_distance"] = np.sqrt((df.user_energy - df.song_energy) ** 2 + (df.user_acousticness - df.song_acousticness) ** 2).round(4)
    return df


def played(rng: np.random.Generator, df: pd.DataFrame) -> np.ndarray:
    logit = 2.5 * df.song_popularity - 6.0 * df.taste_distance + 0.8 + rng.normal(0, 0.7, len(df))
    return (rng.random(len(df)) < 1 / (1 + np.exp(-logit))).astype(np.int64)


def top_k(df: pd.DataFrame, scores: np.ndarray, k: int) -> pd.DataFrame:
    """Per user, the k best songs: score descending, ties by song id ascending."""
    s = df[["user_id", "song_id"]].assign(score=scores).sort_values(["user_id", "score", "song_id"], ascending=[True, False, True])
    best = s.groupby("user_id", sort=True).head(k)
    return best.groupby("user_id", sort=True).agg(items=("song_id", list), scores=("score", list)).reset_index()


def main() -> None:
    rng = np.random.default_rng(SEED)
    catalog = songs(rng)
    train = candidates(rng, catalog, users=1500, per_user=30, first_user=1)
    y = played(rng, train)
    x_train, x_test, y_train, y_test = train_test_split(train[FEATURES].to_numpy(np.float32), y, test_size=0.2, random_state=SEED)
    model = GradientBoostingClassifier(n_estimators=40, max_depth=3, learning_rate=0.1, random_state=SEED).fit(x_train, y_train)
    metrics = binary_metrics(y, y_test, model.predict_proba(x_test)[:, 1], len(y_train))
    out = ROOT / "examples" / "models" / "recommender"
    onx = export_binary_classifier(
        model, GradientBoostingClassifier, out, "recommender",
        "Gradient-boosted play-probability model ranking candidate songs per user (seeded, synthetic).",
        metrics, {"algorithm": "sklearn.ensemble.GradientBoostingClassifier", "params": {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.1}, "seed": SEED},
        columns=FEATURES,
    )
    meta = json.loads((out / "metadata.json").read_text())
    meta["id_column"] = "user_id"
    meta["metrics"]["play_rate"] = meta["metrics"].pop("fraud_rate")
    (out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")

    score_set = candidates(rng, catalog, users=300, per_user=40, first_user=100_001)
    data = ROOT / "examples" / "data"
    score_set[["user_id", "song_id", *FEATURES[:1], *FEATURES[1:]]].to_parquet(data / "playlist_candidates.parquet", index=False)
    session = ort.InferenceSession(onx, providers=["CPUExecutionProvider"])
    proba = session.run(["probabilities"], {"features": score_set[FEATURES].to_numpy(np.float32)})[0][:, 1]
    expected = top_k(score_set, proba, TOP_K)
    expected.to_parquet(data / "playlist_expected.parquet", index=False)
    print(json.dumps({"metrics": metrics, "candidates": len(score_set), "users": len(expected), "k": TOP_K}, indent=2))


if __name__ == "__main__":
    main()
