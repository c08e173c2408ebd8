/**
 * One contract for every record-sink backend, on the real servers: PostgreSQL (a table in a
 * schema of its own), Redis on 127.0.0.1:6379 (a key prefix of its own) and NATS JetStream on
 * 127.0.0.1:4222 (a stream of its own per test, deleted afterwards). Records are stored by
 * key, the first write wins, values read back exactly, bad input is refused with a typed error
 * before anything is written.
 */
import net from 'node:net';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { InvalidInputError, InvalidValueError, NotFoundError, TransientError } from '../../lib/errors';
import { closeNatsConnections, closePostgresPools, closeRedisClients, createRecordSink, parseRecordSinkSpec, type PredictionRecord, type RecordSink, type RecordSinkSpec } from '../../lib/sinks';
import { readRedisRecord } from '../../lib/sinks/redis-records';
import { deleteByPrefix } from '../helpers/redis';
import { uniqueName } from '../helpers/env';
import { TEST_POSTGRES, TEST_REDIS_URL } from '../helpers/services';

const postgresUrl = inject('postgresUrl');
const REDIS_URL = TEST_REDIS_URL;
const NATS_URL = 'nats://127.0.0.1:4222';
const schema = uniqueName('inferflow_rec').replace(/-/g, '_');
const prefix = uniqueName('inferflow-test-records');
let admin: pg.Pool;
let redis: Redis;
let nc: NatsConnection;
let jsm: JetStreamManager;
const streams: string[] = [];

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  await admin.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
  redis = new Redis(REDIS_URL);
  nc = await connect({ servers: NATS_URL });
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  await closePostgresPools();
  await closeRedisClients();
  await closeNatsConnections();
  for (const name of streams) await jsm?.streams.delete(name).catch(() => undefined);
  await nc?.close();
  await admin?.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  await admin?.end();
  if (redis) {
    await deleteByPrefix(redis, prefix);
    await redis.quit();
  }
});

/** A stored record as the backend gives it back to an application. */
type Stored = PredictionRecord & { writeKey: string };

/** A sink writing somewhere no other test writes, with what an application reads back. */
interface Opened {
  sink: RecordSink;
  read: (key: string) => Promise<Stored | null>;
  count: () => Promise<number>;
}

interface Backend {
  open(): Opened | Promise<Opened>;
  /** A sink whose server is not there. */
  unreachable(port: number): RecordSink;
}

let n = 0;
const backends: Record<'postgres' | 'redis' | 'nats', Backend> = {
  postgres: {
    open() {
      const table = `records_${n++}`;
      const sink = createRecordSink(parseRecordSinkSpec({ type: 'postgres', schema, table }), { outputDir: '', dataDir: '', postgresUrl, allowedRoots: [] });
      const qualified = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;
      return {
        sink,
        async read(key) {
          const r = (await admin.query(`SELECT * FROM ${qualified} WHERE key = $1`, [key])).rows[0] as Record<string, unknown> | undefined;
          if (!r) return null;
          return {
            key: r.key as string,
            ...(r.entity !== null ? { entity: r.entity as string } : {}),
            outputs: r.outputs as PredictionRecord['outputs'],
            model: { name: r.model_name as string, version: r.model_version as number, sha256: r.model_sha256 as string },
            ...(r.event_time !== null ? { eventTime: (r.event_time as Date).toISOString() } : {}),
            predictedAt: (r.predicted_at as Date).toISOString(),
            ...(r.attributes !== null ? { attributes: r.attributes as PredictionRecord['attributes'] } : {}),
            writeKey: r.write_key as string,
          };
        },
        count: async () => Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${qualified}`).catch(() => ({ rows: [{ n: '0' }] }))).rows[0]!.n),
      };
    },
    unreachable: (port) => createRecordSink({ type: 'postgres', table: 'records' }, { outputDir: '', dataDir: '', postgresUrl: `postgres://postgres@127.0.0.1:${port}/${TEST_POSTGRES.database}`, allowedRoots: [] }),
  },
  redis: {
    open() {
      const keyPrefix = `${prefix}.${n++}`;
      const sink = createRecordSink(parseRecordSinkSpec({ type: 'redis', keyPrefix, ttlSeconds: 3600 }), { outputDir: '', dataDir: '', redisUrl: REDIS_URL, allowedRoots: [] });
      return {
        sink,
        read: (key) => readRedisRecord(REDIS_URL, keyPrefix, key),
        async count() {
          let cursor = '0';
          let total = 0;
          do {
            const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1000);
            cursor = next;
            total += keys.length;
          } while (cursor !== '0');
          return total;
        },
      };
    },
    unreachable: (port) => createRecordSink({ type: 'redis', keyPrefix: 'unused' }, { outputDir: '', dataDir: '', redisUrl: `redis://127.0.0.1:${port}`, allowedRoots: [] }),
  },
  nats: {
    async open() {
      const stream = `${schema}_${n++}`;
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      streams.push(stream);
      const sink = createRecordSink(parseRecordSinkSpec({ type: 'nats', subject: `${stream}.predictions` }), { outputDir: '', dataDir: '', natsUrl: NATS_URL, allowedRoots: [] });
      const count = async () => (await jsm.streams.info(stream)).state.messages;
      return {
        sink,
        count,
        // What a consumer sees: the stream's messages, the record's key in Nats-Msg-Id.
        async read(key) {
          const last = (await jsm.streams.info(stream)).state.last_seq;
          for (let seq = 1; seq <= last; seq++) {
            const m = await jsm.streams.getMessage(stream, { seq });
            if (m?.header.get('Nats-Msg-Id') === key) return m.json<Stored>();
          }
          return null;
        },
      };
    },
    unreachable: (port) => createRecordSink({ type: 'nats', subject: 'unused' }, { outputDir: '', dataDir: '', natsUrl: `nats://127.0.0.1:${port}`, allowedRoots: [] }),
  },
};

const MODEL = { name: 'fraud-detector', version: 3, sha256: 'ab'.repeat(32) };

function record(key: string, over: Partial<PredictionRecord> = {}): PredictionRecord {
  return { key, entity: `customer-${key}`, outputs: { score: Math.fround(0.1), label: 1 }, model: MODEL, predictedAt: '2026-12-07T10:00:00.123Z', ...over };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe.each(Object.keys(backends) as (keyof typeof backends)[])('record sink contract: %s', (name) => {
  const backend = backends[name];

  it('writes records that read back exactly: float32 scores, vector outputs, times, entity, attributes, the write key', async () => {
    const { sink, read, count } = await backend.open();
    const full = record('evt-1', {
      outputs: {
        score: Math.fround(1 / 3),
        tiny: Math.fround(1.401298464324817e-45),
        huge: Math.fround(3.4028234663852886e38),
        label: 7,
        embedding: [Math.fround(0.1), Math.fround(-2.5), 0, Math.fround(1e-7)],
      },
      eventTime: '2026-12-07T09:59:59.999Z',
      attributes: { origin: 'checkout', threshold: 0.5, shadow: false },
    });
    const bare: PredictionRecord = { key: 'evt-2', outputs: { score: 0.25 }, model: MODEL, predictedAt: '2026-12-07T10:00:01.000Z' };
    expect(await sink.write([full, bare], { idempotencyKey: 'batch-1' })).toEqual({ written: 2, duplicates: 0 });
    expect(await read('evt-1')).toEqual({ ...full, writeKey: 'batch-1' });
    expect(await read('evt-2')).toEqual({ ...bare, writeKey: 'batch-1' });
    expect(await read('evt-missing')).toBeNull();
    expect(await count()).toBe(2);
  });

  it('writes post-processed outputs that read back exactly: string labels, string lists (top-k classes), number lists', async () => {
    const { sink, read } = await backend.open();
    const r = record('post-1', { outputs: { label: 'review', top_classes: ['high', 'medium'], top_probabilities: [Math.fround(0.75), Math.fround(0.25)], prediction: [12.5, -3] } });
    expect(await sink.write([r], { idempotencyKey: 'batch-post' })).toEqual({ written: 1, duplicates: 0 });
    expect(await read('post-1')).toEqual({ ...r, writeKey: 'batch-post' });
  });

  it('writing a stored key again keeps the first record (written: 0); a retried batch stores nothing twice', async () => {
    const { sink, read, count } = await backend.open();
    const first = record('evt-1', { outputs: { score: 0.9 } });
    await sink.write([first, record('evt-2')], { idempotencyKey: 'batch-1' });
    expect(await sink.write([record('evt-1', { outputs: { score: 0.1 } })], { idempotencyKey: 'batch-2' })).toEqual({ written: 0, duplicates: 1 });
    expect(await read('evt-1')).toEqual({ ...first, writeKey: 'batch-1' });
    expect(await sink.write([first, record('evt-2')], { idempotencyKey: 'batch-1' })).toEqual({ written: 0, duplicates: 2 });
    expect(await count()).toBe(2);
  });

  it('a batch that repeats a key stores it once, the first occurrence', async () => {
    const { sink, read, count } = await backend.open();
    const a = record('a', { outputs: { score: 0.75 } });
    const result = await sink.write([a, record('b'), record('a', { outputs: { score: 0.5 } }), record('c'), record('b')], { idempotencyKey: 'batch-dup' });
    expect(result).toEqual({ written: 3, duplicates: 2 });
    expect((await read('a'))?.outputs).toEqual({ score: 0.75 });
    expect(await count()).toBe(3);
  });

  it('many records in one write (several round trips) are all stored', async () => {
    const { sink, count } = await backend.open();
    const many = Array.from({ length: 2_500 }, (_, i) => record(`k-${i}`, { outputs: { score: Math.fround(i / 2_500) } }));
    expect(await sink.write(many, { idempotencyKey: 'big' })).toEqual({ written: 2_500, duplicates: 0 });
    expect(await count()).toBe(2_500);
  });

  it('bad input is refused with a typed error naming the field, and nothing of the batch is written', async () => {
    const { sink, count } = await backend.open();
    const nan = sink.write([record('ok'), record('bad', { outputs: { score: Number.NaN } })], { idempotencyKey: 'b' });
    await expect(nan).rejects.toBeInstanceOf(InvalidValueError);
    await expect(nan).rejects.toThrow(/records\[1\]\.outputs\.score is NaN/);
    await expect(sink.write([record('v', { outputs: { embedding: [1, Number.POSITIVE_INFINITY] } })], { idempotencyKey: 'b' })).rejects.toThrow(/records\[0\]\.outputs\.embedding\[1\] is Infinity/);
    const malformed = sink.write([record('ok'), { ...record('m'), model: { name: 'x', version: 0, sha256: 'nothex' } }], { idempotencyKey: 'b' });
    await expect(malformed).rejects.toBeInstanceOf(InvalidInputError);
    await expect(malformed).rejects.toThrow(/records\[1\]\.model\.version/);
    await expect(sink.write([{ ...record('t'), predictedAt: 'yesterday' }], { idempotencyKey: 'b' })).rejects.toThrow(/records\[0\]\.predictedAt/);
    await expect(sink.write([record('k')], { idempotencyKey: '' })).rejects.toThrow(/idempotencyKey/);
    expect(await count()).toBe(0);
  });

  it('an unreachable server is a transient error (retried)', async () => {
    const sink = backend.unreachable(await closedPort());
    await expect(sink.write([record('x')], { idempotencyKey: 'b' })).rejects.toBeInstanceOf(TransientError);
    await sink.close();
  });
});

describe('record sink specs', () => {
  it('refuse connection settings and bad names, naming the field', () => {
    expect(() => parseRecordSinkSpec({ type: 'postgres', table: 'logs', url: 'postgres://u:secret@h/db' })).toThrow(/recordSink: url: connection settings do not belong in the sink spec.*INFERFLOW_POSTGRES_URL/);
    expect(() => parseRecordSinkSpec({ type: 'redis', keyPrefix: 'p', password: 'x' })).toThrow(/INFERFLOW_REDIS_URL/);
    expect(() => parseRecordSinkSpec({ type: 'postgres', table: 'logs; DROP TABLE x' })).toThrow(/recordSink\.table: table must match/);
    expect(() => parseRecordSinkSpec({ type: 'kafka' })).toThrow(InvalidInputError);
    const ok: RecordSinkSpec = parseRecordSinkSpec({ type: 'redis', keyPrefix: 'preds', ttlSeconds: 60 });
    expect(ok).toEqual({ type: 'redis', keyPrefix: 'preds', ttlSeconds: 60 });
  });

  it('NATS: a subject no stream takes is NotFound naming the subject', async () => {
    const sink = createRecordSink({ type: 'nats', subject: `${schema}.nowhere` }, { outputDir: '', dataDir: '', natsUrl: NATS_URL, allowedRoots: [] });
    const err = sink.write([record('x')], { idempotencyKey: 'b' });
    await expect(err).rejects.toBeInstanceOf(NotFoundError);
    await expect(err).rejects.toThrow(new RegExp(`no JetStream stream takes subject ${schema}\\.nowhere`));
  });

  it('PostgreSQL: a table of that name that is not a record table is a schema mismatch naming it', async () => {
    await admin.query(`CREATE TABLE ${pg.escapeIdentifier(schema)}.not_records (id int)`);
    const sink = createRecordSink({ type: 'postgres', schema, table: 'not_records' }, { outputDir: '', dataDir: '', postgresUrl, allowedRoots: [] });
    await expect(sink.write([record('x')], { idempotencyKey: 'b' })).rejects.toThrow(new RegExp(`table ${schema}\\.not_records is not a record table`));
  });
});
