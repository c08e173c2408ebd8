/**
 * Ranking / recommendation: score every candidate (entity × item pair, e.g. user × song) with a
 * pipeline's steps — on-demand (external-API features included), transforms, predict — and keep
 * the top k items per entity, each with its score: one row per entity with an ordered list (the
 * "weekly playlist").
 *
 *   const pipeline = await openPipeline({ model }, resources);
 *   const lists = await rankCandidates(pipeline, { candidates: 'examples/data/playlist_candidates.parquet',
 *     entityColumn: 'user_id', itemColumn: 'song_id', k: 10 });
 *   // [{ entity: '100001', items: ['song-0412', …], scores: [0.91, …] }, …]
 *   const [mine] = await rankCandidates(pipeline, { …, entity: 100001 });   // one user
 *   // Online: the candidates read once per served version, then one user's rows scored per request.
 *   const set = await loadCandidates(pipeline, { path, object: path }, { entityColumn: 'user_id', itemColumn: 'song_id' });
 *   const list = await rankLoaded(pipeline, set, 10, 100001);
 *
 * Order: score descending, ties by item id ascending (the same rule as the Python reference,
 * examples/train/train_recommender.py). A pair given twice is a typed error naming the source and
 * the pair, before anything is scored.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { EmptyInputError, InvalidInputError, SchemaMismatchError } from '../errors';
import { MAX_TOP_K, type RankingSpec } from '../messages/batch';
import type { PartFormat } from '../sinks/types';
import { lineageSelect, type Lineage, type ShardDescriptor } from './batch';
import { readColumns, selectAs, selectColumn, type ColumnKind } from '../io/columns';
import { checkSourceColumns } from './assemble';
import { describeColumns, ident, isIntegerType, lit, scalar, scanOf, toText, withSharedDuckDB } from '../io/duckdb';
import type { RawBatch } from './assemble';
import type { Pipeline } from './pipeline';
import { RANKING_OUTPUT_COLUMNS } from './outputs';

export { MAX_TOP_K };

export interface RankArgs {
  /** A Parquet or CSV file of candidate pairs with the columns the model needs. */
  candidates: string;
  /** How messages name the source (default: the file; `postgres table …` for an export). */
  object?: string;
  /** The column naming the entity a list is for (user_id). */
  entityColumn: string;
  /** The column naming the ranked item (song_id). */
  itemColumn: string;
  /** Items per list (1 … MAX_TOP_K). */
  k: number;
  /** Rank one entity's candidates only (online: a request for one user). */
  entity?: string | number;
}

/** One entity's list: items best first, with their scores. */
export interface RankedList {
  entity: string;
  items: string[];
  scores: number[];
}

/** `k` and the column names, every problem named. */
export function rankProblems(args: Pick<RankArgs, 'entityColumn' | 'itemColumn' | 'k'>): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(args.k) || args.k < 1 || args.k > MAX_TOP_K) problems.push(`k: an integer between 1 and ${MAX_TOP_K}, got ${args.k}`);
  if (!args.entityColumn) problems.push('entityColumn: required');
  if (!args.itemColumn) problems.push('itemColumn: required');
  if (args.entityColumn && args.entityColumn === args.itemColumn) problems.push(`itemColumn: must differ from entityColumn (${args.entityColumn})`);
  return problems;
}

/**
 * The top `k` items per entity from scored pairs: score descending, ties by item ascending;
 * entities in ascending order (numerically when every entity is a number).
 */
export function topKPerEntity(entities: readonly string[], items: readonly string[], scores: ArrayLike<number>, k: number): RankedList[] {
  const byEntity = new Map<string, number[]>();
  for (let i = 0; i < entities.length; i++) {
    const rows = byEntity.get(entities[i]!);
    if (rows) rows.push(i);
    else byEntity.set(entities[i]!, [i]);
  }
  const keys = [...byEntity.keys()];
  const numeric = keys.every((e) => e.trim() !== '' && Number.isFinite(Number(e)));
  keys.sort(numeric ? (a, b) => Number(a) - Number(b) : (a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return keys.map((entity) => {
    const rows = byEntity.get(entity)!;
    rows.sort((a, b) => scores[b]! - scores[a]! || (items[a]! < items[b]! ? -1 : items[a]! > items[b]! ? 1 : 0));
    const best = rows.slice(0, k);
    return { entity, items: best.map((r) => items[r]!), scores: best.map((r) => scores[r]!) };
  });
}

/**
 * @throws InvalidInputError the first duplicate pair (entity, item) of the source, and how many there are
 */
async function checkDuplicatePairs(conn: DuckDBConnection, from: string, object: string, entity: string, item: string): Promise<void> {
  const r = await conn.runAndReadAll(
    `SELECT CAST(${ident(entity)} AS VARCHAR), CAST(${ident(item)} AS VARCHAR), count(*) AS n, count(*) OVER () AS pairs FROM ${from} GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2 LIMIT 1`,
  );
  const row = r.getRowsJS()[0];
  if (!row) return;
  const [e, i, n, pairs] = row;
  throw new InvalidInputError(`candidate source ${object} has duplicate pairs`, [`(${entity}=${toText(e)}, ${item}=${toText(i)}) appears ${Number(n)} times (${Number(pairs)} duplicate pairs in all)`], {
    object,
    pair: { [entity]: toText(e), [item]: toText(i) },
  });
}

/**
 * Score every candidate of a file with the pipeline and keep the top k per entity.
 *
 * @throws InvalidInputError bad k / columns, or a duplicate pair (naming the source and the pair)
 * @throws SchemaMismatchError a column the model needs (or the entity/item column) missing or mistyped, every one listed
 * @throws EmptyInputError a source without candidates
 */
export async function rankCandidates(pipeline: Pipeline, args: RankArgs, options: { deadline?: number } = {}): Promise<RankedList[]> {
  const problems = rankProblems(args);
  if (problems.length > 0) throw new InvalidInputError('ranking is invalid', problems);
  const object = args.object ?? args.candidates;
  const scan = scanOf(args.candidates);
  const from = args.entity === undefined ? scan : `(SELECT * FROM ${scan} WHERE CAST(${ident(args.entityColumn)} AS VARCHAR) = ${lit(String(args.entity))})`;
  const read = await withSharedDuckDB(async (conn) => {
    await checkCandidateSource(conn, pipeline, { path: args.candidates, object }, args.entityColumn, args.itemColumn, from);
    const n = Number(await scalar(conn, `SELECT count(*) FROM ${from}`));
    if (n === 0) throw new EmptyInputError(`candidate source ${object} has no rows${args.entity === undefined ? '' : ` for ${args.entityColumn}=${args.entity}`}`, { object });
    return readCandidates(conn, pipeline, `SELECT * FROM ${from}`, args.entityColumn, args.itemColumn, n);
  });
  const { entities, items } = checkPairs(read, object, args);
  const scores = await scorePairs(pipeline, entities, items, read.batch, read.rows, args, options);
  return topKPerEntity(entities, items, scores, args.k);
}

/** A candidate file on local disk, and how messages name its source. */
export interface CandidateFile {
  path: string;
  object: string;
}

/** A candidate source loaded once (online: per served model version), its pairs sorted by entity and item. */
export interface CandidateSet {
  object: string;
  entityColumn: string;
  itemColumn: string;
  entities: string[];
  items: string[];
  /** The model's raw columns of every pair. */
  batch: RawBatch;
  rows: number;
  /** Each entity's pairs: rows [start, end). */
  ranges: Map<string, readonly [number, number]>;
}

/** @throws InvalidInputError pairs without an entity or item, counted */
function checkPairs(read: { entities: (string | null)[]; items: (string | null)[] }, object: string, columns: { entityColumn: string; itemColumn: string }): { entities: string[]; items: string[] } {
  const nulls = read.entities.flatMap((e, r) => (e === null || read.items[r] === null ? [r] : []));
  if (nulls.length > 0) throw new InvalidInputError(`candidate source ${object} has pairs without an ${columns.entityColumn} or ${columns.itemColumn}`, [`${nulls.length} rows, the first: row ${nulls[0]} of the sorted candidates`], { object });
  return { entities: read.entities as string[], items: read.items as string[] };
}

/**
 * Read and check a whole candidate source once: the model's columns, the entity and item columns,
 * no duplicate pair, no pair without entity or item, at least one pair.
 *
 * @throws SchemaMismatchError, InvalidInputError (duplicate pair, naming the source and the pair), EmptyInputError
 */
export async function loadCandidates(pipeline: Pipeline, file: CandidateFile, columns: { entityColumn: string; itemColumn: string }): Promise<CandidateSet> {
  const problems = rankProblems({ ...columns, k: 1 });
  if (problems.length > 0) throw new InvalidInputError('ranking is invalid', problems);
  const scan = scanOf(file.path);
  const read = await withSharedDuckDB(async (conn) => {
    await checkCandidateSource(conn, pipeline, file, columns.entityColumn, columns.itemColumn, scan);
    const n = Number(await scalar(conn, `SELECT count(*) FROM ${scan}`));
    if (n === 0) throw new EmptyInputError(`candidate source ${file.object} has no rows`, { object: file.object });
    return readCandidates(conn, pipeline, `SELECT * FROM ${scan}`, columns.entityColumn, columns.itemColumn, n);
  });
  const { entities, items } = checkPairs(read, file.object, columns);
  const ranges = new Map<string, readonly [number, number]>();
  let start = 0;
  for (let r = 1; r <= read.rows; r++) {
    if (r === read.rows || entities[r] !== entities[start]) {
      ranges.set(entities[start]!, [start, r]);
      start = r;
    }
  }
  return { object: file.object, ...columns, entities, items, batch: read.batch, rows: read.rows, ranges };
}

/**
 * The top k of one entity of a loaded candidate set (online: a request for one user), scored by
 * the pipeline the set was loaded for.
 *
 * @throws EmptyInputError an entity without candidates
 */
export async function rankLoaded(pipeline: Pipeline, set: CandidateSet, k: number, entity: string | number, options: { deadline?: number } = {}): Promise<RankedList> {
  const range = set.ranges.get(String(entity));
  if (!range) throw new EmptyInputError(`candidate source ${set.object} has no rows for ${set.entityColumn}=${entity}`, { object: set.object });
  const [start, end] = range;
  const batch: RawBatch = Object.fromEntries(Object.entries(set.batch).map(([name, values]) => [name, Array.isArray(values) ? values.slice(start, end) : values.subarray(start, end)]));
  const entities = set.entities.slice(start, end);
  const items = set.items.slice(start, end);
  const scores = await scorePairs(pipeline, entities, items, batch, end - start, set, options);
  return topKPerEntity(entities, items, scores, k)[0]!;
}

/**
 * The candidate source has the model's columns, the entity and item columns, and no duplicate pair.
 *
 * @throws SchemaMismatchError a missing or mistyped column, every one listed; an entity column neither integer nor string
 * @throws InvalidInputError a duplicate pair
 */
async function checkCandidateSource(conn: DuckDBConnection, pipeline: Pipeline, file: CandidateFile, entityColumn: string, itemColumn: string, from: string): Promise<void> {
  const { object } = file;
  const columns = await describeColumns(conn, file.path);
  checkSourceColumns(pipeline.plan, columns, object, `model ${pipeline.model.name}:${pipeline.model.version}`, entityColumn);
  if (!columns.some((c) => c.name === itemColumn)) throw new SchemaMismatchError(`${object} does not fit the ranking`, [`item column ${itemColumn} is missing`], { object });
  // Entities are matched as text (a request's 100001 and the column's 100001): a FLOAT or DECIMAL column's text (100001.0) would match no request.
  const entity = columns.find((c) => c.name === entityColumn);
  if (entity && !isIntegerType(entity.type) && entity.type !== 'VARCHAR') {
    throw new SchemaMismatchError(`${object} does not fit the ranking`, [`entity column ${entityColumn} is ${entity.type}: an entity is an integer or a string (cast it in the source)`], { object, field: entityColumn });
  }
  await checkDuplicatePairs(conn, from, object, entityColumn, itemColumn);
}

/** Entity and item (as text) and the model's raw columns of `n` candidate rows, sorted by entity and item. */
async function readCandidates(conn: DuckDBConnection, pipeline: Pipeline, query: string, entityColumn: string, itemColumn: string, n: number) {
  const cols = pipeline.plan.sourceColumns;
  const kinds: ColumnKind[] = ['string', 'string', ...cols.map((c) => (c.kind === 'string' ? 'string' : 'float64') as ColumnKind)];
  const select = [
    selectColumn(entityColumn, 'string'),
    selectColumn(itemColumn, 'string'),
    ...cols.map((c) => (c.kind === 'timestamp' ? selectAs(`epoch_ms(${ident(c.name)})`, 'float64') : selectColumn(c.name, c.kind === 'string' ? 'string' : 'float64'))),
  ].join(', ');
  const read = await readColumns(conn, `SELECT ${select} FROM (${query}) ORDER BY ${ident(entityColumn)}, ${ident(itemColumn)}`, kinds, n);
  const [e, i, ...rest] = read;
  const batch: RawBatch = Object.fromEntries(cols.map((c, j) => [c.name, rest[j] as RawBatch[string]]));
  return { entities: e as (string | null)[], items: i as (string | null)[], batch, rows: n };
}

/** Each pair's score through the pipeline's steps (on-demand, transforms, predict). */
async function scorePairs(
  pipeline: Pipeline,
  entities: readonly string[],
  items: readonly string[],
  batch: RawBatch,
  rows: number,
  columns: { entityColumn: string; itemColumn: string },
  options: { deadline?: number } = {},
): Promise<ArrayLike<number>> {
  const rowLabel = (r: number) => `${columns.entityColumn}=${entities[r]}, ${columns.itemColumn}=${items[r]}`;
  const d = await pipeline.onDemandAsync(batch, rows, rowLabel, options);
  const block = pipeline.transform(d.columns, rows, rowLabel);
  block.missing = d.missing;
  const preds = await pipeline.predict(block);
  const scores = preds.score ?? preds.value;
  if (!scores) throw new InvalidInputError(`model ${pipeline.model.name}:${pipeline.model.version} gives no score to rank by`, [`task ${pipeline.manifest.metadata.task}`]);
  return scores;
}

/** The column of a ranking snapshot numbering its entities 0, 1, … in entity order. */
export const ENTITY_ORDINAL_COLUMN = '__inferflow_entity';

export interface PlannedRanking {
  /** Entities (output rows) and candidate pairs. */
  entities: number;
  pairs: number;
  /** Entities per shard: about `shardSize` candidate pairs each, an entity never split. */
  entitiesPerShard: number;
}

/**
 * Check a candidate file and stage it as a snapshot sorted by entity and item, with every entity's
 * ordinal (ENTITY_ORDINAL_COLUMN): shards are ranges of ordinals, so an entity's candidates stay in one shard.
 *
 * @throws SchemaMismatchError, InvalidInputError (duplicate pair, pair without entity or item), EmptyInputError
 */
export async function stageRankingSnapshot(args: { pipeline: Pipeline; candidates: CandidateFile; snapshotPath: string; ranking: RankingSpec; shardSize: number }): Promise<PlannedRanking> {
  const { pipeline, ranking } = args;
  const candidates = args.candidates.object;
  const scan = scanOf(args.candidates.path);
  return withSharedDuckDB(async (conn) => {
    await checkCandidateSource(conn, pipeline, args.candidates, ranking.entity, ranking.item, scan);
    const [pairs, nulls] = (await conn.runAndReadAll(`SELECT count(*), count(*) FILTER (WHERE ${ident(ranking.entity)} IS NULL OR ${ident(ranking.item)} IS NULL) FROM ${scan}`)).getRowsJS()[0]!.map(Number) as [number, number];
    if (pairs === 0) throw new EmptyInputError(`candidate source ${candidates} has no rows`, { object: candidates });
    if (nulls > 0) throw new InvalidInputError(`candidate source ${candidates} has pairs without an ${ranking.entity} or ${ranking.item}`, [`${nulls} rows`], { object: candidates });
    await fs.mkdir(path.dirname(args.snapshotPath), { recursive: true });
    const tmp = `${args.snapshotPath}.tmp-${randomUUID()}.parquet`;
    try {
      await conn.run(
        `COPY (SELECT *, (dense_rank() OVER (ORDER BY ${ident(ranking.entity)}) - 1)::BIGINT AS ${ident(ENTITY_ORDINAL_COLUMN)} FROM ${scan} ORDER BY ${ident(ranking.entity)}, ${ident(ranking.item)})
         TO ${lit(tmp)} (FORMAT parquet, COMPRESSION zstd)`,
      );
      const entities = Number(await scalar(conn, `SELECT count(DISTINCT ${ident(ENTITY_ORDINAL_COLUMN)}) FROM read_parquet(${lit(tmp)})`));
      await fs.rename(tmp, args.snapshotPath);
      return { entities, pairs, entitiesPerShard: Math.max(1, Math.floor((args.shardSize * entities) / pairs)) };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  });
}

/**
 * Rank the entities [shard.start, shard.end) of a ranking snapshot into one part: a row per entity
 * (its column as in the source), `items` VARCHAR[] best first and `scores` DOUBLE[], then lineage.
 * Written to a temporary name and renamed: a part is whole or absent. Returns the entities written.
 */
export async function rankShard(args: {
  pipeline: Pipeline;
  snapshotPath: string;
  ranking: RankingSpec;
  shard: ShardDescriptor;
  partPath: string;
  lineage: Lineage;
  partFormat?: PartFormat;
}): Promise<{ index: number; rows: number; partPath: string }> {
  const { pipeline, ranking, shard, lineage } = args;
  const ord = ident(ENTITY_ORDINAL_COLUMN);
  const where = `FROM read_parquet(${lit(args.snapshotPath)}) WHERE ${ord} >= ${shard.start} AND ${ord} < ${shard.end}`;
  return withSharedDuckDB(async (conn) => {
    const n = Number(await scalar(conn, `SELECT count(*) ${where}`));
    const query = `SELECT * ${where}`;
    // Ordinals stand for the entities while scoring (sorted numerically, as the snapshot is).
    const read = await readCandidates(conn, pipeline, query, ranking.entity, ranking.item, n);
    const ords = await readColumns(conn, `SELECT ${selectColumn(ENTITY_ORDINAL_COLUMN, 'string')} ${where} ORDER BY ${ident(ranking.entity)}, ${ident(ranking.item)}`, ['string'], n);
    const scores = await scorePairs(pipeline, read.entities as string[], read.items as string[], read.batch, n, { entityColumn: ranking.entity, itemColumn: ranking.item });
    const lists = topKPerEntity(ords[0] as string[], read.items as string[], scores, ranking.k);
    if (lists.length !== shard.end - shard.start) throw new SchemaMismatchError(`ranking snapshot ${args.snapshotPath} is inconsistent`, [`shard ${shard.index}: ${shard.end - shard.start} entities planned, ${lists.length} found`]);
    await fs.mkdir(path.dirname(args.partPath), { recursive: true });
    const tmp = `${args.partPath}.tmp-${randomUUID()}`;
    const json = `${tmp}.lists.json`;
    try {
      await fs.writeFile(json, lists.map((l) => JSON.stringify({ o: Number(l.entity), i: l.items, s: l.scores.map(Number) })).join('\n'));
      const lineageItems = lineageSelect({ modelName: lineage.model.name, modelVersion: lineage.model.version, modelSha256: lineage.model.sha256, asOf: lineage.asOf, runId: lineage.runId });
      const { items, scores: scoreColumn } = RANKING_OUTPUT_COLUMNS;
      const select = `SELECT e.${ident(ranking.entity)}, l.i AS ${ident(items)}, l.s AS ${ident(scoreColumn)}, ${lineageItems}
        FROM (SELECT DISTINCT ${ord}, ${ident(ranking.entity)} ${where}) e
        JOIN read_json(${lit(json)}, format = 'newline_delimited', columns = {o: 'BIGINT', i: 'VARCHAR[]', s: 'DOUBLE[]'}) l ON l.o = e.${ord}
        ORDER BY e.${ord}`;
      if (args.partFormat) await args.partFormat.write(conn, { select, lineage: lineageItems, path: tmp, finalPath: args.partPath, shardIndex: shard.index, rows: lists.length });
      else await conn.run(`COPY (${select}) TO ${lit(tmp)} (FORMAT parquet, COMPRESSION zstd)`);
      await fs.rename(tmp, args.partPath);
    } finally {
      await fs.rm(tmp, { force: true });
      await fs.rm(json, { force: true });
    }
    return { index: shard.index, rows: lists.length, partPath: args.partPath };
  });
}
