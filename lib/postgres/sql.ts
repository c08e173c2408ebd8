/**
 * SQL helpers shared by the PostgreSQL run sink, record sink and feature source: name checks
 * (quoting makes a name valid, not permitted), the DuckDB → PostgreSQL type mapping,
 * transactions, create-once DDL and advisory lock keys.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { InvalidInputError } from '../errors';
import { TABLE_NAME_PATTERN } from '../sinks/spec';

/** `"schema"."table"`, each part quoted (check both with checkName first). */
export function qualify(schema: string, table: string): string {
  return `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;
}

/** DuckDB column type → PostgreSQL column type; undefined when there is no faithful mapping. */
export function postgresTypeOf(duckType: string): string | undefined {
  const simple: Record<string, string> = {
    VARCHAR: 'text',
    BIGINT: 'bigint',
    INTEGER: 'integer',
    SMALLINT: 'smallint',
    TINYINT: 'smallint',
    UTINYINT: 'smallint',
    USMALLINT: 'integer',
    UINTEGER: 'bigint',
    UBIGINT: 'numeric(20,0)',
    HUGEINT: 'numeric(39,0)',
    FLOAT: 'real',
    DOUBLE: 'double precision',
    BOOLEAN: 'boolean',
    DATE: 'date',
    TIMESTAMP: 'timestamp',
    'TIMESTAMP WITH TIME ZONE': 'timestamptz',
    UUID: 'uuid',
  };
  if (simple[duckType]) return simple[duckType];
  // Lists (multi-output predictions, embeddings, top-k): PostgreSQL arrays of the element type.
  const list = /^(.+)\[\]$/.exec(duckType);
  if (list) {
    const element = postgresTypeOf(list[1]!);
    return element && !element.endsWith('[]') ? `${element}[]` : undefined;
  }
  const dec = /^DECIMAL\((\d+),(\d+)\)$/.exec(duckType);
  return dec ? `numeric(${dec[1]},${dec[2]})` : undefined;
}


export function checkName(field: string, name: string): string[] {
  return TABLE_NAME_PATTERN.test(name) ? [] : [`${field} must match ${TABLE_NAME_PATTERN.source} (got ${JSON.stringify(name)})`];
}

export function checkNameOrThrow(field: string, name: string): void {
  const problems = checkName(field, name);
  if (problems.length > 0) throw new InvalidInputError(`invalid name for PostgreSQL`, problems);
}


export async function tableExists(client: pg.PoolClient, qualified: string): Promise<boolean> {
  return (await client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [qualified])).rows[0]?.exists === true;
}

export async function transaction<T>(client: pg.PoolClient, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const out = await fn();
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** DDL racing another worker's: a duplicate table (or catalog row) means the other one created it. */
export async function ignoreDuplicateTable(ddl: Promise<void>): Promise<void> {
  try {
    await ddl;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === '42P07' || code === '23505') return; // duplicate_table / unique_violation on the catalog
    throw err;
  }
}

/** Run DDL once among concurrent workers: serialised by an advisory lock; a racing duplicate counts as done. */
export async function createOnce(client: pg.PoolClient, lockKey: string, statements: string[]): Promise<void> {
  await ignoreDuplicateTable(
    transaction(client, async () => {
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey]);
      for (const sql of statements) await client.query(sql);
    }),
  );
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A signed 64-bit advisory lock key (as text for a `$1::bigint` parameter). */
export function key64(text: string): string {
  return BigInt.asIntN(64, BigInt(`0x${sha256(text).slice(0, 16)}`)).toString();
}

