import path from 'node:path';
import { DEFAULT_REDIS_URL } from '../config/env';
import { InvalidInputError } from '../errors';
import { DuckDBSink } from './duckdb';
import { ObjectStoreParquetSink, ParquetSink } from './parquet';
import { openStore } from '../storage';
import { checkLocationAllowed } from '../storage/roots';
import { PostgresSink } from '../postgres/run-sink';
import { RedisSink } from './redis';
import { SinkSpecSchema, type SinkSpec } from './spec';
import type { RunSink } from './types';

export * from './spec';
export * from './types';
export { ObjectStoreParquetSink, ParquetSink, SUCCESS_MARKER, runDirName } from './parquet';
export { DuckDBSink } from './duckdb';
export { RedisSink, closeRedisClients, readRedisPrediction } from './redis';
export { PostgresSink, stagingTableName, stagingLedgerName, RUNS_TABLE, DISCARDED_RUNS_TABLE } from '../postgres/run-sink';
export { postgresTypeOf } from '../postgres/sql';
export { closePostgresPools } from '../postgres/connection';

export interface SinkDefaults {
  outputDir: string;
  dataDir: string;
  /** PostgreSQL sink connection URL from the worker's environment (unset: `pg` reads PG* variables). */
  postgresUrl?: string | undefined;
  /** Redis sink connection URL from the worker's environment (INFERFLOW_REDIS_URL). */
  redisUrl?: string | undefined;
  /** Roots file and object-store sinks must write inside (the worker's allowedRoots). */
  allowedRoots: readonly string[];
}

/** Where a file or object-store sink writes (a directory, a database file or an s3:// prefix); undefined for database sinks. */
function sinkLocation(spec: SinkSpec, d: SinkDefaults): string | undefined {
  if (spec.type === 'parquet') return spec.path ?? d.outputDir;
  if (spec.type === 'duckdb') return spec.path ?? path.join(d.dataDir, 'inferflow.duckdb');
  return undefined;
}

/**
 * A file or object-store sink must write inside the worker's allowed roots.
 * @throws PermissionDeniedError naming sink.path and the roots
 */
export function checkSinkAllowed(spec: SinkSpec, d: SinkDefaults): void {
  const where = sinkLocation(spec, d);
  if (where !== undefined) checkLocationAllowed(where, d.allowedRoots, 'sink.path');
}

const factories: { [K in SinkSpec['type']]: (spec: Extract<SinkSpec, { type: K }>, d: SinkDefaults) => RunSink } = {
  parquet: (spec, d) => {
    const where = sinkLocation(spec, d)!;
    return /^s3:\/\//.test(where) ? new ObjectStoreParquetSink(openStore(where)) : new ParquetSink(where);
  },
  duckdb: (spec, d) => new DuckDBSink(sinkLocation(spec, d)!, spec.table),
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

/** @throws PermissionDeniedError a file or object-store sink outside `defaults.allowedRoots` */
export function createRunSink(spec: SinkSpec, defaults: SinkDefaults): RunSink {
  checkSinkAllowed(spec, defaults);
  return (factories[spec.type] as (s: SinkSpec, d: SinkDefaults) => RunSink)(spec, defaults);
}
