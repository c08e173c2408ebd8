/**
 * PostgreSQL candidate sources of a ranking (entity × item pairs with the model's columns): the
 * table or query is exported with `COPY (SELECT * FROM <relation>) TO STDOUT (FORMAT csv, HEADER)`
 * into a local CSV file (streamed, never the whole table in JavaScript memory), which DuckDB turns
 * into a Parquet file with each column's type taken from PostgreSQL. The ranking then reads that
 * file like a candidate file (lib/pipeline/rank.ts), duplicate-pair check included.
 *
 * The connection comes from the process environment (INFERFLOW_POSTGRES_URL, else the PG*
 * variables `pg` reads), never from the spec.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import { to as copyTo } from 'pg-copy-streams';
import { InvalidInputError } from '../errors';
import { scanFiles } from '../features/source';
import { lit, withSharedDuckDB } from '../io/duckdb';
import type { PostgresCandidates } from '../messages/batch';
import { FEATURES_APPLICATION_NAME, postgresClient, postgresFailure, resolvePostgresTarget, type PostgresConnectionSettings } from './connection';
import { duckTypeOfField, sourceRelation } from './features';

/** The field of a spec that names a PostgreSQL candidate source. */
export const CANDIDATES_FIELD = 'ranking.candidates';

/** How a candidate source is named in messages: `postgres table public.pairs`, `postgres query`. */
export function candidatesObject(source: PostgresCandidates): string {
  return source.table !== undefined ? `postgres table ${source.table}` : 'postgres query';
}

/**
 * Export a PostgreSQL candidate source into the Parquet file `output` (written under a temporary
 * name and renamed: whole or absent).
 *
 * @throws the typed errors of postgresFailure (connection.ts) naming `ranking.candidates`: NotFoundError a table that does not exist, InvalidInputError a query PostgreSQL rejects, TransientError connection problems
 */
export async function exportPostgresCandidates(source: PostgresCandidates, output: string, settings: PostgresConnectionSettings): Promise<void> {
  const object = candidatesObject(source);
  const relation = sourceRelation(source);
  await fsp.mkdir(path.dirname(output), { recursive: true });
  const tmp = `${output}.tmp-${randomUUID()}`;
  const csv = `${tmp}.csv`;
  const client = postgresClient(settings, FEATURES_APPLICATION_NAME);
  try {
    let types: [string, string][];
    try {
      await client.connect();
      // Timestamps as UTC ISO text, floats exact.
      await client.query("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET IntervalStyle = 'iso_8601'");
      const probe = await client.query(`SELECT * FROM ${relation} LIMIT 0`);
      types = probe.fields.map((f): [string, string] => [f.name, duckTypeOfField(f)]);
      if (new Set(types.map(([n]) => n)).size !== types.length) throw new InvalidInputError(`${CANDIDATES_FIELD}: ${object} has two columns of the same name`, [`${CANDIDATES_FIELD}: columns ${types.map(([n]) => n).join(', ')}`], { field: CANDIDATES_FIELD, object });
      await pipeline(client.query(copyTo(`COPY (SELECT * FROM ${relation}) TO STDOUT (FORMAT csv, HEADER true)`)), fs.createWriteStream(csv));
    } catch (err) {
      throw postgresFailure(err, { target: resolvePostgresTarget(settings), what: `reading ${object} for the ranking`, field: CANDIDATES_FIELD, object });
    }
    const scan = scanFiles({ location: object, format: 'csv', files: [csv], columnTypes: types });
    await withSharedDuckDB((conn) => conn.run(`COPY (SELECT * FROM ${scan}) TO ${lit(tmp)} (FORMAT parquet, COMPRESSION zstd)`));
    await fsp.rename(tmp, output);
  } finally {
    await client.end().catch(() => undefined);
    await fsp.rm(csv, { force: true });
    await fsp.rm(tmp, { force: true });
  }
}
