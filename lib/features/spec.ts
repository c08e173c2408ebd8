/**
 * Feature views: a named set of feature columns read from one source, keyed by entity
 * columns and stamped with an event time. See docs/features.md.
 *
 * Point-in-time rule (implemented in offline.ts, stated here once):
 *
 *   For a spine row with entity key K and timestamp T, a view contributes the values of the
 *   row of its source with key K whose event time E is the latest with E ≤ T (equal
 *   timestamps qualify) and, when the view has a `ttl`, E ≥ T − ttl. If no row qualifies, the
 *   view's features are null. A value with E > T is never returned.
 *
 *   Several rows with the same key and the same event time are reduced to one first
 *   (the "tie-break"):
 *     - with `createdField`: the row with the greatest created value wins; a null created
 *       value loses to any non-null one; rows whose created values are equal (or both null)
 *       are decided as below;
 *     - otherwise (and among equal created values): the row that comes later in the source
 *       wins. "Later" means: later in the file; for a source of several files (a glob or a
 *       directory), files are ordered by their path, lexicographically, and every row of a
 *       later file is later than every row of an earlier one.
 *   `createdField` is a tie-break only, never a filter: a row created after T (arriving
 *   late) still counts when its event time is ≤ T. Retrieval answers "what was the value at
 *   event time T, as the source says today", not "what had been written by T".
 *
 *   Rows with a null event time or a null entity column are never returned; a spine row
 *   with a null timestamp or a null entity column gets nulls. A winning row's null feature
 *   value is returned as null (no fall-back to an older row).
 */
import { z } from 'zod';
import { InvalidInputError } from '../errors';
import { DURATION_PATTERN, parseDurationMs } from '../util/duration';
import { formatIssuePath } from '../util/issues';

/** View names (and therefore output column prefixes): SQL-identifier-like. */
export const VIEW_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** A PostgreSQL table, optionally schema-qualified. */
const PG_TABLE_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;

export const FEATURE_DTYPES = ['float64', 'float32', 'int64', 'string', 'bool'] as const;
export type FeatureDtype = (typeof FEATURE_DTYPES)[number];

const ColumnName = z.string().min(1, 'must be a non-empty column name');

/**
 * A file source: one Parquet or CSV file (`.parquet`/`.pq`, `.csv`/`.csv.gz`/`.tsv`), a glob
 * (`dir/*.parquet`, `dir/**\/*.csv`), or a directory (read recursively; `key=value` path
 * segments become columns, as in Hive-partitioned data). A plain path, `file://…`, or
 * `s3://bucket/key` (downloaded to a temporary directory before reading).
 */
export const FileSourceSchema = z.strictObject({
  type: z.literal('file'),
  path: z.string().min(1, 'must be a file, glob or directory location'),
});

const CONNECTION_KEYS = ['url', 'connectionString', 'connection', 'host', 'port', 'user', 'password', 'database', 'ssl'];

/**
 * A PostgreSQL source: a table or a query (exactly one). The connection comes from the
 * environment (`INFERFLOW_POSTGRES_URL`, or PGHOST/PGPORT/… read by `pg`), never from the
 * spec. Exported with COPY to a temporary CSV file and read by DuckDB (lib/postgres/features.ts).
 */
export const PostgresSourceSchema = z.strictObject(
  {
    type: z.literal('postgres'),
    table: z.string().regex(PG_TABLE_PATTERN, `table must match ${PG_TABLE_PATTERN.source}`).optional(),
    query: z.string().trim().min(1, 'query must not be empty').optional(),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys' && issue.keys.some((k) => CONNECTION_KEYS.includes(k))
        ? `${issue.keys.join(', ')}: connection settings do not belong in a feature view; set INFERFLOW_POSTGRES_URL or PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE`
        : undefined,
  },
);

export const FeatureSourceSchema = z.discriminatedUnion('type', [FileSourceSchema, PostgresSourceSchema]);
export type FeatureSource = z.infer<typeof FeatureSourceSchema>;

export const FeatureSchema = z.strictObject({
  /** Column of the source; the output column is `<view>__<name>`. */
  name: ColumnName,
  dtype: z.enum(FEATURE_DTYPES),
});
export type Feature = z.infer<typeof FeatureSchema>;

type Problem = { path: (string | number)[]; message: string };

/**
 * Checks between fields (a column listed twice, a feature that is also a key…). Written
 * defensively over unknown input so that they are reported together with the structural
 * problems, which stop zod before its refinements run.
 */
function crossFieldProblems(raw: unknown): Problem[] {
  const problems: Problem[] = [];
  if (typeof raw !== 'object' || raw === null) return problems;
  const v = raw as Record<string, unknown>;
  const str = (x: unknown): string | undefined => (typeof x === 'string' && x !== '' ? x : undefined);
  const timestampField = str(v.timestampField);
  const createdField = str(v.createdField);
  const entities = Array.isArray(v.entities) ? (v.entities as unknown[]) : [];
  const features = Array.isArray(v.features) ? (v.features as unknown[]) : [];
  const seenEntities = new Set<string>();
  entities.forEach((x, i) => {
    const e = str(x);
    if (e === undefined) return;
    if (seenEntities.has(e)) problems.push({ path: ['entities', i], message: `entity column ${e} is listed twice` });
    seenEntities.add(e);
    if (e === timestampField) problems.push({ path: ['entities', i], message: `entity column ${e} is also the timestampField` });
  });
  const seenFeatures = new Set<string>();
  features.forEach((x, i) => {
    const f = str((x as { name?: unknown } | null)?.name);
    if (f === undefined) return;
    if (seenFeatures.has(f)) problems.push({ path: ['features', i, 'name'], message: `feature ${f} is listed twice` });
    seenFeatures.add(f);
    if (seenEntities.has(f)) problems.push({ path: ['features', i, 'name'], message: `feature ${f} is also an entity column` });
    if (f === timestampField) problems.push({ path: ['features', i, 'name'], message: `feature ${f} is also the timestampField` });
    if (f === createdField) problems.push({ path: ['features', i, 'name'], message: `feature ${f} is also the createdField` });
  });
  if (createdField !== undefined && createdField === timestampField) problems.push({ path: ['createdField'], message: 'createdField must differ from timestampField' });
  if (createdField !== undefined && seenEntities.has(createdField)) problems.push({ path: ['createdField'], message: `createdField ${createdField} is also an entity column` });
  const source = v.source as { type?: unknown; table?: unknown; query?: unknown } | null | undefined;
  if (source?.type === 'postgres' && (source.table === undefined) === (source.query === undefined)) {
    problems.push({ path: ['source'], message: 'a postgres source needs exactly one of table and query' });
  }
  return problems;
}

export const FeatureViewSchema = z
  .strictObject({
    name: z.string().regex(VIEW_NAME_PATTERN, `name must match ${VIEW_NAME_PATTERN.source}`),
    /** Join keys: columns of the source, and of the spine, with these names. */
    entities: z.array(ColumnName).min(1, 'entities must list at least one column'),
    /** Event time of each source row: DATE or TIMESTAMP (naive timestamps are read as UTC). */
    timestampField: ColumnName,
    /** Tie-break between rows of one entity with the same event time: the greatest created value wins. */
    createdField: ColumnName.optional(),
    source: FeatureSourceSchema,
    features: z.array(FeatureSchema).min(1, 'features must list at least one feature'),
    /** Rows older than this (relative to the spine timestamp) are not used: `30d`, `12h`, `90m`, `3600s`. */
    ttl: z.string().regex(DURATION_PATTERN, 'ttl must be a positive whole number followed by d, h, m or s (e.g. 30d, 12h, 90m, 3600s)').optional(),
  })
  .superRefine((view, ctx) => {
    for (const p of crossFieldProblems(view)) ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
  });
export type FeatureView = z.infer<typeof FeatureViewSchema>;
/** A view as written (before validation). */
export type FeatureViewInput = z.input<typeof FeatureViewSchema>;

/** Validate one view spec. Returns the view, or every problem as `path: message` (`prefix` goes in front of each path). */
export function checkFeatureView(input: unknown, prefix = ''): { view: FeatureView; problems: [] } | { view: undefined; problems: string[] } {
  const r = FeatureViewSchema.safeParse(input);
  if (r.success) return { view: r.data, problems: [] };
  // zod skips the refinement when a field is malformed: add the cross-field problems here (once).
  const problems = [...r.error.issues.map((i) => ({ path: i.path, message: i.message })), ...crossFieldProblems(input)];
  return { view: undefined, problems: [...new Set(problems.map((p) => `${formatIssuePath(p.path, prefix, '(view)')}: ${p.message}`))] };
}

/**
 * Validate a list of view specs: each view (paths `views[i]…`) and that names are unique (a name
 * is a view's identity in output columns and online keys). Returns the valid views with their index.
 */
export function checkFeatureViews(input: readonly unknown[]): { views: { view: FeatureView; index: number }[]; problems: string[] } {
  const problems: string[] = [];
  const views: { view: FeatureView; index: number }[] = [];
  const byName = new Map<string, number>();
  input.forEach((raw, index) => {
    const r = checkFeatureView(raw, `views[${index}]`);
    if (!r.view) {
      problems.push(...r.problems);
      return;
    }
    const first = byName.get(r.view.name);
    if (first !== undefined) problems.push(`views[${index}].name: view ${r.view.name} is also views[${first}]; view names must be unique`);
    else byName.set(r.view.name, index);
    views.push({ view: r.view, index });
  });
  return { views, problems };
}

/** Validate one feature view. @throws InvalidInputError listing every problem with its path (`prefix` in front of each). */
export function parseFeatureView(input: unknown, prefix = ''): FeatureView {
  const r = checkFeatureView(input, prefix);
  if (r.view === undefined) throw new InvalidInputError('invalid feature view', r.problems);
  return r.view;
}

/** `30d` → 2,592,000 seconds. @throws Error on a string that does not match DURATION_PATTERN (validate the view first). */
export function durationSeconds(ttl: string): number {
  const ms = parseDurationMs(ttl);
  if (ms === undefined) throw new Error(`invalid duration ${ttl}`);
  return ms / 1000;
}

/** Output column of a view's feature: `<view>__<feature>`. */
export function outputColumnName(view: string, feature: string): string {
  return `${view}__${feature}`;
}
