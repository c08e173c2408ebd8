/**
 * The PostgreSQL run sink (batch): shards staged into a run-scoped table as they are predicted,
 * the run published in one transaction.
 */
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { InvalidInputError, InvalidValueError, NotFoundError, PermissionDeniedError, RowCountMismatchError, SchemaMismatchError } from '../errors';
import type { SinkSpec } from '../sinks/spec';
import type { CommitRequest, CommitResult, PartFormat, RunRef, RunSink, StageRequest } from '../sinks/types';
import { postgresErrorCode, postgresErrorMessage, postgresFailure, resolvePostgresTarget, withPooledClient, type PostgresConnectionSettings, type PostgresTarget } from './connection';
import { CSV_PART_FORMAT, checkCsvPartColumns, readCsvPart, type PartInfo } from './csv-parts';
import { checkName, checkNameOrThrow, createOnce, ignoreDuplicateTable, key64, qualify, tableExists, transaction } from './sql';
import { checkPartFits, finishNewTableSql, parseStagingComment, runLockKeys, stagingLedgerName, stagingTableName, type StagingComment, type StagingLayout } from './staging';
export type PostgresSinkSpec = Extract<SinkSpec, { type: 'postgres' }>;

/** Where the connection comes from: the worker's environment, never the spec (spec payloads sit in workflow history). */
export type { PostgresConnectionSettings };

/** The bookkeeping table (one per schema): one row per committed run. */
export const RUNS_TABLE = 'inferflow_runs';
/**
 * Runs discarded before they were published (one row each, one per schema): a shard attempt
 * that outlives its run (a stalled worker past its heartbeat timeout) stages nothing for it.
 * Rows older than DISCARDED_RUNS_KEPT are pruned by later discards.
 */
export const DISCARDED_RUNS_TABLE = 'inferflow_discarded_runs';
const DISCARDED_RUNS_KEPT = '30 days';
const SHARD_COLUMN = '__shard';

/**
 * A table in PostgreSQL. Shards are staged as they are predicted (COPY into a run-scoped table
 * nobody reads: UNLOGGED, or LOGGED on a first run); commit publishes the whole run in ONE
 * transaction (a first run's staging table renamed into place, otherwise an upsert by primary
 * key; the run recorded in `inferflow_runs`; staging dropped), so readers see all of a run or
 * none of it. Connection settings come from the worker's environment.
 */
export class PostgresSink implements RunSink {
  readonly type = 'postgres';
  readonly schema: string;
  readonly table: string;
  readonly primaryKey: string | undefined;
  readonly onConflict: 'newer-as-of' | 'replace';
  /** Fill factor of a target the sink creates (an integer 10–100, checked here: it is written into SQL). */
  readonly fillfactor: number | undefined;
  private readonly settings: PostgresConnectionSettings;
  private readonly target: PostgresTarget;

  /** The id column is the target's primary key unless another column is named. */
  needsIds(idColumn: string): boolean {
    return (this.primaryKey ?? idColumn) === idColumn;
  }

  constructor(spec: Omit<PostgresSinkSpec, 'type'>, settings: PostgresConnectionSettings = {}) {
    const schema = spec.schema ?? 'public';
    const problems = [
      ...checkName('sink.table', spec.table),
      ...checkName('sink.schema', schema),
      ...(spec.primaryKey !== undefined ? checkName('sink.primaryKey', spec.primaryKey) : []),
      ...(spec.fillfactor !== undefined && !(Number.isInteger(spec.fillfactor) && spec.fillfactor >= 10 && spec.fillfactor <= 100) ? [`sink.fillfactor: an integer 10–100 (got ${spec.fillfactor})`] : []),
    ];
    if (problems.length > 0) throw new InvalidInputError('invalid postgres sink', problems);
    this.schema = schema;
    this.table = spec.table;
    this.primaryKey = spec.primaryKey;
    this.onConflict = spec.onConflict ?? 'newer-as-of';
    this.fillfactor = spec.fillfactor;
    this.settings = settings;
    this.target = resolvePostgresTarget(settings);
  }

  /** `postgres://host:port/database#schema.table` (no user, no password). */
  get location(): string {
    return `postgres://${this.target.host}:${this.target.port}/${this.target.database}#${this.schema}.${this.table}`;
  }

  /** The storage clause of a table the sink creates as the target (its fill factor, when set). */
  private get storage(): string {
    return this.fillfactor !== undefined ? ` WITH (fillfactor = ${this.fillfactor})` : '';
  }

  private qualified(table: string): string {
    return qualify(this.schema, table);
  }

  /**
   * Shards write their part as the CSV that COPY loads, straight from the predictions
   * (writeCsvPart): the stager COPYs them as they are.
   */
  readonly partFormat: PartFormat = CSV_PART_FORMAT;

  /**
   * Copy one shard's CSV part (written by `partFormat`; its layout file says what it holds) into
   * the run's staging table. A retry replaces the shard's rows (never duplicates them).
   */
  async stage(req: StageRequest): Promise<void> {
    const part = await readCsvPart(req.partPath);
    const staging = stagingTableName(req.runId);
    const ledger = stagingLedgerName(req.runId);
    const problems = part.columns.flatMap((c) => [
      ...checkName(`column ${JSON.stringify(c.name)} of the predictions`, c.name),
      ...(c.name === SHARD_COLUMN ? [`column ${SHARD_COLUMN} is reserved for staging`] : []),
      ...(c.pgType === undefined ? [`column ${c.name} has type ${c.duckType}, which has no PostgreSQL mapping here`] : []),
    ]);
    if (problems.length > 0) throw new SchemaMismatchError(`predictions of run ${req.runId} cannot be written to PostgreSQL table ${this.schema}.${this.table}`, problems);
    const keys = runLockKeys(req.runId);
    await this.withClient(`staging shard ${req.shardIndex} into ${this.schema}.${staging}`, async (client) => {
      await this.ensureStagingTable(client, req.runId, part, req.idColumn);
      const layout = await this.stagingLayout(client, staging);
      if (!layout) return; // the run was published or discarded meanwhile (see ensureStagingTable)
      checkPartFits(part, layout, req.shardIndex);
      checkCsvPartColumns(part, layout.columns.map((c) => c.name), req.shardIndex);
      await transaction(client, async () => {
        // Shared run lock: commit and discard (exclusive) wait for staging in flight and vice versa.
        await client.query('SELECT pg_advisory_xact_lock_shared($1::bigint)', [keys.run]);
        if (await this.closedAs(client, req.runId)) return; // a late attempt after the run was published or discarded
        // One stager per shard: a zombie attempt and its retry cannot interleave DELETE and COPY.
        await client.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [keys.shardSpace, req.shardIndex]);
        // The staging table has no index (maintaining one cost ~0.3 s per 1M rows staged): the
        // ledger says whether an earlier attempt committed rows of this shard, and only then are
        // they looked for and deleted.
        const before = await client.query<{ again: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${this.qualified(ledger)} WHERE shard = $1) AS again`, [req.shardIndex]);
        if (before.rows[0]?.again) await client.query(`DELETE FROM ${this.qualified(staging)} WHERE ${pg.escapeIdentifier(SHARD_COLUMN)} = $1`, [req.shardIndex]);
        const copy = client.query(
          copyFrom(`COPY ${this.qualified(staging)} (${[...part.stored, SHARD_COLUMN].map((n) => pg.escapeIdentifier(n)).join(', ')}) FROM STDIN (FORMAT csv)`),
        );
        const file = fs.createReadStream(req.partPath);
        if (req.onProgress) file.on('data', req.onProgress);
        await pipeline(file, copy);
        if (copy.rowCount !== req.rows) {
          throw new RowCountMismatchError(`shard ${req.shardIndex} of run ${req.runId}: copied ${copy.rowCount} rows, the part has ${req.rows}`, { shard: req.shardIndex });
        }
        // The shard's row count goes into the ledger with its rows (one transaction), so the commit
        // need not count rows per shard.
        await client.query(`INSERT INTO ${this.qualified(ledger)} (shard, rows) VALUES ($1, $2) ON CONFLICT (shard) DO UPDATE SET rows = EXCLUDED.rows`, [req.shardIndex, req.rows]);
      });
    });
  }

  /** The run's row in `inferflow_runs`, when it was published. */
  async committed(run: RunRef): Promise<CommitResult | undefined> {
    return this.withClient(`looking up run ${run.runId} in ${this.schema}.${RUNS_TABLE}`, async (client) => {
      if (!(await tableExists(client, this.qualified(RUNS_TABLE)))) return undefined;
      const prior = await client.query<{ rows: string }>(`SELECT rows FROM ${this.qualified(RUNS_TABLE)} WHERE run_id = $1`, [run.runId]);
      return prior.rows[0] ? { location: this.location, rows: Number(prior.rows[0].rows), created: false } : undefined;
    });
  }

  /** Publish the run in one transaction. A run already recorded in `inferflow_runs` is a no-op (`created: false`). */
  async commit(req: CommitRequest): Promise<CommitResult> {
    const staging = stagingTableName(req.runId);
    const keys = runLockKeys(req.runId);
    const target = this.qualified(this.table);
    return this.withClient(`committing run ${req.runId} to ${this.schema}.${this.table}`, async (client) => {
      await this.ensureRunsTable(client);
      return transaction(client, async () => {
        await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [keys.run]);
        // One publisher per target table at a time: overlapping upserts never deadlock.
        await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [key64(`inferflow:table:${this.schema}.${this.table}`)]);
        const prior = await client.query<{ rows: string }>(`SELECT rows FROM ${this.qualified(RUNS_TABLE)} WHERE run_id = $1`, [req.runId]);
        if (prior.rows[0]) {
          await client.query(`DROP TABLE IF EXISTS ${this.qualified(staging)}, ${this.qualified(stagingLedgerName(req.runId))}`);
          return { location: this.location, rows: Number(prior.rows[0].rows), created: false };
        }

        // Never publish partial output: every shard staged, every row there.
        const layout = await this.stagingLayout(client, staging);
        if (!layout) {
          throw new RowCountMismatchError(`run ${req.runId} has nothing staged in ${this.schema}.${staging} (expected ${req.rows} rows in ${req.parts.length} shards); nothing was published`, { runId: req.runId, staged: 0, expected: req.rows });
        }
        const counts = await this.stagedRowsPerShard(client, req.runId);
        const staged = counts.reduce((sum, r) => sum + r.n, 0);
        const shardSet = new Set(counts.map((r) => r.shard));
        const missing = req.parts.map((_, i) => i).filter((i) => !shardSet.has(i));
        if (staged !== req.rows || missing.length > 0) {
          throw new RowCountMismatchError(
            `run ${req.runId} staged ${staged} rows, expected ${req.rows}${missing.length > 0 ? `; shards not staged: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ` and ${missing.length - 10} more` : ''}` : ''}; nothing was published`,
            { runId: req.runId, staged, expected: req.rows, missingShards: missing.slice(0, 100) },
          );
        }

        const { idColumn, constants } = layout.meta;
        // Staged columns, then the run-constant ones (kept once in the staging table's comment).
        const columns = [...layout.columns, ...constants.map((c) => ({ name: c.name, type: c.pgType }))];
        const selected = [...layout.columns.map((c) => pg.escapeIdentifier(c.name)), ...constants.map((c, k) => `$${k + 1}::${c.pgType}`)].join(', ');
        const values = constants.map((c) => c.value);
        const pk = this.primaryKey ?? idColumn ?? undefined;
        if (pk !== undefined && !columns.some((c) => c.name === pk)) {
          throw new InvalidInputError(`primary key ${pk} is not a column of the predictions`, [`sink.primaryKey: one of ${columns.map((c) => c.name).join(', ')}`]);
        }
        for (const c of columns) checkNameOrThrow(`column ${c.name}`, c.name);
        let keptNewer = 0;

        const cols = columns.map((c) => pg.escapeIdentifier(c.name)).join(', ');
        const existed = await tableExists(client, target);
        if (!existed) {
          // A new table (the first run). When the staging table is LOGGED (created while there was
          // no target) it becomes the target: its shard column is dropped (a catalog change; the
          // value stays in the rows until PostgreSQL rewrites them) and it is renamed into place,
          // so no row is copied. Otherwise a new table is filled with the staged columns. Either
          // way the constants and the key come last (finishNewTableSql); repeated key values fail
          // the key's creation, and the whole transaction with it.
          const promote = layout.logged;
          const built = promote ? this.qualified(staging) : target;
          if (promote) {
            await client.query(`ALTER TABLE ${built} DROP COLUMN ${pg.escapeIdentifier(SHARD_COLUMN)}`);
          } else {
            const stored = layout.columns.map((c) => pg.escapeIdentifier(c.name)).join(', ');
            await client.query(`CREATE TABLE ${target} (${layout.columns.map((c) => `${pg.escapeIdentifier(c.name)} ${c.type}`).join(', ')})${this.storage}`);
            await client.query(`INSERT INTO ${target} (${stored}) SELECT ${stored} FROM ${this.qualified(staging)}`);
          }
          // A promoted staging table's key is named as PostgreSQL would name the new table's (<table>_pkey).
          const key = pk ? { column: pk, ...(promote ? { name: `${this.table.slice(0, 58)}_pkey` } : {}) } : undefined;
          for (const sql of finishNewTableSql(built, constants, key)) await client.query(sql);
          if (promote) {
            await client.query(`COMMENT ON TABLE ${built} IS NULL`);
            await client.query(`ALTER TABLE ${built} RENAME TO ${pg.escapeIdentifier(this.table)}`);
          }
        } else {
          const have = new Set(
            (await client.query<{ name: string }>('SELECT attname AS name FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped', [target])).rows.map((r) => r.name),
          );
          const lacking = columns.filter((c) => !have.has(c.name));
          if (lacking.length > 0) {
            throw new SchemaMismatchError(
              `table ${this.schema}.${this.table} does not fit the predictions`,
              lacking.map((c) => `column ${c.name} ${c.type} is missing (ALTER TABLE ${target} ADD COLUMN ${pg.escapeIdentifier(c.name)} ${c.type})`),
              { table: `${this.schema}.${this.table}` },
            );
          }
          if (pk) {
            const updates = columns.filter((c) => c.name !== pk).map((c) => `${pg.escapeIdentifier(c.name)} = EXCLUDED.${pg.escapeIdentifier(c.name)}`);
            // Older predictions (an earlier as_of, e.g. a backfill) never overwrite newer ones.
            const guard = this.onConflict === 'newer-as-of' && columns.some((c) => c.name === 'as_of') ? ' WHERE t.as_of IS NULL OR t.as_of <= EXCLUDED.as_of' : '';
            const upserted = await client.query(
              `INSERT INTO ${target} AS t (${cols}) SELECT ${selected} FROM ${this.qualified(staging)}
               ON CONFLICT (${pg.escapeIdentifier(pk)}) DO ${updates.length > 0 ? `UPDATE SET ${updates.join(', ')}${guard}` : 'NOTHING'}`,
              values,
            );
            keptNewer = req.rows - (upserted.rowCount ?? req.rows);
          } else {
            // No key to upsert by: the run's own rows are replaced (a re-run of the same run id).
            await client.query(`DELETE FROM ${target} WHERE run_id = $1`, [req.runId]);
            await client.query(`INSERT INTO ${target} (${cols}) SELECT ${selected} FROM ${this.qualified(staging)}`, values);
          }
        }
        await client.query(
          `INSERT INTO ${this.qualified(RUNS_TABLE)} (run_id, table_name, rows, workflow_id, pipeline, model_name, model_version, model_sha256)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [req.runId, this.table, req.rows, req.workflowId, req.pipeline, req.model.name, req.model.version, req.model.sha256],
        );
        await client.query(`DROP TABLE IF EXISTS ${this.qualified(staging)}, ${this.qualified(stagingLedgerName(req.runId))}`);
        return { location: this.location, rows: req.rows, created: true, ...(keptNewer > 0 ? { keptNewer } : {}) };
      });
    });
  }

  /**
   * Drop the run's staging tables. Published rows are never touched. A run that was not published
   * is recorded as discarded first, under the run's lock, so that a shard attempt still running
   * somewhere cannot create its staging tables again afterwards.
   */
  async discard(runId: string): Promise<void> {
    const keys = runLockKeys(runId);
    try {
      await this.withClient(`discarding staged rows of run ${runId}`, async (client) => {
        if ((await this.closedAs(client, runId)) !== 'committed') await this.ensureDiscardedRunsTable(client);
        await transaction(client, async () => {
          await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [keys.run]);
          // Asked again under the lock: a commit still running (an attempt that outlived its timeout) may have published it meanwhile.
          if ((await this.closedAs(client, runId)) !== 'committed') {
            await client.query(`INSERT INTO ${this.qualified(DISCARDED_RUNS_TABLE)} (run_id) VALUES ($1) ON CONFLICT DO NOTHING`, [runId]);
            await client.query(`DELETE FROM ${this.qualified(DISCARDED_RUNS_TABLE)} WHERE discarded_at < now() - interval '${DISCARDED_RUNS_KEPT}'`);
          }
          await client.query(`DROP TABLE IF EXISTS ${this.qualified(stagingTableName(runId))}, ${this.qualified(stagingLedgerName(runId))}`);
        });
      });
    } catch (err) {
      // A database that does not exist or refuses this user holds nothing this run staged.
      if (err instanceof NotFoundError || err instanceof PermissionDeniedError) return;
      throw err;
    }
  }

  /** Whether the run was published or discarded (either way, nothing more is staged for it). */
  private async closedAs(client: pg.PoolClient, runId: string): Promise<'committed' | 'discarded' | undefined> {
    const reg = await client.query<{ runs: boolean; discarded: boolean }>('SELECT to_regclass($1) IS NOT NULL AS runs, to_regclass($2) IS NOT NULL AS discarded', [
      this.qualified(RUNS_TABLE),
      this.qualified(DISCARDED_RUNS_TABLE),
    ]);
    const has = async (table: string) => (await client.query(`SELECT 1 FROM ${this.qualified(table)} WHERE run_id = $1`, [runId])).rowCount === 1;
    if (reg.rows[0]?.runs && (await has(RUNS_TABLE))) return 'committed';
    if (reg.rows[0]?.discarded && (await has(DISCARDED_RUNS_TABLE))) return 'discarded';
    return undefined;
  }

  private ensureDiscardedRunsTable(client: pg.PoolClient): Promise<void> {
    return this.ensureBookkeepingTable(client, DISCARDED_RUNS_TABLE, 'discarded', 'run_id text PRIMARY KEY, discarded_at timestamptz NOT NULL DEFAULT now()');
  }

  private ensureRunsTable(client: pg.PoolClient): Promise<void> {
    return this.ensureBookkeepingTable(
      client,
      RUNS_TABLE,
      'runs',
      `run_id text PRIMARY KEY, table_name text NOT NULL, rows bigint NOT NULL, workflow_id text, pipeline text,
       model_name text, model_version integer, model_sha256 text, committed_at timestamptz NOT NULL DEFAULT now()`,
    );
  }

  /** One of the schema's bookkeeping tables, created once among concurrent workers (lock `inferflow:<lock>:<schema>`) when missing. */
  private async ensureBookkeepingTable(client: pg.PoolClient, table: string, lock: string, columns: string): Promise<void> {
    if (await tableExists(client, this.qualified(table))) return;
    await createOnce(client, key64(`inferflow:${lock}:${this.schema}`), [`CREATE TABLE IF NOT EXISTS ${this.qualified(table)} (${columns})`]);
  }

  private async ensureStagingTable(client: pg.PoolClient, runId: string, part: PartInfo, idColumn: string | null): Promise<void> {
    const staging = this.qualified(stagingTableName(runId));
    const ledger = this.qualified(stagingLedgerName(runId));
    const existing = async () =>
      (await client.query<{ staging: boolean; ledger: boolean }>('SELECT to_regclass($1) IS NOT NULL AS staging, to_regclass($2) IS NOT NULL AS ledger', [staging, ledger])).rows[0];
    const seen = await existing();
    if (seen?.staging && seen.ledger) return;
    // Created under a lock: the first stager decides the layout (which run-constant columns live
    // in the comment). A stager that loses the race
    // (duplicate table: catalog lookups after an advisory lock can be stale) uses the winner's tables.
    // The run's shared lock orders this against commit and discard: a run they closed gets no tables.
    await ignoreDuplicateTable(transaction(client, async () => {
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [key64(`inferflow:stage:${this.schema}.${stagingTableName(runId)}`)]);
      await client.query('SELECT pg_advisory_xact_lock_shared($1::bigint)', [runLockKeys(runId).run]);
      if (await this.closedAs(client, runId)) return;
      const now = await existing();
      if (!now?.staging) {
        const constant = new Set(part.constants.map((c) => c.name));
        const comment: StagingComment = { inferflow: 'staging', runId, idColumn, constants: part.constants };
        // No target yet (a first run): the staging table is LOGGED and built like the target will
        // be, so that commit can rename it into place instead of copying every row again. Otherwise
        // UNLOGGED: its rows are upserted into the target and it is dropped.
        const firstRun = !(await tableExists(client, this.qualified(this.table)));
        await client.query(
          `CREATE ${firstRun ? '' : 'UNLOGGED '}TABLE ${staging} (${part.columns
            .filter((c) => !constant.has(c.name))
            .map((c) => `${pg.escapeIdentifier(c.name)} ${c.pgType}`)
            .join(', ')}, ${pg.escapeIdentifier(SHARD_COLUMN)} integer NOT NULL)${firstRun ? this.storage : ''}`,
        );
        await client.query(`COMMENT ON TABLE ${staging} IS ${pg.escapeLiteral(JSON.stringify(comment))}`);
      }
      if (!now?.ledger) {
        // The ledger survives a server crash exactly when the staging table does (an UNLOGGED table is
        // emptied by crash recovery): a ledger emptied under surviving rows would let a retried shard
        // stage its rows twice.
        const logged = (await client.query<{ logged: boolean }>(`SELECT relpersistence = 'p' AS logged FROM pg_class WHERE oid = to_regclass($1)`, [staging])).rows[0]?.logged === true;
        await client.query(`CREATE ${logged ? '' : 'UNLOGGED '}TABLE ${ledger} (shard integer PRIMARY KEY, rows bigint NOT NULL)`);
      }
    }));
  }

  /**
   * Rows staged per shard, from the ledger, where each stager wrote its shard's row count in the
   * transaction that copied the rows. The table is counted as a whole and must agree with the
   * ledger (`count(*)`: 35–40 ms per 1M rows against 84–114 ms for counting per shard).
   */
  private async stagedRowsPerShard(client: pg.PoolClient, runId: string): Promise<{ shard: number; n: number }[]> {
    const staging = this.qualified(stagingTableName(runId));
    const ledger = this.qualified(stagingLedgerName(runId));
    const counted = (await client.query<{ shard: number; rows: string }>(`SELECT shard, rows FROM ${ledger}`)).rows.map((r) => ({ shard: r.shard, n: Number(r.rows) }));
    const total = Number((await client.query<{ n: string }>(`SELECT count(*)::bigint AS n FROM ${staging}`)).rows[0]!.n);
    const listed = counted.reduce((sum, r) => sum + r.n, 0);
    if (total !== listed) {
      throw new RowCountMismatchError(`run ${runId}: the staging table ${this.schema}.${stagingTableName(runId)} holds ${total} rows, its ledger lists ${listed}; nothing was published`, {
        runId,
        staged: total,
        expected: listed,
      });
    }
    return counted;
  }

  /** The staging table's columns (without the shard column, in order) and its comment; undefined when it does not exist. */
  private async stagingLayout(client: pg.PoolClient, staging: string): Promise<StagingLayout | undefined> {
    const reg = await client.query<{ c: string | null; exists: boolean; logged: boolean }>(
      `SELECT to_regclass($1) IS NOT NULL AS exists, obj_description(to_regclass($1), 'pg_class') AS c,
              coalesce((SELECT relpersistence = 'p' FROM pg_class WHERE oid = to_regclass($1)), false) AS logged`,
      [this.qualified(staging)],
    );
    if (!reg.rows[0]?.exists) return undefined;
    const columns = (
      await client.query<{ name: string; type: string }>(
        `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
          WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attname <> $2 ORDER BY attnum`,
        [this.qualified(staging), SHARD_COLUMN],
      )
    ).rows;
    // The comment's constants and the table's columns never overlap: both are written in the transaction that creates the table.
    const meta = parseStagingComment(reg.rows[0].c);
    for (const c of [...columns, ...meta.constants]) checkNameOrThrow(`column ${c.name}`, c.name);
    return { columns, meta, logged: reg.rows[0].logged };
  }

  private async withClient<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    try {
      return await withPooledClient(this.settings, fn);
    } catch (err) {
      throw this.mapError(err, what);
    }
  }

  /** pg / network errors → typed errors (postgresFailure), with this sink's own table-shape and key messages. */
  private mapError(err: unknown, what: string): Error {
    const sqlstate = postgresErrorCode(err);
    const msg = postgresErrorMessage(err);
    const t = this.target;
    const where = `PostgreSQL at ${t.host}:${t.port} (database ${t.database})`;
    const details = { host: t.host, port: t.port, database: t.database, user: t.user, ...(sqlstate ? { code: sqlstate } : {}) };
    switch (sqlstate) {
      case '42P10':
        return new SchemaMismatchError(`table ${this.schema}.${this.table} in ${where} does not fit the sink`, [`${msg} (the table needs a primary key or unique index on ${this.primaryKey ?? 'the id column'})`], details);
      case '42703':
      case '42804':
      case '42P16':
        return new SchemaMismatchError(`table ${this.schema}.${this.table} in ${where} does not fit the predictions`, [msg], details);
      case '21000': // ON CONFLICT reaching a row twice (upsert into an existing table)
      case '23505': // the key of a new table cannot be built
        return new InvalidValueError(`the predictions of this run repeat primary key values (${this.primaryKey ?? 'id column'}); nothing was published: ${msg}${detailOf(err)}`, details, { cause: err });
      default:
        return postgresFailure(err, { target: t, schema: this.schema, what });
    }
  }
}

/** PostgreSQL's DETAIL line (e.g. `Key (transaction_id)=(tx-1) is duplicated.`), as a suffix. */
function detailOf(err: unknown): string {
  const detail = (err as { detail?: unknown } | null)?.detail;
  return typeof detail === 'string' && detail ? ` (${detail})` : '';
}
