import { spawnSync } from 'node:child_process';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { TEST_POSTGRES, TEST_POSTGRES_URL } from './services';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}

export { TEST_POSTGRES };

function isReady(): boolean {
  const r = spawnSync('pg_isready', ['-h', TEST_POSTGRES.host, '-p', String(TEST_POSTGRES.port)], { encoding: 'utf8' });
  if (r.error) throw new Error(`pg_isready not found (${r.error.message}): install the PostgreSQL client tools`);
  return r.status === 0;
}

function tryStart(): string[] {
  const attempts: [string, string[]][] = [
    ['pg_ctlcluster', ['15', 'main', 'start']],
    ['service', ['postgresql', 'start']],
  ];
  const tried: string[] = [];
  for (const [cmd, args] of attempts) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
    tried.push(`${cmd} ${args.join(' ')}: ${r.error ? r.error.message : `exit ${r.status} ${(r.stderr || r.stdout).trim()}`}`);
    if (!r.error && r.status === 0) break;
  }
  return tried;
}

/** Make sure PostgreSQL answers on 127.0.0.1:5432 (start it when it is down) and that the test database (INFERFLOW_TEST_PGDATABASE, default test) exists. */
export async function setup(project: TestProject): Promise<void> {
  if (!isReady()) {
    const tried = tryStart();
    const deadline = Date.now() + 30_000;
    while (!isReady()) {
      if (Date.now() > deadline) {
        throw new Error(`PostgreSQL is not answering on ${TEST_POSTGRES.host}:${TEST_POSTGRES.port} and could not be started (${tried.join('; ')})`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    console.log(`started PostgreSQL for tests on ${TEST_POSTGRES.host}:${TEST_POSTGRES.port}`);
  }
  const admin = new pg.Client({ host: TEST_POSTGRES.host, port: TEST_POSTGRES.port, user: TEST_POSTGRES.user, database: 'postgres' });
  await admin.connect();
  try {
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [TEST_POSTGRES.database]);
    if (found.rowCount === 0) await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(TEST_POSTGRES.database)}`);
  } finally {
    await admin.end();
  }
  project.provide('postgresUrl', TEST_POSTGRES_URL);
}
