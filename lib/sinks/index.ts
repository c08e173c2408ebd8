import path from 'node:path';
import { InvalidInputError } from '../errors';
import { DuckDBSink } from './duckdb';
import { ParquetSink } from './parquet';
import { SinkSpecSchema, type SinkSpec } from './spec';
import type { Sink } from './types';

export * from './spec';
export * from './types';
export { ParquetSink, SUCCESS_MARKER, runDirName } from './parquet';
export { DuckDBSink } from './duckdb';

export interface SinkDefaults {
  outputDir: string;
  dataDir: string;
}

const factories: { [K in SinkSpec['type']]: (spec: Extract<SinkSpec, { type: K }>, d: SinkDefaults) => Sink } = {
  parquet: (spec, d) => new ParquetSink(spec.path ?? d.outputDir),
  duckdb: (spec, d) => new DuckDBSink(spec.path ?? path.join(d.dataDir, 'inferflow.duckdb'), spec.table),
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
