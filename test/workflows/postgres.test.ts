import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBatchInference, type BatchInferenceInput } from '../../client';
import { loadConfig, type InferflowConfig } from '../../lib/config/env';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { closePostgresPools, stagingTableName } from '../../lib/sinks';
import { EXAMPLE_FEATURES, exampleRegistry, tempConfig, uniqueName } from '../helpers/env';
import { referenceScores } from '../helpers/data';
import { permanentFailureOf } from '../helpers/failures';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';
import { startWorker, type RunningWorker } from '../helpers/worker';
import { TEST_POSTGRES } from '../helpers/services';

const postgresUrl = inject('postgresUrl');
let config: InferflowConfig;
let proxiedConfig: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let proxied: RunningWorker;
let proxy: TcpProxy;
let admin: pg.Pool;
let reference: Map<string, { label: number; score: number }>;
const tables: string[] = [];
const runIds: string[] = [];

beforeAll(async () => {
  // The worker reads the connection from its environment, like a deployed worker.
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-pg'), INFERFLOW_POSTGRES_URL: postgresUrl }));
  await exampleRegistry(config);
  admin = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  // A second worker on its own task queue reaches PostgreSQL through a proxy the test can take down.
  proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
  proxiedConfig = loadConfig({
    INFERFLOW_DATA_DIR: dir,
    INFERFLOW_LOG_LEVEL: 'warn',
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    INFERFLOW_TASK_QUEUE: uniqueName('test-pg-proxied'),
    INFERFLOW_POSTGRES_URL: `postgres://postgres@127.0.0.1:${proxy.port}/${TEST_POSTGRES.database}`,
  });
  [w, proxied, reference] = await Promise.all([startWorker(config), startWorker(proxiedConfig), referenceScores(EXAMPLE_FEATURES)]);
});

afterAll(async () => {
  await w?.stop();
  await proxied?.stop();
  await proxy?.close();
  await closePostgresPools();
  if (admin) {
    for (const t of tables) await admin.query(`DROP TABLE IF EXISTS public.${pg.escapeIdentifier(t)}`);
    if (runIds.length > 0) {
      await admin.query(`DROP TABLE IF EXISTS ${runIds.map((r) => `public.${pg.escapeIdentifier(stagingTableName(r))}`).join(', ')}`);
      const reg = await admin.query<{ reg: string | null }>(`SELECT to_regclass('public.inferflow_runs')::text AS reg`);
      if (reg.rows[0]?.reg) {
        await admin.query('DELETE FROM public.inferflow_runs WHERE run_id = ANY($1)', [runIds]);
        const left = await admin.query<{ n: string }>('SELECT count(*) AS n FROM public.inferflow_runs');
        if (Number(left.rows[0]!.n) === 0) await admin.query('DROP TABLE IF EXISTS public.inferflow_runs');
      }
    }
    await admin.end();
  }
  await cleanup?.();
});

function newTable(prefix: string): string {
  const t = uniqueName(prefix).replace(/-/g, '_');
  tables.push(t);
  return t;
}

async function scalar<T>(sql: string, params: unknown[] = []): Promise<T> {
  const r = await admin.query<{ v: T }>(sql, params);
  return r.rows[0]!.v;
}

/** Every committed row against ONNX Runtime called directly; returns the number of mismatches. */
async function checkTable(table: string, runId: string): Promise<{ rows: number; distinct: number; mismatches: number; otherRun: number }> {
  const t = `public.${pg.escapeIdentifier(table)}`;
  const r = await admin.query<{ id: string; label: string; score: number; run_id: string; model_version: number }>(`SELECT transaction_id AS id, label, score::float8 AS score, run_id, model_version FROM ${t}`);
  let mismatches = 0;
  let otherRun = 0;
  for (const row of r.rows) {
    const e = reference.get(row.id);
    if (!e || e.score !== row.score || e.label !== Number(row.label)) mismatches++;
    if (row.run_id !== runId || row.model_version !== 1) otherRun++;
  }
  return { rows: r.rows.length, distinct: new Set(r.rows.map((x) => x.id)).size, mismatches, otherRun };
}

async function runsRecorded(runId: string): Promise<number> {
  const reg = await scalar<string | null>(`SELECT to_regclass('public.inferflow_runs')::text AS v`);
  return reg ? Number(await scalar<string>('SELECT count(*) AS v FROM public.inferflow_runs WHERE run_id = $1', [runId])) : 0;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('batchInference into PostgreSQL', () => {
  it('commits all 50,000 rows once, each score exactly as ONNX Runtime computes it', async () => {
    const table = newTable('fraud_scores');
    const input: BatchInferenceInput = { model: 'fraud-detector@production', features: EXAMPLE_FEATURES, sink: { type: 'postgres', table }, shardSize: 7_000, maxConcurrency: 3 };
    const handle = await startBatchInference(w.client, input, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-pg') });
    runIds.push((await handle.describe()).runId);
    const result = await handle.result();

    expect(result).toMatchObject({ rowsIn: 50_000, rowsOut: 50_000, shards: 8, output: { type: 'postgres', location: `postgres://127.0.0.1:5432/${TEST_POSTGRES.database}#public.${table}` } });
    expect(await checkTable(table, result.runId)).toEqual({ rows: 50_000, distinct: 50_000, mismatches: 0, otherRun: 0 });
    expect(await runsRecorded(result.runId)).toBe(1);
    expect(await scalar<string | null>('SELECT to_regclass($1)::text AS v', [`public.${stagingTableName(result.runId)}`])).toBeNull();
    expect(await fs.readdir(path.join(dir, 'runs')).catch(() => [])).toEqual([]);
  });

  it('PostgreSQL refusing connections mid-run: shards retry with backoff, the run completes once it is back, nothing shows meanwhile', async () => {
    const table = newTable('fraud_outage');
    const input: BatchInferenceInput = { model: 'fraud-detector@production', features: EXAMPLE_FEATURES, sink: { type: 'postgres', table }, shardSize: 2_500, maxConcurrency: 1 };
    const handle = await startBatchInference(proxied.client, input, { taskQueue: proxiedConfig.temporal.taskQueue, workflowId: uniqueName('wf-pg-outage') });
    const runId = (await handle.describe()).runId;
    runIds.push(runId);
    const staging = `public.${stagingTableName(runId)}`;

    // Take the server away as soon as the first shard is staged (watched on the real server, not through the proxy).
    await until('a staged shard', async () => (await scalar<string | null>('SELECT to_regclass($1)::text AS v', [staging])) && Number(await scalar<string>(`SELECT count(*) AS v FROM ${staging}`)) > 0);
    await proxy.stop();
    const stagedWhenStopped = Number(await scalar<string>(`SELECT count(DISTINCT __shard) AS v FROM ${staging}`));
    expect(stagedWhenStopped).toBeLessThan(20);
    expect(await runsRecorded(runId)).toBe(0);

    // The shard activity keeps failing with a transient error that names the proxied address, and is retried.
    const failing = await until('a retried shard', async () => {
      const desc = await handle.describe();
      const pending = (desc.raw.pendingActivities ?? []).find((a) => (a.attempt ?? 0) >= 3);
      return pending ? { attempt: pending.attempt ?? 0, message: pending.lastFailure?.message ?? '' } : undefined;
    });
    expect(failing.message).toContain(`PostgreSQL at 127.0.0.1:${proxy.port} (database ${TEST_POSTGRES.database}) is unavailable`);
    // Nothing partial is visible while it is down: no target table, no run recorded.
    expect(await scalar<string | null>('SELECT to_regclass($1)::text AS v', [`public.${table}`])).toBeNull();
    expect(await runsRecorded(runId)).toBe(0);

    await proxy.start();
    const result = await handle.result();
    expect(result).toMatchObject({ rowsOut: 50_000, shards: 20 });
    expect(await checkTable(table, runId)).toEqual({ rows: 50_000, distinct: 50_000, mismatches: 0, otherRun: 0 });
    expect(await runsRecorded(runId)).toBe(1);
    expect(await scalar<string | null>('SELECT to_regclass($1)::text AS v', [staging])).toBeNull();
  });

  it('a null id fails the run as InvalidValue naming the id column and the first rows, before anything is staged (Parquet read in place and CSV)', async () => {
    for (const format of ['parquet', 'csv'] as const) {
      const features = path.join(dir, `null-ids.${format}`);
      await withDuckDB((c) =>
        c.run(`COPY (SELECT * REPLACE (CASE WHEN row_number() OVER () - 1 IN (3, 17, 40001) THEN NULL ELSE transaction_id END AS transaction_id) FROM read_parquet(${lit(EXAMPLE_FEATURES)})) TO ${lit(features)} (FORMAT ${format})`),
      );
      const table = newTable('fraud_null_ids');
      const handle = await startBatchInference(w.client, { model: 'fraud-detector@production', features, sink: { type: 'postgres', table }, shardSize: 7_000 }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-pg-null-id') });
      const runId = (await handle.describe()).runId;
      runIds.push(runId);
      const failure = await permanentFailureOf(handle);
      expect(failure.type).toBe('InvalidValue');
      expect(failure.message).toContain('id column transaction_id is null in 3 row(s)');
      expect(failure.message).toContain('row 3, 17, 40001');
      expect(failure.message).not.toContain('inferflow_stage');
      expect(await scalar<string | null>('SELECT to_regclass($1)::text AS v', [`public.${stagingTableName(runId)}`])).toBeNull();
      expect(await scalar<string | null>('SELECT to_regclass($1)::text AS v', [`public.${table}`])).toBeNull();
    }
  });
});
