/**
 * materializeFeatures on the real Temporal dev server with a real worker: Parquet → the
 * embedded SQLite store (the default), PostgreSQL → Redis, a window that defaults its end to
 * the start time, and invalid input failing fast with every problem listed.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { getOnlineFeatures, openOnlineStore, type FeatureView } from '../../lib/features';
import type { InferflowConfig } from '../../lib/config/env';
import { MATERIALIZE_WORKFLOW_TYPE, materializeProgressQuery, type MaterializeFeaturesInput, type MaterializeFeaturesResult } from '../../workflows/features/shared';
import { tempConfig, uniqueName } from '../helpers/env';
import { T0, latestPerEntity, loadStatsIntoPostgres, statRows, statView, writeStatsParquet, type StatRow } from '../helpers/features-data';
import { startWorker, type RunningWorker } from '../helpers/worker';
import { recordHistory as saveHistory } from '../helpers/histories';
import { createMaterializeSchedule } from '../../client/schedules';
import type { materializeFeatures } from '../../workflows/features/materialize';
import { TEST_REDIS_URL } from '../helpers/services';

const postgresUrl = inject('postgresUrl');
const redisPrefix = `inferflow-test-wfmat-${randomUUID().slice(0, 8)}`;
const table = `wf_materialize_${randomUUID().slice(0, 8)}`;
let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let pool: pg.Pool;
let rows: StatRow[];
const DAY = 86_400_000;

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-mat'), INFERFLOW_POSTGRES_URL: postgresUrl, INFERFLOW_REDIS_URL: TEST_REDIS_URL }));
  pool = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  rows = statRows(4_000, 800, 5);
  await loadStatsIntoPostgres(pool, table, rows);
  await writeStatsParquet(path.join(dir, 'stats.parquet'), rows);
  w = await startWorker(config);
});

afterAll(async () => {
  await w?.stop();
  const redis = openOnlineStore({ type: 'redis', keyPrefix: redisPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: dir });
  await redis.deleteView('pg_stats').catch(() => undefined);
  await redis.close();
  await pool?.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(table)}`);
  await pool?.end();
  await cleanup?.();
});

function start(input: MaterializeFeaturesInput) {
  return w.client.workflow.start<typeof materializeFeatures>(MATERIALIZE_WORKFLOW_TYPE, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-mat'), args: [input] });
}

async function expectLatest(view: FeatureView, store: ReturnType<typeof openOnlineStore>, end: number): Promise<void> {
  const want = latestPerEntity(rows, undefined, end);
  const ids = Array.from({ length: 810 }, (_, i) => i + 1);
  const got = await getOnlineFeatures(store, view, ids, { now: new Date(end) });
  const mismatches = got.filter((v, i) => {
    const w = want.get(ids[i]!);
    if (!w) return v.features.cnt!.status !== 'NOT_FOUND';
    return v.features.cnt!.eventTime?.getTime() !== w.event_ts || v.features.cnt!.value !== (w.cnt === null ? null : BigInt(w.cnt)) || v.features.segment!.value !== w.segment;
  });
  expect(mismatches).toEqual([]);
}

/** With RECORD_HISTORIES=1 (`npm run record-histories`) the run's history is saved for the replay test. */
const recordHistory = (workflowId: string, file: string) => saveHistory(inject('temporalCli'), config.temporal.address, workflowId, file);

describe('materializeFeatures', () => {
  it('Parquet → the embedded SQLite store (default), in two windows; only counts in history', async () => {
    const view = statView('pq_stats', { type: 'file', path: path.join(dir, 'stats.parquet') });
    const mid = new Date(T0 + 4 * DAY).toISOString();
    const first = await start({ views: [view], end: mid });
    const r1: MaterializeFeaturesResult = await first.result();
    const wantMid = latestPerEntity(rows, undefined, Date.parse(mid));
    expect(r1).toMatchObject({ start: null, end: mid, totals: { entities: wantMid.size, written: wantMid.size, unchanged: 0, skippedOlder: 0 } });
    expect(r1.views).toHaveLength(1);
    expect(r1.views[0]!.store).toBe(`sqlite:${path.join(config.dataDir, 'features', 'online.sqlite')}`);
    expect(await first.query(materializeProgressQuery)).toMatchObject({ phase: 'done', viewsTotal: 1, viewsDone: 1 });
    const history = await first.fetchHistory();
    expect(JSON.stringify(history).length).toBeLessThan(30_000);
    await recordHistory(first.workflowId, 'materializeFeatures-success.json');

    // No end: the workflow's start time (all rows are older), from mid on.
    const second = await start({ views: [view], start: mid });
    const r2: MaterializeFeaturesResult = await second.result();
    const inSecond = latestPerEntity(rows, Date.parse(mid), Date.now());
    expect(Date.parse(r2.end)).toBeGreaterThan(Date.now() - 120_000);
    expect(r2.totals).toMatchObject({ entities: inSecond.size, written: inSecond.size, skippedOlder: 0 });
    const store = openOnlineStore(undefined, { dataDir: config.dataDir });
    try {
      await expectLatest(view, store, T0 + 11 * DAY);
    } finally {
      await store.close();
    }
  });

  it('PostgreSQL → Redis; a re-run of the same window writes nothing', async () => {
    const view = statView('pg_stats', { type: 'postgres', table });
    const input: MaterializeFeaturesInput = { views: [view], store: { type: 'redis', keyPrefix: redisPrefix }, end: new Date(T0 + 11 * DAY).toISOString() };
    const r1: MaterializeFeaturesResult = await (await start(input)).result();
    const want = latestPerEntity(rows, undefined, T0 + 11 * DAY);
    expect(r1.totals).toEqual({ rowsRead: rows.length, entities: want.size, written: want.size, unchanged: 0, skippedOlder: 0 });
    const r2: MaterializeFeaturesResult = await (await start(input)).result();
    expect(r2.totals).toEqual({ rowsRead: rows.length, entities: want.size, written: 0, unchanged: want.size, skippedOlder: 0 });
    const store = openOnlineStore({ type: 'redis', keyPrefix: redisPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: dir });
    try {
      await expectLatest(view, store, T0 + 11 * DAY);
    } finally {
      await store.close();
    }
  });

  it('on a schedule with a lookback, each run copies (scheduled time − lookback, scheduled time]', async () => {
    const view = statView('sched_stats', { type: 'file', path: path.join(dir, 'stats.parquet') });
    const scheduleId = uniqueName('mat-sched');
    const handle = await createMaterializeSchedule(w.client, {
      scheduleId,
      input: { views: [view], store: { type: 'sqlite', path: path.join(dir, 'sched.sqlite') }, lookback: '1d' },
      taskQueue: config.temporal.taskQueue,
      every: ['1d'],
      overlap: 'allow-all',
    });
    try {
      const at = T0 + 4 * DAY;
      await handle.backfill({ start: new Date(at), end: new Date(at + 12 * 3_600_000) });
      let workflowId = '';
      for (let i = 0; i < 100 && !workflowId; i++) {
        const a = (await handle.describe()).info.recentActions[0];
        workflowId = a?.action.type === 'startWorkflow' ? a.action.workflow.workflowId : '';
        if (!workflowId) await new Promise((r) => setTimeout(r, 200));
      }
      const r = (await w.client.workflow.getHandle(workflowId).result()) as MaterializeFeaturesResult;
      expect(r.end).toBe(new Date(at).toISOString());
      expect(r.start).toBe(new Date(at - DAY).toISOString());
      const want = latestPerEntity(rows, at - DAY, at);
      expect(want.size).toBeGreaterThan(0);
      expect(r.totals.entities).toBe(want.size);
      expect(r.totals.written).toBe(want.size);
    } finally {
      await handle.delete();
    }
  });

  it('a schedule rejects a fixed window and bad timing before creating anything', async () => {
    const view = statView('sched_bad', { type: 'file', path: path.join(dir, 'stats.parquet') });
    const err = await createMaterializeSchedule(w.client, { scheduleId: 'bad id!', input: { views: [view], start: '2026-11-01T00:00:00Z', end: '2026-11-02T00:00:00Z', lookback: 'soon' }, taskQueue: config.temporal.taskQueue }).catch((e: unknown) => e as Error);
    expect((err as Error).message).toContain('invalid materializeFeatures schedule');
    for (const p of ['lookback: a duration such as 2h', 'lookback: give either start or lookback', 'schedule id:', 'give --cron or --every', 'end: a schedule sets the end', 'start: a fixed start']) expect((err as Error).message).toContain(p);
  });

  it('invalid input fails at once, non-retryable, listing every problem', async () => {
    const handle = await start({ views: [{ name: 'bad name', entities: [], source: { type: 'file', path: 'x.parquet' } }, statView('dup', { type: 'file', path: 'x.parquet' }), statView('dup', { type: 'file', path: 'y.parquet' })], store: { type: 'memcached' }, start: '2026-11-02T00:00:00Z', end: 'yesterday', extra: 1 } as never);
    const err = (await handle.result().catch((e: unknown) => e)) as WorkflowFailedError;
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = err.cause as { type?: string; nonRetryable?: boolean; message: string };
    expect(cause.type).toBe('InvalidInput');
    expect(cause.nonRetryable).toBe(true);
    for (const p of [/end: must be an ISO 8601 time/, /extra: unknown field/, /views\[0\]\.name: name must match/, /views\[0\]\.entities: entities must list at least one column/, /views\[0\]\.timestampField/, /views\[2\]\.name: view dup is also views\[1\]/, /store\.type: /]) expect(cause.message).toMatch(p);
    // Failed during validation: no view was attempted.
    const events = (await handle.fetchHistory()).events ?? [];
    expect(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'materializeFeatureView')).toHaveLength(0);
  });

  it('a file source outside the worker\'s allowed roots fails with PermissionDenied, not retried', async () => {
    const outside = path.join(dir, '..', 'elsewhere', 'stats.parquet');
    const handle = await start({ views: [statView('outside_stats', { type: 'file', path: outside })], end: new Date(T0 + DAY).toISOString() });
    const err = (await handle.result().catch((e: unknown) => e)) as WorkflowFailedError;
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err.cause?.cause ?? err.cause) as { type?: string; nonRetryable?: boolean; message: string };
    expect(cause.type).toBe('PermissionDenied');
    expect(cause.nonRetryable).toBe(true);
    expect(cause.message).toContain(`views[0].source.path: ${outside} is outside the locations this worker may read and write`);
  });
});
