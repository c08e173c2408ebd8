/**
 * The Redis database and PostgreSQL database the tests use, from the environment, so two
 * checkouts can run their suites on one host at once: INFERFLOW_TEST_REDIS_DB (default 0) and
 * INFERFLOW_TEST_PGDATABASE (default test). Servers: 127.0.0.1:6379 and 127.0.0.1:5432.
 */
export const TEST_REDIS_DB = Number(process.env.INFERFLOW_TEST_REDIS_DB ?? 0);
export const TEST_REDIS_URL = `redis://127.0.0.1:6379/${TEST_REDIS_DB}`;
export const TEST_POSTGRES = { host: '127.0.0.1', port: 5432, user: 'postgres', database: process.env.INFERFLOW_TEST_PGDATABASE ?? 'test' } as const;
export const TEST_POSTGRES_URL = `postgres://${TEST_POSTGRES.user}@${TEST_POSTGRES.host}:${TEST_POSTGRES.port}/${TEST_POSTGRES.database}`;

if (!Number.isInteger(TEST_REDIS_DB) || TEST_REDIS_DB < 0) throw new Error(`INFERFLOW_TEST_REDIS_DB must be a Redis database number, got ${process.env.INFERFLOW_TEST_REDIS_DB}`);
