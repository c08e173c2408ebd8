/**
 * Sink specs → sinks: the run sinks of batch (Parquet, DuckDB, PostgreSQL, Redis) and the record
 * sinks of online logs and streaming (PostgreSQL, Redis, NATS JetStream), with the process's
 * defaults (output dir, connections from the environment, allowed roots). Light to import: the
 * DuckDB, PostgreSQL, Redis and NATS client libraries load with the first sink that needs them.
 */
import path from 'node:path';
import { DEFAULT_NATS_URL, DEFAULT_REDIS_URL } from '../config/defaults';
import { InvalidInputError } from '../errors';
import { openStore } from '../storage';
import { checkLocationAllowed } from '../storage/roots';
import { DuckDBSink } from './duckdb';
import { ObjectStoreParquetSink, ParquetSink } from './parquet';
import type { RecordSink } from './records';
import { RecordSinkSpecSchema, SinkSpecSchema, type RecordSinkSpec, type SinkSpec } from './spec';
import type { RunSink } from './types';

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

/**
 * Backends load on first use: a process that writes no records (a batch worker, the CLI) never
 * loads the NATS client or the record sinks, and one that writes no batch output (the model
 * server) never loads the PostgreSQL or Redis run sinks. Modules are kept once loaded.
 */
let natsModule: Promise<typeof import('./nats-records.js')> | undefined;
const backends = {
  postgresRun: () => import('../postgres/run-sink.js'),
  redisRun: () => import('./redis.js'),
  postgresRecords: () => import('../postgres/record-sink.js'),
  redisRecords: () => import('./redis-records.js'),
  nats: () => (natsModule ??= import('./nats-records.js')),
};

/** The NATS record sink module (its connections, JetStream clients), loaded on first use. */
export const loadNatsBackend = backends.nats;

const factories: { [K in SinkSpec['type']]: (spec: Extract<SinkSpec, { type: K }>, d: SinkDefaults) => Promise<RunSink> } = {
  parquet: (spec, d) => {
    const where = sinkLocation(spec, d)!;
    return Promise.resolve(/^s3:\/\//.test(where) ? new ObjectStoreParquetSink(openStore(where)) : new ParquetSink(where));
  },
  duckdb: (spec, d) => Promise.resolve(new DuckDBSink(sinkLocation(spec, d)!, spec.table)),
  postgres: async (spec, d) => new (await backends.postgresRun()).PostgresSink(spec, { url: d.postgresUrl }),
  redis: async (spec, d) => new (await backends.redisRun()).RedisSink({ url: d.redisUrl ?? DEFAULT_REDIS_URL, keyPrefix: spec.keyPrefix ?? 'inferflow', retentionSeconds: spec.retentionSeconds ?? 86_400 }),
};

export function parseSinkSpec(raw: unknown): SinkSpec {
  const parsed = SinkSpecSchema.safeParse(raw ?? { type: 'parquet' });
  if (!parsed.success) {
    throw new InvalidInputError('invalid sink', problemsOf('sink', parsed.error.issues));
  }
  return parsed.data;
}

/**
 * The run sink of a parsed spec; its backend module loads on the first call for that backend.
 * @throws PermissionDeniedError a file or object-store sink outside `defaults.allowedRoots`
 */
export async function createRunSink(spec: SinkSpec, defaults: SinkDefaults): Promise<RunSink> {
  checkSinkAllowed(spec, defaults);
  return await (factories[spec.type] as (s: SinkSpec, d: SinkDefaults) => Promise<RunSink>)(spec, defaults);
}

/** Sink specs → Zod problems named from `field` (`sink.table: …`). */
function problemsOf(field: string, issues: readonly { path: readonly PropertyKey[]; message: string }[]): string[] {
  return issues.map((i) => `${field}${i.path.length ? '.' + i.path.map(String).join('.') : ''}: ${i.message}`);
}

const recordFactories: { [K in RecordSinkSpec['type']]: (spec: Extract<RecordSinkSpec, { type: K }>, d: SinkDefaults) => Promise<RecordSink> } = {
  postgres: async (spec, d) => new (await backends.postgresRecords()).PostgresRecordSink(spec, { url: d.postgresUrl }),
  redis: async (spec, d) => new (await backends.redisRecords()).RedisRecordSink({ url: d.redisUrl ?? DEFAULT_REDIS_URL, keyPrefix: spec.keyPrefix, ttlSeconds: spec.ttlSeconds }),
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
