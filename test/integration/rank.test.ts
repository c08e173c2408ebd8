/**
 * Ranking: the recommender example model scores every user × song candidate and the top 10 per
 * user are kept, compared with the lists and scores Python computed with ONNX Runtime on the same
 * rows (examples/train/train_recommender.py). Duplicate pairs and a bad k are typed errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLAYLIST_CANDIDATES, PLAYLIST_EXPECTED, registerRecommenderModel } from '../../cli/examples';
import { EmptyInputError, InvalidInputError } from '../../lib/errors';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { openPipeline, type Pipeline } from '../../lib/pipeline/pipeline';
import { rankCandidates, topKPerEntity } from '../../lib/pipeline/rank';
import { createResources, type Resources } from '../../lib/pipeline/resources';
import { tempConfig } from '../helpers/env';

let resources: Resources;
let pipeline: Pipeline;
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const env = await tempConfig({ INFERFLOW_MODULES: 'none' });
  ({ dir, cleanup } = env);
  resources = createResources(env.config);
  await registerRecommenderModel(resources.registry);
  pipeline = await openPipeline({ model: await resources.resolveModel('recommender@production') }, resources);
});

afterAll(async () => {
  await resources?.close();
  await cleanup?.();
});

/** A DuckDB LIST value as read by getRowsJS. */
const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : (v as { items: unknown[] }).items);

const args = { candidates: PLAYLIST_CANDIDATES, entityColumn: 'user_id', itemColumn: 'song_id', k: 10 };

describe('top-k recommendation per entity', () => {
  it('gives every user the top 10 songs and scores Python gives on the same rows', async () => {
    const lists = await rankCandidates(pipeline, args);
    const expected = await withDuckDB(async (conn) => {
      const r = await conn.runAndReadAll(`SELECT CAST(user_id AS VARCHAR), items, scores FROM read_parquet(${lit(PLAYLIST_EXPECTED)}) ORDER BY user_id`);
      return r.getRowsJS().map(([u, items, scores]) => ({ entity: toText(u), items: listOf(items).map(toText), scores: listOf(scores).map(Number) }));
    });
    expect(expected).toHaveLength(300);
    expect(lists.map((l) => l.entity)).toEqual(expected.map((e) => e.entity));
    for (const [i, want] of expected.entries()) {
      expect(lists[i]!.items).toEqual(want.items);
      // ONNX Runtime 1.32 (Python) and 1.30 (Node) sum the trees' float32 values at most one ulp apart.
      lists[i]!.scores.forEach((s, j) => expect(Math.abs(s - want.scores[j]!)).toBeLessThan(1e-6));
    }
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

  it('a k out of range, equal columns and an empty source are typed errors', async () => {
    await expect(rankCandidates(pipeline, { ...args, k: 0 })).rejects.toThrow('ranking is invalid: k: an integer between 1 and 1000, got 0');
    await expect(rankCandidates(pipeline, { ...args, itemColumn: 'user_id' })).rejects.toThrow('itemColumn: must differ from entityColumn (user_id)');
    const empty = `${dir}/empty.parquet`;
    await withDuckDB((conn) => conn.run(`COPY (SELECT * FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) LIMIT 0) TO ${lit(empty)} (FORMAT parquet)`));
    await expect(rankCandidates(pipeline, { ...args, candidates: empty })).rejects.toThrow(EmptyInputError);
  });
});
