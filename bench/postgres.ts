/**
 * Postgres for the benchmark: whether the pipeline has a Postgres sink yet (it is being built
 * in lib/postgres/run-sink.ts), and the raw baseline's COPY. Connection settings come from the
 * standard PG* environment variables, defaulting to the local test server.
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { ensurePythonPackages, type PythonPath } from './python';
import { SinkSpecSchema, type SinkSpec } from '../lib/sinks/spec';
import { errorMessage } from '../lib/errors';
import type { LineageValues } from '../lib/pipeline/batch';
import { finishNewTableSql } from '../lib/postgres/staging';
import { LINEAGE_COLUMNS, type LineageColumn } from '../lib/sinks/types';

export const PG_DEFAULTS = { PGHOST: '127.0.0.1', PGPORT: '5432', PGUSER: 'postgres', PGDATABASE: 'test' } as const;

/** PG* variables for this process and the worker: the caller's own settings win. */
export function pgEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(Object.entries(PG_DEFAULTS).map(([k, v]) => [k, env[k] ?? v]));
}

export interface PgTarget {
  table: string;
  /** The table already holds an earlier run's rows (`--pg-existing`): upsert into it instead of replacing it. */
  upsert?: boolean;
}

export type PostgresSinkStatus = { available: true; spec: SinkSpec } | { available: false; reason: string };

/**
 * The Postgres sink is used only when the sink spec accepts `{type: 'postgres', table}` and a
 * server answers. Parsing with the project's own schema also gives a typed SinkSpec without a cast.
 */
export async function postgresSinkStatus(table: string): Promise<PostgresSinkStatus> {
  const spec = postgresSinkSpec(table);
  if ('error' in spec) return { available: false, reason: spec.error };
  try {
    await withClient(async (c) => c.query('SELECT 1'));
  } catch (err) {
    return { available: false, reason: `no Postgres at ${pgEnv().PGHOST}:${pgEnv().PGPORT}: ${errorMessage(err)}` };
  }
  return { available: true, spec };
}

/** `{type: 'postgres', table}` as the project's own schema parses it (typed, no cast). */
export function postgresSinkSpec(table: string): SinkSpec | { error: string } {
  const parsed = SinkSpecSchema.safeParse({ type: 'postgres', table });
  if (!parsed.success) return { error: `lib/sinks/spec.ts does not accept {type: "postgres", table: "${table}"}: ${parsed.error.issues.map((i) => i.message).join('; ')}` };
  return parsed.data;
}

async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const e = pgEnv();
  const client = new pg.Client({ host: e.PGHOST, port: Number(e.PGPORT), user: e.PGUSER, database: e.PGDATABASE, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The lineage columns (lib/sinks/types.ts) as the sink creates them, and each one's value for a run. */
const LINEAGE_SQL: { [C in LineageColumn]: { type: string; value: (l: LineageValues) => string } } = {
  model_name: { type: 'TEXT', value: (l) => l.modelName },
  model_version: { type: 'INTEGER', value: (l) => String(l.modelVersion) },
  model_sha256: { type: 'TEXT', value: (l) => l.modelSha256 },
  as_of: { type: 'TIMESTAMPTZ', value: (l) => l.asOf },
  run_id: { type: 'TEXT', value: (l) => l.runId },
};

/** The output columns as the sink creates them (and the baselines write them); the key is added after loading. */
const OUTPUT_COLUMNS = `transaction_id TEXT, label BIGINT, score REAL, ${LINEAGE_COLUMNS.map((c) => `${c} ${LINEAGE_SQL[c].type}`).join(', ')}`;
const UPDATE_COLUMNS = ['label', 'score', ...LINEAGE_COLUMNS];

/**
 * Replace `table` with the rows of a headerless CSV holding the id, label and score, built the way
 * the sink builds a new target table (lib/postgres/run-sink.ts, commit): the rows go into a table
 * without a key, the lineage columns (one value per run) are then added with the run's values as
 * defaults (PostgreSQL keeps them once, in the catalog), the defaults dropped and the key built in
 * one pass. The baseline is a plain process doing the best single write known here; what the
 * pipeline pays on top is its orchestration and its staging (it writes the rows twice).
 */
export async function copyCsvIntoPostgres(target: PgTarget, csvPath: string, lineage: LineageValues): Promise<void> {
  const t = quoteIdent(target.table);
  await withClient(async (c) => {
    await c.query(`DROP TABLE IF EXISTS ${t}`);
    await c.query(`CREATE TABLE ${t} (transaction_id TEXT, label BIGINT, score REAL)`);
    await pipeline(createReadStream(csvPath), c.query(copyFrom(`COPY ${t} (transaction_id, label, score) FROM STDIN (FORMAT csv)`)));
    const constants = LINEAGE_COLUMNS.map((n) => ({ name: n, pgType: LINEAGE_SQL[n].type, value: LINEAGE_SQL[n].value(lineage) }));
    for (const sql of finishNewTableSql(t, constants, { column: 'transaction_id' })) await c.query(sql);
  });
}

/**
 * `--pg-existing`: the rows an earlier run left, one per id of the dataset, from a headerless CSV
 * with the output columns (written by the caller), into `source`. Built once per model.
 */
export async function createPreviousRun(source: string, csvPath: string): Promise<void> {
  const t = quoteIdent(source);
  await withClient(async (c) => {
    await c.query(`DROP TABLE IF EXISTS ${t}`);
    await c.query(`CREATE TABLE ${t} (${OUTPUT_COLUMNS})`);
    await pipeline(createReadStream(csvPath), c.query(copyFrom(`COPY ${t} FROM STDIN (FORMAT csv)`)));
  });
}

/**
 * Replace `table` with a copy of the earlier run in `source`, keyed by the id, vacuumed and
 * analysed, then CHECKPOINT: each contender upserts into the same freshly loaded table. Untimed.
 */
export async function prefillFromPreviousRun(table: string, source: string): Promise<void> {
  const t = quoteIdent(table);
  await withClient(async (c) => {
    await c.query(`DROP TABLE IF EXISTS ${t}`);
    await c.query(`CREATE TABLE ${t} AS SELECT * FROM ${quoteIdent(source)}`);
    await c.query(`ALTER TABLE ${t} ADD PRIMARY KEY (transaction_id)`);
    await c.query(`VACUUM ANALYZE ${t}`);
    await c.query('CHECKPOINT');
  });
}

/**
 * The raw baseline's write into an existing table, as a careful engineer would do it by hand:
 * COPY the id, label and score into a temporary table, then one INSERT … ON CONFLICT DO UPDATE
 * adding the lineage as parameters, with the sink's as-of guard, in one transaction (the
 * statement the sink's commit runs).
 */
export async function upsertCsvIntoPostgres(target: PgTarget, csvPath: string, lineage: LineageValues): Promise<void> {
  const t = quoteIdent(target.table);
  const casts = LINEAGE_COLUMNS.map((c, k) => `$${k + 1}::${LINEAGE_SQL[c].type}`);
  const values = LINEAGE_COLUMNS.map((c) => LINEAGE_SQL[c].value(lineage));
  await withClient(async (c) => {
    await c.query('BEGIN');
    await c.query('CREATE TEMP TABLE bench_stage (transaction_id TEXT, label BIGINT, score REAL) ON COMMIT DROP');
    await pipeline(createReadStream(csvPath), c.query(copyFrom('COPY bench_stage FROM STDIN (FORMAT csv)')));
    await c.query(
      `INSERT INTO ${t} AS t (transaction_id, ${UPDATE_COLUMNS.join(', ')})
       SELECT transaction_id, label, score, ${casts.join(', ')} FROM bench_stage
       ON CONFLICT (transaction_id) DO UPDATE SET ${UPDATE_COLUMNS.map((n) => `${n} = EXCLUDED.${n}`).join(', ')}
       WHERE t.as_of IS NULL OR t.as_of <= EXCLUDED.as_of`,
      values,
    );
    await c.query('COMMIT');
  });
}

/** Rows of a run in a table written by the pipeline's Postgres sink (for the correctness check). */
export async function countPostgresRows(table: string, runId: string): Promise<number> {
  return withClient(async (c) => {
    const r = await c.query<{ n: string }>(`SELECT count(*)::TEXT AS n FROM ${quoteIdent(table)} WHERE run_id = $1`, [runId]);
    return Number(r.rows[0]?.n ?? 0);
  });
}

/** Remove a benchmark table, and the sink's bookkeeping rows for our own runs of it (the database is shared). */
export async function dropTable(table: string, runIds: string[] = []): Promise<void> {
  await withClient(async (c) => {
    await c.query(`DROP TABLE IF EXISTS ${quoteIdent(table)}`);
    const runs = await c.query<{ reg: string | null }>(`SELECT to_regclass('inferflow_runs')::TEXT AS reg`);
    if (runIds.length > 0 && runs.rows[0]?.reg) await c.query('DELETE FROM inferflow_runs WHERE run_id = ANY($1::TEXT[])', [runIds]);
  });
}

/** psycopg for the pandas baseline's Postgres write, pinned (installed into the project's tools dir when missing, see bench/python.ts). */
export const PSYCOPG = { pkg: 'psycopg[binary]', version: '3.3.9' } as const;

export function ensurePsycopg(dataDir: string, say: (m: string) => void): PythonPath {
  return ensurePythonPackages({ dataDir, name: 'psycopg', requirements: [`${PSYCOPG.pkg}==${PSYCOPG.version}`], modules: ['psycopg'], say });
}
