/**
 * Sinks (docs/sinks.md): the factory (factory.ts, what a process imports to create sinks) and every
 * backend, for code that uses one directly (tests, tools). Importing this module loads the
 * PostgreSQL and Redis clients; lib/pipeline imports factory.ts instead.
 */
export * from './factory';
export * from './spec';
export * from './types';
export * from './records';
export { ObjectStoreParquetSink, ParquetSink, SUCCESS_MARKER, runDirName } from './parquet';
export { DuckDBSink } from './duckdb';
export { RedisSink, closeRedisClients, readRedisPrediction } from './redis';
export { PostgresSink, RUNS_TABLE, DISCARDED_RUNS_TABLE } from '../postgres/run-sink';
export { stagingTableName, stagingLedgerName } from '../postgres/staging';
export { postgresTypeOf } from '../postgres/sql';
export { closePostgresPools } from '../postgres/connection';
