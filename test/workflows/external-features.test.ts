/**
 * batchInference with an external-API feature (examples/features/risk.ts) on a real Temporal
 * server, against a local merchant-risk API: the file has no merchant_risk column, the shards
 * look it up. Output equal to ONNX Runtime's on the file's own merchant_risk; the feature's
 * concurrency limit holds across the shards a worker runs at once and its cache spans them;
 * an API that fails for a while makes shards retry (Transient) and the run completes exactly;
 * a malformed answer fails the run for good, naming the row, the output and the status; with a
 * model that imputes the feature, failed lookups are written with their status in
 * `merchant_risk_status` in every run sink (Parquet, PostgreSQL, DuckDB, Redis), scored on the
 * imputed value.
 */
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBatchInference, type BatchInferenceInput } from '../../client';
import { REPO_ROOT } from '../../cli/examples';
import type { InferflowConfig } from '../../lib/config/env';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { closePostgresPools, readRedisPrediction } from '../../lib/sinks';
import { readOutput, referenceScores, writeVariant } from '../helpers/data';
import { exampleRegistry, tempConfig, uniqueName } from '../helpers/env';
import { deleteByPrefix } from '../helpers/redis';
import { TEST_REDIS_URL } from '../helpers/services';
import { permanentFailureOf } from '../helpers/failures';
import { IMPUTED_RISK, registerImputedFraud, startRiskApi, type RiskApi } from '../helpers/risk-api';
import { startWorker, type RunningWorker } from '../helpers/worker';

const TOKEN = 'batch-token-e09b';
const ROWS = 10_000;
/** examples/features/risk.ts's concurrency. */
const RISK_CONCURRENCY = 4;
const postgresUrl = inject('postgresUrl');

let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let api: RiskApi;
let withRisk: string;
let noRisk: string;

beforeAll(async () => {
  api = await startRiskApi(TOKEN);
  ({ config, dir, cleanup } = await tempConfig({
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    INFERFLOW_TASK_QUEUE: uniqueName('test-external'),
    INFERFLOW_MODULES: `risk=${path.join(REPO_ROOT, 'examples', 'features', 'risk.ts')}`,
    RISK_API_URL: api.url,
    RISK_API_TOKEN: TOKEN,
  }));
  await registerImputedFraud(await exampleRegistry(config));
  withRisk = await writeVariant(dir, 'with-risk.parquet', '*', 'true', ROWS);
  noRisk = await writeVariant(dir, 'no-risk.parquet', '* EXCLUDE (merchant_risk)', 'true', ROWS);
});

afterAll(async () => {
  await w?.stop();
  await closePostgresPools();
  await api?.close();
  await cleanup?.();
});

/** A worker with fresh resources (an empty lookup cache). */
async function freshWorker(): Promise<void> {
  await w?.stop();
  w = await startWorker(config);
  api.reset();
}

const input = () => ({ model: 'fraud-detector@production', features: noRisk, onDemand: [{ name: 'risk.merchantRisk' }], shardSize: 1_000, maxConcurrency: 6, pipeline: uniqueName('risk-api') });

async function expectExact(location: string): Promise<void> {
  const ref = await referenceScores(withRisk);
  const out = await readOutput(location);
  expect(out).toHaveLength(ROWS);
  for (const r of out) {
    const want = ref.get(r.transaction_id)!;
    expect(r.label).toBe(want.label);
    expect(r.score).toBe(want.score);
  }
}

describe('batchInference with an external-API feature', () => {
  it('looks the feature up in the shards: output exact, one call per category, at most `concurrency` in flight across the worker', async () => {
    await freshWorker();
    for (const c of ['electronics', 'fuel', 'jewelry', 'pharmacy', 'restaurant', 'grocery', 'travel', 'online_gaming']) api.behaviour.set(c, { kind: 'ok', delayMs: 150 });
    const handle = await startBatchInference(w.client, input(), { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-external') });
    const result = await handle.result();
    expect(result.rowsOut).toBe(ROWS);
    await expectExact(result.output.location);
    expect(api.calls).toBe(8);
    expect(api.maxInFlight).toBeGreaterThan(1);
    expect(api.maxInFlight).toBeLessThanOrEqual(RISK_CONCURRENCY);
  });

  it('an API failing for a while: the shards retry (Transient) and the run completes exactly', async () => {
    await freshWorker();
    // examples/features/risk.ts tries 3 times per lookup: the first lookup fails, a later one succeeds.
    api.behaviour.set('travel', { kind: 'fail', status: 503, times: 3 });
    const handle = await startBatchInference(w.client, input(), { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-external-flaky') });
    const result = await handle.result();
    await expectExact(result.output.location);
    expect(api.callsByKey.get('travel')).toBeGreaterThan(3);
  });

  it('a malformed answer fails the run for good, naming the row, the output and MALFORMED', async () => {
    await freshWorker();
    api.behaviour.set('jewelry', { kind: 'malformed', body: '{"risk": null, "note": "x"' });
    const handle = await w.client.workflow.start('batchInference', { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-external-bad'), args: [input()] });
    const failure = await permanentFailureOf(handle);
    expect(failure.type).toBe('InvalidValue');
    expect(failure.message).toMatch(/external-API features gave no value the model could use \(\d+ rows(, first 10)?\): transaction_id=\S+: merchant_risk MALFORMED/);
  });

  it('writes each row\'s lookup status beside its prediction in every run sink: failed lookups are imputed by the model, never zero', async () => {
    await freshWorker();
    const failing: Record<string, string> = { jewelry: 'MALFORMED', travel: 'UNAVAILABLE', fuel: 'RATE_LIMITED' };
    api.behaviour.set('jewelry', { kind: 'malformed', body: '{"risk": "high"}' });
    api.behaviour.set('travel', { kind: 'fail', status: 503 });
    api.behaviour.set('fuel', { kind: 'rate-limit', retryAfter: '0' });
    const categories = [...Object.keys(failing)].map(lit).join(', ');
    const imputed = await referenceScores(await writeVariant(dir, 'imputed.parquet', `* REPLACE (CASE WHEN merchant_category IN (${categories}) THEN ${IMPUTED_RISK} ELSE merchant_risk END AS merchant_risk)`, 'true', ROWS));
    const zeroed = await referenceScores(await writeVariant(dir, 'zeroed.parquet', `* REPLACE (CASE WHEN merchant_category IN (${categories}) THEN 0 ELSE merchant_risk END AS merchant_risk)`, 'true', ROWS));
    const category = await withDuckDB(async (conn) =>
      new Map((await conn.runAndReadAll(`SELECT transaction_id, merchant_category FROM read_parquet(${lit(noRisk)})`)).getRowsJS().map(([id, c]) => [toText(id), toText(c)])),
    );
    const runWith = async (extra: Partial<BatchInferenceInput>) => {
      const handle = await startBatchInference(w.client, { ...input(), model: 'fraud-imputed@production', ...extra }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-external-status') });
      return handle.result();
    };
    /** Rows whose status, label or score is not what the lookups and the imputer give. */
    const wrong = (rows: { transaction_id: string; label: number; score: number; merchant_risk_status: string }[]) =>
      rows.filter((r) => {
        const want = imputed.get(r.transaction_id)!;
        return r.merchant_risk_status !== (failing[category.get(r.transaction_id)!] ?? 'PRESENT') || r.label !== want.label || r.score !== want.score;
      });

    const parquet = await runWith({});
    expect(parquet.rowsOut).toBe(ROWS);
    const rows = await withDuckDB(async (conn) =>
      (await conn.runAndReadAll(`SELECT transaction_id, label, score, merchant_risk_status FROM read_parquet(${lit(path.join(parquet.output.location, '*.parquet'))})`)).getRowObjectsJS().map((o) => ({
        transaction_id: toText(o.transaction_id),
        label: Number(o.label),
        score: Number(o.score),
        merchant_risk_status: toText(o.merchant_risk_status),
      })),
    );
    expect(rows).toHaveLength(ROWS);
    expect(wrong(rows)).toEqual([]);
    const byStatus = (list: { merchant_risk_status: string }[]) => Object.fromEntries([...new Set(list.map((r) => r.merchant_risk_status))].sort().map((st) => [st, list.filter((r) => r.merchant_risk_status === st).length]));
    const counts = byStatus(rows);
    expect(Object.keys(counts)).toEqual(['MALFORMED', 'PRESENT', 'RATE_LIMITED', 'UNAVAILABLE']);
    // Not zero: the rows whose lookup failed were scored on the imputed risk (checked above), and
    // some of them would score otherwise on a zero (the tree ensemble ignores small differences elsewhere).
    const failed = rows.filter((r) => r.merchant_risk_status !== 'PRESENT');
    expect(failed.filter((r) => imputed.get(r.transaction_id)!.score !== zeroed.get(r.transaction_id)!.score).length).toBeGreaterThan(10);

    const table = uniqueName('external_status').replace(/-/g, '_');
    const admin = new pg.Pool({ connectionString: postgresUrl, max: 1 });
    try {
      await runWith({ sink: { type: 'postgres', table } });
      const got = await admin.query<{ transaction_id: string; label: string; score: number; merchant_risk_status: string }>(`SELECT transaction_id, label, score, merchant_risk_status FROM public.${pg.escapeIdentifier(table)}`);
      expect(got.rows).toHaveLength(ROWS);
      // real comes back as its shortest decimal text: Math.fround gives the float32 again.
      expect(wrong(got.rows.map((r) => ({ ...r, label: Number(r.label), score: Math.fround(Number(r.score)) })))).toEqual([]);
    } finally {
      await admin.query(`DROP TABLE IF EXISTS public.${pg.escapeIdentifier(table)}`);
      await admin.end();
    }

    const db = path.join(dir, 'external-status.duckdb');
    await runWith({ sink: { type: 'duckdb', path: db, table: 'scored' } });
    const duck = await withDuckDB(async (conn) => {
      await conn.run(`ATTACH ${lit(db)} AS out (READ_ONLY)`);
      return (await conn.runAndReadAll('SELECT transaction_id, label, score, merchant_risk_status FROM out.scored')).getRowObjectsJS();
    });
    expect(byStatus(duck.map((o) => ({ merchant_risk_status: toText(o.merchant_risk_status) })))).toEqual(counts);

    const keyPrefix = uniqueName('external-status');
    const pipeline = uniqueName('risk-status');
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await runWith({ pipeline, sink: { type: 'redis', keyPrefix } });
      const sample = [...failed.slice(0, 10), ...rows.filter((r) => r.merchant_risk_status === 'PRESENT').slice(0, 10)];
      for (const r of sample) {
        const got = await readRedisPrediction(redis, keyPrefix, pipeline, r.transaction_id);
        expect([got?.merchant_risk_status, Math.fround(Number(got?.score))]).toEqual([r.merchant_risk_status, r.score]);
      }
    } finally {
      await deleteByPrefix(redis, keyPrefix);
      await redis.quit();
    }
  });
});
