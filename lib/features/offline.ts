/**
 * Point-in-time correct offline retrieval: join feature views onto a spine of (entity key,
 * timestamp) rows without letting any value from after a spine row's timestamp in. The rule
 * (latest event time ≤ T, within the TTL, ties broken by created time then source order) is
 * stated in spec.ts and docs/features.md.
 *
 * Everything runs inside DuckDB: each view's source is read once into a narrow temporary
 * table (entity keys, event time as epoch nanoseconds, created value, features cast to their
 * dtype), reduced to one row per (entities, event time) by the tie-break, and joined to the
 * spine with `ASOF LEFT JOIN … ON keys = keys AND spine_ts >= view_ts`; the TTL then nulls
 * matches older than `T − ttl`. The result goes straight to Parquet with `COPY … TO`, in
 * spine order; no row passes through JavaScript.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EmptyInputError, InvalidInputError, NotFoundError, SchemaMismatchError, errorMessage } from '../errors';
import { ident, isTimestampType, lit, scalar, toText, withDuckDB, type ColumnInfo } from '../io/duckdb';
import { nanosTimestampFlags, setAdjustedToUtc } from '../io/parquet-footer';
import { localPathOf } from '../storage';
import { exportPostgresSource, type EventTimeWindow, type PostgresSourceSettings } from '../postgres/features';
import { exactParquetTimestamps, resolveFiles, scanFiles, isRemote, type ResolvedFiles } from './source';
import { checkFeatureViews, durationSeconds, outputColumnName, type FeatureDtype, type FeatureView } from './spec';

export const DEFAULT_ENTITY_TIMESTAMP_FIELD = 'event_timestamp';
export const DEFAULT_ROW_NUMBER_COLUMN = 'spine_row';
/** Internal column names start with this; spine and source columns may not. */
const INTERNAL = '__inferflow_';
const ROW = `${INTERNAL}row`;
const TS = `${INTERNAL}ts`;
const CREATED = `${INTERNAL}created`;
const key = (i: number) => `${INTERNAL}k${i}`;

/** Every entity key present in the views' sources, each with this timestamp. */
export interface AllEntitiesSpine {
  allEntitiesAsOf: Date;
}

export interface HistoricalFeaturesRequest {
  /**
   * A Parquet or CSV file (or glob / directory; local path, `file://` or `s3://`) with the
   * entity columns of every view and a timestamp column; or `{ allEntitiesAsOf }`: every entity
   * key that has a row with event time ≤ that instant in the views' sources (the views must
   * share their entity columns), sorted by key, with that instant as timestamp.
   */
  spine: string | AllEntitiesSpine;
  /** Feature view specs (validated here; see FeatureViewSchema). */
  views: readonly unknown[];
  /** Local Parquet file to write (replaced atomically when it exists). */
  output: string;
  /** The spine's timestamp column (DATE or TIMESTAMP; naive timestamps are UTC). Default `event_timestamp`. */
  entityTimestampField?: string;
  /** Output column holding each row's 0-based position in the spine. Default `spine_row`. */
  rowNumberColumn?: string;
  /** DuckDB threads. Default: the machine's available parallelism. */
  threads?: number;
  /** Parent of the temporary directory (downloads, DuckDB spill files). Default: the OS temp dir. */
  tempDir?: string;
  /** Connection for PostgreSQL sources (INFERFLOW_POSTGRES_URL); unset: the PG* variables. */
  postgres?: PostgresSourceSettings;
  /** Roots file sources and the spine must lie in (a worker's allowedRoots); unset: anywhere. */
  allowedRoots?: readonly string[];
}

export interface HistoricalFeaturesResult {
  rows: number;
  /** Absolute path of the Parquet file written. */
  output: string;
  /** Output columns in order: the spine's, then `<view>__<feature>` per view and feature, then the row number column. */
  columns: ColumnInfo[];
}

/** DuckDB type of each dtype in the output. */
export const DUCKDB_TYPE_OF: Record<FeatureDtype, string> = {
  float64: 'DOUBLE',
  float32: 'FLOAT',
  int64: 'BIGINT',
  string: 'VARCHAR',
  bool: 'BOOLEAN',
};

const INTEGER = /^(TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER)$/;
const FLOATING = /^(FLOAT|DOUBLE|DECIMAL\(\d+,\d+\))$/;

/**
 * Source column types each dtype accepts (the value is cast to the dtype's type):
 * float64/float32 ← FLOAT, DOUBLE, DECIMAL or an integer type up to 32 bits unsigned / 64 bits signed
 * (float32 rounds to the nearest float: CSV files only ever yield DOUBLE); int64 ← integer
 * types that fit in 64 bits signed; string ← VARCHAR; bool ← BOOLEAN.
 */
export function dtypeAccepts(dtype: FeatureDtype, sourceType: string): boolean {
  switch (dtype) {
    case 'float64':
    case 'float32':
      return FLOATING.test(sourceType) || INTEGER.test(sourceType);
    case 'int64':
      return INTEGER.test(sourceType);
    case 'string':
      return sourceType === 'VARCHAR';
    case 'bool':
      return sourceType === 'BOOLEAN';
  }
}

const ACCEPTS_TEXT: Record<FeatureDtype, string> = {
  float64: 'a number (DOUBLE, FLOAT, DECIMAL or an integer type)',
  float32: 'a number (FLOAT, DOUBLE, DECIMAL or an integer type)',
  int64: 'an integer type of at most 64 bits',
  string: 'VARCHAR',
  bool: 'BOOLEAN',
};

const ANY_INTEGER = /^(U?(TINYINT|SMALLINT|INTEGER|BIGINT)|HUGEINT|UHUGEINT)$/;

/** Entity columns join when both sides are integers or both have the same type (e.g. VARCHAR). */
function entityTypesJoin(a: string, b: string): boolean {
  return a === b || (ANY_INTEGER.test(a) && ANY_INTEGER.test(b));
}

/** An expression giving a DATE / TIMESTAMP column as epoch nanoseconds (BIGINT; naive timestamps as UTC). */
function epochNs(column: string, type: string): string {
  return type === 'DATE' ? `epoch_ns(CAST(${column} AS TIMESTAMP))` : `epoch_ns(${column})`;
}

/** A view whose source is resolved to local files (downloaded or exported) and described. */
export interface PreparedView {
  index: number;
  view: FeatureView;
  files: ResolvedFiles;
  columns: Map<string, string>;
  table: string;
  ttlNs: bigint | undefined;
}

/**
 * Point-in-time join of feature views onto a spine, written to a local Parquet file.
 *
 * @throws InvalidInputError a malformed view spec or request (every problem listed with its path), or a PostgreSQL query that PostgreSQL rejects
 * @throws NotFoundError a source or spine file, glob or directory that does not exist or holds no data file
 * @throws SchemaMismatchError columns missing from a source or the spine, wrong types (every problem listed at once)
 * @throws EmptyInputError an empty spine
 */
export async function getHistoricalFeatures(req: HistoricalFeaturesRequest): Promise<HistoricalFeaturesResult> {
  const tsField = req.entityTimestampField ?? DEFAULT_ENTITY_TIMESTAMP_FIELD;
  const rowColumn = req.rowNumberColumn ?? DEFAULT_ROW_NUMBER_COLUMN;
  const views = checkRequest(req, tsField, rowColumn);

  const output = localPathOf(req.output);
  const tmp = await fs.mkdtemp(path.join(req.tempDir ?? os.tmpdir(), 'inferflow-features-'));
  try {
    return await withDuckDB(
      async (conn) => {
        await conn.run(`SET temp_directory = ${lit(path.join(tmp, 'duckdb'))}`);
        const expand = globExpander(conn);
        // Resolve (and download) every location; report every missing one together.
        const located = await Promise.allSettled([
          ...views.map(({ view, index }) => resolveViewSource({ view, index, dir: path.join(tmp, `view-${index}`), expand, postgres: req.postgres ?? {}, allowedRoots: req.allowedRoots })),
          ...(typeof req.spine === 'string' ? [resolveFiles({ location: req.spine, downloadDir: path.join(tmp, 'spine'), field: 'spine', expand, allowedRoots: req.allowedRoots })] : []),
        ]);
        const failed = located.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
        if (failed.length > 1 && failed.every((e) => e instanceof NotFoundError)) {
          throw new NotFoundError(failed.map((e) => errorMessage(e)).join('; '), { problems: failed.map((e) => errorMessage(e)) });
        }
        if (failed.length > 0) throw failed[0] as Error;
        const files = await Promise.all(located.map((r, i) => exactParquetTimestamps((r as PromiseFulfilledResult<ResolvedFiles>).value, path.join(tmp, `exact-${i}`))));
        const prepared = views.map(({ view, index }, i) => preparedView(view, index, files[i]!));
        let spineFiles = typeof req.spine === 'string' ? files[views.length] : undefined;

        // Describe everything, then check everything: every problem is reported together.
        for (const p of prepared) await describeView(conn, p);
        const sniffedSpine = spineFiles ? await describe(conn, scanFiles(spineFiles), 'spine', spineFiles.location) : undefined;
        let spineColumns = sniffedSpine;
        if (spineFiles && sniffedSpine) {
          spineFiles = exactCsvTimestamps(spineFiles, sniffedSpine, [tsField]);
          if (spineFiles.nanosColumns) spineColumns = await describe(conn, scanFiles(spineFiles), 'spine', spineFiles.location);
        }
        checkSchemas(prepared, spineColumns, spineFiles?.location, tsField, rowColumn);

        // A spine file is read first, so that an empty one fails before any source is read.
        if (spineFiles) {
          await conn.run(`CREATE TEMP TABLE ${INTERNAL}spine_in AS SELECT * FROM ${scanFiles(spineFiles)}`);
          if (Number(await scalar(conn, `SELECT count(*) FROM ${INTERNAL}spine_in`)) === 0) throw new EmptyInputError(`spine ${spineFiles.location} has no rows`, { object: spineFiles.location });
        }
        for (const p of prepared) await loadView(conn, p);
        if (!spineFiles) await allEntitiesSpine(conn, prepared, (req.spine as AllEntitiesSpine).allEntitiesAsOf, tsField);

        const spineTypes = spineColumns ?? (await describe(conn, `${INTERNAL}spine_in`, 'spine', 'spine'));
        // rowid of a table filled by CREATE TABLE AS is the scan's row order (insertion order is preserved).
        // A CSV spine's timestamp, read at nanoseconds for the comparison, keeps its sniffed type in the output.
        const sniffedTs = sniffedSpine?.get(tsField);
        const keep = spineFiles?.nanosColumns?.includes(tsField) && sniffedTs !== undefined ? ` REPLACE (${castFromNanos(ident(tsField), sniffedTs)} AS ${ident(tsField)})` : '';
        await conn.run(
          `CREATE TEMP TABLE ${INTERNAL}spine AS SELECT *${keep}, rowid AS ${ident(ROW)}, ${epochNs(ident(tsField), spineTypes.get(tsField)!)} AS ${ident(TS)} FROM ${INTERNAL}spine_in`,
        );
        await conn.run(`DROP TABLE ${INTERNAL}spine_in`);
        const rows = Number(await scalar(conn, `SELECT count(*) FROM ${INTERNAL}spine`));
        if (rows === 0) {
          throw new EmptyInputError(`no entity has a row at or before ${(req.spine as AllEntitiesSpine).allEntitiesAsOf.toISOString()} in the views' sources`, { object: 'spine' });
        }

        await fs.mkdir(path.dirname(output), { recursive: true });
        const tmpOut = `${output}.tmp-${randomUUID()}`;
        try {
          await conn.run(`COPY (${joinSql(prepared, rowColumn)}) TO ${lit(tmpOut)} (FORMAT parquet, COMPRESSION zstd)`);
          const written = Number(await scalar(conn, `SELECT count(*) FROM read_parquet(${lit(tmpOut)})`));
          if (written !== rows) throw new Error(`internal error: wrote ${written} rows for a spine of ${rows}`);
          // Spine columns read as naive TIMESTAMP_NS (see exactParquetTimestamps) get their time zone back.
          const utc = new Set(spineFiles?.utcNanosColumns ?? []);
          if (utc.size > 0) await setAdjustedToUtc(tmpOut, (await nanosTimestampFlags(tmpOut)).filter((f) => utc.has(f.column)), true);
          const columns = [...(await describe(conn, `read_parquet(${lit(tmpOut)})`, 'output', output))].map(([name, type]) => ({ name, type }));
          await fs.rename(tmpOut, output);
          return { rows, output, columns };
        } finally {
          await fs.rm(tmpOut, { force: true });
        }
      },
      { threads: req.threads ?? os.availableParallelism() },
    );
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** Validate the request and every view spec; returns the parsed views. @throws InvalidInputError listing every problem. */
function checkRequest(req: HistoricalFeaturesRequest, tsField: string, rowColumn: string): { view: FeatureView; index: number }[] {
  const problems: string[] = [];
  let views: { view: FeatureView; index: number }[] = [];
  if (!Array.isArray(req.views) || req.views.length === 0) problems.push('views: at least one feature view is needed');
  else {
    const checked = checkFeatureViews(req.views);
    views = checked.views;
    problems.push(...checked.problems);
  }
  if (tsField === '') problems.push('entityTimestampField: must be a non-empty column name');
  if (rowColumn === '') problems.push('rowNumberColumn: must be a non-empty column name');
  if (typeof req.spine === 'string') {
    if (req.spine === '') problems.push('spine: must be a file location or {allEntitiesAsOf}');
  } else if (!(req.spine?.allEntitiesAsOf instanceof Date) || Number.isNaN(req.spine.allEntitiesAsOf.getTime())) {
    problems.push('spine.allEntitiesAsOf: must be a valid Date');
  } else if (views.length > 0) {
    const first = views[0]!;
    const want = [...first.view.entities].sort().join(', ');
    for (const { view, index } of views.slice(1)) {
      if ([...view.entities].sort().join(', ') !== want) {
        problems.push(`views[${index}].entities: {allEntitiesAsOf} needs views with the same entity columns; ${view.name} has [${view.entities.join(', ')}], ${first.view.name} has [${first.view.entities.join(', ')}]`);
      }
    }
    if (first.view.entities.includes(tsField)) problems.push(`entityTimestampField: ${tsField} is also an entity column`);
  }
  if (typeof req.output !== 'string' || req.output === '') problems.push('output: must be a local Parquet file path');
  else if (isRemote(req.output)) problems.push(`output: ${req.output} is not a local path (write locally, then upload)`);
  if (problems.length > 0) throw new InvalidInputError('invalid feature retrieval request', problems);
  return views;
}

async function describe(conn: DuckDBConnection, table: string, field: string, location: string): Promise<Map<string, string>> {
  try {
    const reader = await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${table}`);
    return new Map(reader.getRowObjectsJS().map((r) => [toText(r.column_name), toText(r.column_type)]));
  } catch (err) {
    throw new InvalidInputError(`cannot read ${field} ${location}: ${errorMessage(err)}`, [`${field}: ${errorMessage(err)}`], { object: location });
  }
}

/** Column problems of one view's source: missing columns, types that do not fit the dtypes, reserved names. */
function sourceProblems({ view, index, files, columns }: PreparedView): string[] {
  const problems: string[] = [];
  const where = `views[${index}] (${view.name}): source ${files.location}`;
  const need = (field: string, col: string, what: string, ok: (t: string) => boolean, wants: string) => {
    const t = columns.get(col);
    if (t === undefined) problems.push(`${where} has no ${what} column ${col} (${field})`);
    else if (!ok(t)) problems.push(`${where}: ${what} column ${col} is ${t}, needs ${wants} (${field})`);
  };
  view.entities.forEach((e, i) => need(`entities[${i}]`, e, 'entity', () => true, ''));
  need('timestampField', view.timestampField, 'timestamp', (t) => isTimestampType(t), 'DATE or TIMESTAMP');
  if (view.createdField !== undefined) need('createdField', view.createdField, 'created', (t) => isTimestampType(t) || ANY_INTEGER.test(t), 'DATE, TIMESTAMP or an integer type');
  view.features.forEach((f, i) => need(`features[${i}]`, f.name, 'feature', (t) => dtypeAccepts(f.dtype, t), `${ACCEPTS_TEXT[f.dtype]} for dtype ${f.dtype}`));
  for (const col of columns.keys()) if (col.startsWith(INTERNAL)) problems.push(`${where}: column name ${col} is reserved (prefix ${INTERNAL})`);
  return problems;
}

function sourceField(view: FeatureView, index: number): string {
  return view.source.type === 'file' ? `views[${index}].source.path` : `views[${index}].source`;
}

/**
 * Local files for a view's source: a file location resolved (and downloaded when remote), or a
 * PostgreSQL source exported to a typed CSV file (only rows inside `window`, when given).
 */
export function resolveViewSource(req: {
  view: FeatureView;
  index: number;
  dir: string;
  expand: (pattern: string) => Promise<string[]>;
  postgres: PostgresSourceSettings;
  allowedRoots?: readonly string[] | undefined;
  window?: EventTimeWindow | undefined;
}): Promise<ResolvedFiles> {
  const { view, index, dir } = req;
  return view.source.type === 'file'
    ? resolveFiles({ location: view.source.path, downloadDir: dir, field: sourceField(view, index), expand: req.expand, allowedRoots: req.allowedRoots })
    : exportPostgresSource(view, index, dir, req.postgres, req.window);
}

/** Files matching a glob pattern, listed by DuckDB (local paths; remote ones are downloaded first). */
function globExpander(conn: DuckDBConnection): (pattern: string) => Promise<string[]> {
  return async (pattern) => (await conn.runAndReadAll(`SELECT file FROM glob(${lit(pattern)})`)).getRowsJS().map((r) => toText(r[0]));
}

/**
 * A CSV file's timestamp columns among `compared` (sniffed as a TIMESTAMP type, which DuckDB
 * reads at microseconds) marked to be read as TIMESTAMP_NS, so the point-in-time comparison sees
 * every digit the file holds. Parquet sources and typed CSV (PostgreSQL exports, microseconds) need nothing.
 */
function exactCsvTimestamps(files: ResolvedFiles, columns: Map<string, string>, compared: readonly string[]): ResolvedFiles {
  if (files.format !== 'csv' || files.columnTypes) return files;
  const nanos = compared.filter((c) => /^TIMESTAMP/.test(columns.get(c) ?? '') && columns.get(c) !== 'TIMESTAMP_NS');
  return nanos.length === 0 ? files : { ...files, nanosColumns: nanos };
}

/** Describe a view's source (CSV timestamps it compares re-read at nanoseconds). */
async function describeView(conn: DuckDBConnection, p: PreparedView): Promise<void> {
  const field = sourceField(p.view, p.index);
  p.columns = await describe(conn, scanFiles(p.files), field, p.files.location);
  const exact = exactCsvTimestamps(p.files, p.columns, [p.view.timestampField, ...(p.view.createdField !== undefined ? [p.view.createdField] : [])]);
  if (exact !== p.files) {
    p.files = exact;
    p.columns = await describe(conn, scanFiles(p.files), field, p.files.location);
  }
}

/**
 * A TIMESTAMP_NS value (UTC) as `type`; a time-zone-aware type is built from epoch microseconds
 * so that the session's TimeZone setting plays no part.
 */
function castFromNanos(column: string, type: string): string {
  return type === 'TIMESTAMP WITH TIME ZONE' ? `(TIMESTAMPTZ '1970-01-01 00:00:00+00' + to_microseconds(epoch_us(${column})))` : `CAST(${column} AS ${type})`;
}

/** A view with its resolved files, before its columns are described. */
function preparedView(view: FeatureView, index: number, files: ResolvedFiles): PreparedView {
  return { index, view, files, columns: new Map(), table: `${INTERNAL}view_${index}`, ttlNs: view.ttl ? BigInt(durationSeconds(view.ttl)) * 1_000_000_000n : undefined };
}

/**
 * Resolve, describe and check one view's source, and read it into its narrow deduplicated
 * table (see loadView), for callers other than getHistoricalFeatures (materialisation).
 * Rows outside `window` (event time in (start, end]) are left out before the tie-break.
 * @returns the prepared view and the number of source rows read (non-null key and event time, inside the window)
 * @throws SchemaMismatchError every column problem of the source
 */
export async function readViewSource(
  conn: DuckDBConnection,
  req: { view: FeatureView; tmp: string; postgres: PostgresSourceSettings; allowedRoots?: readonly string[] | undefined; window?: EventTimeWindow | undefined },
): Promise<{ prepared: PreparedView; rowsRead: number }> {
  const { view, window } = req;
  const files = await resolveViewSource({ view, index: 0, dir: path.join(req.tmp, 'view-0'), expand: globExpander(conn), postgres: req.postgres, allowedRoots: req.allowedRoots, window });
  const prepared = preparedView(view, 0, await exactParquetTimestamps(files, path.join(req.tmp, 'exact-0')));
  await describeView(conn, prepared);
  const problems = sourceProblems(prepared);
  if (problems.length > 0) throw new SchemaMismatchError(`feature view ${view.name} does not fit its source`, problems, { object: files.location });
  const rowsRead = await loadView(conn, prepared, window);
  return { prepared, rowsRead };
}

/** Internal column names of a loaded view table: entity key i, event time (epoch ns). */
export const VIEW_TABLE_COLUMNS = { key, ts: TS } as const;

/** Every column problem of every source and of the spine. @throws SchemaMismatchError listing them all. */
function checkSchemas(views: PreparedView[], spine: Map<string, string> | undefined, spineLocation: string | undefined, tsField: string, rowColumn: string): void {
  const problems: string[] = [];
  const outputNames = new Map<string, string>();
  for (const p of views) {
    const { view, columns } = p;
    problems.push(...sourceProblems(p));
    for (const f of view.features) {
      const name = outputColumnName(view.name, f.name);
      const other = outputNames.get(name);
      if (other !== undefined) problems.push(`output column ${name} would come from both view ${other} and view ${view.name}; rename a view or a feature`);
      outputNames.set(name, view.name);
    }

    if (spine) {
      for (const e of view.entities) {
        const t = spine.get(e);
        const vt = columns.get(e);
        if (t === undefined) problems.push(`spine ${spineLocation} has no entity column ${e} (view ${view.name} joins on it)`);
        else if (vt !== undefined && !entityTypesJoin(t, vt)) problems.push(`entity column ${e} is ${t} in the spine but ${vt} in view ${view.name}: cast one side so that both are integers or both VARCHAR`);
      }
    }
  }
  if (!spine) {
    // {allEntitiesAsOf}: the spine's key columns come from the sources, so their types must agree across views.
    const first = views[0];
    for (const v of views.slice(1)) {
      for (const e of v.view.entities) {
        const a = first?.columns.get(e);
        const b = v.columns.get(e);
        if (a !== undefined && b !== undefined && !entityTypesJoin(a, b)) problems.push(`entity column ${e} is ${a} in view ${first!.view.name} but ${b} in view ${v.view.name}`);
      }
    }
  } else {
    const t = spine.get(tsField);
    if (t === undefined) problems.push(`spine ${spineLocation} has no timestamp column ${tsField} (entityTimestampField)`);
    else if (!isTimestampType(t)) problems.push(`spine ${spineLocation}: timestamp column ${tsField} is ${t}, needs DATE or TIMESTAMP`);
    for (const col of spine.keys()) {
      if (col.startsWith(INTERNAL)) problems.push(`spine ${spineLocation}: column name ${col} is reserved (prefix ${INTERNAL})`);
      const view = outputNames.get(col);
      if (view !== undefined) problems.push(`spine ${spineLocation} already has a column ${col}, which view ${view} would add`);
      if (col === rowColumn) problems.push(`spine ${spineLocation} already has a column ${col}; pass another rowNumberColumn`);
    }
  }
  if (outputNames.has(rowColumn)) problems.push(`rowNumberColumn ${rowColumn} is also the output column of view ${outputNames.get(rowColumn)}`);
  if (problems.length > 0) throw new SchemaMismatchError('feature views do not fit their sources or the spine', problems, { object: spineLocation ?? 'spine' });
}

/**
 * Read a view's source into a narrow table (keys, event time in ns, features cast to their
 * dtypes), skipping rows with a null key or event time (and, with a window, rows outside
 * (start, end]), and keep one row per (keys, event time): the greatest created value (nulls
 * lowest), then the latest row in source order. Returns the number of source rows read.
 */
async function loadView(conn: DuckDBConnection, p: PreparedView, window?: EventTimeWindow): Promise<number> {
  const { view } = p;
  const raw = `${p.table}_raw`;
  const keys = view.entities.map((e, i) => `${ident(e)} AS ${ident(key(i))}`);
  const feats = view.features.map((f) => `CAST(${ident(f.name)} AS ${DUCKDB_TYPE_OF[f.dtype]}) AS ${ident(outputColumnName(view.name, f.name))}`);
  const created = view.createdField !== undefined ? [`${ident(view.createdField)} AS ${ident(CREATED)}`] : [];
  const tsNs = epochNs(ident(view.timestampField), p.columns.get(view.timestampField)!);
  const conditions = [...view.entities, view.timestampField].map((c) => `${ident(c)} IS NOT NULL`);
  if (window?.start) conditions.push(`${tsNs} > ${BigInt(window.start.getTime()) * 1_000_000n}`);
  if (window) conditions.push(`${tsNs} <= ${BigInt(window.end.getTime()) * 1_000_000n}`);
  try {
    await conn.run(
      `CREATE TEMP TABLE ${raw} AS
         SELECT ${[...keys, `${tsNs} AS ${ident(TS)}`, ...created, ...feats].join(', ')}
         FROM ${scanFiles(p.files)} WHERE ${conditions.join(' AND ')}`,
    );
  } catch (err) {
    // A value that does not convert (a CSV cell, an out-of-range cast) is bad data, not a transient fault.
    if (/Conversion Error|Invalid Input Error|Out of Range Error/i.test(errorMessage(err))) {
      const detail = errorMessage(err).split('\n').filter((l) => l.trim() !== '').slice(0, 2).join(' ').slice(0, 500);
      throw new SchemaMismatchError(`feature view ${view.name}: cannot read source ${p.files.location}`, [`views[${p.index}] (${view.name}): ${detail}`], { object: p.files.location });
    }
    throw err;
  }
  const partition = [...view.entities.map((_, i) => ident(key(i))), ident(TS)].join(', ');
  const order = [...(view.createdField !== undefined ? [`${ident(CREATED)} DESC NULLS LAST`] : []), 'rowid DESC'].join(', ');
  await conn.run(
    `CREATE TEMP TABLE ${p.table} AS
       SELECT * ${view.createdField !== undefined ? `EXCLUDE (${ident(CREATED)})` : ''} FROM ${raw}
       QUALIFY row_number() OVER (PARTITION BY ${partition} ORDER BY ${order}) = 1`,
  );
  const rowsRead = Number(await scalar(conn, `SELECT count(*) FROM ${raw}`));
  await conn.run(`DROP TABLE ${raw}`);
  return rowsRead;
}

/**
 * The spine for {allEntitiesAsOf}: distinct keys with a row at or before `asOf` in any view, sorted, with `asOf` as timestamp.
 * (DISTINCT explicitly: with one view there is no UNION to remove duplicate keys.)
 */
async function allEntitiesSpine(conn: DuckDBConnection, views: PreparedView[], asOf: Date, tsField: string): Promise<void> {
  const entities = views[0]!.view.entities;
  const asOfNs = BigInt(asOf.getTime()) * 1_000_000n;
  const selects = views.map(({ view, table }) => {
    const cols = entities.map((e) => `${ident(key(view.entities.indexOf(e)))} AS ${ident(e)}`);
    return `SELECT ${cols.join(', ')} FROM ${table} WHERE ${ident(TS)} <= ${asOfNs}`;
  });
  await conn.run(
    `CREATE TEMP TABLE ${INTERNAL}spine_in AS
       SELECT *, TIMESTAMPTZ ${lit(asOf.toISOString())} AS ${ident(tsField)} FROM (SELECT DISTINCT * FROM (${selects.join(' UNION ')})) ORDER BY ALL`,
  );
}

/** The point-in-time join: spine columns, each view's features (nulled outside the TTL), the spine row number; in spine order. */
function joinSql(views: PreparedView[], rowColumn: string): string {
  const select = [`s.* EXCLUDE (${ident(ROW)}, ${ident(TS)})`];
  const joins: string[] = [];
  views.forEach(({ view, table, ttlNs }, i) => {
    const alias = `v${i}`;
    const on = [...view.entities.map((e, k) => `s.${ident(e)} = ${alias}.${ident(key(k))}`), `s.${ident(TS)} >= ${alias}.${ident(TS)}`].join(' AND ');
    joins.push(`ASOF LEFT JOIN ${table} ${alias} ON ${on}`);
    // The ASOF join already picks the latest row at or before the spine time; the condition
    // repeats that bound (a spine row with a null timestamp must get nothing: DuckDB's ASOF
    // join matches it with the latest row) and applies the TTL.
    const vts = `${alias}.${ident(TS)}`;
    const sts = `s.${ident(TS)}`;
    const within = [`${vts} <= ${sts}`, ...(ttlNs === undefined ? [] : [`${vts} >= ${sts} - ${ttlNs}`])].join(' AND ');
    for (const f of view.features) {
      const col = ident(outputColumnName(view.name, f.name));
      select.push(`CASE WHEN ${within} THEN ${alias}.${col} END AS ${col}`);
    }
  });
  select.push(`s.${ident(ROW)} AS ${ident(rowColumn)}`);
  return `SELECT ${select.join(', ')} FROM ${INTERNAL}spine s ${joins.join(' ')} ORDER BY s.${ident(ROW)}`;
}
