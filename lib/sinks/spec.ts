import { z } from 'zod';

export const TABLE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export const ParquetSinkSpec = z.object({
  type: z.literal('parquet'),
  /** Output directory (`file://…` or a path). Default: the configured output dir. */
  path: z.string().min(1).optional(),
});

export const DuckDBSinkSpec = z.object({
  type: z.literal('duckdb'),
  /** Database file. Default: `<dataDir>/inferflow.duckdb`. */
  path: z.string().min(1).optional(),
  table: z.string().regex(TABLE_NAME_PATTERN, `table must match ${TABLE_NAME_PATTERN.source}`),
});

export const SinkSpecSchema = z.discriminatedUnion('type', [ParquetSinkSpec, DuckDBSinkSpec]);
export type SinkSpec = z.infer<typeof SinkSpecSchema>;
