/**
 * `npm run bench -- ort-threads`: ONNX Runtime placement for batch inference on this machine —
 * one session on the calling thread with 1 or 2 intra-op threads, or the inference pool
 * (lib/runtime/pool.ts: N worker threads × 1 intra-op thread, what the worker uses) — over the
 * benchmark dataset's first `--rows` rows in 65,536-row calls, both example models, with the
 * largest score difference to the 1-thread session (0 = bit-exact). Prints a table and writes
 * bench/results/ort-threads-<YYYY-MM-DD>.json.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { readMatrices, selectColumn } from '../lib/io/columns';
import { lit, withDuckDB } from '../lib/io/duckdb';
import type { ModelMetadata } from '../lib/registry/manifest';
import * as ort from 'onnxruntime-node';
import { loadSession, type SessionOptions } from '../lib/runtime/onnx';
import { InferencePool, type PlainTensor } from '../lib/runtime/pool';
import { BENCH_DATA_DIR, MODELS } from './batch';
import { ensureDataset } from './dataset';
import type { ModelKey } from './types';
import { hostInfo, loadAverage, packageVersion, sourceState, writeDailyResults } from './machine';
import { REPO_ROOT } from '../cli/examples';

const BATCH = 65_536;

type Run = (x: Float32Array, rows: number, width: number) => Promise<Float32Array>;

function positiveScores(out: Record<string, { data: unknown; dims: readonly number[] }>, meta: ModelMetadata, n: number, into: Float32Array, at: number): void {
  const probs = out[meta.outputs.probabilities ?? 'probabilities']!;
  const k = probs.dims[1] ?? 1;
  const p = probs.data as Float32Array;
  for (let r = 0; r < n; r++) into[at + r] = p[r * k + 1]!;
}

export async function runOrtThreadsBench(o: { rows: number; repeats: number; poolThreads: number; say: (m: string) => void }): Promise<void> {
  const dataset = await ensureDataset(BENCH_DATA_DIR, Math.max(1_000_000, o.rows), o.say);
  const lines: string[] = ['| model | placement | time (each repeat) | max score diff vs. intra-op 1 |', '|---|---|---|---|'];
  const recorded: { model: string; placement: string; seconds: number[]; maxScoreDiff: number }[] = [];
  const loadBefore = loadAverage();
  for (const key of ['tree', 'mlp'] as ModelKey[]) {
    const { name, dir } = MODELS[key];
    const meta = JSON.parse(await fs.readFile(path.join(dir, 'metadata.json'), 'utf8')) as ModelMetadata;
    const modelPath = path.join(dir, 'model.onnx');
    const input = meta.inputs[0]!;
    const width = input.columns.length;
    const [x] = await withDuckDB(
      (conn) => readMatrices(conn, `SELECT ${input.columns.map((c) => selectColumn(c, 'float32')).join(', ')} FROM read_parquet(${lit(dataset.path)}) LIMIT ${o.rows}`, [width], o.rows),
      { threads: 2 },
    );
    let timing = 0; // of the last run, set by the runners below
    const feeds = (start: number, n: number) => ({ [input.name]: new ort.Tensor('float32', x!.subarray(start * width, (start + n) * width), [n, width]) });
    const onMain = (options: SessionOptions): Run => async (_x, rows) => {
      const s = await loadSession(modelPath, name, options);
      try {
        const scores = new Float32Array(rows);
        const t = performance.now();
        for (let start = 0; start < rows; start += BATCH) {
          const n = Math.min(BATCH, rows - start);
          const out = await s.run(feeds(start, n));
          positiveScores(out, meta, n, scores, start);
        }
        timing = performance.now() - t;
        return scores;
      } finally {
        await s.release();
      }
    };
    const onPool: Run = async (_x, rows) => {
      const pool = new InferencePool(o.poolThreads);
      try {
        const opts = { intraOpThreads: 1 };
        // Threads started and the model loaded before the clock starts.
        await Promise.all(Array.from({ length: o.poolThreads }, () => pool.run('m', modelPath, opts, feeds(0, 1))));
        const scores = new Float32Array(rows);
        const t = performance.now();
        const calls: Promise<void>[] = [];
        for (let start = 0; start < rows; start += BATCH) {
          const n = Math.min(BATCH, rows - start);
          calls.push(pool.run('m', modelPath, opts, feeds(start, n)).then((out: Record<string, PlainTensor>) => positiveScores(out, meta, n, scores, start)));
        }
        await Promise.all(calls);
        timing = performance.now() - t;
        return scores;
      } finally {
        await pool.close();
      }
    };
    const variants: [string, Run][] = [
      ['calling thread, intra-op 1', onMain({ intraOpThreads: 1 })],
      ['calling thread, intra-op 2', onMain({ intraOpThreads: 2 })],
      [`pool ${o.poolThreads} × intra-op 1`, onPool],
    ];
    const times = new Map<string, number[]>();
    const diffs = new Map<string, number>();
    for (let rep = 0; rep < o.repeats; rep++) {
      let reference: Float32Array | undefined;
      for (const [label, run] of variants) {
        const scores = await run(x!, o.rows, width);
        (times.get(label) ?? times.set(label, []).get(label)!).push(timing);
        reference ??= scores;
        let d = 0;
        for (let i = 0; i < o.rows; i++) d = Math.max(d, Math.abs(scores[i]! - reference[i]!));
        diffs.set(label, Math.max(diffs.get(label) ?? 0, d));
      }
    }
    for (const [label] of variants) recorded.push({ model: name, placement: label, seconds: times.get(label)!.map((t) => Number((t / 1000).toFixed(3))), maxScoreDiff: diffs.get(label)! });
    for (const [label] of variants) lines.push(`| ${name} | ${label} | ${times.get(label)!.map((t) => `${(t / 1000).toFixed(2)} s`).join(', ')} | ${diffs.get(label) === 0 ? '0 (bit-exact)' : diffs.get(label)!.toExponential(1)} |`);
  }
  o.say(`\n${o.rows.toLocaleString('en-US')} rows, ${BATCH.toLocaleString('en-US')}-row calls, spinning off:\n`);
  o.say(lines.join('\n'));
  const date = new Date();
  const written = await writeDailyResults('ort-threads', date, {
    benchmark: 'ort-threads',
    schema: 1,
    date: date.toISOString(),
    command: `npm run bench -- ort-threads --rows ${o.rows} --repeats ${o.repeats} --pool-threads ${o.poolThreads}`,
    machine: { ...hostInfo(), onnxruntimeNode: packageVersion('onnxruntime-node'), loadAverageBefore: loadBefore, loadAverageAfter: loadAverage() },
    source: sourceState(REPO_ROOT, ['lib/runtime', 'bench/ort-threads.ts']),
    settings: { rows: o.rows, batchRows: BATCH, repeats: o.repeats, poolThreads: o.poolThreads, spinning: false },
    results: recorded,
  });
  o.say(`\nwrote ${written}`);
}
