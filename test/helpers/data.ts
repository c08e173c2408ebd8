import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { DEFAULT_SESSION_OPTIONS, toOrtOptions } from '../../lib/runtime/onnx';
import { EXAMPLE_FEATURES, EXAMPLE_MODEL_DIR } from '../../cli/examples';

export const FEATURE_COLUMNS = ['amount', 'customer_avg_amount_30d', 'customer_txn_count_24h', 'distance_from_home_km', 'hour_of_day', 'is_foreign', 'merchant_risk'];

/** Write a variant of the example feature file: `select` is a SELECT list over it, `where` filters rows. */
export async function writeVariant(dir: string, name: string, select: string, where = 'true', limit?: number): Promise<string> {
  const out = path.join(dir, name);
  const fmt = name.endsWith('.csv') ? '(FORMAT csv, HEADER true)' : '(FORMAT parquet)';
  await withDuckDB((conn) =>
    conn.run(`COPY (SELECT ${select} FROM read_parquet(${lit(EXAMPLE_FEATURES)}) WHERE ${where} ORDER BY transaction_id ${limit ? `LIMIT ${limit}` : ''}) TO ${lit(out)} ${fmt}`),
  );
  return out;
}

/** Scores by transaction id. */
export type Scores = Map<string, { label: number; score: number }>;

/** The scores in a Parquet file with transaction_id, label and score columns (a reference file, a staged part). */
export async function scoresIn(parquetPath: string): Promise<Scores> {
  return withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(`SELECT transaction_id, label, score FROM read_parquet(${lit(parquetPath)})`);
    return new Map(r.getRowsJS().map(([id, label, score]) => [toText(id), { label: Number(label), score: Number(score) }]));
  });
}

/** Reference: ONNX Runtime called directly on the same rows (one run over all of them). */
export async function referenceScores(featuresPath: string): Promise<Scores> {
  const { ids, x, n } = await withDuckDB(async (conn) => {
    const reader = await conn.runAndReadAll(
      `SELECT transaction_id, ${FEATURE_COLUMNS.map((c) => `CAST("${c}" AS DOUBLE)`).join(', ')} FROM read_parquet(${lit(featuresPath)})`,
    );
    const rows = reader.getRowsJS();
    const x = new Float32Array(rows.length * FEATURE_COLUMNS.length);
    rows.forEach((r, i) => FEATURE_COLUMNS.forEach((_, j) => (x[i * FEATURE_COLUMNS.length + j] = Number(r[j + 1]))));
    return { ids: rows.map((r) => toText(r[0])), x, n: rows.length };
  });
  const session = await ort.InferenceSession.create(path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), toOrtOptions(DEFAULT_SESSION_OPTIONS));
  const out = await session.run({ features: new ort.Tensor('float32', x, [n, FEATURE_COLUMNS.length]) });
  const labels = out.label!.data as BigInt64Array;
  const probs = out.probabilities!.data as Float32Array;
  await session.release();
  return new Map(ids.map((id, i) => [id, { label: Number(labels[i]), score: probs[i * 2 + 1]! }]));
}

export async function readOutput(location: string): Promise<{ transaction_id: string; label: number; score: number; model_version: number; model_sha256: string; as_of: string; run_id: string }[]> {
  return withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(`SELECT transaction_id, label, score, model_version, model_sha256, strftime(as_of AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS as_of, run_id FROM read_parquet(${lit(path.join(location, '*.parquet'))}) ORDER BY transaction_id`);
    return r.getRowObjectsJS().map((o) => ({
      transaction_id: toText(o.transaction_id),
      label: Number(o.label),
      score: Number(o.score),
      model_version: Number(o.model_version),
      model_sha256: toText(o.model_sha256),
      as_of: toText(o.as_of),
      run_id: toText(o.run_id),
    }));
  });
}
