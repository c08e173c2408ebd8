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
 *   const [mine] = await rankCandidates(pipeline, { …, entity: 100001 });   // one user, online
 *
 * Order: score descending, ties by item id ascending (the same rule as the Python reference,
 * examples/train/train_recommender.py). A pair given twice is a typed error naming the source and
 * the pair, before anything is scored.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { EmptyInputError, InvalidInputError, SchemaMismatchError } from '../errors';
import { readColumns, selectAs, selectColumn, type ColumnKind } from '../io/columns';
import { checkSourceColumns } from './assemble';
import { describeColumns, ident, lit, scalar, scanOf, toText, withSharedDuckDB } from '../io/duckdb';
import type { RawBatch } from './assemble';
import type { Pipeline } from './pipeline';

/** Largest k a ranking may ask for. */
export const MAX_TOP_K = 1_000;

export interface RankArgs {
  /** A Parquet or CSV file of candidate pairs with the columns the model needs. */
  candidates: string;
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
  const { plan } = pipeline;
  const scan = scanOf(args.candidates);
  const from = args.entity === undefined ? scan : `(SELECT * FROM ${scan} WHERE CAST(${ident(args.entityColumn)} AS VARCHAR) = ${lit(String(args.entity))})`;
  const { entities, items, batch, rows } = await withSharedDuckDB(async (conn) => {
    const columns = await describeColumns(conn, args.candidates);
    checkSourceColumns(plan, columns, args.candidates, `model ${pipeline.model.name}:${pipeline.model.version}`, args.entityColumn);
    if (!columns.some((c) => c.name === args.itemColumn)) throw new SchemaMismatchError(`${args.candidates} does not fit the ranking`, [`item column ${args.itemColumn} is missing`], { object: args.candidates });
    await checkDuplicatePairs(conn, from, args.candidates, args.entityColumn, args.itemColumn);
    const n = Number(await scalar(conn, `SELECT count(*) FROM ${from}`));
    if (n === 0) throw new EmptyInputError(`candidate source ${args.candidates} has no rows${args.entity === undefined ? '' : ` for ${args.entityColumn}=${args.entity}`}`, { object: args.candidates });
    const cols = plan.sourceColumns;
    const kinds: ColumnKind[] = ['string', 'string', ...cols.map((c) => (c.kind === 'string' ? 'string' : 'float64') as ColumnKind)];
    const select = [
      selectColumn(args.entityColumn, 'string'),
      selectColumn(args.itemColumn, 'string'),
      ...cols.map((c) => (c.kind === 'timestamp' ? selectAs(`epoch_ms(${ident(c.name)})`, 'float64') : selectColumn(c.name, c.kind === 'string' ? 'string' : 'float64'))),
    ].join(', ');
    const read = await readColumns(conn, `SELECT ${select} FROM ${from} ORDER BY ${ident(args.entityColumn)}, ${ident(args.itemColumn)}`, kinds, n);
    const [e, i, ...rest] = read;
    const raw: RawBatch = Object.fromEntries(cols.map((c, j) => [c.name, rest[j] as RawBatch[string]]));
    return { entities: e as (string | null)[], items: i as (string | null)[], batch: raw, rows: n };
  });
  const nulls = entities.flatMap((e, r) => (e === null || items[r] === null ? [r] : []));
  if (nulls.length > 0) throw new InvalidInputError(`candidate source ${args.candidates} has pairs without an ${args.entityColumn} or ${args.itemColumn}`, [`${nulls.length} rows, the first: row ${nulls[0]} of the sorted candidates`], { object: args.candidates });
  const rowLabel = (r: number) => `${args.entityColumn}=${entities[r]}, ${args.itemColumn}=${items[r]}`;
  const d = await pipeline.onDemandAsync(batch, rows, rowLabel, options);
  const block = pipeline.transform(d.columns, rows, rowLabel);
  block.missing = d.missing;
  const preds = await pipeline.predict(block);
  const scores = preds.score ?? preds.value;
  if (!scores) throw new InvalidInputError(`model ${pipeline.model.name}:${pipeline.model.version} gives no score to rank by`, [`task ${pipeline.manifest.metadata.task}`]);
  return topKPerEntity(entities as string[], items as string[], scores, args.k);
}
