import path from 'node:path';
import { InvalidInputError } from '../errors';
import { DuckDBSink } from './duckdb';
import { ParquetSink } from './parquet';
import { PostgresSink } from './postgres';
import { SinkSpecSchema, type SinkSpec } from './spec';
import type { Sink } from './types';

export * from './spec';
export * from './types';
export { ParquetSink, SUCCESS_MARKER, runDirName } from './parquet';
export { DuckDBSink } from './duckdb';
export { PostgresSink, PostgresAccessError, StagedRowCountError, closePostgresPools, stagingTableName, postgresTypeOf, RUNS_TABLE } from './postgres';

export interface SinkDefaults {
  outputDir: string;
  dataDir: string;
  /** PostgreSQL sink connection URL from the worker's environment (unset: `pg` reads PG* variables). */
  postgresUrl?: string | undefined;
}

const factories: { [K in SinkSpec['type']]: (spec: Extract<SinkSpec, { type: K }>, d: SinkDefaults) => Sink } = {
  parquet: (spec, d) => new ParquetSink(spec.path ?? d.outputDir),
  duckdb: (spec, d) => new DuckDBSink(spec.path ?? path.join(d.dataDir, 'inferflow.duckdb'), spec.table),
  postgres: (spec, d) => new PostgresSink(spec, { url: d.postgresUrl }),
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
