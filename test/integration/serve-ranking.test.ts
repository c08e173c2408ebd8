/**
 * `inferflow serve` with a ranking spec: a V2 request naming one user answers that user's top 10
 * songs (`items` BYTES [1, 10]) and scores (`scores` FP32 [1, 10]), the lists Python computed
 * (examples/data/playlist_expected.parquet); a request for several users is a 400 naming the input.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLAYLIST_CANDIDATES, PLAYLIST_EXPECTED, registerRecommenderModel } from '../../cli/examples';
import { serve } from '../../cli/serve';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { tempConfig } from '../helpers/env';

type Output = { name: string; datatype: string; shape: number[]; data: unknown[] };
const USERS = [100001, 100042, 100150, 100300];
const saved = { ...process.env };
let cleanup: () => Promise<void>;
let server: Awaited<ReturnType<typeof serve>>;
let expected: Map<string, { items: string[]; scores: number[] }>;

const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : (v as { items: unknown[] }).items);

beforeAll(async () => {
  const env = await tempConfig();
  cleanup = env.cleanup;
  await registerRecommenderModel(new ModelRegistry(openStore(env.config.registry)));
  process.env.INFERFLOW_DATA_DIR = env.dir;
  process.env.INFERFLOW_LOG_LEVEL = 'warn';
  process.env.INFERFLOW_MODULES = 'none';
  expected = await withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(`SELECT CAST(user_id AS VARCHAR), items, scores FROM read_parquet(${lit(PLAYLIST_EXPECTED)})`);
    return new Map(r.getRowsJS().map(([u, items, scores]) => [toText(u), { items: listOf(items).map(toText), scores: listOf(scores).map(Number) }]));
  });
  const spec = path.join(env.dir, 'weekly-playlist.json');
  await fs.writeFile(spec, JSON.stringify({ model: 'recommender@production', features: PLAYLIST_CANDIDATES, ranking: { entity: 'user_id', item: 'song_id', k: 10 } }));
  server = await serve(spec, { port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await server?.shutdown();
  process.env = saved;
  await cleanup?.();
});

async function post(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${server.url}/v2/models/recommender/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

describe('serve: top-k for one entity', () => {
  it.each(USERS)('answers user %i with the top 10 songs and scores Python gives', async (user) => {
    const { status, json } = await post({ id: `u${user}`, inputs: [{ name: 'user_id', datatype: 'INT64', shape: [1], data: [user] }] });
    expect(status).toBe(200);
    expect(json).toMatchObject({ model_name: 'recommender', model_version: '1', id: `u${user}` });
    const [items, scores] = json.outputs as Output[];
    const want = expected.get(String(user))!;
    expect(items).toEqual({ name: 'items', datatype: 'BYTES', shape: [1, 10], data: want.items });
    expect(scores!.name).toBe('scores');
    expect(scores!.shape).toEqual([1, 10]);
    (scores!.data as number[]).forEach((s, j) => expect(Math.abs(s - want.scores[j]!)).toBeLessThan(1e-6));
  });

  it('refuses a request for two users, and a request without the entity input, naming it', async () => {
    const two = await post({ inputs: [{ name: 'user_id', datatype: 'INT64', shape: [2], data: [100001, 100002] }] });
    expect(two.status).toBe(400);
    expect(two.json.error).toContain('inputs[0] (user_id): one entity per top-k request');
    const none = await post({ inputs: [{ name: 'song_id', datatype: 'BYTES', shape: [1], data: ['song-0001'] }] });
    expect(none.status).toBe(400);
    expect(none.json.error).toContain('a top-k request has one input, user_id');
  });

  it('answers 400 for a user without candidates', async () => {
    const r = await post({ inputs: [{ name: 'user_id', datatype: 'INT64', shape: [1], data: [7] }] });
    expect(r.status).toBe(400);
    expect(r.json.error).toContain('has no rows for user_id=7');
  });
});
