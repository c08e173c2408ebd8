import fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { FeatureView } from '../../lib/features';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { mulberry32 } from '../../lib/util/random';

export const T0 = Date.parse('2026-11-01T00:00:00Z');

/** One source row of the test view (customer_stats-like, every dtype, NULLs and empty strings). */
export interface StatRow {
  customer_id: number;
  /** epoch ms */
  event_ts: number;
  /** epoch ms or null */
  created_ts: number | null;
  spend: number | null;
  ratio: number | null;
  amount: string | null; // numeric(12,2) as text
  cnt: number | null;
  big: bigint | null;
  segment: string | null;
  active: boolean | null;
}

/** `n` rows over `customers` customers and 10 days, with duplicate event times decided by created_ts. */
export function statRows(n: number, customers: number, seed = 7): StatRow[] {
  const r = mulberry32(seed);
  const rows: StatRow[] = [];
  for (let i = 0; i < n; i++) {
    const dup = i > 0 && r() < 0.05 ? rows[Math.floor(r() * rows.length)]! : undefined;
    const customer_id = dup?.customer_id ?? 1 + Math.floor(r() * customers);
    const event_ts = dup?.event_ts ?? T0 + Math.floor(r() * 10 * 86_400) * 1000 + Math.floor(r() * 1000);
    rows.push({
      customer_id,
      event_ts,
      // duplicates get a distinct, later created time so the tie-break is decided by it
      created_ts: dup ? (dup.created_ts ?? event_ts) + 1000 + i : r() < 0.1 ? null : event_ts + Math.floor(r() * 3_600_000),
      spend: r() < 0.05 ? null : Math.round(r() * 1e6) / 100,
      ratio: r() < 0.05 ? null : Math.fround(r()),
      amount: r() < 0.05 ? null : (Math.floor(r() * 1e9) / 100).toFixed(2),
      cnt: r() < 0.05 ? null : Math.floor(r() * 1000) - 10,
      big: r() < 0.05 ? null : 2n ** 62n + BigInt(Math.floor(r() * 1e9)),
      segment: r() < 0.05 ? null : r() < 0.05 ? '' : ['gold', 'silver', 'bronze, "quoted"', 'naïve'][Math.floor(r() * 4)]!,
      active: r() < 0.05 ? null : r() < 0.5,
    });
  }
  return rows;
}

const csvText = (s: string) => `"${s.replace(/"/g, '""')}"`;
const iso = (ms: number) => new Date(ms).toISOString();

/** CSV (PostgreSQL style: unquoted empty = NULL, quoted "" = empty string). */
function statCsv(rows: StatRow[]): string {
  const lines = ['customer_id,event_ts,created_ts,spend,ratio,amount,cnt,big,segment,active'];
  for (const x of rows) {
    lines.push(
      [
        x.customer_id,
        iso(x.event_ts),
        x.created_ts === null ? '' : iso(x.created_ts).replace('Z', ''),
        x.spend ?? '',
        x.ratio ?? '',
        x.amount ?? '',
        x.cnt ?? '',
        x.big?.toString() ?? '',
        x.segment === null ? '' : csvText(x.segment),
        x.active === null ? '' : String(x.active),
      ].join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

const STAT_PG_COLUMNS = 'customer_id bigint, event_ts timestamptz, created_ts timestamp, spend double precision, ratio real, amount numeric(12,2), cnt integer, big bigint, segment text, active boolean';

/** Create `table` in PostgreSQL and COPY the rows in. */
export async function loadStatsIntoPostgres(pool: pg.Pool, table: string, rows: StatRow[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query(`CREATE TABLE ${pg.escapeIdentifier(table)} (${STAT_PG_COLUMNS})`);
    await pipeline(Readable.from([statCsv(rows)]), client.query(copyFrom(`COPY ${pg.escapeIdentifier(table)} FROM STDIN (FORMAT csv, HEADER true)`)));
  } finally {
    client.release();
  }
}

/** The same rows as a Parquet file with the same column types. */
export async function writeStatsParquet(file: string, rows: StatRow[]): Promise<void> {
  const csv = `${file}.csv`;
  await fs.writeFile(csv, statCsv(rows));
  const columns = `{'customer_id': 'BIGINT', 'event_ts': 'TIMESTAMPTZ', 'created_ts': 'TIMESTAMP', 'spend': 'DOUBLE', 'ratio': 'FLOAT', 'amount': 'DECIMAL(12,2)', 'cnt': 'INTEGER', 'big': 'BIGINT', 'segment': 'VARCHAR', 'active': 'BOOLEAN'}`;
  await withDuckDB((c) => c.run(`COPY (SELECT * FROM read_csv(${lit(csv)}, header = true, columns = ${columns}, allow_quoted_nulls = false)) TO ${lit(file)} (FORMAT parquet)`));
  await fs.rm(csv);
}

export function statView(name: string, source: FeatureView['source'], ttl?: string): FeatureView {
  return {
    name,
    entities: ['customer_id'],
    timestampField: 'event_ts',
    createdField: 'created_ts',
    source,
    features: [
      { name: 'spend', dtype: 'float64' },
      { name: 'ratio', dtype: 'float32' },
      { name: 'amount', dtype: 'float64' },
      { name: 'cnt', dtype: 'int64' },
      { name: 'big', dtype: 'int64' },
      { name: 'segment', dtype: 'string' },
      { name: 'active', dtype: 'bool' },
    ],
    ...(ttl ? { ttl } : {}),
  };
}

/** Brute force: the latest row per customer with event time in (start, end] (ties: greatest created, nulls lowest, then later row). */
export function latestPerEntity(rows: StatRow[], start: number | undefined, end: number): Map<number, StatRow> {
  const best = new Map<number, StatRow>();
  for (const x of rows) {
    if ((start !== undefined && x.event_ts <= start) || x.event_ts > end) continue;
    const b = best.get(x.customer_id);
    const later = !b || x.event_ts > b.event_ts || (x.event_ts === b.event_ts && (x.created_ts ?? -Infinity) >= (b.created_ts ?? -Infinity));
    if (later) best.set(x.customer_id, x);
  }
  return best;
}
