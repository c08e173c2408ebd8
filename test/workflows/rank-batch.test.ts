/**
 * Ranking through batchInference on the real Temporal dev server: the recommender example model
 * scores every user × song candidate, shards keep each user's candidates together, and the run
 * writes one row per user with the top 10 songs and their scores (list columns) to Parquet,
 * PostgreSQL, DuckDB and Redis, compared with the lists Python computed (examples/data/playlist_expected.parquet).
 * The candidates come from a file, or from a PostgreSQL table or query (`ranking.candidates`); a
 * duplicate pair in either fails the run at its plan naming the source and the pair.
 */
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PLAYLIST_CANDIDATES, registerRecommenderModel } from '../../cli/examples';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { readRedisPrediction } from '../../lib/sinks';
import { startBatchRunEnv, type BatchRunEnv } from '../helpers/batch-run';
import { permanentFailureOf } from '../helpers/failures';
import { recordHistory as saveHistory } from '../helpers/histories';
import { candidatesTable, readExpectedPlaylists, readPlaylists, type PlaylistRow } from '../helpers/playlist';
import { deleteByPrefix } from '../helpers/redis';
import { TEST_REDIS_URL } from '../helpers/services';
import { uniqueName } from '../helpers/env';

const ranking = { entity: 'user_id', item: 'song_id', k: 10 };
let env: BatchRunEnv;
let expected: PlaylistRow[];

beforeAll(async () => {
  env = await startBatchRunEnv({ name: 'rank', modules: 'none', register: registerRecommenderModel });
  expected = await readExpectedPlaylists();
});

afterAll(async () => {
  await env?.close();
});

/** Every user's list equal to Python's, item for item; scores within float32 rounding of ONNX Runtime's versions. */
function expectPythonLists(got: PlaylistRow[]): void {
  expect(expected).toHaveLength(300);
  expect(got.map((r) => r.user)).toEqual(expected.map((e) => e.user));
  const wrongItems = got.filter((r, i) => r.items.join() !== expected[i]!.items.join()).map((r) => r.user);
  expect(wrongItems).toEqual([]);
  const wrongScores = got.filter((r, i) => r.scores.length !== 10 || r.scores.some((s, j) => Math.abs(s - expected[i]!.scores[j]!) >= 1e-6)).map((r) => r.user);
  expect(wrongScores).toEqual([]);
}

const run = (input: Parameters<BatchRunEnv['run']>[0]) => env.run(input);

/** Start a run expected to fail at its plan; its permanent failure, and the activities it scheduled. */
async function failedRun(args: Record<string, unknown>) {
  const handle = await env.worker.client.workflow.start('batchInference', { taskQueue: env.config.temporal.taskQueue, workflowId: uniqueName('wf-rank-bad'), args: [args] });
  const failure = await permanentFailureOf(handle);
  const history = await handle.fetchHistory();
  const activities = (history.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : []));
  return { failure, activities };
}

describe('batchInference with ranking', () => {
  it('writes one Parquet row per user with the top 10 songs and scores Python gives, users never split across shards', async () => {
    const { handle, result } = await run({ model: 'recommender@production', features: PLAYLIST_CANDIDATES, ranking, shardSize: 2_000 });
    expect(result).toMatchObject({ rowsIn: 300, rowsOut: 300, shards: 6 });
    const files = path.join(result.output.location, '*.parquet');
    expectPythonLists(await readPlaylists(`read_parquet(${lit(files)})`));
    const types = await withDuckDB(async (conn) => (await conn.runAndReadAll(`SELECT typeof(user_id), typeof(items), typeof(scores), model_version FROM read_parquet(${lit(files)}) LIMIT 1`)).getRowsJS()[0]);
    expect(types).toEqual(['BIGINT', 'VARCHAR[]', 'DOUBLE[]', 1]);
    if (process.env.RECORD_HISTORIES) await saveHistory(inject('temporalCli'), env.config.temporal.address, handle.workflowId, 'batchInference-ranking.json');
  });

  it('writes the lists to PostgreSQL as text[] and real[] keyed by user', async () => {
    const table = env.table('playlist');
    await run({ model: 'recommender@production', features: PLAYLIST_CANDIDATES, ranking, sink: { type: 'postgres', table } });
    const got = await env.admin.query<{ user_id: string; items: string[]; scores: number[] }>(`SELECT user_id::text, items, scores FROM public.${pg.escapeIdentifier(table)} ORDER BY user_id`);
    // real[] holds float32: Python's scores are float32 values too.
    expectPythonLists(got.rows.map((r) => ({ user: r.user_id, items: r.items, scores: r.scores.map(Number) })));
  });

  it('writes the lists to a DuckDB table as VARCHAR[] and list-of-float columns keyed by user', async () => {
    const db = path.join(env.dir, 'playlist.duckdb');
    const { result } = await run({ model: 'recommender@production', features: PLAYLIST_CANDIDATES, ranking, sink: { type: 'duckdb', path: db, table: 'playlist' } });
    expect(result).toMatchObject({ rowsIn: 300, rowsOut: 300 });
    // The table read back through a Parquet copy, the way the other sinks' lists are read.
    const copy = path.join(env.dir, 'playlist-from-duckdb.parquet');
    const types = await withDuckDB(async (conn) => {
      await conn.run(`ATTACH ${lit(db)} AS out (READ_ONLY)`);
      await conn.run(`COPY (SELECT user_id, items, scores FROM out.playlist) TO ${lit(copy)} (FORMAT parquet)`);
      return (await conn.runAndReadAll(`SELECT typeof(user_id), typeof(items), count(*) FROM out.playlist GROUP BY ALL`)).getRowsJS();
    });
    expect(types).toEqual([['BIGINT', 'VARCHAR[]', 300n]]);
    expectPythonLists(await readPlaylists(`read_parquet(${lit(copy)})`));
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
    const file = path.join(env.dir, 'dup.parquet');
    await withDuckDB((conn) =>
      conn.run(`COPY (SELECT * FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) UNION ALL (SELECT * FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) WHERE user_id = 100007 ORDER BY song_id LIMIT 1)) TO ${lit(file)} (FORMAT parquet)`),
    );
    const { failure, activities } = await failedRun({ model: 'recommender@production', features: file, ranking });
    expect(failure.type).toBe('InvalidInput');
    expect(failure.message).toMatch(new RegExp(`candidate source ${file} has duplicate pairs: \\(user_id=100007, song_id=song-\\d{4}\\) appears 2 times`));
    expect(activities).not.toContain('predictShard');
  });

  it('ranks the candidates of a PostgreSQL table and of a query as Python does, into PostgreSQL', async () => {
    const source = env.table('candidates');
    await candidatesTable(env.admin, source, env.dir);
    const fromTable = await run({ model: 'recommender@production', ranking: { ...ranking, candidates: { type: 'postgres', table: source } }, shardSize: 2_000 });
    expect(fromTable.result).toMatchObject({ rowsIn: 300, rowsOut: 300, shards: 6 });
    expectPythonLists(await readPlaylists(`read_parquet(${lit(path.join(fromTable.result.output.location, '*.parquet'))})`));
    const sink = env.table('playlist_pg');
    const query = `SELECT * FROM public.${pg.escapeIdentifier(source)} WHERE song_id <> 'no-such-song'`;
    await run({ model: 'recommender@production', ranking: { ...ranking, candidates: { type: 'postgres', query } }, sink: { type: 'postgres', table: sink } });
    const got = await env.admin.query<{ user_id: string; items: string[]; scores: number[] }>(`SELECT user_id::text, items, scores FROM public.${pg.escapeIdentifier(sink)} ORDER BY user_id`);
    expectPythonLists(got.rows.map((r) => ({ user: r.user_id, items: r.items, scores: r.scores.map(Number) })));
  });

  it('fails the run at its plan naming the PostgreSQL table and the pair when a pair is given twice', async () => {
    const source = env.table('candidates_dup');
    await candidatesTable(env.admin, source, env.dir, 'SELECT * FROM c WHERE user_id = 100011 ORDER BY song_id LIMIT 1');
    const { failure, activities } = await failedRun({ model: 'recommender@production', ranking: { ...ranking, candidates: { type: 'postgres', table: source } } });
    expect(failure.type).toBe('InvalidInput');
    expect(failure.message).toMatch(new RegExp(`candidate source postgres table ${source} has duplicate pairs: \\(user_id=100011, song_id=song-\\d{4}\\) appears 2 times \\(1 duplicate pairs in all\\)`));
    expect(activities).not.toContain('predictShard');
  });

  it('a missing PostgreSQL table fails the run at its plan as NotFound naming ranking.candidates and the table', async () => {
    const { failure, activities } = await failedRun({ model: 'recommender@production', ranking: { ...ranking, candidates: { type: 'postgres', table: 'no_such_candidates' } } });
    expect(failure.type).toBe('NotFound');
    expect(failure.message).toContain('ranking.candidates: postgres table no_such_candidates does not exist');
    expect(activities).not.toContain('predictShard');
  });
});
