/**
 * One contract for every run-sink backend, on the real servers: Parquet files (local and on S3,
 * SeaweedFS), a DuckDB file, PostgreSQL (a schema of its own) and Redis (a key prefix of its own).
 * Shards are staged (a retried shard too), the run is committed once and only once, `committed()`
 * answers before and after, a discarded or incomplete run publishes nothing, and a reader sees
 * all of a run or none of it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import type { ResolvedModel } from '../../lib/registry/manifest';
import { SUCCESS_MARKER, closePostgresPools, closeRedisClients, createRunSink, parseSinkSpec, runDirName, type CommitRequest, type RunSink, type SinkDefaults } from '../../lib/sinks';
import { openStore } from '../../lib/storage';
import { deleteByPrefix } from '../helpers/redis';
import { tempConfig, uniqueName } from '../helpers/env';
import { TEST_REDIS_URL } from '../helpers/services';

const postgresUrl = inject('postgresUrl');
const REDIS_URL = TEST_REDIS_URL;
const schema = uniqueName('inferflow_runsink').replace(/-/g, '_');
const redisPrefix = uniqueName('inferflow-test-runsink');
const model: ResolvedModel = { name: 'fraud-detector', version: 2, sha256: 'c'.repeat(64), size: 1, uri: 'file:///m', ref: 'fraud-detector' };
let env: Awaited<ReturnType<typeof tempConfig>>;
let admin: pg.Pool;
let redis: Redis;
let s3Root: string;

beforeAll(async () => {
  env = await tempConfig();
  s3Root = `s3://${inject('s3').bucket}/${uniqueName('runsink')}`;
  admin = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  await admin.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  await closePostgresPools();
  await closeRedisClients();
  await admin?.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  await admin?.end();
  if (redis) {
    await deleteByPrefix(redis, redisPrefix);
    await redis.quit();
  }
  await env?.cleanup();
});

const defaults = (): SinkDefaults => ({ outputDir: path.join(env.dir, 'out'), dataDir: env.dir, postgresUrl, redisUrl: REDIS_URL, allowedRoots: [env.dir, s3Root] });

interface Backend {
  /** A sink writing where no other test writes. */
  sink(): Promise<RunSink>;
  /** The rows of `run` a reader of this backend sees (0 while it is not published). */
  visible(sink: RunSink, run: CommitRequest): Promise<number>;
}

/** Rows in Parquet files a reader uses. */
async function parquetRows(files: string[]): Promise<number> {
  if (files.length === 0) return 0;
  return withDuckDB(async (c) => Number((await c.runAndReadAll(`SELECT count(*) FROM read_parquet([${files.map(lit).join(', ')}])`)).getRowsJS()[0]![0]));
}

let n = 0;
const backends: Record<'parquet' | 'parquet-s3' | 'duckdb' | 'postgres' | 'redis', Backend> = {
  parquet: {
    sink: () => createRunSink(parseSinkSpec({ type: 'parquet', path: path.join(env.dir, `parquet-${n++}`) }), defaults()),
    async visible(sink, run) {
      const dir = (sink as unknown as { runDir(p: string, w: string): string }).runDir(run.pipeline, run.workflowId);
      if (!(await fs.stat(path.join(dir, SUCCESS_MARKER)).catch(() => undefined))) return 0;
      return parquetRows((await fs.readdir(dir)).filter((f) => f.endsWith('.parquet')).map((f) => path.join(dir, f)));
    },
  },
  'parquet-s3': {
    sink: () => createRunSink(parseSinkSpec({ type: 'parquet', path: `${s3Root}/p${n++}` }), defaults()),
    async visible(sink, run) {
      const store = (sink as unknown as { store: ReturnType<typeof openStore> }).store;
      const dir = `${runDirName(run.pipeline)}/${runDirName(run.workflowId)}`;
      if (!(await store.head(`${dir}/${SUCCESS_MARKER}`))) return 0;
      const local = await fs.mkdtemp(path.join(env.dir, 'read-'));
      const files: string[] = [];
      for (const key of (await store.list(dir)).filter((k) => k.endsWith('.parquet'))) {
        const file = path.join(local, path.basename(key));
        await fs.writeFile(file, await store.getBytes(key));
        files.push(file);
      }
      return parquetRows(files);
    },
  },
  duckdb: {
    sink: () => createRunSink(parseSinkSpec({ type: 'duckdb', path: path.join(env.dir, `db-${n++}.duckdb`), table: 'predictions' }), defaults()),
    async visible(sink, run) {
      const dbPath = (sink as unknown as { dbPath: string }).dbPath;
      if (!(await fs.stat(dbPath).catch(() => undefined))) return 0;
      return withDuckDB(
        async (c) => {
          if (Number((await c.runAndReadAll(`SELECT count(*) FROM duckdb_tables() WHERE table_name = 'predictions'`)).getRowsJS()[0]![0]) === 0) return 0;
          return Number((await c.runAndReadAll(`SELECT count(*) FROM predictions WHERE run_id = ${lit(run.runId)}`)).getRowsJS()[0]![0]);
        },
        { path: dbPath },
      );
    },
  },
  postgres: {
    sink: () => createRunSink(parseSinkSpec({ type: 'postgres', schema, table: `predictions_${n++}` }), defaults()),
    async visible(sink, run) {
      const table = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier((sink as unknown as { table: string }).table)}`;
      const r = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE run_id = $1`, [run.runId]).catch(() => ({ rows: [{ n: '0' }] }));
      return Number(r.rows[0]!.n);
    },
  },
  redis: {
    sink: () => createRunSink(parseSinkSpec({ type: 'redis', keyPrefix: `${redisPrefix}.${n++}` }), defaults()),
    async visible(sink, run) {
      // What an application does: follow the pipeline's pointer, then read the run's keys.
      const keyPrefix = (sink as unknown as { o: { keyPrefix: string } }).o.keyPrefix;
      if ((await redis.get(`${keyPrefix}:${run.pipeline}:current`)) !== run.runId) return 0;
      let cursor = '0';
      let total = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}:run:${run.runId}:*`, 'COUNT', 1000);
        cursor = next;
        total += keys.length;
      } while (cursor !== '0');
      return total;
    },
  },
};

/**
 * A shard's part as predictShard writes it for this sink (its own part format, else Parquet),
 * staged into the sink when the sink stages shards. Ids are unique per run and shard.
 */
async function stageShard(sink: RunSink, runId: string, shard: number, rows: number): Promise<string> {
  const file = path.join(env.dir, 'parts', runId, `part-${String(shard).padStart(5, '0')}${sink.partFormat?.extension ?? '.parquet'}`);
  await fs.mkdir(path.dirname(file), { recursive: true });
  const lineage = `${lit(model.name)} AS model_name, ${model.version}::INTEGER AS model_version, ${lit(model.sha256)} AS model_sha256, TIMESTAMPTZ '2026-12-07 03:00:00+00' AS as_of, ${lit(runId)} AS run_id`;
  const select = `SELECT ${lit(`${runId}-${shard}-`)} || i AS transaction_id, (i % 2)::BIGINT AS label, (i / ${rows + 1})::FLOAT AS score, ${lineage} FROM range(${rows}) t(i)`;
  await withDuckDB(async (conn) => {
    if (sink.partFormat) await sink.partFormat.write(conn, { select, lineage, path: file, finalPath: file, shardIndex: shard, rows });
    else await conn.run(`COPY (${select}) TO ${lit(file)} (FORMAT parquet)`);
  });
  await sink.stage?.({ runId, shardIndex: shard, partPath: file, rows, idColumn: 'transaction_id' });
  return file;
}

function request(runId: string, parts: string[], rows: number): CommitRequest {
  return { runId, workflowId: `wf-${runId}`, pipeline: 'fraud', model, parts, rows };
}

describe.each(Object.keys(backends) as (keyof typeof backends)[])('run sink contract: %s', (name) => {
  const backend = backends[name];

  it('stages shards (one retried), publishes nothing before the commit, all of the run after; a second commit is a no-op; committed() needs no parts', async () => {
    const sink = await backend.sink();
    const runId = uniqueName('run');
    const sizes = [120, 80, 50];
    const parts: string[] = [];
    for (const [i, rows] of sizes.entries()) parts.push(await stageShard(sink, runId, i, rows));
    parts[1] = await stageShard(sink, runId, 1, sizes[1]!); // a retried shard: no duplicates
    const run = request(runId, parts, 250);

    expect(await sink.committed(run)).toBeUndefined();
    expect(await backend.visible(sink, run)).toBe(0);

    const first = await sink.commit(run);
    expect(first).toMatchObject({ rows: 250, created: true });
    expect(await backend.visible(sink, run)).toBe(250);

    // The activity removes the run's files after the commit: a retry then has no parts at all.
    await fs.rm(path.join(env.dir, 'parts', runId), { recursive: true, force: true });
    expect(await sink.committed(run)).toEqual({ location: first.location, rows: 250, created: false });
    expect(await sink.commit(run)).toEqual({ location: first.location, rows: 250, created: false });
    expect(await backend.visible(sink, run)).toBe(250);

    // A later discard of a published run (the workflow's clean-up) keeps it.
    await sink.discard?.(runId);
    expect(await backend.visible(sink, run)).toBe(250);
    expect(await sink.committed(run)).toMatchObject({ rows: 250, created: false });
  });

  it('a run missing a shard publishes nothing and is not committed', async () => {
    const sink = await backend.sink();
    const runId = uniqueName('run');
    const parts = [await stageShard(sink, runId, 0, 100), await stageShard(sink, runId, 1, 100), path.join(env.dir, 'parts', runId, 'never-written')];
    const run = request(runId, parts, 300);
    await expect(sink.commit(run)).rejects.toThrow();
    expect(await backend.visible(sink, run)).toBe(0);
    expect(await sink.committed(run)).toBeUndefined();
  });

  it('a discarded run publishes nothing, and a commit after the discard does not publish it', async () => {
    const sink = await backend.sink();
    const runId = uniqueName('run');
    const parts = [await stageShard(sink, runId, 0, 60), await stageShard(sink, runId, 1, 40)];
    const run = request(runId, parts, 100);
    await sink.discard?.(runId);
    await sink.discard?.(runId); // idempotent
    expect(await backend.visible(sink, run)).toBe(0);
    expect(await sink.committed(run)).toBeUndefined();
    // Sinks that stage shards refuse the commit; the others (nothing staged of their own) publish the parts they are given.
    if (sink.stage) {
      await expect(sink.commit(run)).rejects.toThrow(/nothing was published|was discarded|nothing staged/);
      expect(await backend.visible(sink, run)).toBe(0);
    }
  });

  it('a second run is committed beside the first; each answers committed() with its own rows', async () => {
    const sink = await backend.sink();
    const a = uniqueName('run');
    const b = uniqueName('run');
    const runA = request(a, [await stageShard(sink, a, 0, 70)], 70);
    const runB = request(b, [await stageShard(sink, b, 0, 30), await stageShard(sink, b, 1, 20)], 50);
    expect(await sink.commit(runA)).toMatchObject({ rows: 70, created: true });
    expect(await sink.commit(runB)).toMatchObject({ rows: 50, created: true });
    expect(await backend.visible(sink, runB)).toBe(50);
    expect(await sink.committed(runA)).toMatchObject({ rows: 70, created: false });
    expect(await sink.committed(runB)).toMatchObject({ rows: 50, created: false });
  });
});

it('every run-sink type in the spec has a backend in this suite', () => {
  const types = new Set(Object.keys(backends).map((k) => k.replace(/-s3$/, '')));
  for (const t of ['parquet', 'duckdb', 'postgres', 'redis']) expect(types.has(t)).toBe(true);
});
