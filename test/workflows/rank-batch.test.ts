/**
 * Ranking through batchInference on the real Temporal dev server: the recommender example model
 * scores every user × song candidate, shards keep each user's candidates together, and the run
 * writes one row per user with the top 10 songs and their scores (list columns) to Parquet,
 * PostgreSQL and Redis, compared with the lists Python computed (examples/data/playlist_expected.parquet).
 */
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBatchInference, type BatchInferenceInput } from '../../client';
import { PLAYLIST_CANDIDATES, PLAYLIST_EXPECTED, registerRecommenderModel } from '../../cli/examples';
import type { InferflowConfig } from '../../lib/config/env';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { ModelRegistry } from '../../lib/registry';
import { closePostgresPools, readRedisPrediction } from '../../lib/sinks';
import { openStore } from '../../lib/storage';
import { permanentFailureOf } from '../helpers/failures';
import { recordHistory as saveHistory } from '../helpers/histories';
import { deleteByPrefix } from '../helpers/redis';
import { TEST_REDIS_URL } from '../helpers/services';
import { tempConfig, uniqueName } from '../helpers/env';
import { startWorker, type RunningWorker } from '../helpers/worker';

interface PlaylistRow {
  user: string;
  items: string[];
  scores: number[];
}

const postgresUrl = inject('postgresUrl');
const ranking = { entity: 'user_id', item: 'song_id', k: 10 };
let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let admin: pg.Pool;
let expected: PlaylistRow[];
const tables: string[] = [];

/** A DuckDB LIST value as read by getRowsJS. */
const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : (v as { items: unknown[] }).items);

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-rank'), INFERFLOW_POSTGRES_URL: postgresUrl, INFERFLOW_MODULES: 'none' }));
  await registerRecommenderModel(new ModelRegistry(openStore(config.registry)));
  admin = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  expected = await readPlaylists(`read_parquet(${lit(PLAYLIST_EXPECTED)})`);
  w = await startWorker(config);
});

afterAll(async () => {
  await w?.stop();
  await closePostgresPools();
  for (const t of tables) await admin?.query(`DROP TABLE IF EXISTS public.${pg.escapeIdentifier(t)}`);
  await admin?.end();
  await cleanup?.();
});

async function readPlaylists(from: string): Promise<PlaylistRow[]> {
  return withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(`SELECT CAST(user_id AS VARCHAR), items, scores FROM ${from} ORDER BY user_id`);
    return r.getRowsJS().map(([u, items, scores]) => ({ user: toText(u), items: listOf(items).map(toText), scores: listOf(scores).map(Number) }));
  });
}

/** Every user's list equal to Python's, item for item; scores within float32 rounding of ONNX Runtime's versions. */
function expectPythonLists(got: PlaylistRow[]): void {
  expect(expected).toHaveLength(300);
  expect(got.map((r) => r.user)).toEqual(expected.map((e) => e.user));
  const wrongItems = got.filter((r, i) => r.items.join() !== expected[i]!.items.join()).map((r) => r.user);
  expect(wrongItems).toEqual([]);
  const wrongScores = got.filter((r, i) => r.scores.length !== 10 || r.scores.some((s, j) => Math.abs(s - expected[i]!.scores[j]!) >= 1e-6)).map((r) => r.user);
  expect(wrongScores).toEqual([]);
}

async function run(input: BatchInferenceInput) {
  const handle = await startBatchInference(w.client, input, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-rank') });
  return { handle, result: await handle.result() };
}

describe('batchInference with ranking', () => {
  it('writes one Parquet row per user with the top 10 songs and scores Python gives, users never split across shards', async () => {
    const { handle, result } = await run({ model: 'recommender@production', features: PLAYLIST_CANDIDATES, ranking, shardSize: 2_000 });
    expect(result).toMatchObject({ rowsIn: 300, rowsOut: 300, shards: 6 });
    const files = path.join(result.output.location, '*.parquet');
    expectPythonLists(await readPlaylists(`read_parquet(${lit(files)})`));
    const types = await withDuckDB(async (conn) => (await conn.runAndReadAll(`SELECT typeof(user_id), typeof(items), typeof(scores), model_version FROM read_parquet(${lit(files)}) LIMIT 1`)).getRowsJS()[0]);
    expect(types).toEqual(['BIGINT', 'VARCHAR[]', 'DOUBLE[]', 1]);
    if (process.env.RECORD_HISTORIES) await saveHistory(inject('temporalCli'), config.temporal.address, handle.workflowId, 'batchInference-ranking.json');
  });

  it('writes the lists to PostgreSQL as text[] and real[] keyed by user', async () => {
    const table = uniqueName('playlist').replace(/-/g, '_');
    tables.push(table);
    await run({ model: 'recommender@production', features: PLAYLIST_CANDIDATES, ranking, sink: { type: 'postgres', table } });
    const got = await admin.query<{ user_id: string; items: string[]; scores: number[] }>(`SELECT user_id::text, items, scores FROM public.${pg.escapeIdentifier(table)} ORDER BY user_id`);
    // real[] holds float32: Python's scores are float32 values too.
    expectPythonLists(got.rows.map((r) => ({ user: r.user_id, items: r.items, scores: r.scores.map(Number) })));
  });

  it('writes the lists to Redis as JSON arrays, one key per user', async () => {
    const keyPrefix = uniqueName('rank');
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await run({ model: 'recommender@production', features: PLAYLIST_CANDIDATES, ranking, pipeline: 'playlist', sink: { type: 'redis', keyPrefix } });
      const got: PlaylistRow[] = [];
      for (const e of expected) {
        const row = await readRedisPrediction(redis, keyPrefix, 'playlist', e.user);
        got.push({ user: e.user, items: (row?.items ?? []) as string[], scores: ((row?.scores ?? []) as number[]).map(Number) });
      }
      expectPythonLists(got);
    } finally {
      await deleteByPrefix(redis, keyPrefix);
      await redis.quit();
    }
  });

  it('fails the run at its plan with a typed error naming the source and the pair when a pair is given twice', async () => {
    const file = path.join(dir, 'dup.parquet');
    await withDuckDB((conn) =>
      conn.run(`COPY (SELECT * FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) UNION ALL (SELECT * FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) WHERE user_id = 100007 ORDER BY song_id LIMIT 1)) TO ${lit(file)} (FORMAT parquet)`),
    );
    const handle = await w.client.workflow.start('batchInference', { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-rank-dup'), args: [{ model: 'recommender@production', features: file, ranking }] });
    const failure = await permanentFailureOf(handle);
    expect(failure.type).toBe('InvalidInput');
    expect(failure.message).toMatch(new RegExp(`candidate source ${file} has duplicate pairs: \\(user_id=100007, song_id=song-\\d{4}\\) appears 2 times`));
    const history = await handle.fetchHistory();
    const activities = (history.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : []));
    expect(activities).not.toContain('predictShard');
  });
});
