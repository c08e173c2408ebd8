/**
 * The PostgreSQL run sink's part format: shards write the CSV that COPY loads, straight from the
 * predictions, with a layout file beside each part; the stager reads the layout, never the rows.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { finished, pipeline } from 'node:stream/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import { SchemaMismatchError, errorMessage } from '../errors';
import { describeQuery, ident as duckIdent, lit, toText, type ColumnInfo } from '../io/duckdb';
import { LINEAGE_COLUMNS, POST_PROCESS_LINEAGE_COLUMNS, type PartFormat, type PartWriteRequest } from '../sinks/types';
import { writeJsonAtomically } from '../util/files';
import { postgresTypeOf } from './sql';

/**
 * Output columns that hold one value for a whole run (the lineage). When a part holds a single
 * value in one of them, the staging table does not store it in every row: the value is kept once
 * in the staging table's comment and added back by the commit (psql, COPY of 1M rows into an
 * unlogged table: 0.97–1.03 s with every column, 0.60–0.61 s with id, label, score, as_of and the
 * shard).
 */
export const RUN_CONSTANT_COLUMNS: ReadonlySet<string> = new Set([...LINEAGE_COLUMNS, ...POST_PROCESS_LINEAGE_COLUMNS]);

/** A run-constant column: its PostgreSQL type and its one value, as text. */
export interface RunConstant {
  name: string;
  pgType: string;
  value: string;
}


export interface PartColumn {
  name: string;
  duckType: string;
  pgType: string | undefined;
}

/** Described columns with the PostgreSQL type each maps to. */
export function partColumnsOf(columns: readonly ColumnInfo[]): PartColumn[] {
  return columns.map((c) => ({ name: c.name, duckType: c.type, pgType: postgresTypeOf(c.type) }));
}

/** The columns that may hold one value for the whole run (the lineage), kept once instead of per row. */
export function constantCandidates(columns: readonly PartColumn[]): PartColumn[] {
  return columns.filter((c) => RUN_CONSTANT_COLUMNS.has(c.name) && c.pgType !== undefined);
}

export interface PartInfo {
  rows: number;
  columns: PartColumn[];
  /** Run-constant columns holding exactly one value (no NULL) in this part. */
  constants: RunConstant[];
}


/**
 * A DuckDB list as PostgreSQL's array literal (`{0.5,"a b",NULL}`): elements double-quoted with
 * backslash escapes, NULL unquoted; a NULL list stays NULL.
 */
export function arrayLiteral(expr: string): string {
  const element = `CASE WHEN x IS NULL THEN 'NULL' ELSE '"' || replace(replace(CAST(x AS VARCHAR), '\\', '\\\\'), '"', '\\"') || '"' END`;
  return `CASE WHEN ${expr} IS NULL THEN NULL ELSE '{' || array_to_string(list_transform(${expr}, x -> ${element}), ',') || '}' END`;
}

/** Text of a value as PostgreSQL parses it back exactly (timestamps with an explicit +00 offset). */
export const asText = (expr: string) => `CAST(${expr} AS VARCHAR)`;


/** A CSV part's layout file, next to the part: `<part>.layout.json`. */
export const CSV_LAYOUT_SUFFIX = '.layout.json';
export const CSV_LAYOUT_FORMAT = 'inferflow.postgres-part/1';

/** What a CSV part holds (written with it, read by the stager instead of describing the rows). */
export interface CsvPartLayout {
  format: typeof CSV_LAYOUT_FORMAT;
  rows: number;
  /** Every output column with its DuckDB type, as a Parquet part would have it. */
  columns: { name: string; duckType: string }[];
  /** The run-constant columns (the lineage), not in the CSV: their one value each, as text. */
  constants: { name: string; value: string }[];
  /** The CSV's columns, in order; a last field holds the shard index. */
  stored: string[];
}

export type CsvPartInfo = PartInfo & { stored: string[] };

/**
 * A column's type as a Parquet part would give it back, where that maps it to a PostgreSQL type
 * it otherwise lacks: an ENUM (such as a lineage constant) as VARCHAR, second and millisecond
 * timestamps as TIMESTAMP (the values and their text are the same). HUGEINT stays exact
 * (numeric(39,0)); a Parquet part turns it into DOUBLE.
 */
export function partTypeOf(duckType: string): string {
  if (duckType.startsWith('ENUM(')) return 'VARCHAR';
  return duckType === 'TIMESTAMP_S' || duckType === 'TIMESTAMP_MS' ? 'TIMESTAMP' : duckType;
}

/**
 * Write one shard's part as the CSV the stager COPYs (the per-row columns, then the shard index)
 * plus its layout file; the lineage goes into the layout once. UTC timestamps with an explicit
 * +00 offset, floats in shortest round-trip form; NULL is an unquoted empty field and '' a quoted
 * one, which COPY's csv format tells apart the same way. Writing the CSV straight from the
 * predictions costs about what a Parquet part did (179–210 ms per 1M rows, DuckDB, 2 threads),
 * and the stager then reads no part back (docs/decisions/0001-csv-parts-for-copy.md).
 */
export async function writeCsvPart(conn: DuckDBConnection, req: PartWriteRequest): Promise<void> {
  await conn.run(`SET TimeZone = 'UTC'`); // this connection's session only
  const columns = partColumnsOf((await describeQuery(conn, req.select)).map((c) => ({ name: c.name, type: partTypeOf(c.type) })));
  const constantNames = constantCandidates(columns).map((c) => c.name);
  const values = constantNames.length > 0 ? ((await conn.runAndReadAll(`SELECT ${constantNames.map((n) => asText(duckIdent(n))).join(', ')} FROM (SELECT ${req.lineage})`)).getRowsJS()[0] ?? []) : [];
  const constants = constantNames.map((name, k) => ({ name, value: toText(values[k]) }));
  const stored = columns.map((c) => c.name).filter((n) => !constantNames.includes(n));
  const listColumns = new Set(columns.filter((c) => c.duckType.endsWith('[]')).map((c) => c.name));
  const csvItem = (n: string) => (listColumns.has(n) ? `${arrayLiteral(duckIdent(n))} AS ${duckIdent(n)}` : duckIdent(n));
  await conn.run(`COPY (SELECT ${[...stored.map(csvItem), `${req.shardIndex}::INTEGER`].join(', ')} FROM (${req.select})) TO ${lit(req.path)} (FORMAT csv, HEADER false)`);
  const layout: CsvPartLayout = { format: CSV_LAYOUT_FORMAT, rows: req.rows, columns: columns.map((c) => ({ name: c.name, duckType: c.duckType })), constants, stored };
  await writeJsonAtomically(`${req.finalPath}${CSV_LAYOUT_SUFFIX}`, layout);
}

export async function readCsvLayout(partPath: string): Promise<CsvPartLayout> {
  const file = `${partPath}${CSV_LAYOUT_SUFFIX}`;
  let layout: Partial<CsvPartLayout>;
  try {
    layout = JSON.parse(await fsp.readFile(file, 'utf8')) as Partial<CsvPartLayout>;
  } catch (err) {
    throw new SchemaMismatchError(`CSV part ${partPath} has no readable layout file`, [`${file}: ${errorMessage(err)}`]);
  }
  if (layout.format !== CSV_LAYOUT_FORMAT || !Array.isArray(layout.columns) || !Array.isArray(layout.constants) || !Array.isArray(layout.stored) || typeof layout.rows !== 'number') {
    throw new SchemaMismatchError(`CSV part ${partPath} has a layout file Inferflow did not write`, [`${file}: format ${JSON.stringify(layout.format)}`]);
  }
  return layout as CsvPartLayout;
}

/** A CSV part described from its layout file (the rows are not read). */
export async function readCsvPart(partPath: string): Promise<CsvPartInfo> {
  const layout = await readCsvLayout(partPath);
  const columns = partColumnsOf(layout.columns.map((c) => ({ name: c.name, type: c.duckType })));
  const typeOf = new Map(columns.map((c) => [c.name, c.pgType]));
  const constants = layout.constants.flatMap((c) => {
    const pgType = typeOf.get(c.name);
    return pgType ? [{ name: c.name, pgType, value: c.value }] : [];
  });
  return { rows: layout.rows, columns, constants, stored: layout.stored };
}

/** A CSV part holds exactly the columns the staging table stores (it cannot leave one out of COPY). */
export function checkCsvPartColumns(part: CsvPartInfo, stagedColumns: readonly string[], shardIndex: number): void {
  const staged = new Set(stagedColumns);
  const problems = [
    ...stagedColumns.filter((c) => !part.stored.includes(c)).map((c) => `column ${c} is stored per row in the run's staging table but held once in shard ${shardIndex}'s part`),
    ...part.stored.filter((c) => !staged.has(c)).map((c) => `column ${c} of shard ${shardIndex}'s part is not in the run's staging table`),
  ];
  if (problems.length > 0) throw new SchemaMismatchError(`shard ${shardIndex} does not fit the run's staging table`, problems, { shard: shardIndex });
}

/** Join a large shard's CSV segments (headerless, so their bytes simply follow each other). */
export async function mergeCsvParts(segments: readonly string[], outPath: string, finalPath: string): Promise<void> {
  const layouts = await Promise.all(segments.map(readCsvLayout));
  const first = layouts[0];
  if (!first) throw new SchemaMismatchError(`no segments to join into ${finalPath}`, ['segments: none']);
  const shape = (l: CsvPartLayout) => JSON.stringify({ ...l, rows: 0 });
  const odd = segments.filter((_, i) => shape(layouts[i]!) !== shape(first));
  if (odd.length > 0) throw new SchemaMismatchError(`segments of ${finalPath} differ in their columns`, odd.map((s) => `${s}: not laid out as ${segments[0]}`));
  const out = fs.createWriteStream(outPath);
  try {
    for (const segment of segments) await pipeline(fs.createReadStream(segment), out, { end: false });
    out.end();
    await finished(out);
  } catch (err) {
    out.destroy();
    throw err;
  }
  await writeJsonAtomically(`${finalPath}${CSV_LAYOUT_SUFFIX}`, { ...first, rows: layouts.reduce((n, l) => n + l.rows, 0) });
}

export const CSV_PART_FORMAT: PartFormat = { extension: '.csv', write: writeCsvPart, merge: mergeCsvParts };

