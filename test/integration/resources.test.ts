/**
 * Resources: one per process, one close() for everything it opened — sessions, online stores
 * and the backend clients of the sinks (Redis, PostgreSQL) — against the real servers. The
 * connections carry a name unique to this test (Redis `connectionName`, PostgreSQL
 * `application_name` in the URLs), so the servers' own client lists show exactly ours. Two
 * Resources in one process share the backend clients until the last of them closes.
 */
import pg from 'pg';
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../lib/errors';
import { openPipeline } from '../../lib/pipeline/pipeline';
import { withPooledClient } from '../../lib/postgres/connection';
import { connectedRedis } from '../../lib/sinks/redis';
import { readRedisRecord } from '../../lib/sinks/redis-records';
import { createResources, type Resources } from '../../lib/pipeline/resources';
import { exampleRegistry, tempConfig, uniqueName } from '../helpers/env';
import { TEST_POSTGRES_URL, TEST_REDIS_URL } from '../helpers/services';

const name = uniqueName('resources').replace(/-/g, '_');
const schema = `t_${name}`;
let admin: { redis: Redis; pg: pg.Client };
let cleanup: () => Promise<void>;
let resources: Resources;

async function redisClientsNamed(client = name): Promise<number> {
  const list = (await admin.redis.client('LIST')) as string;
  return list.split('\n').filter((line) => line.includes(` name=${client} `)).length;
}

async function postgresSessionsNamed(client = name): Promise<number> {
  const r = await admin.pg.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [client]);
  return Number(r.rows[0]!.n);
}

beforeAll(async () => {
  admin = { redis: new Redis(TEST_REDIS_URL), pg: new pg.Client({ connectionString: TEST_POSTGRES_URL }) };
  await admin.pg.connect();
  await admin.pg.query(`CREATE SCHEMA ${schema}`);
  const env = await tempConfig({ INFERFLOW_REDIS_URL: `${TEST_REDIS_URL}?connectionName=${name}`, INFERFLOW_POSTGRES_URL: `${TEST_POSTGRES_URL}?application_name=${name}` });
  cleanup = env.cleanup;
  await exampleRegistry(env.config);
  resources = createResources(env.config);
});

afterAll(async () => {
  await resources?.close();
  await admin.pg.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.pg.end();
  admin.redis.disconnect();
  await cleanup?.();
});

describe('Resources', () => {
  it('Pipeline.write stores prediction records through the record sink, once per key; a pipeline without one refuses', async () => {
    // Its own resources: closing them closes the process's clients, before the test below counts its own.
    const env = await tempConfig();
    await exampleRegistry(env.config);
    const own = createResources(env.config);
    const model = await own.resolveModel('fraud-detector@production');
    const recordSink = { type: 'redis' as const, keyPrefix: `${name}:log` };
    const pipeline = await openPipeline({ model, recordSink }, own, { session: false });
    const record = (key: string, score: number) => ({ key, entity: '17', outputs: { score, label: score > 0.5 ? 1 : 0 }, model: { name: model.name, version: model.version, sha256: model.sha256 }, predictedAt: '2026-12-07T21:00:00Z' });
    expect(await pipeline.write([record('e1', 0.9), record('e2', 0.1)], { idempotencyKey: 'batch-1' })).toEqual({ written: 2, duplicates: 0 });
    // A retried write (same keys, other values) stores nothing and keeps the first records.
    expect(await pipeline.write([record('e1', 0.2)], { idempotencyKey: 'batch-1' })).toEqual({ written: 0, duplicates: 1 });
    expect((await readRedisRecord(TEST_REDIS_URL, recordSink.keyPrefix, 'e1'))?.outputs).toEqual({ score: 0.9, label: 1 });
    expect(own.recordSink({ ...recordSink })).toBe(own.recordSink(recordSink));

    const bare = await openPipeline({ model }, own, { session: false });
    const refused = await bare.write([record('e3', 0.5)], { idempotencyKey: 'x' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidInputError);
    expect((refused as InvalidInputError).problems).toEqual(['recordSink: required to write prediction records']);
    await admin.redis.del(`${name}:log:e1`, `${name}:log:e2`);
    await own.close();
    await env.cleanup();
  });

  it('keeps one online store per spec and one session per model, and close() releases them and the sinks’ clients, once', async () => {
    const model = await resources.resolveModel('fraud-detector@production');
    const pipeline = await openPipeline({ model }, resources);
    const again = await openPipeline({ model }, resources);
    expect(again.session).toBe(pipeline.session);
    expect(resources.sessions.size).toBe(1);

    const spec = { type: 'redis' as const, keyPrefix: name };
    const store = resources.onlineStore(spec);
    expect(resources.onlineStore({ ...spec })).toBe(store);
    expect(await store.get('customer_stats', ['x'], ['17'])).toEqual([null]);
    // The sinks' own clients: a Redis sink and a PostgreSQL sink discarding a run that never staged anything.
    await (await resources.sink({ type: 'redis', keyPrefix: name })).discard?.(name);
    await (await resources.sink({ type: 'postgres', table: 'predictions', schema })).discard?.(name);
    expect(await redisClientsNamed()).toBe(2);
    expect(await postgresSessionsNamed()).toBeGreaterThan(0);

    const closing = resources.close();
    expect(resources.close()).toBe(closing); // idempotent: a second call waits for the first
    expect(await closing).toEqual({ unfinished: 0 });
    expect(resources.sessions.size).toBe(0);
    await expect.poll(redisClientsNamed, { timeout: 5_000 }).toBe(0);
    await expect.poll(postgresSessionsNamed, { timeout: 5_000 }).toBe(0);
    await admin.redis.del(`${name}:run:${name}`);
  });

  it('closing one of two Resources leaves the clients the other uses open; the last one to close closes them', async () => {
    // Runs after the test above closed the file's resources: `a` and `b` are the process's only holders.
    const client = `${name}_two`;
    const env = await tempConfig({ INFERFLOW_REDIS_URL: `${TEST_REDIS_URL}?connectionName=${client}`, INFERFLOW_POSTGRES_URL: `${TEST_POSTGRES_URL}?application_name=${client}` });
    const [redisUrl, postgresUrl] = [env.config.redisUrl!, env.config.postgresUrl!];
    const a = createResources(env.config);
    const b = createResources(env.config);
    const logs = [a.recordSink({ type: 'redis', keyPrefix: `${client}:log` }), a.recordSink({ type: 'postgres', schema, table: 'two_log' })];
    const record = (key: string) => ({ key, outputs: { score: 0.5 }, model: { name: 'm', version: 1, sha256: 'a'.repeat(64) }, predictedAt: '2026-12-08T01:00:00Z' });
    for (const log of logs) expect(await log.write([record('r1')], { idempotencyKey: 'w1' })).toEqual({ written: 1, duplicates: 0 });
    // What every sink operation does: take the process's client for the URL, then use it.
    const redis = await connectedRedis(redisUrl);
    const backendPid = () => withPooledClient({ url: postgresUrl }, async (c) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
    const pid = await backendPid();

    await b.close();
    expect(await redis.set(`${client}:held`, '1')).toBe('OK'); // a client taken before b closed still answers
    expect(await connectedRedis(redisUrl)).toBe(redis);
    expect(await backendPid()).toBe(pid); // the same pooled connection: the pool was not ended
    for (const log of logs) expect(await log.write([record('r2')], { idempotencyKey: 'w2' })).toEqual({ written: 1, duplicates: 0 });
    expect((await readRedisRecord(redisUrl, `${client}:log`, 'r2'))?.key).toBe('r2');
    expect((await admin.pg.query<{ key: string }>(`SELECT key FROM ${schema}.two_log ORDER BY key`)).rows.map((r) => r.key)).toEqual(['r1', 'r2']);

    await a.close();
    await expect.poll(() => redisClientsNamed(client), { timeout: 5_000 }).toBe(0);
    await expect.poll(() => postgresSessionsNamed(client), { timeout: 5_000 }).toBe(0);
    await admin.redis.del(`${client}:held`, `${client}:log:r1`, `${client}:log:r2`);
    await env.cleanup();
  });
});
