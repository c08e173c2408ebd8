import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, TransientError } from '../../lib/errors';
import { ModelRegistry, type ResolvedModel } from '../../lib/registry';
import { planShards, predictShard, stageSnapshot } from '../../lib/pipeline/batch';
import { RedisSink, closeRedisClients, readRedisPrediction } from '../../lib/sinks/redis';
import { FileObjectStore } from '../../lib/storage';
import { openExamplePipeline, registerExample, tempConfig } from '../helpers/env';
import { scoresIn, writeVariant } from '../helpers/data';
import { deleteByPrefix } from '../helpers/redis';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { TEST_REDIS_URL } from '../helpers/services';

const URL = TEST_REDIS_URL;
let dir: string;
let cleanup: () => Promise<void>;
let model: ResolvedModel;
let parts: { shardIndex: number; partPath: string; rows: number }[];
let redis: Redis;

beforeAll(async () => {
  const { config, ...temp } = await tempConfig();
  ({ dir, cleanup } = temp);
  const registry = new ModelRegistry(new FileObjectStore(path.join(dir, 'registry')));
  await registerExample(registry);
  const { manifest, resolved } = await registry.resolve('fraud-detector');
  model = resolved;
  const input = await writeVariant(dir, 'in.parquet', '*', 'true', 3_000);
  const snapshotPath = path.join(dir, 'snap.parquet');
  const plan = await stageSnapshot({ featuresPath: input, snapshotPath, manifest, idColumn: null, shardSize: 1_000 });
  const { pipeline, resources } = await openExamplePipeline(config, registry);
  parts = [];
  for (const shard of planShards(plan.rowsIn, 1_000)) {
    const partPath = path.join(dir, `p${shard.index}.parquet`);
    await predictShard({ pipeline, snapshotPath: plan.snapshotPath, inPlace: plan.inPlace, idColumn: 'transaction_id', shard, partPath, lineage: { runId: 'x', model, asOf: '2026-11-24T03:00:00Z' } });
    parts.push({ shardIndex: shard.index, partPath, rows: shard.end - shard.start });
  }
  await resources.close();
  redis = new Redis(URL);
});
afterAll(async () => {
  await redis?.quit();
  await closeRedisClients();
  await cleanup?.();
});

const expected = scoresIn;

describe('Redis sink (real Redis)', () => {
  it('stages versioned keys, flips the pointer atomically, expires the old version, and is idempotent', async () => {
    const keyPrefix = `t${randomUUID().slice(0, 8)}`;
    const sink = new RedisSink({ url: URL, keyPrefix, retentionSeconds: 600 });
    const req = (runId: string) => ({ runId, workflowId: `wf-${runId}`, pipeline: 'fraud', model, parts: parts.map((p) => p.partPath), rows: 3_000 });

    for (const p of parts) await sink.stage({ runId: 'r1', idColumn: 'transaction_id', ...p });
    await sink.stage({ runId: 'r1', idColumn: 'transaction_id', ...parts[1]! }); // a retried shard
    expect(await readRedisPrediction(redis, keyPrefix, 'fraud', 'tx-8-0000001')).toBeNull(); // nothing visible before commit
    expect((await sink.commit(req('r1'))).created).toBe(true);
    expect((await sink.commit(req('r1'))).created).toBe(false);
    await sink.discard('r1'); // the workflow cleans up after commit: published keys stay

    const want = await expected(parts[0]!.partPath);
    for (const [id, e] of [...want].slice(0, 50)) {
      const got = await readRedisPrediction(redis, keyPrefix, 'fraud', id);
      expect(got).toMatchObject({ label: e.label, model_name: 'fraud-detector', model_version: 1, as_of: '2026-11-24T03:00:00.000Z' });
      expect(Math.fround(got!.score as number)).toBe(e.score);
    }
    expect((await redis.keys(`${keyPrefix}:run:r1:tx-*`)).length).toBe(3_000);

    // A second run: readers switch at once; the old version expires later.
    for (const p of parts) await sink.stage({ runId: 'r2', idColumn: 'transaction_id', ...p });
    await sink.commit(req('r2'));
    expect(await redis.get(`${keyPrefix}:fraud:current`)).toBe('r2');
    expect(await redis.ttl(`${keyPrefix}:run:r1:tx-8-0000001`)).toBeGreaterThan(500);
    expect(await redis.ttl(`${keyPrefix}:run:r2:tx-8-0000001`)).toBe(-1);

    // An incomplete run is never published; a discarded one leaves no keys.
    await sink.stage({ runId: 'r3', idColumn: 'transaction_id', ...parts[0]! });
    await expect(sink.commit(req('r3'))).rejects.toThrow(/staged 1000 rows in Redis, expected 3000/);
    expect(await redis.get(`${keyPrefix}:fraud:current`)).toBe('r2');
    await sink.discard('r3');
    expect(await redis.keys(`${keyPrefix}:run:r3:*`)).toEqual([]);
    await deleteByPrefix(redis, keyPrefix);
  });

  it('entities named like the run\'s own bookkeeping ("committed", "shards", "discarded") are published like any other', async () => {
    const keyPrefix = `t${randomUUID().slice(0, 8)}`;
    const sink = new RedisSink({ url: URL, keyPrefix, retentionSeconds: 600 });
    const ids = ['committed', 'shards', 'discarded', 'shard:0', 'tx-1'];
    const part = path.join(dir, `named-${keyPrefix}.parquet`);
    await withDuckDB((conn) =>
      conn.run(
        `COPY (SELECT id AS transaction_id, 1::BIGINT AS label, 0.25::FLOAT AS score, 'fraud-detector' AS model_name, 1 AS model_version, ${lit('a'.repeat(64))} AS model_sha256,
                      TIMESTAMPTZ '2026-11-24 03:00:00+00' AS as_of, 'r' AS run_id FROM (VALUES ${ids.map((id) => `(${lit(id)})`).join(', ')}) v(id)) TO ${lit(part)} (FORMAT parquet)`,
      ),
    );
    await sink.stage({ runId: 'n1', idColumn: 'transaction_id', shardIndex: 0, partPath: part, rows: ids.length });
    const result = await sink.commit({ runId: 'n1', workflowId: 'wf-n1', pipeline: 'fraud', model, parts: [part], rows: ids.length });
    expect(result.created).toBe(true);
    expect(await redis.get(`${keyPrefix}:fraud:current`)).toBe('n1');
    for (const id of ids) expect(await readRedisPrediction(redis, keyPrefix, 'fraud', id)).toMatchObject({ label: 1, score: 0.25 });
    await deleteByPrefix(redis, keyPrefix);
  });

  it('a shard attempt that outlives its discarded run (a stalled worker) leaves no keys behind', async () => {
    const keyPrefix = `t${randomUUID().slice(0, 8)}`;
    const sink = new RedisSink({ url: URL, keyPrefix, retentionSeconds: 600 });
    await sink.stage({ runId: 'z1', idColumn: 'transaction_id', ...parts[0]! });
    await sink.discard('z1'); // the run failed
    await sink.stage({ runId: 'z1', idColumn: 'transaction_id', ...parts[1]! }); // an attempt still running somewhere finishes
    expect(await redis.keys(`${keyPrefix}:run:z1:*`)).toEqual([]);
    await expect(sink.commit({ runId: 'z1', workflowId: 'wf-z1', pipeline: 'fraud', model, parts: parts.map((p) => p.partPath), rows: 3_000 })).rejects.toThrow(/was discarded/);
    expect(await redis.get(`${keyPrefix}:fraud:current`)).toBeNull();
    expect(await redis.ttl(`${keyPrefix}:run:z1`)).toBeGreaterThan(0); // the marker expires
    await deleteByPrefix(redis, keyPrefix);
  });

  it('a discard that lands while a shard is being written leaves none of its keys (the stager removes what the discard missed)', async () => {
    const keyPrefix = `t${randomUUID().slice(0, 8)}`;
    const sink = new RedisSink({ url: URL, keyPrefix, retentionSeconds: 600 });
    const rows = 200_000; // long enough to write (40 pipelines) that the discard lands mid-way
    const part = path.join(dir, `big-${keyPrefix}.parquet`);
    await withDuckDB((conn) =>
      conn.run(
        `COPY (SELECT 'id-' || i AS transaction_id, (i % 2)::BIGINT AS label, 0.5::FLOAT AS score, 'fraud-detector' AS model_name, 1 AS model_version, ${lit('a'.repeat(64))} AS model_sha256,
                      TIMESTAMPTZ '2026-11-24 03:00:00+00' AS as_of, 'r' AS run_id FROM range(${rows}) t(i)) TO ${lit(part)} (FORMAT parquet)`,
      ),
    );
    const staging = sink.stage({ runId: 'm1', idColumn: 'transaction_id', shardIndex: 0, partPath: part, rows });
    while ((await redis.exists(`${keyPrefix}:run:m1:id-0`)) === 0) await new Promise((r) => setTimeout(r, 1));
    await sink.discard('m1'); // the run failed while shard 0 was still being written
    await staging;
    expect(await redis.keys(`${keyPrefix}:run:m1:*`)).toEqual([]);
    // The stager saw the marker after writing and withdrew its shard (a discard that ran after it finished would leave the count).
    expect(await redis.hexists(`${keyPrefix}:run:m1`, 'shard:0')).toBe(0);
    await deleteByPrefix(redis, keyPrefix);
  });

  it('needs an id column, and reports an unreachable server as transient', async () => {
    const sink = new RedisSink({ url: URL, keyPrefix: 'x', retentionSeconds: 1 });
    await expect(sink.stage({ runId: 'r', idColumn: null, ...parts[0]! })).rejects.toBeInstanceOf(InvalidInputError);
    const down = new RedisSink({ url: 'redis://127.0.0.1:9/0', keyPrefix: 'x', retentionSeconds: 1 });
    const err = await down.stage({ runId: 'r', idColumn: 'transaction_id', ...parts[0]! }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toContain('redis 127.0.0.1:9');
  });
});
