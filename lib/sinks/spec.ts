import { z } from 'zod';

export const TABLE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export const ParquetSinkSpec = z.object({
  type: z.literal('parquet'),
  /** Output location: a directory (`file://…` or a path) or `s3://bucket/prefix`. Default: INFERFLOW_OUTPUT. */
  path: z.string().min(1).optional(),
});

export const DuckDBSinkSpec = z.object({
  type: z.literal('duckdb'),
  /** Database file. Default: `<dataDir>/inferflow.duckdb`. */
  path: z.string().min(1).optional(),
  table: z.string().regex(TABLE_NAME_PATTERN, `table must match ${TABLE_NAME_PATTERN.source}`),
});

/** Names Inferflow uses itself in a PostgreSQL schema (bookkeeping and run-scoped staging tables). */
export const POSTGRES_RESERVED_TABLE = /^(inferflow_runs|inferflow_discarded_runs|inferflow_stage_.*)$/i;
/** Keys that look like connection settings: they belong in the worker's environment, never in a spec (stored in workflow history). */
const CONNECTION_KEYS = ['url', 'connectionString', 'connection', 'host', 'port', 'user', 'password', 'database', 'ssl'];

const POSTGRES_ENV = 'INFERFLOW_POSTGRES_URL or PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE';
const REDIS_ENV = 'INFERFLOW_REDIS_URL';
const NATS_ENV = 'INFERFLOW_NATS_URL';

/** A strict object's error map that says where connection settings go instead of "unrecognized key". */
function noConnectionSettings(env: string) {
  return {
    error: (issue: z.core.$ZodRawIssue) =>
      issue.code === 'unrecognized_keys' && issue.keys.some((k) => CONNECTION_KEYS.includes(k))
        ? `${issue.keys.join(', ')}: connection settings do not belong in the sink spec (it is stored in workflow history); set ${env} on the worker`
        : undefined,
  };
}

const sqlName = (field: string) => z.string().regex(TABLE_NAME_PATTERN, `${field} must match ${TABLE_NAME_PATTERN.source}`);

export const PostgresSinkSpec = z.strictObject(
  {
    type: z.literal('postgres'),
    /** Target table, created on first commit when missing. */
    table: sqlName('table').refine((t) => !POSTGRES_RESERVED_TABLE.test(t), 'inferflow_runs, inferflow_discarded_runs and inferflow_stage_* are reserved for Inferflow'),
    /** Schema of the target, bookkeeping and staging tables. Default `public`. */
    schema: sqlName('schema').optional(),
    /** Upsert key. Default: the run's id column when there is one (else each commit replaces the run's own rows). */
    primaryKey: sqlName('primaryKey').optional(),
    /**
     * When a key already has a row: 'newer-as-of' (default) replaces it only if the new row's
     * as_of is the same or later — a backfill of last week does not overwrite today's scores,
     * a re-run of the same day (e.g. with a new model) does; 'replace': the latest commit wins.
     */
    onConflict: z.enum(['newer-as-of', 'replace']).optional(),
    /**
     * Fill factor (10–100) of the target when the sink creates it. Below 100, each page keeps room
     * for updated rows, so the upsert of later runs rewrites rows in place (HOT) instead of adding
     * index entries: 1M rows upserted in 3.3–3.5 s at 50 against 6.1–6.7 s at 100, for a table twice the
     * size (bench/sql/postgres-commit.sql). Default: PostgreSQL's 100. Existing tables keep theirs.
     */
    fillfactor: z.number().int().min(10, 'fillfactor must be 10–100').max(100, 'fillfactor must be 10–100').optional(),
  },
  noConnectionSettings(POSTGRES_ENV),
);

const redisKeyPrefix = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'keyPrefix: letters, digits, "_", ".", "-" (max 64)');

export const RedisSinkSpec = z.strictObject(
  {
    type: z.literal('redis'),
    /** Key namespace. Default `inferflow`. */
    keyPrefix: redisKeyPrefix.optional(),
    /** Seconds the previous version stays readable after a new run is published. Default 86,400. */
    retentionSeconds: z.number().int().min(1).max(30 * 86_400).optional(),
  },
  noConnectionSettings(REDIS_ENV),
);

export const SinkSpecSchema = z.discriminatedUnion('type', [ParquetSinkSpec, DuckDBSinkSpec, PostgresSinkSpec, RedisSinkSpec]);
export type SinkSpec = z.infer<typeof SinkSpecSchema>;

/** Record sinks (online prediction logs, streaming output): records stored by key, the first write wins. */
export const PostgresRecordSinkSpec = z.strictObject(
  {
    type: z.literal('postgres'),
    /** Table of records, created when missing (key text PRIMARY KEY, entity, outputs jsonb, model, times, attributes). */
    table: sqlName('table').refine((t) => !POSTGRES_RESERVED_TABLE.test(t), 'inferflow_runs, inferflow_discarded_runs and inferflow_stage_* are reserved for Inferflow'),
    /** Schema of the table. Default `public`. */
    schema: sqlName('schema').optional(),
  },
  noConnectionSettings(POSTGRES_ENV),
);

export const RedisRecordSinkSpec = z.strictObject(
  {
    type: z.literal('redis'),
    /** Each record is the JSON string at `<keyPrefix>:<key>`. */
    keyPrefix: redisKeyPrefix,
    /** Seconds a record is kept; unset: until deleted. */
    ttlSeconds: z.number().int().min(1).optional(),
  },
  noConnectionSettings(REDIS_ENV),
);

export const NatsRecordSinkSpec = z.strictObject(
  {
    type: z.literal('nats'),
    /** Subject the records are published on (no wildcards); a JetStream stream must take it. */
    subject: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'subject: tokens of letters, digits, "_", "-" separated by "." (no wildcards)').max(255),
  },
  noConnectionSettings(NATS_ENV),
);

export const RecordSinkSpecSchema = z.discriminatedUnion('type', [PostgresRecordSinkSpec, RedisRecordSinkSpec, NatsRecordSinkSpec]);
export type RecordSinkSpec = z.infer<typeof RecordSinkSpecSchema>;
