/**
 * One contract for every online-store backend: the real Redis on 127.0.0.1:6379 and the
 * embedded SQLite file. Each test uses its own view name (and, for Redis, key prefix) and
 * removes what it wrote.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, InvalidValueError, TransientError } from '../../lib/errors';
import type { FeatureView } from '../../lib/features';
import { RedisOnlineStore, SqliteOnlineStore, getOnlineFeatures, openOnlineStore, writeOnlineFeatures, type OnlineStore } from '../../lib/features/online';
import { startTcpProxy } from '../helpers/tcp-proxy';
import { TEST_REDIS_URL } from '../helpers/services';

const REDIS_URL = TEST_REDIS_URL;
let tmp: string;
const prefix = `inferflow-test-online-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-online-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const backends: Record<'redis' | 'sqlite', () => OnlineStore> = {
  redis: () => openOnlineStore({ type: 'redis', keyPrefix: prefix }, { redisUrl: REDIS_URL, dataDir: tmp }),
  sqlite: () => openOnlineStore({ type: 'sqlite', path: path.join(tmp, 'online.sqlite') }, { dataDir: tmp }),
};

let n = 0;
function view(over: Partial<FeatureView> = {}): FeatureView {
  return {
    name: `v_${randomUUID().slice(0, 8)}_${n++}`,
    entities: ['customer_id'],
    timestampField: 'event_ts',
    source: { type: 'file', path: 'unused.parquet' },
    features: [
      { name: 'f64', dtype: 'float64' },
      { name: 'f32', dtype: 'float32' },
      { name: 'i64', dtype: 'int64' },
      { name: 's', dtype: 'string' },
      { name: 'b', dtype: 'bool' },
    ],
    ...over,
  };
}

const T0 = new Date('2026-11-20T00:00:00Z');
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);

for (const [name, make] of Object.entries(backends)) {
  describe(`online store contract: ${name}`, () => {
    let store: OnlineStore;
    const views: string[] = [];
    beforeAll(() => {
      store = make();
    });
    afterAll(async () => {
      for (const v of views) await store.deleteView(v);
      await store.close();
    });
    const newView = (over: Partial<FeatureView> = {}) => {
      const v = view(over);
      views.push(v.name);
      return v;
    };

    it('PRESENT, NULL and NOT_FOUND per value, with the event time', async () => {
      const v = newView();
      await writeOnlineFeatures(store, v, [
        { key: 1, eventTime: at(0), values: { f64: 1.5, f32: 2.5, i64: 7n, s: 'x', b: true } },
        { key: 2, eventTime: at(5), values: { f64: null, s: '' } },
      ]);
      const [a, b, c] = await getOnlineFeatures(store, v, [1, 2, 3], { now: at(10) });
      expect(a!.key).toEqual({ customer_id: '1' });
      expect(a!.features).toEqual({
        f64: { value: 1.5, status: 'PRESENT', eventTime: at(0) },
        f32: { value: 2.5, status: 'PRESENT', eventTime: at(0) },
        i64: { value: 7n, status: 'PRESENT', eventTime: at(0) },
        s: { value: 'x', status: 'PRESENT', eventTime: at(0) },
        b: { value: true, status: 'PRESENT', eventTime: at(0) },
      });
      // An empty string is a value; a missing or null value is NULL; the row's event time is still known.
      expect(b!.features.s).toEqual({ value: '', status: 'PRESENT', eventTime: at(5) });
      for (const f of ['f64', 'f32', 'i64', 'b']) expect(b!.features[f]).toEqual({ value: null, status: 'NULL', eventTime: at(5) });
      for (const f of ['f64', 'f32', 'i64', 's', 'b']) expect(c!.features[f]).toEqual({ value: null, status: 'NOT_FOUND', eventTime: null });
    });

    it('TTL: a row older than now − ttl is STALE for every feature (the value is withheld); the boundary is fresh', async () => {
      const v = newView({ ttl: '1h' });
      await writeOnlineFeatures(store, v, [
        { key: 'a', eventTime: at(0), values: { f64: 1, s: 'old' } },
        { key: 'b', eventTime: at(30), values: { f64: 2, s: null } },
      ]);
      const fresh = await getOnlineFeatures(store, v, ['a', 'b'], { now: at(60) });
      expect(fresh.map((r) => [r.features.f64!.status, r.features.f64!.value])).toEqual([['PRESENT', 1], ['PRESENT', 2]]);
      const later = await getOnlineFeatures(store, v, ['a', 'b'], { now: new Date(at(60).getTime() + 1) });
      expect(later[0]!.features.f64).toEqual({ value: null, status: 'STALE', eventTime: at(0) });
      expect(later[0]!.features.s).toEqual({ value: null, status: 'STALE', eventTime: at(0) });
      expect(later[1]!.features.f64).toEqual({ value: 2, status: 'PRESENT', eventTime: at(30) });
      // A NULL in a stale row is STALE too: nothing about an expired row is served.
      const all = await getOnlineFeatures(store, v, ['a', 'b'], { now: at(24 * 60) });
      expect(all.flatMap((r) => Object.values(r.features).map((x) => x.status))).toEqual(Array(10).fill('STALE'));
      // Without a TTL nothing expires.
      const noTtl = newView();
      await writeOnlineFeatures(store, noTtl, [{ key: 'a', eventTime: at(0), values: { f64: 1 } }]);
      expect((await getOnlineFeatures(store, noTtl, ['a'], { now: new Date('2099-01-01T00:00:00Z') }))[0]!.features.f64!.status).toBe('PRESENT');
    });

    it('dtypes round-trip exactly: float64 edge values, float32 rounding, int64 beyond 2^53 as bigint, unicode strings, bools', async () => {
      const v = newView();
      const rows = [
        { f64: 0.1, f32: 0.1, i64: 2n ** 63n - 1n, s: 'grüße 🚀 | % :', b: false },
        { f64: -0, f32: -0, i64: -(2n ** 63n), s: '%7C', b: true },
        { f64: Number.NaN, f32: Number.NaN, i64: 2n ** 53n + 1n, s: 'a\nb\u0000c', b: false },
        { f64: Number.POSITIVE_INFINITY, f32: 3.4028234663852886e38, i64: 0n, s: ' ', b: true },
        { f64: Number.NEGATIVE_INFINITY, f32: 1e-45, i64: -1n, s: 'x'.repeat(10_000), b: true },
        { f64: 5e-324, f32: 16_777_217, i64: '9007199254740993', s: '1', b: false },
        { f64: 1.7976931348623157e308, f32: -2.5, i64: 42, s: '', b: true },
      ];
      await writeOnlineFeatures(store, v, rows.map((values, i) => ({ key: i, eventTime: at(i), values })));
      const got = await getOnlineFeatures(store, v, rows.map((_, i) => i), { now: at(100) });
      got.forEach((r, i) => {
        const want = rows[i]!;
        expect(Object.is(r.features.f64!.value, want.f64)).toBe(true);
        expect(Object.is(r.features.f32!.value, Math.fround(want.f32))).toBe(true);
        expect(r.features.i64!.value).toBe(BigInt(want.i64));
        expect(typeof r.features.i64!.value).toBe('bigint');
        expect(r.features.s!.value).toBe(want.s);
        expect(r.features.b!.value).toBe(want.b);
        expect(Object.values(r.features).every((x) => x.status === 'PRESENT')).toBe(true);
      });
      expect(got[5]!.features.f32!.value).toBe(16_777_216); // 2^24 + 1 is not a float32
    });

    it('rejects values that do not fit the dtype, naming the feature, and writes nothing', async () => {
      const v = newView();
      const bad = [{ i64: 1.5 }, { i64: 2n ** 63n }, { i64: 2 ** 60 }, { f64: '1.5' }, { b: 1 }, { s: 5 }];
      for (const values of bad) await expect(writeOnlineFeatures(store, v, [{ key: 'k', eventTime: at(0), values }])).rejects.toBeInstanceOf(InvalidValueError);
      await expect(writeOnlineFeatures(store, v, [{ key: 'k', eventTime: at(0), values: { nope: 1 } }])).rejects.toThrow(/nope/);
      expect((await getOnlineFeatures(store, v, ['k']))[0]!.features.f64!.status).toBe('NOT_FOUND');
    });

    it('writes are idempotent and never go back in time; an equal event time with other values is a correction', async () => {
      const v = newView();
      const w = (minutes: number, f64: number) => writeOnlineFeatures(store, v, [{ key: 'k', eventTime: at(minutes), values: { f64 } }]);
      expect(await w(10, 1)).toEqual({ written: 1, unchanged: 0, skippedOlder: 0 });
      expect(await w(10, 1)).toEqual({ written: 0, unchanged: 1, skippedOlder: 0 });
      expect(await w(5, 99)).toEqual({ written: 0, unchanged: 0, skippedOlder: 1 });
      expect((await getOnlineFeatures(store, v, ['k'], { now: at(20) }))[0]!.features.f64).toEqual({ value: 1, status: 'PRESENT', eventTime: at(10) });
      expect(await w(10, 2)).toEqual({ written: 1, unchanged: 0, skippedOlder: 0 });
      expect(await w(11, 3)).toEqual({ written: 1, unchanged: 0, skippedOlder: 0 });
      expect((await getOnlineFeatures(store, v, ['k'], { now: at(20) }))[0]!.features.f64).toEqual({ value: 3, status: 'PRESENT', eventTime: at(11) });
      // Microseconds count: 1 µs later is later.
      expect(await writeOnlineFeatures(store, v, [{ key: 'k', eventTime: '2026-11-20T00:11:00.000001Z', values: { f64: 4 } }])).toEqual({ written: 1, unchanged: 0, skippedOlder: 0 });
      expect(await writeOnlineFeatures(store, v, [{ key: 'k', eventTime: at(11), values: { f64: 5 } }])).toEqual({ written: 0, unchanged: 0, skippedOlder: 1 });
      // A newer row replaces the whole row: features it has as NULL do not keep older values.
      await writeOnlineFeatures(store, v, [{ key: 'm', eventTime: at(1), values: { f64: 1, s: 'keep?' } }, { key: 'm', eventTime: at(2), values: { f64: 2 } }]);
      const m = (await getOnlineFeatures(store, v, ['m'], { now: at(3) }))[0]!;
      expect([m.features.f64!.value, m.features.s!.status]).toEqual([2, 'NULL']);
    });

    it('concurrent writers in random order end with the latest row of every key', async () => {
      const v = newView();
      const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
      const writes = keys.flatMap((key) => Array.from({ length: 8 }, (_, t) => ({ key, eventTime: at(t), values: { i64: BigInt(t) } })));
      for (let i = writes.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [writes[i], writes[j]] = [writes[j]!, writes[i]!];
      }
      const counts = await Promise.all(Array.from({ length: 8 }, (_, w) => writeOnlineFeatures(store, v, writes.filter((_, i) => i % 8 === w))));
      expect(counts.reduce((s, c) => s + c.written + c.unchanged + c.skippedOlder, 0)).toBe(400);
      const got = await getOnlineFeatures(store, v, keys, { now: at(100) });
      expect(got.map((r) => r.features.i64!.value)).toEqual(keys.map(() => 7n));
      expect(got.map((r) => r.features.i64!.eventTime)).toEqual(keys.map(() => at(7)));
    });

    it('1,000 keys in one call: vectors in request order, duplicates answered each time, missing keys NOT_FOUND', async () => {
      const v = newView();
      const present = Array.from({ length: 900 }, (_, i) => i * 7);
      await writeOnlineFeatures(store, v, present.map((k) => ({ key: k, eventTime: at(k % 60), values: { f64: k / 2, i64: BigInt(k), s: `s${k}` } })));
      const request: number[] = [];
      for (let i = 0; i < 1000; i++) request.push(i < 950 ? (i * 7919) % 7000 : request[i % 50]!); // scrambled, some missing, 50 repeats
      const got = await getOnlineFeatures(store, v, request, { now: at(100) });
      expect(got).toHaveLength(1000);
      const presentSet = new Set(present);
      got.forEach((r, i) => {
        const k = request[i]!;
        expect(r.key).toEqual({ customer_id: String(k) });
        if (presentSet.has(k)) {
          expect([r.features.f64!.value, r.features.i64!.value, r.features.s!.value, r.features.i64!.eventTime]).toEqual([k / 2, BigInt(k), `s${k}`, at(k % 60)]);
        } else expect(r.features.f64!.status).toBe('NOT_FOUND');
      });
      const found = got.filter((r) => r.features.f64!.status === 'PRESENT').length;
      expect(found).toBeGreaterThan(100);
      expect(found).toBeLessThan(1000);
    });

    it('composite entity keys encode unambiguously; 1 and "1" are the same entity', async () => {
      const v = newView({ entities: ['ka', 'kb'] });
      await writeOnlineFeatures(store, v, [
        { key: { ka: 'x|y', kb: 'z' }, eventTime: at(0), values: { s: 'first' } },
        { key: { ka: 'x', kb: 'y|z' }, eventTime: at(0), values: { s: 'second' } },
        { key: { ka: 'x%7Cy', kb: 'z' }, eventTime: at(0), values: { s: 'third' } },
        { key: { kb: 2, ka: 1 }, eventTime: at(0), values: { s: 'ints' } },
      ]);
      const got = await getOnlineFeatures(store, v, [{ ka: 'x|y', kb: 'z' }, { ka: 'x', kb: 'y|z' }, { ka: 'x%7Cy', kb: 'z' }, { ka: '1', kb: 2n }, { ka: 'x', kb: 'y' }], { now: at(1) });
      expect(got.map((r) => r.features.s!.value)).toEqual(['first', 'second', 'third', 'ints', null]);
      expect(got[0]!.key).toEqual({ ka: 'x|y', kb: 'z' });
      expect(got[2]!.key).toEqual({ ka: 'x%7Cy', kb: 'z' });
    });

    it('bad keys are an InvalidInputError listing every one', async () => {
      const v = newView({ entities: ['ka', 'kb'] });
      const err = (await getOnlineFeatures(store, v, [{ ka: 1 }, { ka: 1, kb: 2, c: 3 }, { ka: 1.5, kb: 2 }, 7] as never).catch((e: unknown) => e)) as InvalidInputError;
      expect(err).toBeInstanceOf(InvalidInputError);
      expect(err.problems).toEqual([
        'keys[0].kb: missing',
        'keys[1].c: not an entity column of view ' + v.name + ' (entities: ka, kb)',
        'keys[2].ka: 1.5 is not a safe integer (pass integers beyond 2^53 as bigint or string)',
        `keys[3].view ${v.name} has entity columns [ka, kb]: pass an object with each of them`,
      ]);
    });
  });
}

describe('online store: Redis outage', () => {
  it('retries with backoff while Redis is unreachable, recovers when it is back, and fails with a typed error when it stays away', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
    const store = new RedisOnlineStore({ url: `redis://127.0.0.1:${proxy.port}`, keyPrefix: prefix, retry: { attempts: 5, initialDelayMs: 100, maxDelayMs: 400 } });
    const v = view();
    try {
      await writeOnlineFeatures(store, v, [{ key: 1, eventTime: at(0), values: { f64: 1 } }]);
      // Down for good: 5 attempts with 100 + 200 + 400 + 400 ms between them, then a TransientError naming the server.
      await proxy.stop();
      const t0 = Date.now();
      const err = (await getOnlineFeatures(store, v, [1]).catch((e: unknown) => e)) as TransientError;
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000);
      expect(err).toBeInstanceOf(TransientError);
      expect(err.message).toMatch(new RegExp(`online store redis://127\\.0\\.0\\.1:${proxy.port} .* unavailable: reading 1 entities of ${v.name} failed 5 times`));
      expect(err.permanent).toBe(false);
      // Down briefly: the retries carry the call over the outage.
      const pending = getOnlineFeatures(store, v, [1], { now: at(1) });
      setTimeout(() => void proxy.start(), 250);
      expect((await pending)[0]!.features.f64).toEqual({ value: 1, status: 'PRESENT', eventTime: at(0) });
    } finally {
      await store.deleteView(v.name).catch(() => undefined);
      await store.close();
      await proxy.close();
    }
  });
});

describe('online store specs', () => {
  it('validates the spec (discriminated on type) and keeps credentials out of it', () => {
    expect(() => openOnlineStore({ type: 'memcached' }, { dataDir: tmp })).toThrow(InvalidInputError);
    expect(() => openOnlineStore({ type: 'redis', url: 'redis://user:secret@host:6379' }, { dataDir: tmp })).toThrow(/without credentials/);
    expect(openOnlineStore({ type: 'redis', keyPrefix: 'x' }, { dataDir: tmp }).location).toBe('redis://127.0.0.1:6379/0 x:*');
    expect(() => openOnlineStore({ type: 'sqlite', extra: 1 }, { dataDir: tmp })).toThrow(/extra/);
    const s = openOnlineStore(undefined, { dataDir: tmp });
    expect(s).toBeInstanceOf(SqliteOnlineStore);
    expect(s.location).toBe(`sqlite:${path.join(tmp, 'features', 'online.sqlite')}`);
  });
});
