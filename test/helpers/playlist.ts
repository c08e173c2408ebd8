/**
 * The weekly-playlist example's data for ranking tests: Python's lists
 * (examples/data/playlist_expected.parquet) and the candidate pairs copied into PostgreSQL tables.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { PLAYLIST_CANDIDATES, PLAYLIST_EXPECTED } from '../../cli/examples';
import { describeQuery, lit, toText, withDuckDB } from '../../lib/io/duckdb';

/** One user's list. */
export interface PlaylistRow {
  user: string;
  items: string[];
  scores: number[];
}

/** A DuckDB LIST value as read by getRowsJS. */
export const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : (v as { items: unknown[] }).items);

/** Lists of a DuckDB relation with user_id, items and scores, by user. */
export async function readPlaylists(from: string): Promise<PlaylistRow[]> {
  return withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(`SELECT CAST(user_id AS VARCHAR), items, scores FROM ${from} ORDER BY user_id`);
    return r.getRowsJS().map(([u, items, scores]) => ({ user: toText(u), items: listOf(items).map(toText), scores: listOf(scores).map(Number) }));
  });
}

/** Python's 300 lists. */
export const readExpectedPlaylists = () => readPlaylists(`read_parquet(${lit(PLAYLIST_EXPECTED)})`);

const PG_TYPE: Record<string, string> = { BIGINT: 'bigint', VARCHAR: 'text', DOUBLE: 'double precision', FLOAT: 'real', INTEGER: 'integer' };

/**
 * A PostgreSQL table `public.<table>` holding the example's candidate pairs (the same columns and
 * types), plus the rows of `extra` (a DuckDB query over `c`, the candidates: a duplicate pair).
 */
export async function candidatesTable(admin: pg.Pool, table: string, dir: string, extra?: string): Promise<void> {
  const csv = path.join(dir, `${table}.csv`);
  const source = `read_parquet(${lit(PLAYLIST_CANDIDATES)})`;
  const columns = await withDuckDB(async (conn) => {
    const query = `SELECT * FROM ${source}${extra ? ` UNION ALL (${extra.replaceAll('FROM c', `FROM ${source}`)})` : ''}`;
    await conn.run(`COPY (${query}) TO ${lit(csv)} (FORMAT csv, HEADER false)`);
    return describeQuery(conn, `SELECT * FROM ${source}`);
  });
  const ddl = columns.map((c) => {
    const type = PG_TYPE[c.type];
    if (!type) throw new Error(`candidatesTable: no PostgreSQL type for ${c.name} ${c.type}`);
    return `${pg.escapeIdentifier(c.name)} ${type}`;
  });
  const client = await admin.connect();
  try {
    await client.query(`CREATE TABLE public.${pg.escapeIdentifier(table)} (${ddl.join(', ')})`);
    await pipeline(fs.createReadStream(csv), client.query(copyFrom(`COPY public.${pg.escapeIdentifier(table)} FROM STDIN (FORMAT csv)`)));
  } finally {
    client.release();
  }
}
