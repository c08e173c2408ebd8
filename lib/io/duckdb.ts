import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import fs from 'node:fs/promises';
import path from 'node:path';
import { InvalidInputError, NotFoundError, TransientError, errorMessage } from '../errors';

let duckdbModule: Promise<typeof import('@duckdb/node-api')> | undefined;

/**
 * @duckdb/node-api, loaded by the first instance created: the SQL and type helpers below are also
 * used by processes that never run DuckDB (the model server, the CLI's registry commands).
 */
function loadDuckDB(): Promise<typeof import('@duckdb/node-api')> {
  return (duckdbModule ??= import('@duckdb/node-api'));
}

/** Run `fn` with a fresh in-memory DuckDB connection, closed afterwards. */
export async function withDuckDB<T>(fn: (conn: DuckDBConnection) => Promise<T>, options: { threads?: number; path?: string } = {}): Promise<T> {
  const { DuckDBInstance } = await loadDuckDB();
  let instance: DuckDBInstance;
  try {
    instance = await DuckDBInstance.create(options.path ?? ':memory:', { threads: String(options.threads ?? 1) });
  } catch (err) {
    // Another process holds the database file's write lock: wait and retry.
    if (/lock/i.test(errorMessage(err))) throw new TransientError(`database ${options.path} is locked: ${errorMessage(err)}`, { object: options.path }, { cause: err });
    throw err;
  }
  const conn = await instance.connect();
  try {
    return await fn(conn);
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

let shared: Promise<DuckDBInstance> | undefined;

/** The process's shared instance, created on first use; a failed creation is tried again next time. */
function sharedInstance(): Promise<DuckDBInstance> {
  shared ??= loadDuckDB()
    .then(({ DuckDBInstance }) => DuckDBInstance.create(':memory:', { threads: '2' }))
    .catch((err: unknown) => {
      shared = undefined;
      throw err;
    });
  return shared;
}

/**
 * Create the shared instance now (a worker does this before its first task: creating it took
 * 19-23 ms in a fresh process, inside the first run's planning step otherwise).
 */
export async function warmSharedDuckDB(): Promise<void> {
  await sharedInstance();
}

/**
 * Run `fn` with a new connection to one in-memory DuckDB instance shared by the process
 * (creating an instance per call costs ~10 ms, a noticeable share of a small shard).
 */
export async function withSharedDuckDB<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
  const conn = await (await sharedInstance()).connect();
  try {
    return await fn(conn);
  } finally {
    conn.closeSync();
  }
}

/** SQL string literal. */
export function lit(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** SQL identifier, always quoted. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export type FileFormat = 'parquet' | 'csv';

export function formatOf(filePath: string): FileFormat {
  const lower = filePath.toLowerCase();
  if (lower.endsWith('.parquet') || lower.endsWith('.pq')) return 'parquet';
  if (lower.endsWith('.csv') || lower.endsWith('.csv.gz') || lower.endsWith('.tsv')) return 'csv';
  throw new InvalidInputError(`unsupported feature file ${filePath}`, [`file must end in .parquet or .csv (got ${path.basename(filePath)})`], { object: filePath });
}

/** A table expression reading a local Parquet or CSV file. */
export function scanOf(filePath: string): string {
  return formatOf(filePath) === 'parquet' ? `read_parquet(${lit(filePath)})` : `read_csv(${lit(filePath)}, header = true)`;
}

export interface ColumnInfo {
  name: string;
  /** DuckDB type name, e.g. DOUBLE, BIGINT, VARCHAR. */
  type: string;
}

const NUMERIC = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL.*|BOOLEAN)$/;

export function isNumericType(type: string): boolean {
  return NUMERIC.test(type);
}

const INTEGER_TYPE = /^(U?(TINYINT|SMALLINT|INTEGER|BIGINT)|U?HUGEINT)$/;

/** Any signed or unsigned integer type. */
export function isIntegerType(type: string): boolean {
  return INTEGER_TYPE.test(type);
}

const TIMESTAMP = /^(DATE|TIMESTAMP|TIMESTAMP_S|TIMESTAMP_MS|TIMESTAMP_NS|TIMESTAMP WITH TIME ZONE)$/;

/** DATE or any TIMESTAMP type (with or without time zone). */
export function isTimestampType(type: string): boolean {
  return TIMESTAMP.test(type);
}

export async function assertReadable(filePath: string): Promise<void> {
  try {
    const st = await fs.stat(filePath);
    if (!st.isFile()) throw new InvalidInputError(`${filePath} is not a file`, [`features: ${filePath} is a directory or special file`], { object: filePath });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`feature file ${filePath} does not exist`, { object: filePath, field: 'features' });
    throw err;
  }
}

/** Column names and types of a query's result (DESCRIBE: bound, not run). */
export async function describeQuery(conn: DuckDBConnection, select: string): Promise<ColumnInfo[]> {
  const reader = await conn.runAndReadAll(`DESCRIBE ${select}`);
  return reader.getRowObjectsJS().map((r) => ({ name: toText(r.column_name), type: toText(r.column_type) }));
}

/** Column names and types of a Parquet/CSV file. */
export async function describeColumns(conn: DuckDBConnection, filePath: string): Promise<ColumnInfo[]> {
  try {
    return await describeQuery(conn, `SELECT * FROM ${scanOf(filePath)}`);
  } catch (err) {
    throw new InvalidInputError(`cannot read feature file ${filePath}: ${errorMessage(err)}`, [`features: ${errorMessage(err)}`], { object: filePath });
  }
}

/** A DuckDB JS value as text (strings as-is, numbers/bigints/booleans formatted, nested values as JSON). */
export function toText(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return v.toString();
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
}

export async function scalar(conn: DuckDBConnection, sql: string): Promise<unknown> {
  const reader = await conn.runAndReadAll(sql);
  return reader.getRowsJS()[0]?.[0];
}
