import path from 'node:path';
import { DEFAULT_NATS_URL, DEFAULT_REDIS_URL } from '../config/defaults';
import { InvalidInputError } from '../errors';
import { DuckDBSink } from './duckdb';
import { ObjectStoreParquetSink, ParquetSink } from './parquet';
import { openStore } from '../storage';
import { checkLocationAllowed } from '../storage/roots';
import { PostgresSink } from '../postgres/run-sink';
import { RedisSink } from './redis';
import type { RecordSink } from './records';
import { RecordSinkSpecSchema, SinkSpecSchema, type RecordSinkSpec, type SinkSpec } from './spec';
import type { RunSink } from './types';

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

export interface SinkDefaults {
  outputDir: string;
  dataDir: string;
  /** PostgreSQL sink connection URL from the worker's environment (unset: `pg` reads PG* variables). */
  postgresUrl?: string | undefined;
  /** Redis sink connection URL from the worker's environment (INFERFLOW_REDIS_URL). */
  redisUrl?: string | undefined;
  /** NATS record sink server from the worker's environment (INFERFLOW_NATS_URL). */
  natsUrl?: string | undefined;
  /** Roots file and object-store sinks must write inside (the worker's allowedRoots). */
  allowedRoots: readonly string[];
}

/** A process's sink defaults from its config. */
export function sinkDefaultsFrom(config: Pick<SinkDefaults, 'outputDir' | 'dataDir' | 'postgresUrl' | 'redisUrl' | 'natsUrl' | 'allowedRoots'>): SinkDefaults {
  return { outputDir: config.outputDir, dataDir: config.dataDir, postgresUrl: config.postgresUrl, redisUrl: config.redisUrl, natsUrl: config.natsUrl, allowedRoots: config.allowedRoots };
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
    throw new InvalidInputError('invalid sink', problemsOf('sink', parsed.error.issues));
  }
  return parsed.data;
}

/** @throws PermissionDeniedError a file or object-store sink outside `defaults.allowedRoots` */
export function createRunSink(spec: SinkSpec, defaults: SinkDefaults): RunSink {
  checkSinkAllowed(spec, defaults);
  return (factories[spec.type] as (s: SinkSpec, d: SinkDefaults) => RunSink)(spec, defaults);
}

/** Sink specs → Zod problems named from `field` (`sink.table: …`). */
function problemsOf(field: string, issues: readonly { path: readonly PropertyKey[]; message: string }[]): string[] {
  return issues.map((i) => `${field}${i.path.length ? '.' + i.path.map(String).join('.') : ''}: ${i.message}`);
}

/**
 * Record sink backends load on first use: a process that writes no records (a batch worker, the
 * CLI) never loads the NATS client or the record sinks. The modules are kept once loaded.
 */
let natsModule: Promise<typeof import('./nats-records.js')> | undefined;
const backends = {
  postgres: () => import('../postgres/record-sink.js'),
  redis: () => import('./redis-records.js'),
  nats: () => (natsModule ??= import('./nats-records.js')),
};

const recordFactories: { [K in RecordSinkSpec['type']]: (spec: Extract<RecordSinkSpec, { type: K }>, d: SinkDefaults) => Promise<RecordSink> } = {
  postgres: async (spec, d) => new (await backends.postgres()).PostgresRecordSink(spec, { url: d.postgresUrl }),
  redis: async (spec, d) => new (await backends.redis()).RedisRecordSink({ url: d.redisUrl ?? DEFAULT_REDIS_URL, keyPrefix: spec.keyPrefix, ttlSeconds: spec.ttlSeconds }),
  nats: async (spec, d) => new (await backends.nats()).NatsRecordSink({ url: d.natsUrl ?? DEFAULT_NATS_URL, subject: spec.subject }),
};

/** A record sink whose backend module loads on its first write (the sink itself is created then too). */
class LazyRecordSink implements RecordSink {
  private opened: Promise<RecordSink> | undefined;
  constructor(
    readonly type: RecordSinkSpec['type'],
    private readonly open: () => Promise<RecordSink>,
  ) {}

  async write(...args: Parameters<RecordSink['write']>): ReturnType<RecordSink['write']> {
    return (await (this.opened ??= this.open())).write(...args);
  }

  async close(): Promise<void> {
    if (this.opened) await (await this.opened).close();
  }
}

/** Close the NATS connections record sinks opened; loads nothing when no NATS sink was used. */
export async function closeNatsConnections(): Promise<void> {
  if (natsModule) await (await natsModule).closeNatsConnections();
}

/** @throws InvalidInputError naming the field (`recordSink.…`) */
export function parseRecordSinkSpec(raw: unknown): RecordSinkSpec {
  const parsed = RecordSinkSpecSchema.safeParse(raw);
  if (!parsed.success) throw new InvalidInputError('invalid record sink', problemsOf('recordSink', parsed.error.issues));
  return parsed.data;
}

/** A record sink (online prediction logs, streaming output); connection settings come from `defaults`; its backend loads on the first write. */
export function createRecordSink(spec: RecordSinkSpec, defaults: SinkDefaults): RecordSink {
  return new LazyRecordSink(spec.type, () => (recordFactories[spec.type] as (s: RecordSinkSpec, d: SinkDefaults) => Promise<RecordSink>)(spec, defaults));
}
