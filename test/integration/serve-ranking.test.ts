/**
 * `inferflow serve` with a ranking spec: a request naming one user answers that user's top 10
 * songs (`items` BYTES [1, 10]) and scores (`scores` FP32 [1, 10]), the lists Python computed
 * (examples/data/playlist_expected.parquet), over V2 REST (JSON and binary tensor data), V2 gRPC
 * (tritonclient, raw contents) and MLflow /invocations (a list, one row per user), with the
 * candidates from a file or from a PostgreSQL table. The candidate file is read once per served
 * version: removing or replacing it after start changes no answer until a new version (hot swap)
 * reads it again. A request for several users is a 400 naming the input.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PLAYLIST_CANDIDATES, RECOMMENDER_MODEL_DIR, REPO_ROOT, registerRecommenderModel } from '../../cli/examples';
import { serve } from '../../cli/serve';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { closePostgresPools } from '../../lib/sinks';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { tempConfig, uniqueName, tritonClientEnv } from '../helpers/env';
import { candidatesTable, readExpectedPlaylists } from '../helpers/playlist';

type Output = { name: string; datatype: string; shape: number[]; data: unknown[] };
type Tensor = Omit<Output, 'name'>;
const USERS = [100001, 100042, 100150, 100300];
const RANKING = { entity: 'user_id', item: 'song_id', k: 10 };
const TOPK_CLIENT = path.join(REPO_ROOT, 'test/fixtures/grpc/topk_client.py');
const postgresUrl = inject('postgresUrl');
const saved = { ...process.env };
let dir: string;
let cleanup: () => Promise<void>;
let candidates: string;
let server: Awaited<ReturnType<typeof serve>>;
let registry: ModelRegistry;
let admin: pg.Pool;
const tables: string[] = [];
let expected: Map<string, { items: string[]; scores: number[] }>;

beforeAll(async () => {
  const env = await tempConfig();
  ({ dir, cleanup } = env);
  registry = new ModelRegistry(openStore(env.config.registry));
  await registerRecommenderModel(registry);
  Object.assign(process.env, { INFERFLOW_DATA_DIR: env.dir, INFERFLOW_LOG_LEVEL: 'warn', INFERFLOW_MODULES: 'none', INFERFLOW_POSTGRES_URL: postgresUrl });
  expected = new Map((await readExpectedPlaylists()).map((r) => [r.user, r]));
  admin = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  // A copy the tests may remove: the server must not read it after start.
  candidates = path.join(dir, 'candidates.parquet');
  await fs.copyFile(PLAYLIST_CANDIDATES, candidates);
  const spec = path.join(env.dir, 'weekly-playlist.json');
  await fs.writeFile(spec, JSON.stringify({ model: 'recommender@production', features: candidates, ranking: RANKING }));
  server = await serve(spec, { port: 0, host: '127.0.0.1', grpcPort: 0 });
});

afterAll(async () => {
  await server?.shutdown();
  await closePostgresPools();
  for (const t of tables) await admin?.query(`DROP TABLE IF EXISTS public.${pg.escapeIdentifier(t)}`);
  await admin?.end();
  process.env = saved;
  await cleanup?.();
});

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${url}/v2/models/recommender/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

const oneUser = (user: number) => ({ id: `u${user}`, inputs: [{ name: 'user_id', datatype: 'INT64', shape: [1], data: [user] }] });

/** A user's items and scores equal to Python's (scores within float32 rounding of ONNX Runtime's versions). */
function expectList(user: number, items: Tensor, scores: Tensor): void {
  const want = expected.get(String(user))!;
  expect(items).toEqual({ datatype: 'BYTES', shape: [1, 10], data: want.items });
  expect(scores.datatype).toBe('FP32');
  expect(scores.shape).toEqual([1, 10]);
  expect(scores.data).toHaveLength(10);
  (scores.data as number[]).forEach((s, j) => expect(Math.abs(s - want.scores[j]!)).toBeLessThan(1e-6));
}

async function expectRestAnswers(url: string): Promise<void> {
  for (const user of USERS) {
    const { status, json } = await post(url, oneUser(user));
    expect(status, JSON.stringify(json)).toBe(200);
    expect(json).toMatchObject({ model_name: 'recommender', model_version: '1', id: `u${user}`, parameters: { user_id: String(user) } });
    const [items, scores] = (json.outputs as Output[]).map(({ name, ...t }) => [name, t] as const);
    expect([items![0], scores![0]]).toEqual(['items', 'scores']);
    expectList(user, items![1], scores![1]);
  }
}

interface TopKAnswer {
  items: Tensor;
  scores: Tensor;
  parameters: Record<string, unknown>;
  raw?: boolean;
  binary?: boolean;
}

/** tritonclient over gRPC and REST (binary outputs), one request per user. */
function tritonclient(users: number[]): Promise<{ grpc: Record<string, TopKAnswer>; http: Record<string, TopKAnswer> }> {
  const http = server.url.replace(/^http:\/\//, '');
  return new Promise((resolve, reject) => {
    execFile('python3', [TOPK_CLIENT, server.grpc!.address, http, 'recommender', 'user_id', ...users.map(String)], { maxBuffer: 16 * 1024 * 1024, timeout: 120_000, env: tritonClientEnv(inject('tritonPythonPath')) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${TOPK_CLIENT} failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as { grpc: Record<string, TopKAnswer>; http: Record<string, TopKAnswer> });
    });
  });
}

describe('serve: top-k for one entity', () => {
  it('answers every user with the top 10 songs and scores Python gives, from candidates read once: removing the file after start changes nothing', async () => {
    await expectRestAnswers(server.url);
    await fs.rm(candidates);
    await expectRestAnswers(server.url);
  });

  it('answers over gRPC (raw contents) and REST binary tensor data with tritonclient, and over MLflow /invocations as a list', async () => {
    const answers = await tritonclient(USERS);
    for (const user of USERS) {
      const g = answers.grpc[String(user)]!;
      expectList(user, g.items, g.scores);
      expect(g.raw).toBe(true);
      expect(g.parameters).toEqual({ user_id: String(user) });
      const h = answers.http[String(user)]!;
      expectList(user, h.items, h.scores);
      expect(h.binary).toBe(true);
    }
    const r = await fetch(`${server.url}/invocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ dataframe_records: USERS.map((u) => ({ user_id: u })) }) });
    expect(r.status).toBe(200);
    const { predictions } = (await r.json()) as { predictions: { user_id: number; items: string[]; scores: number[] }[] };
    expect(predictions.map((p) => p.user_id)).toEqual(USERS);
    predictions.forEach((p) => expectList(p.user_id, { datatype: 'BYTES', shape: [1, 10], data: p.items }, { datatype: 'FP32', shape: [1, p.scores.length], data: p.scores }));
  });

  it('counts top-k answers over REST and MLflow in GET /metrics: lists per entity, rows per request, the version answering', async () => {
    const metrics = async () => (await fetch(`${server.url}/metrics`)).text();
    const sample = (text: string, series: string) => Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1] ?? 0);
    const before = await metrics();
    expect((await post(server.url, oneUser(USERS[0]!))).status).toBe(200);
    const r = await fetch(`${server.url}/invocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ dataframe_records: USERS.map((u) => ({ user_id: u })) }) });
    expect(r.status).toBe(200);
    const after = await metrics();
    expect(sample(after, 'inferflow_serve_ranked_lists_total{model="recommender"}') - sample(before, 'inferflow_serve_ranked_lists_total{model="recommender"}')).toBe(1 + USERS.length);
    expect(sample(after, 'inferflow_serve_rows_per_request_count{model="recommender"}') - sample(before, 'inferflow_serve_rows_per_request_count{model="recommender"}')).toBe(2);
    expect(after).toMatch(/^inferflow_serve_model_info\{model="recommender",version="\d+",sha256="[0-9a-f]{64}"\} 1$/m);
  });

  it('refuses a request for two users, and a request without the entity input, naming it', async () => {
    const two = await post(server.url, { inputs: [{ name: 'user_id', datatype: 'INT64', shape: [2], data: [100001, 100002] }] });
    expect(two.status).toBe(400);
    expect(two.json.error).toContain('inputs[0] (user_id): one entity per top-k request');
    const none = await post(server.url, { inputs: [{ name: 'song_id', datatype: 'BYTES', shape: [1], data: ['song-0001'] }] });
    expect(none.status).toBe(400);
    expect(none.json.error).toContain('a top-k request has one input, user_id');
    const mlflow = await fetch(`${server.url}/invocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ dataframe_records: [{ user_id: 100001, song_id: 'song-0001' }] }) });
    expect(mlflow.status).toBe(400);
    expect(((await mlflow.json()) as { message: string }).message).toContain('row 0: a top-k row has only user_id (got song_id too)');
  });

  it('answers 400 for a user without candidates', async () => {
    const r = await post(server.url, { inputs: [{ name: 'user_id', datatype: 'INT64', shape: [1], data: [7] }] });
    expect(r.status).toBe(400);
    expect(r.json.error).toContain('has no rows for user_id=7');
  });

  it('serves candidates from a PostgreSQL table as Python ranks them; a duplicate pair stops the server at start naming the table and the pair', async () => {
    const table = uniqueName('serve_candidates').replace(/-/g, '_');
    tables.push(table);
    await candidatesTable(admin, table, dir);
    const spec = path.join(dir, 'playlist-pg.json');
    await fs.writeFile(spec, JSON.stringify({ model: 'recommender@production', ranking: { ...RANKING, candidates: { type: 'postgres', table } } }));
    const s = await serve(spec, { port: 0, host: '127.0.0.1' });
    try {
      await expectRestAnswers(s.url);
    } finally {
      await s.shutdown();
    }
    const dup = uniqueName('serve_candidates_dup').replace(/-/g, '_');
    tables.push(dup);
    await candidatesTable(admin, dup, dir, 'SELECT * FROM c WHERE user_id = 100042 ORDER BY song_id LIMIT 1');
    await fs.writeFile(spec, JSON.stringify({ model: 'recommender@production', ranking: { ...RANKING, candidates: { type: 'postgres', table: dup } } }));
    await expect(serve(spec, { port: 0, host: '127.0.0.1' })).rejects.toThrow(new RegExp(`candidate source postgres table ${dup} has duplicate pairs: \\(user_id=100042, song_id=song-\\d{4}\\) appears 2 times`));
  });

  // Last: it moves the alias to version 2.
  it('reads the candidates again for a new version (hot swap), and only then', async () => {
    const file = path.join(dir, 'swap-candidates.parquet');
    await fs.copyFile(PLAYLIST_CANDIDATES, file);
    const spec = path.join(dir, 'playlist-swap.json');
    await fs.writeFile(spec, JSON.stringify({ model: 'recommender@production', features: file, ranking: RANKING }));
    const s = await serve(spec, { port: 0, host: '127.0.0.1', pollMs: 100 });
    try {
      const user = USERS[0]!;
      const items = async () => {
        const { status, json } = await post(s.url, oneUser(user));
        expect(status, JSON.stringify(json)).toBe(200);
        return { version: json.model_version, items: (json.outputs as Output[])[0]!.data as string[] };
      };
      expect(await items()).toEqual({ version: '1', items: expected.get(String(user))!.items });
      // The file now holds three candidates for the user: version 1 keeps its loaded candidates.
      const three = await withDuckDB(async (conn) => {
        const r = await conn.runAndReadAll(`SELECT song_id FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) WHERE user_id = ${user} ORDER BY song_id LIMIT 3`);
        return r.getRowsJS().map(([song]) => toText(song));
      });
      expect(three).toHaveLength(3);
      const replaced = `${file}.new.parquet`;
      await withDuckDB((conn) => conn.run(`COPY (SELECT * FROM read_parquet(${lit(PLAYLIST_CANDIDATES)}) WHERE user_id <> ${user} OR song_id IN (${three.map(lit).join(', ')})) TO ${lit(replaced)} (FORMAT parquet)`));
      await fs.rename(replaced, file);
      expect(await items()).toEqual({ version: '1', items: expected.get(String(user))!.items });
      // Version 2 (the same model file registered again) takes over and reads the file it finds.
      const metadata: unknown = JSON.parse(await fs.readFile(path.join(RECOMMENDER_MODEL_DIR, 'metadata.json'), 'utf8'));
      await registry.register(path.join(RECOMMENDER_MODEL_DIR, 'model.onnx'), { name: 'recommender', metadata, alias: 'production' });
      const deadline = Date.now() + 30_000;
      while (s.deployments[0]!.counters.version !== 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const after = await items();
      expect(after.version).toBe('2');
      expect([...after.items].sort()).toEqual([...three].sort());
    } finally {
      await s.shutdown();
    }
  });
});
