/**
 * Materialisation from Parquet and from PostgreSQL into the real Redis and the embedded SQLite
 * store, checked against a brute-force "latest row per entity in the window".
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { InvalidInputError, SchemaMismatchError } from '../../lib/errors';
import { getOnlineFeatures, materializeView, openOnlineStore, type FeatureView, type OnlineStore } from '../../lib/features';
import { T0, latestPerEntity, loadStatsIntoPostgres, statRows, statView, writeStatsParquet, type StatRow } from '../helpers/features-data';
import { TEST_REDIS_URL } from '../helpers/services';

const postgresUrl = inject('postgresUrl');
const prefix = `inferflow-test-mat-${randomUUID().slice(0, 8)}`;
let pool: pg.Pool;
let dir: string;
let rows: StatRow[];
const table = `materialize_${randomUUID().slice(0, 8)}`;
const DAY = 86_400_000;

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-materialize-'));
  rows = statRows(6_000, 1_500, 3);
  await loadStatsIntoPostgres(pool, table, rows);
  // Two Parquet files in a directory: the source is read as one.
  await fs.mkdir(path.join(dir, 'stats'));
  await writeStatsParquet(path.join(dir, 'stats', 'part-0.parquet'), rows.slice(0, 3_000));
  await writeStatsParquet(path.join(dir, 'stats', 'part-1.parquet'), rows.slice(3_000));
});

afterAll(async () => {
  await pool?.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(table)}`);
  await pool?.end();
  await fs.rm(dir, { recursive: true, force: true });
});

const stores: Record<string, () => OnlineStore> = {
  redis: () => openOnlineStore({ type: 'redis', keyPrefix: prefix }, { redisUrl: TEST_REDIS_URL, dataDir: dir }),
  sqlite: () => openOnlineStore({ type: 'sqlite' }, { dataDir: dir }),
};
const sources: Record<string, () => FeatureView['source']> = {
  parquet: () => ({ type: 'file', path: path.join(dir, 'stats') }),
  postgres: () => ({ type: 'postgres', table }),
};

/** Every entity of the store against the brute-force latest row as of `end`. */
async function expectStoreHolds(store: OnlineStore, view: FeatureView, start: number | undefined, end: number): Promise<number> {
  const want = latestPerEntity(rows, start, end);
  const ids = Array.from({ length: 1_510 }, (_, i) => i + 1);
  const got = await getOnlineFeatures(store, view, ids, { now: new Date(end) });
  let present = 0;
  got.forEach((v, i) => {
    const w = want.get(ids[i]!);
    const f = v.features;
    if (!w) {
      expect(f.spend!.status).toBe('NOT_FOUND');
      return;
    }
    present++;
    expect(f.spend!.eventTime).toEqual(new Date(w.event_ts));
    expect([f.spend!.value, f.ratio!.value, f.amount!.value, f.cnt!.value, f.big!.value, f.segment!.value, f.active!.value]).toEqual([
      w.spend,
      w.ratio,
      w.amount === null ? null : Number(w.amount),
      w.cnt === null ? null : BigInt(w.cnt),
      w.big,
      w.segment,
      w.active,
    ]);
    expect(f.segment!.status).toBe(w.segment === null ? 'NULL' : 'PRESENT');
  });
  return present;
}

for (const [storeName, makeStore] of Object.entries(stores)) {
  for (const [sourceName, makeSource] of Object.entries(sources)) {
    describe(`materialise ${sourceName} → ${storeName}`, () => {
      let store: OnlineStore;
      let view: FeatureView;
      beforeAll(() => {
        store = makeStore();
        view = statView(`mat_${sourceName}_${randomUUID().slice(0, 6)}`, makeSource());
      });
      afterAll(async () => {
        await store.deleteView(view.name);
        await store.close();
      });

      it('writes the latest row per entity in the window, in bounded batches; re-running changes nothing; an older window never overwrites', async () => {
        const mid = T0 + 5 * DAY;
        const end = T0 + 10 * DAY;
        const progress: number[] = [];
        const first = await materializeView({ view, store, end: new Date(mid), chunkRows: 250, postgres: { url: postgresUrl }, onProgress: (p) => progress.push(p.entitiesDone) });
        const wantMid = latestPerEntity(rows, undefined, mid);
        expect(first).toMatchObject({ view: view.name, store: store.location, start: null, end: new Date(mid).toISOString(), entities: wantMid.size, written: wantMid.size, unchanged: 0, skippedOlder: 0 });
        expect(first.rowsRead).toBe(rows.filter((r) => r.event_ts <= mid).length);
        expect(progress.length).toBe(Math.ceil(wantMid.size / 250));
        expect(progress.at(-1)).toBe(wantMid.size);
        expect(await expectStoreHolds(store, view, undefined, mid)).toBe(wantMid.size);

        // The next window (mid, end]: entities with newer rows move forward, the others keep their values.
        const second = await materializeView({ view, store, start: new Date(mid), end: new Date(end), postgres: { url: postgresUrl } });
        const inSecond = latestPerEntity(rows, mid, end);
        expect(second).toMatchObject({ entities: inSecond.size, written: inSecond.size, unchanged: 0, skippedOlder: 0 });
        expect(await expectStoreHolds(store, view, undefined, end)).toBe(latestPerEntity(rows, undefined, end).size);

        // Re-running a window changes nothing.
        const again = await materializeView({ view, store, start: new Date(mid), end: new Date(end), postgres: { url: postgresUrl } });
        expect(again).toMatchObject({ entities: inSecond.size, written: 0, unchanged: inSecond.size, skippedOlder: 0 });
        // An older window after a newer one: entities updated since are skipped, the rest unchanged.
        const old = await materializeView({ view, store, end: new Date(mid), postgres: { url: postgresUrl } });
        const movedOn = [...wantMid.keys()].filter((k) => inSecond.has(k)).length;
        expect(movedOn).toBeGreaterThan(100);
        expect(old).toMatchObject({ entities: wantMid.size, written: 0, unchanged: wantMid.size - movedOn, skippedOlder: movedOn });
        expect(await expectStoreHolds(store, view, undefined, end)).toBe(latestPerEntity(rows, undefined, end).size);
      });
    });
  }
}

describe('materialisation errors', () => {
  it('lists every problem of a bad request', async () => {
    const store = openOnlineStore({ type: 'sqlite' }, { dataDir: dir });
    const err = (await materializeView({ view: { name: 'x y' }, store, start: new Date(T0 + DAY), end: new Date(T0), chunkRows: 0 }).catch((e: unknown) => e)) as InvalidInputError;
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^view\.name: /), expect.stringMatching(/^view\.entities: /), expect.stringMatching(/^start: .* must be before end/), 'chunkRows: must be a positive integer']));
    await store.close();
  });

  it('a PostgreSQL view whose event-time column is not a time gets the schema error (the window is not pushed into PostgreSQL)', async () => {
    const store = openOnlineStore({ type: 'sqlite' }, { dataDir: dir });
    const view = { ...statView('pg_text_ts', { type: 'postgres', table }), timestampField: 'segment', createdField: undefined, features: [{ name: 'spend', dtype: 'float64' as const }] };
    const err = (await materializeView({ view, store, start: new Date(T0), end: new Date(T0 + DAY), postgres: { url: postgresUrl } }).catch((e: unknown) => e)) as SchemaMismatchError;
    expect(err).toBeInstanceOf(SchemaMismatchError);
    expect(err.problems).toEqual([`views[0] (pg_text_ts): source postgres table ${table}: timestamp column segment is VARCHAR, needs DATE or TIMESTAMP (timestampField)`]);
    await store.close();
  });
});
