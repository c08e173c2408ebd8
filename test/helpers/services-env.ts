import { TEST_POSTGRES_URL, TEST_REDIS_URL } from './services';

/**
 * Setup file of every test project: code under test and the CLI processes tests start read
 * the test Redis database and PostgreSQL database (test/helpers/services.ts) from the
 * standard variables, unless the test sets its own.
 */
process.env.INFERFLOW_REDIS_URL ??= TEST_REDIS_URL;
process.env.INFERFLOW_POSTGRES_URL ??= TEST_POSTGRES_URL;
