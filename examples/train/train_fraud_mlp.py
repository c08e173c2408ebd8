"""Train a small MLP fraud model (the benchmark's second model) and write it for the TypeScript side.

It is trained on the same seeded synthetic transactions as the gradient-boosted model
(``generate`` from train_fraud.py), so both models score the same feature columns:

  examples/models/fraud-mlp/model.onnx      StandardScaler + MLPClassifier(32, 16), ONNX,
                                            input ``features`` float32 [None, 7],
                                            outputs ``label`` and ``probabilities`` (no ZipMap)
  examples/models/fraud-mlp/metadata.json   same format as fraud-detector's metadata.json

A tree ensemble and a dense network stress ONNX Runtime differently (branchy tree walks vs.
small matrix multiplies), which is why the batch benchmark runs both.

Run from the repository root:
  python3 examples/train/train_fraud_mlp.py
The outputs are committed, so the benchmark never needs Python to train.
"""
from __future__ import annotations

import json
import pathlib
import sys

from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

# Reuse the generator and feature order of the tree model: one definition of the data.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from train_fraud import ROOT, binary_metrics, export_binary_classifier, training_args, training_split  # noqa: E402

HIDDEN = (32, 16)


def main() -> None:
    args = training_args(__doc__, score_rows=False)
    y, X_tr, X_te, y_tr, y_te = training_split(args.train_rows, args.seed)

    # Amounts and distances span thousands while flags are 0/1: an MLP needs scaled inputs.
    # The scaler is part of the exported graph, so callers feed raw feature values.
    mlp = MLPClassifier(hidden_layer_sizes=HIDDEN, alpha=1e-4, batch_size=512, max_iter=60, early_stopping=True, random_state=args.seed)
    model = Pipeline([("scale", StandardScaler()), ("mlp", mlp)])
    model.fit(X_tr, y_tr)
    proba = model.predict_proba(X_te)[:, 1]
    metrics = binary_metrics(y, y_te, proba, len(y_tr))
    model_bytes = len(export_binary_classifier(
        model,
        MLPClassifier,
        ROOT / "examples" / "models" / "fraud-mlp",
        "fraud-mlp",
        "Small MLP fraud classifier (StandardScaler + MLPClassifier 32x16) on synthetic card transactions (seeded).",
        metrics,
        {
            "algorithm": "sklearn.pipeline.Pipeline(StandardScaler, sklearn.neural_network.MLPClassifier)",
            "params": {"hidden_layer_sizes": list(HIDDEN), "alpha": 1e-4, "batch_size": 512, "max_iter": 60, "early_stopping": True},
            "iterations": int(mlp.n_iter_),
            "seed": args.seed,
        },
    ))
    print(json.dumps({"metrics": metrics, "iterations": int(mlp.n_iter_), "model_bytes": model_bytes}, indent=2))


if __name__ == "__main__":
    main()
