/**
 * The raw baseline: the same read → predict → write as the pipeline, in this one process,
 * with no Temporal, no snapshot and no shards. It is what a careful engineer would write by
 * hand with the same libraries, and the yardstick for the pipeline's overhead:
 *
 *   read     DuckDB scans the feature columns (CAST AS DOUBLE) into one row-major Float32Array,
 *            copied out of DuckDB's vectors as typed arrays (lib/io/columns.ts, as the pipeline)
 *   predict  ONNX Runtime `session.run` over large batches with the worker's session options
 *            (1 intra-op thread, so the scores are bit-for-bit those of the pipeline); with
 *            `inferenceThreads` > 1 the batches run on that many worker threads at once
 *            (lib/runtime/pool.ts), the same number of cores the worker uses for inference
 *   write    predictions appended to a DuckDB table by DataChunks (lib/io/columns.ts), then one
 *            COPY joining them back to the ids (POSITIONAL JOIN, no id strings in JS) into a zstd
 *            Parquet file with the same columns as the pipeline's output; optionally the same
 *            rows COPY'd into Postgres.
 */
import type * as ortTypes from 'onnxruntime-node';
import fs from 'node:fs/promises';
import path from 'node:path';
import { appendColumns, readMatrices, selectColumn } from '../lib/io/columns';
import { ident, lit, scalar, withDuckDB } from '../lib/io/duckdb';
import { lineageSelect, type LineageValues } from '../lib/pipeline/batch';
import * as ort from 'onnxruntime-node';
import { DEFAULT_SESSION_OPTIONS, loadSession } from '../lib/runtime/onnx';
import { labelsAsNumbers } from '../lib/runtime/predict';
import { InferencePool, type PlainTensor } from '../lib/runtime/pool';
import type { ModelMetadata } from '../lib/registry/manifest';
import { copyCsvIntoPostgres, upsertCsvIntoPostgres, type PgTarget } from './postgres';

export interface RawOptions {
  features: string;
  modelPath: string;
  metadata: ModelMetadata;
  /** Lineage written into every row, with the pipeline's own select items. */
  lineage: LineageValues;
  outDir: string;
  batchRows: number;
  duckdbThreads: number;
  /** Threads running batches at once (1: `session.run` on this thread). */
  inferenceThreads: number;
  /** Also COPY the predictions into this Postgres table (timed separately): a new table, or an upsert into the existing one. */
  postgres?: PgTarget;
}

export interface RawResult {
  rows: number;
  readMs: number;
  predictMs: number;
  writeParquetMs: number;
  /** Present when a Postgres target was given. */
  writePostgresMs?: number;
  parquetPath: string;
  positives: number;
  meanScore: number;
  /** CPU time of this process (all threads) over read + predict + Parquet write, ms. */
  cpuMs: number;
}

interface Features {
  rows: number;
  width: number;
  x: Float32Array;
}

async function readFeatures(features: string, columns: string[], threads: number): Promise<Features> {
  return withDuckDB(
    async (conn) => {
      const rows = Number(await scalar(conn, `SELECT count(*) FROM read_parquet(${lit(features)})`));
      const width = columns.length;
      const [x] = await readMatrices(conn, `SELECT ${columns.map((c) => selectColumn(c, 'float32')).join(', ')} FROM read_parquet(${lit(features)})`, [width], rows);
      return { rows, width, x: x! };
    },
    { threads },
  );
}

async function predictAll(session: ortTypes.InferenceSession, o: RawOptions, inputName: string, f: Features, pool: InferencePool | undefined) {
  const { metadata, batchRows } = o;
  const label = new Float64Array(f.rows);
  const score = new Float32Array(f.rows);
  const labelName = metadata.outputs.label ?? 'label';
  const probName = metadata.outputs.probabilities ?? 'probabilities';
  const positive = metadata.class_labels && metadata.positive_class !== undefined ? Math.max(0, metadata.class_labels.indexOf(metadata.positive_class)) : 1;
  const collect = (out: Record<string, PlainTensor>, start: number, n: number) => {
    // The pipeline's own int64 → number conversion (not one BigInt per row).
    const labels = labelsAsNumbers(out[labelName]!.data, n);
    const probs = out[probName]!.data as Float32Array;
    const k = out[probName]!.dims[1] ?? 1;
    for (let r = 0; r < n; r++) {
      label[start + r] = labels[r]!;
      score[start + r] = probs[r * k + positive]!;
    }
  };
  const feeds = (start: number, n: number) => ({ [inputName]: new ort.Tensor('float32', f.x.subarray(start * f.width, (start + n) * f.width), [n, f.width]) });
  const batches: { start: number; n: number }[] = [];
  for (let start = 0; start < f.rows; start += batchRows) batches.push({ start, n: Math.min(batchRows, f.rows - start) });
  if (pool) {
    // Every batch at once: the pool spreads them over its threads.
    await Promise.all(batches.map(async (b) => collect(await pool.run('raw', o.modelPath, DEFAULT_SESSION_OPTIONS, feeds(b.start, b.n)), b.start, b.n)));
  } else {
    for (const b of batches) {
      const out = await session.run(feeds(b.start, b.n));
      collect(out, b.start, b.n);
      for (const t of Object.values(out)) t.dispose();
    }
  }
  return { label, score };
}

/**
 * The output rows as a SELECT over the staged predictions: the pipeline's part columns, or (for
 * PostgreSQL, which adds the lineage itself) only the id, label and score.
 */
function outputSelect(o: RawOptions, idColumn: string, lineage = true): string {
  return `SELECT s.${ident(idColumn)}, p.label::BIGINT AS label, p.score${lineage ? `, ${lineageSelect(o.lineage)}` : ''}
          FROM (SELECT ${ident(idColumn)} FROM read_parquet(${lit(o.features)})) s POSITIONAL JOIN preds p`;
}

export async function runRawBaseline(o: RawOptions): Promise<RawResult> {
  const input = o.metadata.inputs[0];
  if (!input || o.metadata.inputs.length !== 1) throw new Error('the raw baseline handles models with exactly one input');
  const idColumn = o.metadata.id_column ?? 'transaction_id';
  const session = await loadSession(o.modelPath, `model ${o.modelPath}`, DEFAULT_SESSION_OPTIONS);
  const pool = o.inferenceThreads > 1 ? new InferencePool(o.inferenceThreads) : undefined;
  try {
    // Threads start and load the model before the clock starts (the worker's are warm after its first shard).
    if (pool) await Promise.all(Array.from({ length: pool.size }, () => pool.run('raw', o.modelPath, DEFAULT_SESSION_OPTIONS, { [input.name]: new ort.Tensor('float32', new Float32Array(input.columns.length), [1, input.columns.length]) })));
    const cpu0 = process.cpuUsage();
    let t = performance.now();
    const features = await readFeatures(o.features, input.columns, o.duckdbThreads);
    const readMs = performance.now() - t;

    t = performance.now();
    const { label, score } = await predictAll(session, o, input.name, features, pool);
    const predictMs = performance.now() - t;

    await fs.mkdir(o.outDir, { recursive: true });
    const parquetPath = path.join(o.outDir, 'predictions.parquet');
    const csvPath = path.join(o.outDir, 'predictions.csv');
    const result: RawResult = { rows: features.rows, readMs, predictMs, writeParquetMs: 0, parquetPath, positives: 0, meanScore: 0, cpuMs: 0 };
    await withDuckDB(
      async (conn) => {
        t = performance.now();
        await conn.run('CREATE TEMP TABLE preds (label DOUBLE, score FLOAT)');
        await appendColumns(conn, 'preds', [label, score]);
        const appendMs = performance.now() - t;
        await conn.run(`COPY (${outputSelect(o, idColumn)}) TO ${lit(parquetPath)} (FORMAT parquet, COMPRESSION zstd)`);
        result.writeParquetMs = performance.now() - t;
        const cpu = process.cpuUsage(cpu0);
        result.cpuMs = (cpu.user + cpu.system) / 1000;

        if (o.postgres) {
          // Postgres gets the same rows: DuckDB renders CSV, COPY FROM STDIN streams it in. Like the
          // sink, only the per-row columns travel; the lineage (one value per run) is added by
          // PostgreSQL (column defaults, or parameters of the upsert).
          // The append into DuckDB is shared with the Parquet write, so it is counted here too.
          t = performance.now();
          await conn.run(`COPY (${outputSelect(o, idColumn, false)}) TO ${lit(csvPath)} (FORMAT csv, HEADER false)`);
          await (o.postgres.upsert ? upsertCsvIntoPostgres : copyCsvIntoPostgres)(o.postgres, csvPath, o.lineage);
          result.writePostgresMs = performance.now() - t + appendMs;
          await fs.rm(csvPath, { force: true });
        }
        const stats = (await conn.runAndReadAll('SELECT sum(label)::BIGINT, avg(score) FROM preds')).getRowsJS()[0];
        result.positives = Number(stats?.[0] ?? 0);
        result.meanScore = Number(stats?.[1] ?? 0);
      },
      { threads: o.duckdbThreads },
    );
    return result;
  } finally {
    await pool?.close();
    await session.release();
  }
}
