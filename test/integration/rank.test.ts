/**
 * Ranking: the recommender example model scores every user × song candidate and the top 10 per
 * user are kept, compared with the lists and scores Python computed with ONNX Runtime on the same
 * rows (examples/train/train_recommender.py), from the example's file and from a PostgreSQL table
 * holding the same pairs. Duplicate pairs and a bad k are typed errors.
 */
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PLAYLIST_CANDIDATES, registerRecommenderModel } from '../../cli/examples';
import { EmptyInputError, InvalidInputError, SchemaMismatchError } from '../../lib/errors';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { openPipeline, type Pipeline } from '../../lib/pipeline/pipeline';
import { loadCandidates, rankCandidates, rankLoaded, topKPerEntity } from '../../lib/pipeline/rank';
import { exportPostgresCandidates } from '../../lib/postgres/candidates';
import { createResources, type Resources } from '../../lib/pipeline/resources';
import { tempConfig, uniqueName } from '../helpers/env';
import { candidatesTable, readExpectedPlaylists } from '../helpers/playlist';

let resources: Resources;
let pipeline: Pipeline;
let dir: string;
let cleanup: () => Promise<void>;
const postgresUrl = inject('postgresUrl');
let admin: pg.Pool;
const tables: string[] = [];

beforeAll(async () => {
  const env = await tempConfig({ INFERFLOW_MODULES: 'none' });
  ({ dir, cleanup } = env);
  resources = createResources(env.config);
  await registerRecommenderModel(resources.registry);
  pipeline = await openPipeline({ model: await resources.resolveModel('recommender@production') }, resources);
  admin = new pg.Pool({ connectionString: postgresUrl, max: 2 });
});

afterAll(async () => {
  for (const t of tables) await admin?.query(`DROP TABLE IF EXISTS public.${pg.escapeIdentifier(t)}`);
  await admin?.end();
  await resources?.close();
  await cleanup?.();
});

const args = { candidates: PLAYLIST_CANDIDATES, entityColumn: 'user_id', itemColumn: 'song_id', k: 10 };

/** Every list equal to Python's, item for item; scores within float32 rounding. */
async function expectPythonLists(lists: { entity: string; items: string[]; scores: number[] }[]): Promise<void> {
  const expected = await readExpectedPlaylists();
  expect(expected).toHaveLength(300);
  expect(lists.map((l) => l.entity)).toEqual(expected.map((e) => e.user));
  for (const [i, want] of expected.entries()) {
    expect(lists[i]!.items).toEqual(want.items);
    // ONNX Runtime 1.32 (Python) and 1.30 (Node) sum the trees' float32 values at most one ulp apart.
    lists[i]!.scores.forEach((s, j) => expect(Math.abs(s - want.scores[j]!)).toBeLessThan(1e-6));
  }
}

describe('top-k recommendation per entity', () => {
  it('gives every user the top 10 songs and scores Python gives on the same rows', async () => {
    await expectPythonLists(await rankCandidates(pipeline, args));
  });

  it('ranks the pairs of a PostgreSQL table as Python does; a duplicate pair there is refused naming the table and the pair', async () => {
    const table = uniqueName('rank_candidates').replace(/-/g, '_');
    tables.push(table);
    await candidatesTable(admin, table, dir);
    const exported = path.join(dir, `${table}.parquet`);
    await exportPostgresCandidates({ type: 'postgres', table }, exported, { url: postgresUrl });
    await expectPythonLists(await rankCandidates(pipeline, { ...args, candidates: exported, object: `postgres table ${table}` }));
    const dup = `${table}_dup`;
    tables.push(dup);
    await candidatesTable(admin, dup, dir, 'SELECT * FROM c WHERE user_id = 100007 ORDER BY song_id LIMIT 1');
    const query = `SELECT * FROM public.${dup}`;
    const dupFile = path.join(dir, `${dup}.parquet`);
    await exportPostgresCandidates({ type: 'postgres', query }, dupFile, { url: postgresUrl });
    await expect(loadCandidates(pipeline, { path: dupFile, object: 'postgres query' }, args)).rejects.toThrow(/candidate source postgres query has duplicate pairs: \(user_id=100007, song_id=song-\d{4}\) appears 2 times/);
  });

  it('a candidate set loaded once ranks each user as a ranking of the file does', async () => {
    const set = await loadCandidates(pipeline, { path: PLAYLIST_CANDIDATES, object: PLAYLIST_CANDIDATES }, args);
    expect(set.rows).toBe(300 * 40);
    const all = await rankCandidates(pipeline, args);
    for (const user of ['100001', '100042', '100300']) expect(await rankLoaded(pipeline, set, 10, Number(user))).toEqual(all.find((l) => l.entity === user));
    await expect(rankLoaded(pipeline, set, 10, 7)).rejects.toThrow(`candidate source ${PLAYLIST_CANDIDATES} has no rows for user_id=7`);
  });

  it('ranks one user alone (online) as in the full run; a user without candidates is EmptyInput', async () => {
    const all = await rankCandidates(pipeline, args);
    const one = await rankCandidates(pipeline, { ...args, entity: 100042 });
    expect(one).toEqual([all.find((l) => l.entity === '100042')]);
    await expect(rankCandidates(pipeline, { ...args, entity: 7 })).rejects.toThrow(`candidate source ${PLAYLIST_CANDIDATES} has no rows for user_id=7`);
  });

  it('orders ties by item id and keeps fewer than k when an entity has fewer candidates', () => {
    expect(topKPerEntity(['2', '10', '2', '2'], ['b', 'x', 'a', 'c'], Float32Array.of(0.5, 0.1, 0.5, 0.9), 2)).toEqual([
      { entity: '2', items: ['c', 'a'], scores: [Float32Array.of(0.9)[0], 0.5] },
      { entity: '10', items: ['x'], scores: [Float32Array.of(0.1)[0]] },
    ]);
  });

  it('a candidate source with a duplicate pair is refused naming the source and the pair', async () => {
    const file = `${dir}/dup.parquet`;
    await withDuckDB((conn) =>
      conn.run(`COPY (SELECT * FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) UNION ALL (SELECT * FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) WHERE user_id = 100007 ORDER BY song_id LIMIT 1)) TO ${lit(file)} (FORMAT parquet)`),
    );
    const err = (await rankCandidates(pipeline, { ...args, candidates: file }).catch((e: unknown) => e)) as InvalidInputError;
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.message).toMatch(new RegExp(`candidate source ${file} has duplicate pairs: \\(user_id=100007, song_id=song-\\d{4}\\) appears 2 times \\(1 duplicate pairs in all\\)`));
  });

  it('a FLOAT entity column (its text 100001.0 would match no request) is refused at load naming the column and its type', async () => {
    const file = `${dir}/float-entity.parquet`;
    await withDuckDB((conn) => conn.run(`COPY (SELECT * REPLACE (CAST(user_id AS DOUBLE) AS user_id) FROM read_parquet(${lit(PLAYLIST_CANDIDATES)})) TO ${lit(file)} (FORMAT parquet)`));
    const want = `${file} does not fit the ranking: entity column user_id is DOUBLE: an entity is an integer or a string (cast it in the source)`;
    await expect(loadCandidates(pipeline, { path: file, object: file }, args)).rejects.toThrow(SchemaMismatchError);
    await expect(loadCandidates(pipeline, { path: file, object: file }, args)).rejects.toThrow(want);
    await expect(rankCandidates(pipeline, { ...args, candidates: file, entity: 100001 })).rejects.toThrow(want);
  });

  it('a k out of range, equal columns and an empty source are typed errors', async () => {
    await expect(rankCandidates(pipeline, { ...args, k: 0 })).rejects.toThrow('ranking is invalid: k: an integer between 1 and 1000, got 0');
    await expect(rankCandidates(pipeline, { ...args, itemColumn: 'user_id' })).rejects.toThrow('itemColumn: must differ from entityColumn (user_id)');
    const empty = `${dir}/empty.parquet`;
    await withDuckDB((conn) => conn.run(`COPY (SELECT * FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) LIMIT 0) TO ${lit(empty)} (FORMAT parquet)`));
    await expect(rankCandidates(pipeline, { ...args, candidates: empty })).rejects.toThrow(EmptyInputError);
  });
});
