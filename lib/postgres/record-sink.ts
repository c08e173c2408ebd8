/**
 * The PostgreSQL record sink: one row per record key in a table the sink creates when missing;
 * `INSERT … ON CONFLICT (key) DO NOTHING`, so the first write of a key is the one kept.
 * Outputs and attributes are jsonb (numbers keep their exact double value).
 */
import { InvalidInputError, SchemaMismatchError } from '../errors';
import { checkRecords, type PredictionRecord, type RecordSink, type RecordWriteOptions, type RecordWriteResult } from '../sinks/records';
import type { RecordSinkSpec } from '../sinks/spec';
import { postgresErrorCode, postgresErrorMessage, postgresFailure, resolvePostgresTarget, withPooledClient, type PostgresConnectionSettings, type PostgresTarget } from './connection';
import { checkName, createOnce, key64, qualify, tableExists } from './sql';

export type PostgresRecordSinkSpec = Extract<RecordSinkSpec, { type: 'postgres' }>;

/** The record table's columns, in order, with their types (also the shape of jsonb_to_recordset). */
const RECORD_COLUMNS = [
  ['key', 'text'],
  ['entity', 'text'],
  ['outputs', 'jsonb'],
  ['model_name', 'text'],
  ['model_version', 'integer'],
  ['model_sha256', 'text'],
  ['event_time', 'timestamptz'],
  ['predicted_at', 'timestamptz'],
  ['attributes', 'jsonb'],
  ['write_key', 'text'],
] as const;

/** A record as one row of the table, for `jsonb_to_recordset`. */
function rowOf(r: PredictionRecord, writeKey: string): Record<(typeof RECORD_COLUMNS)[number][0], unknown> {
  return {
    key: r.key,
    entity: r.entity ?? null,
    outputs: r.outputs,
    model_name: r.model.name,
    model_version: r.model.version,
    model_sha256: r.model.sha256,
    event_time: r.eventTime ?? null,
    predicted_at: r.predictedAt,
    attributes: r.attributes ?? null,
    write_key: writeKey,
  };
}

export class PostgresRecordSink implements RecordSink {
  readonly type = 'postgres';
  readonly schema: string;
  readonly table: string;
  private readonly target: PostgresTarget;
  private tableReady = false;

  constructor(spec: Omit<PostgresRecordSinkSpec, 'type'>, private readonly settings: PostgresConnectionSettings = {}) {
    this.schema = spec.schema ?? 'public';
    this.table = spec.table;
    const problems = [...checkName('recordSink.table', this.table), ...checkName('recordSink.schema', this.schema)];
    if (problems.length > 0) throw new InvalidInputError('invalid postgres record sink', problems);
    this.target = resolvePostgresTarget(settings);
  }

  /** `postgres://host:port/database#schema.table` (no user, no password). */
  get location(): string {
    return `postgres://${this.target.host}:${this.target.port}/${this.target.database}#${this.schema}.${this.table}`;
  }

  async write(records: readonly PredictionRecord[], options: RecordWriteOptions): Promise<RecordWriteResult> {
    const unique = checkRecords(records, options);
    if (unique.length === 0) return { written: 0, duplicates: records.length };
    const table = qualify(this.schema, this.table);
    const what = `writing ${unique.length} records to ${this.schema}.${this.table}`;
    try {
      return await withPooledClient(this.settings, async (client) => {
        if (!this.tableReady && !(await tableExists(client, table))) {
          await createOnce(client, key64(`inferflow:records:${this.schema}.${this.table}`), [
            `CREATE TABLE IF NOT EXISTS ${table} (${RECORD_COLUMNS.map(([n, t]) => `${n} ${t}${n === 'key' ? ' PRIMARY KEY' : ''}`).join(', ')}, written_at timestamptz NOT NULL DEFAULT now())`,
          ]);
        }
        this.tableReady = true;
        const columns = RECORD_COLUMNS.map(([n]) => n).join(', ');
        const inserted = await client.query(
          `INSERT INTO ${table} (${columns})
           SELECT ${columns} FROM jsonb_to_recordset($1::jsonb) AS r(${RECORD_COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')})
           ON CONFLICT (key) DO NOTHING`,
          [JSON.stringify(unique.map((r) => rowOf(r, options.idempotencyKey)))],
        );
        const written = inserted.rowCount ?? 0;
        return { written, duplicates: records.length - written };
      });
    } catch (err) {
      const code = postgresErrorCode(err);
      // A table of that name that is not a record table (missing column, wrong type, no key to conflict on).
      if (code === '42703' || code === '42804' || code === '42P10') {
        throw new SchemaMismatchError(`table ${this.schema}.${this.table} is not a record table`, [`${postgresErrorMessage(err)} (expected columns ${RECORD_COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')}, key primary)`], { table: `${this.schema}.${this.table}` });
      }
      throw postgresFailure(err, { target: this.target, schema: this.schema, what });
    }
  }

  /** Nothing of its own: connections are the process's pools (closePostgresPools). */
  async close(): Promise<void> {}
}
