/**
 * The PostgreSQL run sink's staging area: a run's staging table and ledger names, the layout
 * kept in the staging table's comment, the DDL that finishes a promoted first-run table, and the
 * run's advisory lock keys.
 */
import pg from 'pg';
import { SchemaMismatchError } from '../errors';
import type { PartInfo, RunConstant } from './csv-parts';
import { key64, sha256 } from './sql';

/**
 * The statements that finish a new table loaded with the per-row columns only: the run's constants
 * added as columns whose default is the run's value (PostgreSQL 11+ keeps such a value once, in
 * the catalog, for every row already there: no per-row copy, no rewrite), the defaults dropped
 * again (the table then behaves as one created with every column) and the key built in one sorted
 * pass (`key.name` names its constraint). psql, 1M rows: load + this 0.80–0.87 s against 1.25–1.83 s
 * for inserting every column and building the key; 57 MB against 159 MB
 * (docs/decisions/0002-promote-first-run-staging-table.md).
 * DDL takes no bind parameters: each value is a quoted literal cast to its type, which callers check.
 */
export function finishNewTableSql(table: string, constants: readonly RunConstant[], key?: { column: string; name?: string }): string[] {
  const statements: string[] = [];
  const alter: string[] = [];
  if (constants.length > 0) {
    statements.push(`ALTER TABLE ${table} ${constants.map((c) => `ADD COLUMN ${pg.escapeIdentifier(c.name)} ${c.pgType} DEFAULT ${pg.escapeLiteral(c.value)}::${c.pgType}`).join(', ')}`);
    alter.push(...constants.map((c) => `ALTER COLUMN ${pg.escapeIdentifier(c.name)} DROP DEFAULT`));
  }
  if (key) alter.push(`ADD ${key.name ? `CONSTRAINT ${pg.escapeIdentifier(key.name)} ` : ''}PRIMARY KEY (${pg.escapeIdentifier(key.column)})`);
  if (alter.length > 0) statements.push(`ALTER TABLE ${table} ${alter.join(', ')}`);
  return statements;
}

/** Name of a run's staging table: `inferflow_stage_` + the first 16 hex digits of sha256(run id). */
export function stagingTableName(runId: string): string {
  return `inferflow_stage_${sha256(runId).slice(0, 16)}`;
}

/** The staging table's ledger: the shards whose rows are in it (one row each). */
export function stagingLedgerName(runId: string): string {
  return `${stagingTableName(runId)}_shards`;
}

export interface StagingComment {
  inferflow: 'staging';
  runId: string;
  idColumn: string | null;
  constants: RunConstant[];
}

export interface StagingLayout {
  /** Columns stored per row (without the shard column), in table order. */
  columns: { name: string; type: string }[];
  meta: { idColumn: string | null; constants: RunConstant[] };
  /** A LOGGED staging table: created while the target did not exist, so that commit can rename it into place. */
  logged: boolean;
}

/** A part staged into an existing staging table: every stored column present, every other one a run constant with the staged value. */
export function checkPartFits(part: PartInfo, layout: StagingLayout, shardIndex: number): void {
  const stored = new Set(layout.columns.map((c) => c.name));
  const have = new Set(part.columns.map((c) => c.name));
  const mine = new Map(part.constants.map((c) => [c.name, c.value]));
  const problems = [
    ...layout.columns.filter((c) => !have.has(c.name)).map((c) => `column ${c.name} is missing from shard ${shardIndex}'s part`),
    ...part.columns
      .filter((c) => !stored.has(c.name))
      .flatMap((c) => {
        const staged = layout.meta.constants.find((k) => k.name === c.name);
        if (!staged) return [`column ${c.name} of shard ${shardIndex}'s part is not in the run's staging table`];
        // An empty part holds no value to disagree with.
        return part.rows === 0 || mine.get(c.name) === staged.value ? [] : [`column ${c.name}: shard ${shardIndex} holds ${mine.has(c.name) ? JSON.stringify(mine.get(c.name)) : 'several values'}, the run's other shards ${JSON.stringify(staged.value)}`];
      }),
  ];
  if (problems.length > 0) throw new SchemaMismatchError(`shard ${shardIndex}'s predictions do not fit the run's other shards`, problems);
}

/** PostgreSQL types the sink itself writes (postgresTypeOf): a comment holding anything else is not ours. */
export const PG_TYPE = /^[a-z][a-z ]*(\(\d+,\d+\))?$/;

export function parseStagingComment(comment: string | null): StagingLayout['meta'] {
  let parsed: { idColumn?: unknown; constants?: unknown };
  try {
    parsed = JSON.parse(comment ?? '{}') as typeof parsed;
  } catch {
    return { idColumn: null, constants: [] };
  }
  const constants = Array.isArray(parsed.constants) ? (parsed.constants as Partial<RunConstant>[]) : [];
  const bad = constants.filter((c) => typeof c.name !== 'string' || typeof c.value !== 'string' || typeof c.pgType !== 'string' || !PG_TYPE.test(c.pgType));
  if (bad.length > 0) throw new SchemaMismatchError('the staging table\'s comment is not one Inferflow wrote', [`constants: ${JSON.stringify(bad).slice(0, 200)}`]);
  return { idColumn: typeof parsed.idColumn === 'string' ? parsed.idColumn : null, constants: constants as RunConstant[] };
}

export function runLockKeys(runId: string): { run: string; shardSpace: number } {
  return { run: key64(runId), shardSpace: Number(BigInt.asIntN(32, BigInt(`0x${sha256(runId).slice(0, 8)}`))) };
}
