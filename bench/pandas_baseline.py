"""The data-scientist baseline for `npm run bench -- batch`: pandas + onnxruntime in one process.

    read     pandas.read_parquet(id + feature columns) -> float32 matrix
    predict  onnxruntime InferenceSession.run over batches of --batch-rows rows
    write    DataFrame (id, label, score, lineage columns as the pipeline writes them) .to_parquet(zstd)
             and, only if psycopg is importable, COPY into Postgres (else reported as skipped): a new
             keyed table, or with --pg-upsert a temporary table upserted into the existing one

ONNX Runtime is configured like the Inferflow worker: intra_op_num_threads=1,
inter_op_num_threads=1, sequential execution, all graph optimizations, no spinning.
Prints one JSON object on stdout with the time of each stage in milliseconds.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import time

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow


def session_options(threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so


UPDATE_COLUMNS = ["label", "score", "model_name", "model_version", "model_sha256", "as_of", "run_id"]


def write_postgres(out: pd.DataFrame, table: str, upsert: bool) -> dict:
    try:
        import psycopg  # type: ignore[import-not-found]
    except ImportError:
        return {"skipped": "psycopg is not importable in this Python"}
    t = time.perf_counter()
    buf = io.StringIO()
    out.to_csv(buf, header=False, index=False)
    conninfo = " ".join(f"{k}={os.environ[v]}" for k, v in [("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("dbname", "PGDATABASE")] if v in os.environ)
    columns = "transaction_id TEXT, label BIGINT, score REAL, model_name TEXT, model_version INTEGER, model_sha256 TEXT, as_of TIMESTAMPTZ, run_id TEXT"
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        if upsert:
            # The table holds an earlier run's rows: stage, then upsert with the sink's as-of guard.
            cur.execute(f"CREATE TEMP TABLE pandas_stage ({columns}) ON COMMIT DROP")
            with cur.copy("COPY pandas_stage FROM STDIN (FORMAT csv)") as copy:
                copy.write(buf.getvalue())
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in UPDATE_COLUMNS)
            cur.execute(
                f'INSERT INTO "{table}" AS t SELECT * FROM pandas_stage ON CONFLICT (transaction_id) DO UPDATE SET {updates} '
                "WHERE t.as_of IS NULL OR t.as_of <= EXCLUDED.as_of"
            )
        else:
            cur.execute(f'DROP TABLE IF EXISTS "{table}"')
            cur.execute(f'CREATE TABLE "{table}" ({columns}, PRIMARY KEY (transaction_id))')
            with cur.copy(f'COPY "{table}" FROM STDIN (FORMAT csv)') as copy:
                copy.write(buf.getvalue())
    return {"write_ms": (time.perf_counter() - t) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True)
    ap.add_argument("--model", required=True, help="model.onnx")
    ap.add_argument("--metadata", required=True, help="metadata.json (feature columns, id column, outputs)")
    ap.add_argument("--out", required=True, help="output Parquet file")
    ap.add_argument("--batch-rows", type=int, default=65536)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-id", default="pandas-baseline")
    ap.add_argument("--model-version", type=int, default=1)
    ap.add_argument("--model-sha256", default="")
    ap.add_argument("--as-of", default=None, help="ISO time for the as_of lineage column (default: now)")
    ap.add_argument("--pg-table", default=None)
    ap.add_argument("--pg-upsert", action="store_true", help="--pg-table holds an earlier run's rows: upsert into it (default: replace it)")
    args = ap.parse_args()

    meta = json.load(open(args.metadata))
    inp = meta["inputs"][0]
    columns = inp["columns"]
    id_col = meta.get("id_column", "transaction_id")
    label_name = meta.get("outputs", {}).get("label", "label")
    prob_name = meta.get("outputs", {}).get("probabilities", "probabilities")
    labels = meta.get("class_labels")
    positive = labels.index(meta["positive_class"]) if labels and "positive_class" in meta else 1

    sess = ort.InferenceSession(args.model, sess_options=session_options(args.threads), providers=["CPUExecutionProvider"])

    def cpu_s() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    cpu0 = cpu_s()
    t = time.perf_counter()
    df = pd.read_parquet(args.features, columns=[id_col, *columns])
    x = df[columns].to_numpy(dtype=np.float32)
    read_ms = (time.perf_counter() - t) * 1000

    t = time.perf_counter()
    n = len(x)
    label = np.empty(n, dtype=np.int64)
    score = np.empty(n, dtype=np.float32)
    for start in range(0, n, args.batch_rows):
        lab, prob = sess.run([label_name, prob_name], {inp["name"]: x[start : start + args.batch_rows]})
        label[start : start + len(lab)] = lab
        score[start : start + len(lab)] = prob[:, positive]
    predict_ms = (time.perf_counter() - t) * 1000

    t = time.perf_counter()
    out = pd.DataFrame(
        {
            id_col: df[id_col],
            "label": label,
            "score": score,
            "model_name": meta["name"],
            "model_version": np.int32(args.model_version),
            "model_sha256": args.model_sha256,
            "as_of": pd.Timestamp(args.as_of) if args.as_of else pd.Timestamp.now(tz="UTC"),
            "run_id": args.run_id,
        }
    )
    out.to_parquet(args.out, compression="zstd", index=False)
    write_ms = (time.perf_counter() - t) * 1000
    cpu_ms = (cpu_s() - cpu0) * 1000

    postgres = write_postgres(out, args.pg_table, args.pg_upsert) if args.pg_table else {"skipped": "no table requested"}

    json.dump(
        {
            "rows": int(n),
            "read_ms": read_ms,
            "predict_ms": predict_ms,
            "write_ms": write_ms,
            "cpu_ms": cpu_ms,
            "positives": int(label.sum()),
            "mean_score": float(score.mean()),
            "postgres": postgres,
            "settings": {
                "intra_op_num_threads": args.threads,
                "inter_op_num_threads": 1,
                "execution_mode": "sequential",
                "allow_spinning": False,
                "batch_rows": args.batch_rows,
            },
            "versions": {
                "python": sys.version.split()[0],
                "pandas": pd.__version__,
                "numpy": np.__version__,
                "pyarrow": pyarrow.__version__,
                "onnxruntime": ort.__version__,
            },
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
