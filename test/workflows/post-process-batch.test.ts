/**
 * batchInference with post-processing steps and models that answer with more than one score,
 * on the real Temporal dev server, into every run sink: Parquet (lists), DuckDB (lists),
 * PostgreSQL (real[] / text[]) and Redis (JSON arrays). Values are compared with scikit-learn's
 * for the same rows (examples/train/train_multi_output.py); a bad step fails the run at its plan.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  EMBEDDING_EXPECTED,
  EMBEDDING_PIPELINE,
  EXAMPLE_FEATURES,
  RISK_MODULE,
  RISK_TIER_EXPECTED,
  RISK_TIER_PIPELINE,
  SPEND_FORECAST_EXPECTED,
  registerEmbeddingModel,
  registerMultiOutputExampleModels,
} from '../../cli/examples';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { readRedisPrediction } from '../../lib/sinks';
import { startBatchRunEnv, type BatchRunEnv } from '../helpers/batch-run';
import { permanentFailureOf } from '../helpers/failures';
import { recordHistory as saveHistory } from '../helpers/histories';
import { deleteByPrefix } from '../helpers/redis';
import { TEST_REDIS_URL } from '../helpers/services';
import { uniqueName } from '../helpers/env';

type Row = Record<string, unknown>;
const TIER_NAMES: Record<string, string> = { '0': 'low', '1': 'medium', '2': 'high' };
let env: BatchRunEnv;
let features: string;
let risk: Row[];
let spend: Map<string, Row>;
/** scikit-learn's embedding of each row (examples/train/train_embedding.py). */
let embedding: Map<string, number[]>;

beforeAll(async () => {
  env = await startBatchRunEnv({ name: 'post', modules: `risk=${RISK_MODULE}`, register: async (registry) => {
      await registerMultiOutputExampleModels(registry);
      await registerEmbeddingModel(registry);
    },
  });
  features = path.join(env.dir, 'transactions-2000.parquet');
  await withDuckDB((conn) => conn.run(`COPY (SELECT * FROM read_parquet(${lit(EXAMPLE_FEATURES)}) LIMIT 2000) TO ${lit(features)} (FORMAT parquet)`));
  [risk, spend] = await withDuckDB(async (conn) => {
    const r = (await conn.runAndReadAll(`SELECT e.*, t.amount FROM read_parquet(${lit(RISK_TIER_EXPECTED)}) e JOIN read_parquet(${lit(features)}) t USING (transaction_id)`)).getRowObjectsJS() as Row[];
    const s = (await conn.runAndReadAll(`SELECT * FROM read_parquet(${lit(SPEND_FORECAST_EXPECTED)})`)).getRowObjectsJS() as Row[];
    return [r, new Map(s.map((x) => [String(x.transaction_id), x]))] as const;
  });
  embedding = await withDuckDB(async (conn) => {
    const e = (await conn.runAndReadAll(`SELECT transaction_id, [${Array.from({ length: 8 }, (_, j) => `e${j}`).join(', ')}] AS v FROM read_parquet(${lit(EMBEDDING_EXPECTED)})`)).getRowObjectsJS();
    return new Map(e.map((x) => [x.transaction_id as string, (x.v as number[]).map(Number)]));
  });
});

afterAll(async () => {
  await env?.close();
});

const run = (input: Parameters<BatchRunEnv['run']>[0]) => env.run(input);

const close = (a: number, b: number, rel = 2e-6, abs = 1e-6) => Math.abs(a - b) <= abs + rel * Math.abs(b);

/** Rows whose vector differs from scikit-learn's in length or in any element (float32 graph against float64: 2e-4 relative). */
function embeddingMismatches(rows: { transaction_id: unknown; embedding: unknown }[]): unknown[] {
  return rows.filter((r) => {
    const want = embedding.get(String(r.transaction_id))!;
    const got = (r.embedding as number[]).map(Number);
    return got.length !== want.length || got.some((x, j) => !close(x, want[j]!, 2e-4, 1e-5));
  });
}

/** What the risk-tier spec's steps give for a row of Python's outputs. */
function expectedRisk(e: Row): { label: string; top: string[]; action: string } {
  const amount = Number(e.amount);
  const label = amount > 2000 ? 'review' : TIER_NAMES[String(e.label)]!;
  const top = Object.entries(TIER_NAMES).sort(([a], [b]) => Number(e[`prob_${b}`]) - Number(e[`prob_${a}`])).slice(0, 2).map(([, n]) => n);
  return { label, top, action: label === 'high' ? 'decline' : label !== 'low' && amount > 500 ? 'hold' : 'approve' };
}

describe('batchInference with post-processing and multi-output models', () => {
  it('writes the risk-tier spec\'s post-processed columns to Parquet, with the post-processing beside the model version', async () => {
    const spec = await loadPipelineSpec(RISK_TIER_PIPELINE);
    const { handle, result } = await run({ ...spec, features, shardSize: 700 });
    expect(result.rowsOut).toBe(2000);
    const rows = await withDuckDB(async (conn) => (await conn.runAndReadAll(`SELECT * FROM read_parquet(${lit(path.join(result.output.location, '*.parquet'))})`)).getRowObjectsJS() as Row[]);
    const byId = new Map(rows.map((r) => [String(r.transaction_id), r]));
    const bad = risk.filter((e) => {
      const r = byId.get(String(e.transaction_id))!;
      const want = expectedRisk(e);
      return r.label !== want.label || r.action !== want.action || (r.top_classes as string[]).join() !== want.top.join() || [0, 1, 2].some((c) => !close(Number(r[`prob_${TIER_NAMES[c]}`]), Number(e[`prob_${c}`])));
    });
    expect(bad).toEqual([]);
    expect(new Set(rows.map((r) => JSON.stringify([r.model_version, r.post_process, r.post_process_sha256]))).size).toBe(1);
    expect(rows[0]!.post_process).toBe('classNames > topK(2) > rule(amount > 2000 → review) > risk.action');
    expect(rows[0]!.post_process_sha256).toMatch(/^[0-9a-f]{64}$/);
    if (process.env.RECORD_HISTORIES) await saveHistory(inject('temporalCli'), env.config.temporal.address, handle.workflowId, 'batchInference-post-process.json');
  });

  it('writes a multi-output regressor\'s targets as real[] in PostgreSQL and FLOAT[] in DuckDB', async () => {
    const table = env.table('spend');
    await run({ model: 'spend-forecast@production', features, idColumn: 'transaction_id', sink: { type: 'postgres', table }, shardSize: 700 });
    const type = await env.admin.query<{ t: string }>(`SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'prediction'`, [`public.${table}`]);
    expect(type.rows[0]!.t).toBe('real[]');
    const got = await env.admin.query<{ transaction_id: string; prediction: number[] }>(`SELECT transaction_id, prediction FROM public.${pg.escapeIdentifier(table)}`);
    expect(got.rows.length).toBe(2000);
    const badPg = got.rows.filter((r) => {
      const e = spend.get(r.transaction_id)!;
      return r.prediction.length !== 2 || !close(r.prediction[0]!, Number(e.spend_7d), 1e-5, 1e-3) || !close(r.prediction[1]!, Number(e.spend_30d), 1e-5, 1e-3);
    });
    expect(badPg).toEqual([]);

    const db = path.join(env.dir, 'spend.duckdb');
    await run({ model: 'spend-forecast@production', features, sink: { type: 'duckdb', path: db, table: 'spend' } });
    const duck = await withDuckDB(async (conn) => {
      await conn.run(`ATTACH ${lit(db)} AS out (READ_ONLY)`);
      return (await conn.runAndReadAll(`SELECT typeof(prediction) AS t, transaction_id, prediction FROM out.spend`)).getRowObjectsJS();
    });
    expect(duck[0]!.t).toBe('FLOAT[]');
    expect(duck.filter((r) => !close((r.prediction as number[])[1]!, Number(spend.get(r.transaction_id as string)!.spend_30d), 1e-5, 1e-3))).toEqual([]);
  });

  it('writes text[] top classes to PostgreSQL and JSON arrays to Redis', async () => {
    const spec = await loadPipelineSpec(RISK_TIER_PIPELINE);
    const table = env.table('risk');
    await run({ ...spec, features, sink: { type: 'postgres', table } });
    const pgRows = await env.admin.query<{ transaction_id: string; label: string; top_classes: string[]; post_process: string }>(`SELECT transaction_id, label, top_classes, post_process FROM public.${pg.escapeIdentifier(table)}`);
    expect(pgRows.rows.length).toBe(2000);
    const wantById = new Map(risk.map((e) => [String(e.transaction_id), expectedRisk(e)]));
    expect(pgRows.rows.filter((r) => r.label !== wantById.get(r.transaction_id)!.label || r.top_classes.join() !== wantById.get(r.transaction_id)!.top.join())).toEqual([]);

    const keyPrefix = uniqueName('post');
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await run({ ...spec, features, pipeline: 'risk', sink: { type: 'redis', keyPrefix } });
      for (const e of risk.slice(0, 20)) {
        const got = await readRedisPrediction(redis, keyPrefix, 'risk', String(e.transaction_id));
        const want = expectedRisk(e);
        expect(got).toMatchObject({ label: want.label, top_classes: want.top, action: want.action, post_process: pgRows.rows[0]!.post_process });
        expect(close(got!.prob_high as number, Number(e.prob_2))).toBe(true);
      }
    } finally {
      await deleteByPrefix(redis, keyPrefix);
      await redis.quit();
    }
  });

  it('writes an embedding model\'s vectors as a Parquet list, real[] in PostgreSQL, FLOAT[] in DuckDB and JSON arrays in Redis, equal to scikit-learn\'s', async () => {
    const spec = await loadPipelineSpec(EMBEDDING_PIPELINE);
    expect(embedding.size).toBe(2000);
    expect([...embedding.values()][0]).toHaveLength(8);

    const parquet = await run({ ...spec, features, shardSize: 700 });
    const rows = await withDuckDB(async (conn) =>
      (await conn.runAndReadAll(`SELECT typeof(embedding) AS t, transaction_id, embedding FROM read_parquet(${lit(path.join(parquet.result.output.location, '*.parquet'))})`)).getRowObjectsJS(),
    );
    expect(rows).toHaveLength(2000);
    expect(rows[0]!.t).toBe('FLOAT[]');
    expect(embeddingMismatches(rows as never)).toEqual([]);

    const table = env.table('embedding');
    await run({ ...spec, features, sink: { type: 'postgres', table }, shardSize: 700 });
    const type = await env.admin.query<{ t: string }>(`SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'embedding'`, [`public.${table}`]);
    expect(type.rows[0]!.t).toBe('real[]');
    const pgRows = await env.admin.query<{ transaction_id: string; embedding: number[] }>(`SELECT transaction_id, embedding FROM public.${pg.escapeIdentifier(table)}`);
    expect(pgRows.rows).toHaveLength(2000);
    expect(embeddingMismatches(pgRows.rows)).toEqual([]);

    const db = path.join(env.dir, 'embedding.duckdb');
    await run({ ...spec, features, sink: { type: 'duckdb', path: db, table: 'embedding' } });
    const duck = await withDuckDB(async (conn) => {
      await conn.run(`ATTACH ${lit(db)} AS out (READ_ONLY)`);
      return (await conn.runAndReadAll(`SELECT typeof(embedding) AS t, transaction_id, embedding FROM out.embedding`)).getRowObjectsJS();
    });
    expect(duck).toHaveLength(2000);
    expect(duck[0]!.t).toBe('FLOAT[]');
    expect(embeddingMismatches(duck as never)).toEqual([]);

    const keyPrefix = uniqueName('embedding');
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await run({ ...spec, features, sink: { type: 'redis', keyPrefix } });
      const got = await Promise.all([...embedding.keys()].map(async (id) => ({ transaction_id: id, embedding: (await readRedisPrediction(redis, keyPrefix, spec.pipeline!, id))?.embedding ?? [] })));
      expect(embeddingMismatches(got)).toEqual([]);
    } finally {
      await deleteByPrefix(redis, keyPrefix);
      await redis.quit();
    }
  });

  it('keeps class names with quotes, backslashes, commas, braces and the word NULL exact in PostgreSQL text and text[] columns', async () => {
    const names: Record<string, string> = { '0': 'lo"w, \\ok', '1': '{mid} }{', '2': 'NULL' };
    const table = env.table('quoting');
    await run({ model: 'risk-tier@production', features, postProcess: [{ type: 'classNames', names }, { type: 'topK', k: 3 }], sink: { type: 'postgres', table }, shardSize: 700 });
    const got = await env.admin.query<{ transaction_id: string; label: string; top_classes: string[] }>(`SELECT transaction_id, label, top_classes FROM public.${pg.escapeIdentifier(table)}`);
    expect(got.rows).toHaveLength(2000);
    const want = new Map(risk.map((e) => [String(e.transaction_id), { label: names[String(e.label)]!, top: Object.keys(names).sort((a, b) => Number(e[`prob_${b}`]) - Number(e[`prob_${a}`])).map((c) => names[c]!) }]));
    expect(got.rows.filter((r) => r.label !== want.get(r.transaction_id)!.label || JSON.stringify(r.top_classes) !== JSON.stringify(want.get(r.transaction_id)!.top))).toEqual([]);
    // Every name occurs, as a label and in first place of a list (the tiers are 60/30/10 %).
    for (const name of Object.values(names)) {
      expect(got.rows.some((r) => r.label === name)).toBe(true);
      expect(got.rows.some((r) => r.top_classes[0] === name)).toBe(true);
    }
  });

  it('fails the run at its plan, before any row is predicted, when a step does not fit the model', async () => {
    const handle = await env.worker.client.workflow.start('batchInference', {
      taskQueue: env.config.temporal.taskQueue,
      workflowId: uniqueName('wf-post-bad'),
      args: [{ model: 'risk-tier@production', features, postProcess: [{ type: 'topK', k: 4 }] }],
    });
    const failure = await permanentFailureOf(handle);
    expect(failure.type).toBe('InvalidInput');
    expect(failure.message).toContain("postProcess[0] (topK).k: 4 is larger than the model's 3 classes");
    const history = await handle.fetchHistory();
    const activities = (history.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : []));
    expect(activities).not.toContain('predictShard');
    await expect(fs.access(path.join(env.dir, 'runs'))).resolves.toBeUndefined();
  });
});
