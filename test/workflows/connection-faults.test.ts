/**
 * The fault suite (`npm run test:faults`): PostgreSQL and Redis connections of a real worker
 * are killed on the real servers while it works — feature retrieval from a PostgreSQL source,
 * staging and commit into a PostgreSQL sink, materialisation into Redis, a Redis sink — and
 * `serve` loses its online store. The worker is a process of its own (`workers/main.ts`, as
 * deployed): a connection error it does not handle kills it, which fails the run waiting on it
 * at once. Every run must complete with exact output, through Temporal's retries, and the
 * worker must still be running afterwards. `serve` runs in this process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import path from 'node:path';
import { pipeline as pipeline_ } from 'node:stream/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBatchInference, type BatchInferenceInput } from '../../client';
import { serve } from '../../cli/serve';
import { getOnlineFeatures, openOnlineStore } from '../../lib/features';
import { materializeView } from '../../lib/features/materialize';
import { MATERIALIZE_WORKFLOW_TYPE, type MaterializeFeaturesResult } from '../../workflows/features/shared';
import type { materializeFeatures } from '../../workflows/features/materialize';
import { FEATURES_EXPECTED, FEATURES_PIPELINE, registerFeaturesExampleModel } from '../../cli/examples';
import type { InferflowConfig } from '../../lib/config/env';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { ModelRegistry } from '../../lib/registry';
import { readRedisPrediction } from '../../lib/sinks';
import { openStore } from '../../lib/storage';
import { killPostgresConnections, killRedisConnections } from '../helpers/connection-killer';
import { scoresIn, type Scores } from '../helpers/data';
import { REPO_ROOT, tempConfig, uniqueName } from '../helpers/env';
import { T0, latestPerEntity, loadStatsIntoPostgres, statRows, statView } from '../helpers/features-data';
import { deleteByPrefix } from '../helpers/redis';
import { startTcpProxy } from '../helpers/tcp-proxy';
import { Client, Connection } from '@temporalio/client';
import { TEST_REDIS_DB, TEST_REDIS_URL } from '../helpers/services';

const postgresUrl = inject('postgresUrl');
const REDIS = TEST_REDIS_URL;
/** Names that tell this file's connections apart from every other test's on the shared servers. */
const appName = uniqueName('faults').replace(/-/g, '_');
const redisName = uniqueName('faults-redis');
const schema = `faults_${appName.slice(-8)}`;
const featureTable = `${schema}.customer_stats`;
const redisPrefix = `inferflow-test-${redisName}`;
const statsTable = `${appName}_stats`;
const DAY = 86_400_000;

let config: InferflowConfig;
let cleanup: () => Promise<void>;
let worker: ChildProcess;
let client: Client;
let exited: Promise<never>;
let admin: pg.Pool;
let redis: Redis;
let pipeline: BatchInferenceInput;
let expected: Scores;

const withParam = (url: string, k: string, v: string) => `${url}${url.includes('?') ? '&' : '?'}${k}=${encodeURIComponent(v)}`;

beforeAll(async () => {
  let dir: string;
  ({ config, dir, cleanup } = await tempConfig({
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    INFERFLOW_TASK_QUEUE: uniqueName('test-connection-faults'),
    INFERFLOW_POSTGRES_URL: withParam(postgresUrl, 'application_name', appName),
    INFERFLOW_REDIS_URL: withParam(REDIS, 'connectionName', redisName),
  }));
  admin = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  redis = new Redis(REDIS);
  await registerFeaturesExampleModel(new ModelRegistry(openStore(config.registry)));
  pipeline = await loadPipelineSpec(FEATURES_PIPELINE);
  expected = await scoresIn(FEATURES_EXPECTED);
  // The example's feature view, served from a PostgreSQL table.
  const csv = path.join(dir, 'customer_stats.csv');
  const viewSource = (pipeline.featureViews![0]!.source as { path: string }).path;
  await withDuckDB((conn) => conn.run(`COPY (SELECT customer_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS event_timestamp, avg_amount_30d, txn_count_7d, home_lat, home_lon FROM read_parquet(${lit(viewSource)})) TO ${lit(csv)} (FORMAT csv, HEADER true)`));
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`CREATE TABLE ${featureTable} (customer_id bigint, event_timestamp timestamptz, avg_amount_30d double precision, txn_count_7d bigint, home_lat double precision, home_lon double precision)`);
  const loader = await admin.connect();
  try {
    await pipeline_(createReadStream(csv), loader.query(copyFrom(`COPY ${featureTable} FROM STDIN (FORMAT csv, HEADER true)`)));
  } finally {
    loader.release();
  }
  worker = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'workers', 'main.ts')], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: config.temporal.address,
      INFERFLOW_TASK_QUEUE: config.temporal.taskQueue,
      INFERFLOW_DATA_DIR: config.dataDir,
      INFERFLOW_POSTGRES_URL: withParam(postgresUrl, 'application_name', appName),
      INFERFLOW_REDIS_URL: withParam(REDIS, 'connectionName', redisName),
      INFERFLOW_WORKER_WARM_UP: 'false',
      INFERFLOW_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(path.join(dir, 'worker.log'));
  worker.stdout!.pipe(log);
  worker.stderr!.pipe(log);
  exited = new Promise<never>((_, reject) => worker.once('exit', (code, signal) => reject(new Error(`the worker exited (code ${code}, signal ${signal}); see ${path.join(dir, 'worker.log')}`))));
  exited.catch(() => undefined);
  client = new Client({ connection: await Connection.connect({ address: config.temporal.address }) });
}, 120_000);

/** A run's result, or the worker's exit if it dies first. */
function resultOf<T>(handle: { result(): Promise<T> }): Promise<T> {
  return Promise.race([handle.result(), exited]);
}

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const gone = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGTERM');
    await gone;
  }
  await client?.connection.close();
  await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin?.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(statsTable)}`);
  await admin?.end();
  if (redis) {
    for (const prefix of [redisPrefix, `${redisPrefix}-sink`, `${redisPrefix}-serve`]) await deleteByPrefix(redis, prefix);
    await redis.quit();
  }
  await cleanup?.();
});

/** Every prediction against the scores the Python training code computed. */
function mismatches(rows: { transaction_id: string; label: number; score: number }[]): string[] {
  const seen = new Set<string>();
  const bad: string[] = [];
  for (const r of rows) {
    const e = expected.get(r.transaction_id);
    if (!e || e.label !== Number(r.label) || Math.abs(e.score - Number(r.score)) >= 1e-6 || seen.has(r.transaction_id)) bad.push(r.transaction_id);
    seen.add(r.transaction_id);
  }
  return bad;
}

/** Which step a sink or feature-source connection is in, from the statement it runs. */
function batchPhase(query: string): string | undefined {
  if (/TO STDOUT|LIMIT 0/.test(query)) return 'feature retrieval';
  if (/FROM STDIN/.test(query)) return 'staging';
  if (/inferflow_runs|RENAME TO|PRIMARY KEY|DROP COLUMN|pg_advisory_xact_lock\(\$1::bigint\)/.test(query)) return 'commit';
  return undefined;
}

describe('connection faults', () => {
  it('PostgreSQL connections killed during feature retrieval, staging and commit: the worker stays up and the table is exact', async () => {
    const table = 'scores';
    const killer = await killPostgresConnections({ url: postgresUrl, applicationName: appName, phaseOf: batchPhase, perPhase: 2 });
    let kills;
    try {
      const view = { ...pipeline.featureViews![0]!, source: { type: 'postgres' as const, table: featureTable } };
      const handle = await startBatchInference(client, { ...pipeline, featureViews: [view], sink: { type: 'postgres', schema, table }, shardSize: 5_000 }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-pg-faults') });
      const result = await resultOf(handle);
      expect(result.rowsOut).toBe(20_000);
    } finally {
      kills = await killer.stop();
    }
    expect(worker.exitCode).toBeNull();
    expect(new Set(kills.map((k) => k.phase))).toEqual(new Set(['feature retrieval', 'staging', 'commit']));
    const rows = (await admin.query<{ transaction_id: string; label: number; score: number }>(`SELECT transaction_id, label, score FROM ${schema}.${table}`)).rows;
    expect(rows).toHaveLength(20_000);
    expect(mismatches(rows)).toEqual([]);
  });

  it('PostgreSQL and Redis connections killed during materialisation into Redis: the store ends up exact', async () => {
    const rows = statRows(40_000, 8_000, 11);
    await loadStatsIntoPostgres(admin, statsTable, rows);
    const view = statView('fault_stats', { type: 'postgres', table: `public.${statsTable}` });
    const end = T0 + 11 * DAY;
    const pgKiller = await killPostgresConnections({ url: postgresUrl, applicationName: appName, phaseOf: batchPhase, perPhase: 2 });
    const redisKiller = killRedisConnections({ admin: redis, connectionName: redisName, max: 3, gapMs: 200 });
    let pgKills;
    let redisKills;
    try {
      const handle = await client.workflow.start<typeof materializeFeatures>(MATERIALIZE_WORKFLOW_TYPE, {
        taskQueue: config.temporal.taskQueue,
        workflowId: uniqueName('wf-mat-faults'),
        args: [{ views: [view], store: { type: 'redis', keyPrefix: redisPrefix }, end: new Date(end).toISOString() }],
      });
      const r: MaterializeFeaturesResult = await resultOf(handle);
      expect(r.totals.rowsRead).toBe(rows.length);
    } finally {
      pgKills = await pgKiller.stop();
      redisKills = await redisKiller.stop();
    }
    expect(worker.exitCode).toBeNull();
    expect(pgKills.map((k) => k.phase)).toContain('feature retrieval');
    expect(redisKills.length).toBeGreaterThan(0);
    const want = latestPerEntity(rows, undefined, end);
    const store = openOnlineStore({ type: 'redis', keyPrefix: redisPrefix }, { redisUrl: REDIS, dataDir: config.dataDir });
    try {
      const ids = [...want.keys()];
      const got = await getOnlineFeatures(store, view, ids, { now: new Date(end) });
      const wrong = got.filter((v, i) => {
        const e = want.get(ids[i]!)!;
        return v.features.cnt!.eventTime?.getTime() !== e.event_ts || v.features.cnt!.value !== (e.cnt === null ? null : BigInt(e.cnt)) || v.features.segment!.value !== e.segment;
      });
      expect(wrong).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('Redis sink connections killed during a batch run: every prediction is published, exact', async () => {
    const keyPrefix = `${redisPrefix}-sink`;
    const killer = killRedisConnections({ admin: redis, connectionName: redisName, max: 3, gapMs: 300 });
    let kills;
    try {
      const handle = await startBatchInference(client, { ...pipeline, sink: { type: 'redis', keyPrefix }, shardSize: 5_000 }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-redis-faults') });
      expect((await resultOf(handle)).rowsOut).toBe(20_000);
    } finally {
      kills = await killer.stop();
    }
    expect(worker.exitCode).toBeNull();
    expect(kills.length).toBeGreaterThan(0);
    const ids = [...expected.keys()];
    const rows: { transaction_id: string; label: number; score: number }[] = [];
    for (const id of ids) {
      const p = await readRedisPrediction(redis, keyPrefix, pipeline.pipeline!, id);
      if (p) rows.push({ transaction_id: id, label: Number(p.label), score: Number(p.score) });
    }
    expect(rows).toHaveLength(20_000);
    expect(mismatches(rows)).toEqual([]);
  });

  it('serve answers 503 while the online store is away and recovers when it is back; killed connections are reopened', async () => {
    const keyPrefix = `${redisPrefix}-serve`;
    const T = Date.parse('2026-10-13T00:00:00Z');
    const seed = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: REDIS, dataDir: config.dataDir });
    await materializeView({ view: pipeline.featureViews![0], store: seed, end: new Date(T + DAY - 1) });
    await seed.close();
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
    const saved = { ...process.env };
    process.env.INFERFLOW_DATA_DIR = config.dataDir;
    process.env.INFERFLOW_LOG_LEVEL = 'silent';
    process.env.INFERFLOW_REDIS_URL = `redis://127.0.0.1:${proxy.port}/${TEST_REDIS_DB}?connectionName=${redisName}`;
    let server: Awaited<ReturnType<typeof serve>> | undefined;
    try {
      server = await serve(FEATURES_PIPELINE, { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix } });
      const request = await withDuckDB(async (conn) => {
        const r = await conn.runAndReadAll(
          `SELECT transaction_id, customer_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), amount, merchant_category, lat, lon FROM read_parquet(${lit(pipeline.spine!)})
           WHERE event_timestamp >= ${lit(new Date(T).toISOString())}::TIMESTAMPTZ AND event_timestamp < ${lit(new Date(T + DAY).toISOString())}::TIMESTAMPTZ ORDER BY transaction_id LIMIT 1`,
        );
        const x = r.getRowsJS()[0]!;
        return { id: toText(x[0]), customer_id: Number(x[1]), ts: toText(x[2]), amount: Number(x[3]), merchant_category: toText(x[4]), lat: Number(x[5]), lon: Number(x[6]) };
      });
      const col = (name: string, datatype: string, data: unknown[]) => ({ name, datatype, shape: [1], data });
      const body = JSON.stringify({
        inputs: [
          col('customer_id', 'INT64', [request.customer_id]),
          col('event_timestamp', 'BYTES', [request.ts]),
          col('amount', 'FP64', [request.amount]),
          col('merchant_category', 'BYTES', [request.merchant_category]),
          col('lat', 'FP64', [request.lat]),
          col('lon', 'FP64', [request.lon]),
        ],
        parameters: { as_of: request.ts },
      });
      const url = `${server.url}/v2/models/fraud-features/infer`;
      const post = async () => {
        const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
        return { status: res.status, json: (await res.json()) as { error?: string; outputs?: { name: string; data: number[] }[] } };
      };
      const scoreOf = (json: { outputs?: { name: string; data: number[] }[] }) => json.outputs!.find((o) => o.name === 'score')!.data[0]!;
      const want = expected.get(request.id)!;

      const before = await post();
      expect(before.status, JSON.stringify(before.json)).toBe(200);
      expect(Math.abs(scoreOf(before.json) - want.score)).toBeLessThan(1e-6);

      // Connections killed on the server: the store reconnects within its retries.
      for (let i = 0; i < 3; i++) {
        const list = (await redis.call('CLIENT', 'LIST')) as string;
        for (const id of list.split('\n').filter((l) => l.includes(` name=${redisName} `)).map((l) => /id=(\d+)/.exec(l)![1]!)) await redis.call('CLIENT', 'KILL', 'ID', id);
        const again = await post();
        expect(again.status, JSON.stringify(again.json)).toBe(200);
        expect(Math.abs(scoreOf(again.json) - want.score)).toBeLessThan(1e-6);
      }

      // The store away: 503 with the V2 error body, the server still up.
      await proxy.stop();
      const away = await post();
      expect(away.status).toBe(503);
      expect(away.json.error).toMatch(/online store .* unavailable/);
      expect((await fetch(`${server.url}/v2/health/live`)).status).toBe(200);

      await proxy.start();
      const back = await post();
      expect(back.status, JSON.stringify(back.json)).toBe(200);
      expect(Math.abs(scoreOf(back.json) - want.score)).toBeLessThan(1e-6);
    } finally {
      await server?.shutdown();
      await proxy.close();
      process.env = saved;
    }
  });
});
