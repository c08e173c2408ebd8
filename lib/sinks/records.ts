/**
 * The record sink contract (online prediction logs, streaming output): small typed records
 * written by key. Writing a key that is already stored keeps the stored record (the first write
 * wins): a retried or replayed write never changes what a consumer may already have read.
 */
import { z } from 'zod';
import { InvalidInputError, InvalidValueError } from '../errors';

/**
 * A named prediction: a number or a string (a post-processed label such as "review"), or an
 * array of either for a list output (embeddings, a multi-output regression, top-k classes).
 */
const OutputValue = z.union([z.number(), z.string(), z.array(z.number()), z.array(z.string())]);

export const PredictionRecordSchema = z.strictObject({
  /** The record's idempotency key (event id, request id): one stored record per key. */
  key: z.string().min(1).max(512),
  /** The entity the prediction is about, as a string (e.g. a customer id). */
  entity: z.string().max(512).optional(),
  /** Named predictions, e.g. `{ score: 0.93, label: 1 }` or `{ embedding: [0.1, 0.2] }`. */
  outputs: z.record(z.string().min(1).max(128), OutputValue).refine((o) => Object.keys(o).length > 0, 'at least one output'),
  model: z.strictObject({ name: z.string().min(1), version: z.number().int().positive(), sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits') }),
  /** When the event happened (ISO 8601 with offset). */
  eventTime: z.iso.datetime({ offset: true }).optional(),
  /** When the prediction was made (ISO 8601 with offset). */
  predictedAt: z.iso.datetime({ offset: true }),
  /** Small extra facts kept with the record (request origin, thresholds applied…). */
  attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
});
export type PredictionRecord = z.infer<typeof PredictionRecordSchema>;

export interface RecordWriteOptions {
  /**
   * The write's own idempotency key (the activity's batch id, the request id): stored with each
   * record it stores, to trace a record to the write that stored it. Records are de-duplicated by
   * their own `key`, so a retried write stores nothing twice.
   */
  idempotencyKey: string;
}

export interface RecordWriteResult {
  /** Records stored by this write. */
  written: number;
  /** Records not stored: their key was stored before, or came earlier in the same batch. */
  duplicates: number;
}

/** A sink of prediction records, idempotent per record key. */
export interface RecordSink {
  readonly type: string;
  /** Store the records whose key is not stored yet; validated first (nothing is written when one is bad). */
  write(records: readonly PredictionRecord[], options: RecordWriteOptions): Promise<RecordWriteResult>;
  /** Release what the sink holds of its own (the process's shared connection pools stay open). */
  close(): Promise<void>;
}

/**
 * Check a batch before anything is written and drop repeated keys (the first occurrence stays).
 * @throws InvalidValueError a NaN or ±Infinity output, naming the record and output
 * @throws InvalidInputError anything else malformed, naming the field
 */
export function checkRecords(records: readonly unknown[], options: RecordWriteOptions): PredictionRecord[] {
  if (typeof options?.idempotencyKey !== 'string' || options.idempotencyKey === '') throw new InvalidInputError('invalid record write', ['idempotencyKey: a non-empty string']);
  const nonFinite = records.flatMap((r, i) =>
    Object.entries((r as { outputs?: Record<string, unknown> } | null)?.outputs ?? {}).flatMap(([name, v]) => {
      const values = Array.isArray(v) ? v : [v];
      const bad = values.findIndex((x) => typeof x === 'number' && !Number.isFinite(x));
      return bad < 0 ? [] : [`records[${i}].outputs.${name}${Array.isArray(v) ? `[${bad}]` : ''} is ${String(values[bad])}`];
    }),
  );
  if (nonFinite.length > 0) throw new InvalidValueError(`prediction records hold values a sink cannot store: ${nonFinite.slice(0, 10).join('; ')}`, { problems: nonFinite.slice(0, 100) });
  const problems: string[] = [];
  const seen = new Set<string>();
  const unique: PredictionRecord[] = [];
  records.forEach((r, i) => {
    const parsed = PredictionRecordSchema.safeParse(r);
    if (!parsed.success) {
      problems.push(...parsed.error.issues.map((issue) => `records[${i}]${issue.path.length ? '.' + issue.path.join('.') : ''}: ${issue.message}`));
    } else if (!seen.has(parsed.data.key)) {
      seen.add(parsed.data.key);
      unique.push(parsed.data);
    }
  });
  if (problems.length > 0) throw new InvalidInputError('invalid prediction records', problems.slice(0, 20));
  return unique;
}
