/**
 * PostgreSQL feature sources: the view's columns are exported with
 * `COPY (SELECT <columns> FROM <table or (query) AS src> [WHERE <event-time window>]) TO STDOUT
 * (FORMAT csv, HEADER)`, streamed by pg-copy-streams into a local temporary file (never the
 * whole table in JavaScript memory), and the file is then read by DuckDB like a file source,
 * with each column's type taken from PostgreSQL (so a text column stays VARCHAR and a
 * timestamptz stays TIMESTAMP WITH TIME ZONE; NULL stays NULL, an empty string stays '').
 *
 * The connection comes from the process environment (INFERFLOW_POSTGRES_URL, else the PG*
 * variables `pg` reads), never from the spec.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { InvalidInputError } from '../errors';
import { FEATURES_APPLICATION_NAME, postgresClient, postgresFailure, resolvePostgresTarget, type PostgresConnectionSettings } from './connection';
import type { ResolvedFiles } from '../features/source';
import type { FeatureView } from '../features/spec';
import { TABLE_NAME_PATTERN } from '../sinks/spec';

/** INFERFLOW_POSTGRES_URL; unset: `pg` reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE. */
export type PostgresSourceSettings = PostgresConnectionSettings;

/** An event-time window pushed down into the export: rows with start < time ≤ end. */
export interface EventTimeWindow {
  start?: Date | undefined;
  end: Date;
}

/** PostgreSQL type OID → DuckDB type (others are read as VARCHAR and checked like any column). */
const DUCK_OF_OID: Record<number, string> = {
  16: 'BOOLEAN',
  20: 'BIGINT',
  21: 'SMALLINT',
  23: 'INTEGER',
  700: 'FLOAT',
  701: 'DOUBLE',
  1082: 'DATE',
  1114: 'TIMESTAMP',
  1184: 'TIMESTAMP WITH TIME ZONE',
  25: 'VARCHAR',
  1042: 'VARCHAR',
  1043: 'VARCHAR',
  19: 'VARCHAR',
  2950: 'VARCHAR',
};
const NUMERIC_OID = 1700;

/** DuckDB type of a result column. `numeric(p,s)` with p ≤ 38 → DECIMAL(p,s); unconstrained numeric → DOUBLE. */
export function duckTypeOfField(f: { dataTypeID: number; dataTypeModifier: number }): string {
  if (f.dataTypeID === NUMERIC_OID) {
    if (f.dataTypeModifier < 4) return 'DOUBLE';
    const precision = ((f.dataTypeModifier - 4) >> 16) & 0xffff;
    const scale = (f.dataTypeModifier - 4) & 0xffff;
    return precision <= 38 ? `DECIMAL(${precision},${scale})` : 'DOUBLE';
  }
  return DUCK_OF_OID[f.dataTypeID] ?? 'VARCHAR';
}

/** The FROM clause of a source: a quoted (schema.)table, or the query wrapped as a subquery. */
export function sourceRelation(source: { table?: string | undefined; query?: string | undefined }): string {
  if (source.table !== undefined) {
    const parts = source.table.split('.');
    if (parts.length > 2 || !parts.every((p) => TABLE_NAME_PATTERN.test(p))) throw new InvalidInputError(`invalid table name ${source.table}`, ['source.table: expected [schema.]table of letters, digits and _']);
    return parts.map((p) => pg.escapeIdentifier(p)).join('.');
  }
  const q = (source.query ?? '').trim().replace(/;\s*$/, '');
  if (q === '') throw new InvalidInputError('empty query', ['source.query: must not be empty']);
  return `(${q}) AS inferflow_src`;
}

/**
 * Export the columns a view needs (those the source has; missing ones are reported by the
 * caller's schema check) into `<dir>/source.csv`. Returns it as a CSV file source with
 * explicit column types.
 * @throws the typed errors of postgresFailure (connection.ts), naming `views[<index>].source`: NotFoundError a table that does not exist, InvalidInputError a query PostgreSQL rejects, TransientError connection problems
 */
export async function exportPostgresSource(view: FeatureView, index: number, dir: string, settings: PostgresSourceSettings, window?: EventTimeWindow): Promise<ResolvedFiles> {
  if (view.source.type !== 'postgres') throw new Error('not a postgres source');
  const source = view.source;
  const relation = sourceRelation(source);
  const where = source.table !== undefined ? `table ${source.table}` : 'query';
  const wanted = [...new Set([...view.entities, view.timestampField, ...(view.createdField !== undefined ? [view.createdField] : []), ...view.features.map((f) => f.name)])];
  const client = postgresClient(settings, FEATURES_APPLICATION_NAME);
  await fsp.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'source.csv');
  try {
    await client.connect();
    // Timestamps as UTC ISO text, floats exact.
    await client.query("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET IntervalStyle = 'iso_8601'");
    const probe = await client.query(`SELECT * FROM ${relation} LIMIT 0`);
    const types = new Map(probe.fields.map((f) => [f.name, duckTypeOfField(f)]));
    const columns = wanted.filter((c) => types.has(c));
    if (columns.length === 0) throw new InvalidInputError(`views[${index}].source: ${where} has none of the columns of view ${view.name}`, [`views[${index}].source: expected columns ${wanted.join(', ')}`]);
    const conditions = [
      ...[...view.entities, view.timestampField].filter((c) => types.has(c)).map((c) => `${pg.escapeIdentifier(c)} IS NOT NULL`),
      // Pushed down only for time columns: any other type is reported by the schema check, not by PostgreSQL.
      ...(window && /^(DATE|TIMESTAMP|TIMESTAMP WITH TIME ZONE)$/.test(types.get(view.timestampField) ?? '')
        ? [
            ...(window.start ? [`${pg.escapeIdentifier(view.timestampField)} > ${pg.escapeLiteral(window.start.toISOString())}::timestamptz`] : []),
            `${pg.escapeIdentifier(view.timestampField)} <= ${pg.escapeLiteral(window.end.toISOString())}::timestamptz`,
          ]
        : []),
    ];
    const select = `SELECT ${columns.map((c) => pg.escapeIdentifier(c)).join(', ')} FROM ${relation}${conditions.length ? ` WHERE ${conditions.join(' AND ')}` : ''}`;
    const copy = client.query(copyTo(`COPY (${select}) TO STDOUT (FORMAT csv, HEADER true)`));
    await pipeline(copy, fs.createWriteStream(file));
    return { location: `postgres ${where}`, format: 'csv', files: [file], columnTypes: columns.map((c) => [c, types.get(c)!]) };
  } catch (err) {
    throw postgresFailure(err, { target: resolvePostgresTarget(settings), what: `reading ${where} for view ${view.name}`, field: `views[${index}].source`, object: where });
  } finally {
    await client.end().catch(() => undefined);
  }
}
