import fs from 'node:fs/promises';
import path from 'node:path';
import { InvalidInputError } from '../errors';
import { ident, lit, scalar, withDuckDB } from '../io/duckdb';
import { localPathOf } from '../storage';
import { TABLE_NAME_PATTERN } from './spec';
import type { CommitRequest, CommitResult, RunRef, RunSink } from './types';

/**
 * A table in a DuckDB database file (the embedded database sink). Commit replaces the run's
 * rows in one transaction: delete rows of this run id, insert the staged parts.
 * A database file locked by another process is a transient error (retried).
 */
export class DuckDBSink implements RunSink {
  readonly type = 'duckdb';
  readonly dbPath: string;

  constructor(dbPath: string, readonly table: string) {
    if (!TABLE_NAME_PATTERN.test(table)) throw new InvalidInputError(`invalid table name ${JSON.stringify(table)}`, [`sink.table must match ${TABLE_NAME_PATTERN.source}`]);
    this.dbPath = localPathOf(dbPath);
  }

  private get location(): string {
    return `duckdb://${this.dbPath}#${this.table}`;
  }

  /** The run's rows in the table (a commit is one transaction: any row means all of them). */
  async committed(run: RunRef): Promise<CommitResult | undefined> {
    if (!(await fs.stat(this.dbPath).catch(() => undefined))) return undefined;
    const rows = await withDuckDB(
      async (conn) => {
        const exists = Number(await scalar(conn, `SELECT count(*) FROM duckdb_tables() WHERE table_name = ${lit(this.table)} AND schema_name = 'main'`)) > 0;
        return exists ? Number(await scalar(conn, `SELECT count(*) FROM ${ident(this.table)} WHERE run_id = ${lit(run.runId)}`)) : 0;
      },
      { path: this.dbPath },
    );
    return rows > 0 ? { location: this.location, rows, created: false } : undefined;
  }

  async commit(req: CommitRequest): Promise<CommitResult> {
    // Asked before the parts are read: a retried commit may find them removed.
    const done = await this.committed(req);
    if (done) return done;
    await fs.mkdir(path.dirname(this.dbPath), { recursive: true });
    const parts = `read_parquet([${req.parts.map(lit).join(', ')}])`;
    const t = ident(this.table);
    return withDuckDB(
      async (conn) => {
        await conn.run(`CREATE TABLE IF NOT EXISTS ${t} AS SELECT * FROM ${parts} LIMIT 0`);
        const already = Number(await scalar(conn, `SELECT count(*) FROM ${t} WHERE run_id = ${lit(req.runId)}`));
        if (already === req.rows) return { location: this.location, rows: already, created: false };
        await conn.run('BEGIN TRANSACTION');
        try {
          await conn.run(`DELETE FROM ${t} WHERE run_id = ${lit(req.runId)}`);
          await conn.run(`INSERT INTO ${t} SELECT * REPLACE (${lit(req.runId)} AS run_id) FROM ${parts}`);
          await conn.run('COMMIT');
        } catch (err) {
          await conn.run('ROLLBACK');
          throw err;
        }
        return { location: this.location, rows: req.rows, created: true };
      },
      { path: this.dbPath },
    );
  }
}
