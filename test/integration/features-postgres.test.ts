/**
 * Feature views reading PostgreSQL (the real server on 127.0.0.1:5432, database test): the
 * point-in-time join from a table and from a query equals the join from the same rows in
 * Parquet, types are kept, and bad sources fail with typed errors.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { InvalidInputError, NotFoundError, SchemaMismatchError } from '../../lib/errors';
import { getHistoricalFeatures } from '../../lib/features';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { mulberry32 } from '../../lib/util/random';
import { T0, loadStatsIntoPostgres, statRows, statView, writeStatsParquet, type StatRow } from '../helpers/features-data';

const postgresUrl = inject('postgresUrl');
let pool: pg.Pool;
let dir: string;
let rows: StatRow[];
const table = `features_pg_${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: postgresUrl, max: 2 });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-features-pg-'));
  rows = statRows(5_000, 400);
  await loadStatsIntoPostgres(pool, table, rows);
  await writeStatsParquet(path.join(dir, 'stats.parquet'), rows);
  // Spine: 3,000 rows over the same customers (some unknown) and days, some exactly at event times.
  const r = mulberry32(11);
  const lines = ['customer_id,event_timestamp,label'];
  for (let i = 0; i < 3_000; i++) {
    const exact = r() < 0.1 ? rows[Math.floor(r() * rows.length)] : undefined;
    lines.push(`${exact?.customer_id ?? 1 + Math.floor(r() * 420)},${new Date(exact?.event_ts ?? T0 - 86_400_000 + Math.floor(r() * 12 * 86_400_000)).toISOString()},${i % 2}`);
  }
  await fs.writeFile(path.join(dir, 'spine.csv'), `${lines.join('\n')}\n`);
});

afterAll(async () => {
  await pool?.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(table)}`);
  await pool?.end();
  await fs.rm(dir, { recursive: true, force: true });
});

async function rowsOf(file: string): Promise<Record<string, unknown>[]> {
  return withDuckDB(async (c) => (await c.runAndReadAll(`SELECT * FROM read_parquet(${lit(file)}) ORDER BY spine_row`)).getRowObjectsJS());
}

describe('PostgreSQL feature sources', () => {
  it('the point-in-time join from a PostgreSQL table and from a query equals the one from the same rows in Parquet', async () => {
    const spine = path.join(dir, 'spine.csv');
    const fromParquet = await getHistoricalFeatures({ spine, views: [statView('s', { type: 'file', path: path.join(dir, 'stats.parquet') }, '2d')], output: path.join(dir, 'pq.parquet') });
    const fromTable = await getHistoricalFeatures({ spine, views: [statView('s', { type: 'postgres', table: `public.${table}` }, '2d')], output: path.join(dir, 'pgt.parquet'), postgres: { url: postgresUrl } });
    const fromQuery = await getHistoricalFeatures({
      spine,
      views: [statView('s', { type: 'postgres', query: `SELECT * FROM ${table} WHERE customer_id > 0;` }, '2d')],
      output: path.join(dir, 'pgq.parquet'),
      postgres: { url: postgresUrl },
    });
    expect(fromTable.columns).toEqual(fromParquet.columns);
    expect(fromQuery.columns).toEqual(fromParquet.columns);
    expect(fromTable.columns.filter((c) => c.name.startsWith('s__'))).toEqual([
      { name: 's__spend', type: 'DOUBLE' },
      { name: 's__ratio', type: 'FLOAT' },
      { name: 's__amount', type: 'DOUBLE' },
      { name: 's__cnt', type: 'BIGINT' },
      { name: 's__big', type: 'BIGINT' },
      { name: 's__segment', type: 'VARCHAR' },
      { name: 's__active', type: 'BOOLEAN' },
    ]);
    const want = await rowsOf(fromParquet.output);
    expect(want).toHaveLength(3_000);
    expect(await rowsOf(fromTable.output)).toEqual(want);
    expect(await rowsOf(fromQuery.output)).toEqual(want);
    // The comparison has teeth: values, NULLs, empty strings and int64 beyond 2^53 all occur.
    const found = want.filter((r) => r.s__cnt !== null);
    expect(found.length).toBeGreaterThan(1_000);
    expect(want.some((r) => r.s__segment === '')).toBe(true);
    expect(want.some((r) => r.s__segment === 'bronze, "quoted"')).toBe(true);
    expect(want.some((r) => r.s__active === null && r.s__spend !== null)).toBe(true);
    expect(found.some((r) => typeof r.s__big === 'bigint' && (r.s__big) > 2n ** 62n && (r.s__big) % 2n === 1n)).toBe(true);
  });

  it('reports missing columns and wrong types like a file source, and a missing table or a bad query with a typed error', async () => {
    const view = { ...statView('s', { type: 'postgres', table }), features: [{ name: 'segment', dtype: 'float64' as const }, { name: 'nope', dtype: 'int64' as const }] };
    const err = (await getHistoricalFeatures({ spine: path.join(dir, 'spine.csv'), views: [view], output: path.join(dir, 'bad.parquet'), postgres: { url: postgresUrl } }).catch((e: unknown) => e)) as SchemaMismatchError;
    expect(err).toBeInstanceOf(SchemaMismatchError);
    expect(err.problems).toEqual([
      `views[0] (s): source postgres table ${table}: feature column segment is VARCHAR, needs a number (DOUBLE, FLOAT, DECIMAL or an integer type) for dtype float64 (features[0])`,
      `views[0] (s): source postgres table ${table} has no feature column nope (features[1])`,
    ]);
    await expect(getHistoricalFeatures({ spine: path.join(dir, 'spine.csv'), views: [statView('s', { type: 'postgres', table: 'no_such_table_xyz' })], output: path.join(dir, 'x.parquet'), postgres: { url: postgresUrl } })).rejects.toBeInstanceOf(NotFoundError);
    const bad = await getHistoricalFeatures({ spine: path.join(dir, 'spine.csv'), views: [statView('s', { type: 'postgres', query: 'SELEC nonsense' })], output: path.join(dir, 'x.parquet'), postgres: { url: postgresUrl } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidInputError);
    expect(String(bad)).toMatch(/views\[0\]\.source: PostgreSQL at \S+ \(database \S+\) rejected the statement while reading query for view s: views\[0\]\.source: syntax error .*\(SQLSTATE 42601\)/);
  });

  it('a value DuckDB cannot convert (numeric NaN into DECIMAL) is a SchemaMismatchError naming the view, not a retryable fault', async () => {
    const t = `${table}_nan`;
    await pool.query(`CREATE TABLE ${pg.escapeIdentifier(t)} (customer_id bigint, event_ts timestamptz, spend numeric(10,2))`);
    try {
      await pool.query(`INSERT INTO ${pg.escapeIdentifier(t)} VALUES (1, '2026-11-01T00:00:00Z', 1.5), (2, '2026-11-01T00:00:00Z', 'NaN')`);
      const view = { name: 'n', entities: ['customer_id'], timestampField: 'event_ts', source: { type: 'postgres' as const, table: t }, features: [{ name: 'spend', dtype: 'float64' as const }] };
      const err = (await getHistoricalFeatures({ spine: path.join(dir, 'spine.csv'), views: [view], output: path.join(dir, 'nan.parquet'), postgres: { url: postgresUrl } }).catch((e: unknown) => e)) as SchemaMismatchError;
      expect(err).toBeInstanceOf(SchemaMismatchError);
      expect(err.problems[0]).toMatch(/^views\[0\] \(n\): .*NaN/);
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(t)}`);
    }
  });
});
