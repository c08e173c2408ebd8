import path from 'node:path';
import { DEFAULT_REDIS_URL } from '../config/defaults';
import { InvalidInputError } from '../errors';
import { DuckDBSink } from './duckdb';
import { ObjectStoreParquetSink, ParquetSink } from './parquet';
import { openStore } from '../storage';
import { PostgresSink } from './postgres';
import { RedisSink } from './redis';
import { SinkSpecSchema, type SinkSpec } from './spec';
import type { Sink } from './types';

export * from './spec';
export * from './types';
export { ObjectStoreParquetSink, ParquetSink, SUCCESS_MARKER, runDirName } from './parquet';
export { DuckDBSink } from './duckdb';
export { RedisSink, closeRedisClients, readRedisPrediction } from './redis';
export { PostgresSink, PostgresAccessError, StagedRowCountError, closePostgresPools, stagingTableName, stagingLedgerName, postgresTypeOf, RUNS_TABLE, DISCARDED_RUNS_TABLE } from './postgres';

export interface SinkDefaults {
  outputDir: string;
  dataDir: string;
  /** PostgreSQL sink connection URL from the worker's environment (unset: `pg` reads PG* variables). */
  postgresUrl?: string | undefined;
  /** Redis sink connection URL from the worker's environment (INFERFLOW_REDIS_URL). */
  redisUrl?: string | undefined;
}

const factories: { [K in SinkSpec['type']]: (spec: Extract<SinkSpec, { type: K }>, d: SinkDefaults) => Sink } = {
  parquet: (spec, d) => {
    const where = spec.path ?? d.outputDir;
    return /^s3:\/\//.test(where) ? new ObjectStoreParquetSink(openStore(where)) : new ParquetSink(where);
  },
  duckdb: (spec, d) => new DuckDBSink(spec.path ?? path.join(d.dataDir, 'inferflow.duckdb'), spec.table),
  postgres: (spec, d) => new PostgresSink(spec, { url: d.postgresUrl }),
  redis: (spec, d) => new RedisSink({ url: d.redisUrl ?? DEFAULT_REDIS_URL, keyPrefix: spec.keyPrefix ?? 'inferflow', retentionSeconds: spec.retentionSeconds ?? 86_400 }),
};

export function parseSinkSpec(raw: unknown): SinkSpec {
  const parsed = SinkSpecSchema.safeParse(raw ?? { type: 'parquet' });
  if (!parsed.success) {
    throw new InvalidInputError('invalid sink', parsed.error.issues.map((i) => `sink${i.path.length ? '.' + i.path.join('.') : ''}: ${i.message}`));
  }
  return parsed.data;
}

export function createSink(spec: SinkSpec, defaults: SinkDefaults): Sink {
  return (factories[spec.type] as (s: SinkSpec, d: SinkDefaults) => Sink)(spec, defaults);
}
