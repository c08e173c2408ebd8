/**
 * Feature view specs (docs/features.md; the point-in-time rule is stated in
 * lib/features/spec.ts): one zod schema, shared by the workflow inputs, spec files and lib/.
 * Pure (zod only): the workflow bundle imports it.
 */
import { z } from 'zod';
import { DURATION_PATTERN } from '../util/duration';
import { withRules, type Problem } from './problems';

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
        ? `${issue.keys.join(', ')}: connection settings do not belong in a spec; set INFERFLOW_POSTGRES_URL or PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE`
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

/**
 * Checks between fields (a column listed twice, a feature that is also a key…). Written
 * defensively over unknown input so that they are reported together with the structural
 * problems, which stop zod before its refinements run.
 */
export function featureViewRules(raw: unknown): Problem[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
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

export const FeatureViewSchema = withRules(
  z.strictObject({
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
  }),
  featureViewRules,
);
export type FeatureView = z.infer<typeof FeatureViewSchema>;
/** A view as written (before validation). */
export type FeatureViewInput = z.input<typeof FeatureViewSchema>;

