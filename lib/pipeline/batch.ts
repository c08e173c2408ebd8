/**
 * The batch data path, independent of Temporal: stage a feature snapshot, plan shards over
 * it, predict one shard into a staged Parquet part. Rows move through files; callers pass
 * paths and row ranges.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { EmptyInputError, InvalidInputError, InvalidValueError, SchemaMismatchError } from '../errors';
import { readColumns, readMatrices, RowCountError, RowOrderError, selectAs, selectColumn, withAppendedTable, type ColumnKind } from '../io/columns';
import { assertReadable, describeColumns, formatOf, ident, isNumericType, lit, scalar, scanOf, toText, withSharedDuckDB, type ColumnInfo } from '../io/duckdb';
import type { ModelManifest, ResolvedModel } from '../registry/manifest';
import { checkFinite, inputColumns, nonFiniteValues, type FeatureBlock } from '../runtime/predict';
import { LINEAGE_COLUMNS, POST_PROCESS_LINEAGE_COLUMNS, type LineageColumn, type PartFormat } from '../sinks/types';
import { outputSql } from './output-sql';
import type { OutputColumns } from './outputs';
import { baseColumns, type PostProcessingId } from './post-process';
import { checkSourceColumns, planAssembly, type AssemblyPlan, type RawBatch } from './assemble';
import type { Pipeline } from './pipeline';
import { isExternalFeature, lookupStatusColumn } from '../features/external';
import { explainMissing, type OnDemandResult } from '../features/on-demand';

export const ROW_COLUMN = '__inferflow_row';

export interface ShardDescriptor {
  index: number;
  /** First row (inclusive) and last row (exclusive) in the snapshot. */
  start: number;
  end: number;
}

/**
 * Size and modification time of a Parquet input that shards read in place (no snapshot copy);
 * every shard checks it, so a file replaced mid-run fails the run instead of mixing data.
 */
export interface InputFingerprint {
  size: number;
  mtimeMs: number;
}

export interface PlannedBatch {
  rowsIn: number;
  /** What shards read: the staged snapshot, or the Parquet input itself when `inPlace` is set. */
  snapshotPath: string;
  inPlace?: InputFingerprint;
  idColumn: string | null;
  shards: ShardDescriptor[];
}

export interface Lineage {
  runId: string;
  model: ResolvedModel;
  /** ISO 8601 as-of time of the run. */
  asOf: string;
}

/** Lineage values as they appear in every output row. */
export interface LineageValues {
  modelName: string;
  modelVersion: number;
  modelSha256: string;
  asOf: string;
  runId: string;
}

function lineageValues(l: Lineage): LineageValues {
  return { modelName: l.model.name, modelVersion: l.model.version, modelSha256: l.model.sha256, asOf: l.asOf, runId: l.runId };
}

/** A string constant typed as a one-value ENUM (see `lineageSelect`). */
function enumConstant(value: string): string {
  return `${lit(value)}::ENUM(${lit(value)})`;
}

/**
 * The lineage columns of an output row (model_name, model_version, model_sha256, as_of, run_id)
 * as SQL select items. Every value is the same in every row: the strings are typed as one-value
 * ENUMs, which DuckDB's Parquet writer writes from the enum's dictionary instead of hashing each
 * row's copy of the string (about 0.1 s of CPU per 1M rows). The
 * files hold plain UTF-8 string columns either way; readers see VARCHAR / string.
 */
export function lineageSelect(l: LineageValues, post?: PostProcessingId): string {
  const value: Record<LineageColumn, string> = {
    model_name: enumConstant(l.modelName),
    model_version: `${l.modelVersion}::INTEGER`,
    model_sha256: enumConstant(l.modelSha256),
    as_of: `${lit(l.asOf)}::TIMESTAMPTZ`,
    run_id: enumConstant(l.runId),
  };
  const items = LINEAGE_COLUMNS.map((c) => `${value[c]} AS ${c}`);
  if (post) {
    const [steps, sha256] = POST_PROCESS_LINEAGE_COLUMNS;
    items.push(`${enumConstant(post.steps)} AS ${steps}`, `${enumConstant(post.sha256)} AS ${sha256}`);
  }
  return items.join(', ');
}

/** Check that a file has every column the model needs, with numeric types. Lists every problem. */
export function checkColumns(columns: ColumnInfo[], manifest: ModelManifest, idColumn: string | null, object: string): void {
  const byName = new Map(columns.map((c) => [c.name, c]));
  const problems: string[] = [];
  for (const input of inputColumns(manifest)) {
    for (const col of input.columns) {
      const c = byName.get(col);
      if (!c) problems.push(`column ${col} is missing (model ${manifest.name}:${manifest.version} input ${input.name} needs it)`);
      else if (!isNumericType(c.type)) problems.push(`column ${col} is ${c.type}, model input ${input.name} needs a number`);
    }
  }
  if (idColumn !== null && !byName.has(idColumn)) problems.push(`id column ${idColumn} is missing`);
  if (problems.length > 0) {
    throw new SchemaMismatchError(`feature file ${object} does not fit model ${manifest.name}:${manifest.version}`, problems, {
      object,
      available: columns.map((c) => `${c.name} ${c.type}`),
    });
  }
}

export function planShards(rows: number, shardSize: number): ShardDescriptor[] {
  const shards: ShardDescriptor[] = [];
  for (let start = 0, index = 0; start < rows; start += shardSize, index++) shards.push({ index, start, end: Math.min(rows, start + shardSize) });
  return shards;
}

interface RowSource {
  /** Table expression reading the snapshot. */
  from: string;
  /** Expression of a row's number in the snapshot. */
  row: string;
}

/** How shards address rows: the snapshot's row column, or Parquet's own file_row_number. */
function rowSource(snapshotPath: string, inPlace: InputFingerprint | undefined): RowSource {
  return inPlace
    ? { from: `read_parquet(${lit(snapshotPath)}, file_row_number = true)`, row: 'file_row_number' }
    : { from: `read_parquet(${lit(snapshotPath)})`, row: ident(ROW_COLUMN) };
}

/** `FROM … WHERE …` selecting the rows of one shard (no ORDER BY: callers read through inRowOrder). */
function shardRows(src: RowSource, shard: ShardDescriptor): string {
  return `FROM ${src.from} WHERE ${src.row} >= ${shard.start} AND ${src.row} < ${shard.end}`;
}

async function fingerprintOf(filePath: string): Promise<InputFingerprint> {
  const st = await fs.stat(filePath);
  return { size: st.size, mtimeMs: st.mtimeMs };
}

/** True when `filePath` still has the planned size and modification time. */
export async function sameFingerprint(filePath: string, expected: InputFingerprint): Promise<boolean> {
  const now = await fingerprintOf(filePath).catch(() => undefined);
  return now !== undefined && now.size === expected.size && now.mtimeMs === expected.mtimeMs;
}

/** Shards reading an input in place refuse a file that changed since planning. */
export async function checkInPlace(filePath: string, expected: InputFingerprint | undefined): Promise<void> {
  if (!expected) return;
  if (!(await sameFingerprint(filePath, expected))) {
    throw new InvalidInputError(`feature file ${filePath} changed or disappeared during the run`, ['the input must not change while a run reads it; start a new run'], { object: filePath });
  }
}

/** Rows named in an error about null ids. */
const NULL_ID_ROWS_SHOWN = 5;

/**
 * @throws InvalidValueError naming the id column, how many rows have no id and the first of them
 * (0-based row numbers of the input), when a sink that keys rows by id would get a null one.
 */
async function checkIdsPresent(conn: DuckDBConnection, from: string, rowNumber: string, idColumn: string, object: string): Promise<void> {
  const r = await conn.runAndReadAll(`SELECT ${rowNumber} AS r, count(*) OVER () AS n FROM ${from} WHERE ${ident(idColumn)} IS NULL ORDER BY r LIMIT ${NULL_ID_ROWS_SHOWN}`);
  const rows = r.getRowsJS();
  if (rows.length === 0) return;
  const count = Number(rows[0]![1]);
  const first = rows.map((row) => Number(row[0]));
  throw new InvalidValueError(`id column ${idColumn} is null in ${count} row(s) of ${object} (first: row ${first.join(', ')}; rows counted from 0): the sink stores predictions by id`, {
    object,
    column: idColumn,
    nullRows: count,
    rows: first,
  });
}

/**
 * Validate the feature file against the model and decide what shards read. A local Parquet
 * file is read in place (by file_row_number, guarded by its size and mtime): copying it cost
 * a third of the raw baseline's time in the benchmark. Other inputs (CSV) are staged once as an
 * immutable Parquet snapshot with a row number column. Re-running overwrites the same snapshot.
 */
export async function stageSnapshot(args: {
  featuresPath: string;
  snapshotPath: string;
  manifest: ModelManifest;
  idColumn: string | null;
  shardSize: number;
  /** How raw columns become model inputs (on-demand features, transforms). Default: planned from the manifest alone. */
  plan?: AssemblyPlan;
  /** Whether the run's sink keys rows by this id column (RunSink.needsIds): then a null id fails the plan. */
  needsIds?: (idColumn: string) => boolean;
}): Promise<PlannedBatch> {
  const { featuresPath, snapshotPath, manifest, shardSize } = args;
  await assertReadable(featuresPath);
  const plan = args.plan ?? planAssembly(manifest);
  // The process's shared instance: a new one costs ~10 ms, a quarter of a warm plan step.
  return withSharedDuckDB(async (conn) => {
    const columns = await describeColumns(conn, featuresPath);
    const idColumn = args.idColumn ?? (manifest.metadata.id_column && columns.some((c) => c.name === manifest.metadata.id_column) ? manifest.metadata.id_column : null);
    if (plan.direct) checkColumns(columns, manifest, idColumn, featuresPath);
    else checkSourceColumns(plan, columns, `feature file ${featuresPath}`, `model ${manifest.name}:${manifest.version}`, idColumn);
    const idsNeeded = idColumn !== null && (args.needsIds?.(idColumn) ?? false);
    if (formatOf(featuresPath) === 'parquet') {
      const inPlace = await fingerprintOf(featuresPath);
      const rowsIn = Number(await scalar(conn, `SELECT count(*) FROM read_parquet(${lit(featuresPath)})`));
      if (rowsIn === 0) throw new EmptyInputError(`feature file ${featuresPath} has no rows`, { object: featuresPath });
      if (idsNeeded) await checkIdsPresent(conn, `read_parquet(${lit(featuresPath)}, file_row_number = true)`, 'file_row_number', idColumn, featuresPath);
      return { rowsIn, snapshotPath: featuresPath, inPlace, idColumn, shards: planShards(rowsIn, shardSize) };
    }
    await fs.mkdir(path.dirname(snapshotPath), { recursive: true });
    const tmp = `${snapshotPath}.tmp-${randomUUID()}.parquet`;
    try {
      await conn.run(
        `COPY (SELECT *, (row_number() OVER () - 1)::BIGINT AS ${ident(ROW_COLUMN)} FROM ${scanOf(featuresPath)})
         TO ${lit(tmp)} (FORMAT parquet, ROW_GROUP_SIZE 16384, COMPRESSION zstd)`,
      );
      const rowsIn = Number(await scalar(conn, `SELECT count(*) FROM read_parquet(${lit(tmp)})`));
      if (rowsIn === 0) throw new EmptyInputError(`feature file ${featuresPath} has no rows`, { object: featuresPath });
      if (idsNeeded) await checkIdsPresent(conn, `read_parquet(${lit(tmp)})`, ident(ROW_COLUMN), idColumn, featuresPath);
      await fs.rename(tmp, snapshotPath);
      return { rowsIn, snapshotPath, idColumn, shards: planShards(rowsIn, shardSize) };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  });
}

/**
 * Run a shard query without ORDER BY: DuckDB keeps a scan's file order, and the readers check
 * the row column, so sorting is skipped. A result that does arrive out of order is read again sorted.
 */
async function inRowOrder<T>(read: (orderBy: string) => Promise<T>): Promise<T> {
  try {
    return await read('');
  } catch (err) {
    if (err instanceof RowOrderError) return read(' ORDER BY 1');
    throw err;
  }
}

function readFailure(snapshotPath: string, shard: ShardDescriptor, err: unknown): unknown {
  // A row count that does not add up means the snapshot is not what was planned.
  if (err instanceof RowCountError) return new SchemaMismatchError(`snapshot ${snapshotPath} is inconsistent`, [`shard ${shard.index}: ${err.message}`]);
  return err;
}

/**
 * Read a shard's feature columns into row-major float32 matrices (one per model input), copied
 * out of DuckDB's vectors as typed arrays (lib/io/columns.ts). Row ids are not read here
 * (turning them into JS strings costs as much as the features): they are looked up only for
 * rows named in an error (`labelRows`).
 */
export async function readShard(conn: DuckDBConnection, snapshotPath: string, shard: ShardDescriptor, manifest: ModelManifest, inPlace?: InputFingerprint): Promise<FeatureBlock> {
  const src = rowSource(snapshotPath, inPlace);
  const inputs = inputColumns(manifest);
  const all = inputs.flatMap((i) => i.columns);
  const select = [`CAST(${src.row} AS DOUBLE)`, ...all.map((c) => selectColumn(c, 'float32'))].join(', ');
  const rows = shard.end - shard.start;
  const matrices = await inRowOrder((orderBy) =>
    readMatrices(conn, `SELECT ${select} ${shardRows(src, shard)}${orderBy}`, inputs.map((i) => i.columns.length), rows, {
      rowColumn: { index: 0, firstRow: shard.start },
    }),
  ).catch((err: unknown) => {
    throw readFailure(snapshotPath, shard, err);
  });
  const data: Record<string, Float32Array> = Object.fromEntries(inputs.map((i, g) => [i.name, matrices[g]!]));
  return { rows, inputs: data, rowLabel: (i) => `row ${shard.start + i}` };
}

type SourceKind = AssemblyPlan['sourceColumns'][number]['kind'];

/** How a raw column of a plan kind is read: strings as text, numbers and instants as float64. */
function readKindOf(kind: SourceKind): ColumnKind {
  return kind === 'string' ? 'string' : 'float64';
}

/** SQL reading a raw column as its plan kind (instants as epoch milliseconds, naive timestamps as UTC). */
function rawSelect(name: string, kind: SourceKind): string {
  return kind === 'timestamp' ? selectAs(`epoch_ms(${ident(name)})`, 'float64') : selectColumn(name, readKindOf(kind));
}

/**
 * Read a shard's raw columns (numbers, strings, instants) and assemble the model inputs through
 * the pipeline's `onDemand` and `transform` steps. Errors name rows by `idColumn=value` when an id
 * column is known (read as text here: this path needs labels for whatever a step rejects).
 */
export async function readShardAssembled(
  conn: DuckDBConnection,
  snapshotPath: string,
  shard: ShardDescriptor,
  pipeline: ShardPipeline,
  idColumn: string | null,
  inPlace?: InputFingerprint,
): Promise<ShardBlock> {
  const src = rowSource(snapshotPath, inPlace);
  const cols = pipeline.plan.sourceColumns;
  const kinds: ColumnKind[] = [...(idColumn ? (['string'] as const) : []), ...cols.map((c) => readKindOf(c.kind))];
  const select = [`CAST(${src.row} AS DOUBLE)`, ...(idColumn ? [selectColumn(idColumn, 'string')] : []), ...cols.map((c) => rawSelect(c.name, c.kind))].join(', ');
  const rows = shard.end - shard.start;
  const read = await inRowOrder((orderBy) =>
    readColumns(conn, `SELECT ${select} ${shardRows(src, shard)}${orderBy}`, kinds, rows, { rowColumn: { index: 0, firstRow: shard.start } }),
  ).catch((err: unknown) => {
    throw readFailure(snapshotPath, shard, err);
  });
  const ids = idColumn ? (read.shift() as (string | null)[]) : [];
  const batch: RawBatch = Object.fromEntries(cols.map((c, j) => [c.name, read[j] as Float64Array | (string | null)[]]));
  const rowLabel = (i: number) => (idColumn ? `${idColumn}=${ids[i] ?? 'null'}` : `row ${shard.start + i}`);
  if (!pipeline.plan.onDemand.some(isExternalFeature)) return pipeline.transform(pipeline.onDemand(batch, rows, rowLabel), rows, rowLabel);
  const d = await pipeline.onDemandAsync(batch, rows, rowLabel);
  return { ...pipeline.transform(d.columns, rows, rowLabel), missing: d.missing, explain: (err) => explainMissing(err, d, rowLabel), lookupStatus: lookupStatusColumns(pipeline.plan, d, rows) };
}

/**
 * Per external-API feature, its lookup's status in every row as a string output column
 * (`<feature>_status`, lookupStatusColumn): a row whose lookup failed and whose value the model
 * imputed says so in the output, not only in the worker's log.
 */
function lookupStatusColumns(plan: AssemblyPlan, result: OnDemandResult, rows: number): OutputColumns {
  const columns: OutputColumns = new Map();
  for (const f of plan.onDemand) {
    if (!isExternalFeature(f)) continue;
    // Every output of a feature comes from one lookup: the first output's status is the lookup's.
    const output = Object.keys(f.outputs)[0]!;
    columns.set(lookupStatusColumn(f), { kind: 'string', values: Array.from({ length: rows }, (_, i) => result.statuses[i]![output] ?? 'NULL') });
  }
  return columns;
}

/** A shard's assembled block, with what the external-API features add: their failures explained, their statuses as output columns. */
type ShardBlock = FeatureBlock & { explain?: (err: unknown) => unknown; lookupStatus?: OutputColumns };

/** `idColumn=value` labels for a few snapshot rows (for error messages). */
export async function labelRows(conn: DuckDBConnection, snapshotPath: string, rows: number[], idColumn: string, inPlace?: InputFingerprint): Promise<Map<number, string>> {
  if (rows.length === 0) return new Map();
  const src = rowSource(snapshotPath, inPlace);
  const r = await conn.runAndReadAll(
    `SELECT ${src.row}, ${selectColumn(idColumn, 'string')} FROM ${src.from} WHERE ${src.row} IN (${rows.join(', ')})`,
  );
  return new Map(r.getRowsJS().map(([row, id]) => [Number(row), `${idColumn}=${id === null ? 'null' : toText(id)}`]));
}

export interface ShardResult {
  index: number;
  rows: number;
  partPath: string;
}

/**
 * Predict the rows of `shard` (a row range) into one Parquet file at `partPath` (written to a
 * temporary name and renamed, so a file is whole or absent). Output columns: the id column
 * (original type), `label` and `score` (classification) or `prediction` (regression), then
 * lineage (model name, version, sha256, as-of time, run id).
 */
/**
 * The steps a shard runs, from the opened pipeline (pipeline.ts): its model context, then
 * `onDemand` → `transform` → `predict` (post-processing inside predict), as online requests do.
 */
export type ShardPipeline = Pick<Pipeline, 'manifest' | 'plan' | 'onDemand' | 'onDemandAsync' | 'transform' | 'predict'>;

/** What predicting a row range needs; rows travel through files, never through the caller. */
export interface PredictRangeArgs {
  /** The opened pipeline (openPipeline with a session). */
  pipeline: ShardPipeline;
  snapshotPath: string;
  /** Set when shards read the Parquet input in place (see stageSnapshot). */
  inPlace?: InputFingerprint;
  idColumn: string | null;
  shard: ShardDescriptor;
  partPath: string;
  lineage: Lineage;
  chunkRows?: number;
  onProgress?: (rowsDone: number) => void;
  /** The sink's own part format (PostgreSQL: CSV for COPY); default a zstd Parquet part. */
  partFormat?: PartFormat;
}

async function predictRange(args: PredictRangeArgs): Promise<ShardResult> {
  const { pipeline, shard, lineage } = args;
  const { manifest } = pipeline;
  return withSharedDuckDB(async (conn) => {
    await checkInPlace(args.snapshotPath, args.inPlace);
    const src = rowSource(args.snapshotPath, args.inPlace);
    const assembled = !pipeline.plan.direct;
    const block: ShardBlock = assembled
      ? await readShardAssembled(conn, args.snapshotPath, shard, pipeline, args.idColumn, args.inPlace)
      : await readShard(conn, args.snapshotPath, shard, manifest, args.inPlace);
    const options = {
      ...(args.chunkRows !== undefined ? { chunkRows: args.chunkRows } : {}),
      ...(args.onProgress ? { onChunk: args.onProgress } : {}),
    };
    const preds = await pipeline.predict(block, options).catch(async (err: unknown) => {
      // predict() rejects NaN/±Infinity before computing anything. The direct path reads no ids:
      // look up the offending rows' ids now (error path only) and reject them by id.
      if (block.explain) throw block.explain(err);
      const idOf = !assembled && args.idColumn && err instanceof InvalidValueError;
      const stepRows = idOf && Array.isArray(err.details.rows) ? (err.details.rows as number[]) : [];
      if (stepRows.length > 0) {
        // A post-processing step refused rows (by position): predict again with their ids as labels, to fail naming them.
        const labels = await labelRows(conn, args.snapshotPath, stepRows.map((r) => shard.start + r), args.idColumn!, args.inPlace);
        block.rowLabel = (i) => labels.get(shard.start + i) ?? `row ${shard.start + i}`;
        await pipeline.predict(block, { ...(args.chunkRows !== undefined ? { chunkRows: args.chunkRows } : {}) });
        throw err;
      }
      const bad = idOf ? nonFiniteValues(manifest, block) : [];
      if (bad.length === 0) throw err;
      const labels = await labelRows(conn, args.snapshotPath, bad.map((b) => shard.start + b.row), args.idColumn!, args.inPlace);
      block.rowLabel = (i) => labels.get(shard.start + i) ?? `row ${shard.start + i}`;
      checkFinite(manifest, block);
      throw err;
    });
    if (preds.rows !== shard.end - shard.start) throw new SchemaMismatchError('predictions do not cover the shard', [`shard ${shard.index}: ${shard.end - shard.start} rows, ${preds.rows} predictions`]);
    // Predictions go into DuckDB by DataChunks (row i of the temp table = row shard.start + i)
    // and come out next to the ids by position; the CASE proves every row lines up.
    const { append: columns, items } = outputSql(new Map([...baseColumns(preds), ...(block.lookupStatus ?? [])]));
    const aligned = (expr: string) => (args.idColumn ? `CASE WHEN s.__inferflow_r = p.rowid + ${shard.start} THEN ${expr} ELSE error('prediction rows out of line with shard ${shard.index}') END` : expr);
    const outCols = items.map((c, j) => `${j === 0 ? aligned(c.expr) : c.expr} AS ${ident(c.name)}`).join(', ');
    await fs.mkdir(path.dirname(args.partPath), { recursive: true });
    const tmp = `${args.partPath}.tmp-${randomUUID()}`;
    const lineageItems = lineageSelect(lineageValues(lineage), preds.postProcessing);
    try {
      await withAppendedTable(conn, columns, async (predTable) => {
        const select = `SELECT ${args.idColumn ? `s.${ident(args.idColumn)}, ` : ''}${outCols}, ${lineageItems}
             FROM ${
               args.idColumn
                 ? `(SELECT ${src.row} AS __inferflow_r, ${ident(args.idColumn)} ${shardRows(src, shard)}) s POSITIONAL JOIN ${predTable} p`
                 : `${predTable} p ORDER BY p.rowid`
             }`;
        if (args.partFormat) await args.partFormat.write(conn, { select, lineage: lineageItems, path: tmp, finalPath: args.partPath, shardIndex: shard.index, rows: preds.rows });
        else await conn.run(`COPY (${select}) TO ${lit(tmp)} (FORMAT parquet, COMPRESSION zstd)`);
      });
      await fs.rename(tmp, args.partPath);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    return { index: shard.index, rows: preds.rows, partPath: args.partPath };
  });
}

/**
 * Rows per resumable segment of a shard: shards up to this size (the default shard size included)
 * are written in one piece. Larger shards pay for their resumability with a merge that reads and
 * writes their output again: at 65,536 this merge made 122,880- and 250,000-row shards slower
 * than 50,000-row ones (docs/decisions/0003-default-shard-size.md).
 */
export const DEFAULT_SEGMENT_ROWS = 262_144;

/**
 * Predict one shard and write its staged output part (overwriting any earlier attempt, so a
 * retried shard leaves exactly one part). Shards larger than `segmentRows` are predicted in
 * segments, each written to its own file and reported through `onSegment`; a retry that
 * passes `resumeFromSegment` (from the last heartbeat) skips the segments already on disk,
 * then the segments are merged into the part.
 */
export async function predictShard(
  args: PredictRangeArgs & {
    segmentRows?: number;
    resumeFromSegment?: number;
    onSegment?: (segmentsDone: number, segmentsTotal: number) => void;
  },
): Promise<ShardResult & { segmentsComputed: number }> {
  const { shard } = args;
  const segmentRows = Math.max(1, args.segmentRows ?? DEFAULT_SEGMENT_ROWS);
  const total = Math.max(1, Math.ceil((shard.end - shard.start) / segmentRows));
  if (total === 1) {
    const r = await predictRange(args);
    args.onSegment?.(1, 1);
    return { ...r, segmentsComputed: 1 };
  }
  const segPath = (i: number) => `${args.partPath}.seg-${String(i).padStart(4, '0')}`;
  // Resume only from segments that are really there (a heartbeat may be ahead of a lost write).
  let first = 0;
  while (first < Math.min(args.resumeFromSegment ?? 0, total) && (await fs.stat(segPath(first)).catch(() => undefined))) first++;
  let computed = 0;
  for (let i = first; i < total; i++) {
    const start = shard.start + i * segmentRows;
    const segment = { index: shard.index, start, end: Math.min(shard.end, start + segmentRows) };
    await predictRange({ ...args, shard: segment, partPath: segPath(i), onProgress: (n) => args.onProgress?.(start - shard.start + n) });
    computed++;
    args.onSegment?.(i + 1, total);
  }
  const segs = Array.from({ length: total }, (_, i) => segPath(i));
  const tmp = `${args.partPath}.tmp-${randomUUID()}`;
  try {
    if (args.partFormat) await args.partFormat.merge(segs, tmp, args.partPath);
    else await withSharedDuckDB((conn) => conn.run(`COPY (SELECT * FROM read_parquet([${segs.map(lit).join(', ')}])) TO ${lit(tmp)} (FORMAT parquet, COMPRESSION zstd)`));
    await fs.rename(tmp, args.partPath);
  } finally {
    await fs.rm(tmp, { force: true });
  }
  await Promise.all(segs.map((p) => fs.rm(p, { force: true })));
  return { index: shard.index, rows: shard.end - shard.start, partPath: args.partPath, segmentsComputed: computed };
}
