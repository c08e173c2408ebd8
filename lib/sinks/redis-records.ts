import { checkRecords, type PredictionRecord, type RecordSink, type RecordWriteOptions, type RecordWriteResult } from './records';
import { connectedRedis, redisEndpoint, redisFailure } from './redis';

export interface RedisRecordSinkOptions {
  /** redis://host:port/db from the worker's environment (INFERFLOW_REDIS_URL); never from workflow input. */
  url: string;
  keyPrefix: string;
  /** Seconds each record is kept; undefined: until deleted. */
  ttlSeconds?: number | undefined;
}

/** Records written per pipeline round trip. */
const PIPELINE_BATCH = 1_000;

/**
 * The Redis record sink: each record is the JSON string at `<keyPrefix>:<key>` (the record as
 * written, plus `writeKey`), stored with `SET … NX` (optionally `EX ttlSeconds`), so the first
 * write of a key is the one kept. An application reads a record with `GET <keyPrefix>:<key>`.
 */
export class RedisRecordSink implements RecordSink {
  readonly type = 'redis';

  constructor(readonly o: RedisRecordSinkOptions) {}

  /** The Redis key of a record. */
  keyOf(recordKey: string): string {
    return `${this.o.keyPrefix}:${recordKey}`;
  }

  get location(): string {
    return `${redisEndpoint(this.o.url)} ${this.o.keyPrefix}:*`;
  }

  async write(records: readonly PredictionRecord[], options: RecordWriteOptions): Promise<RecordWriteResult> {
    const unique = checkRecords(records, options);
    const redis = await connectedRedis(this.o.url);
    let written = 0;
    try {
      for (let i = 0; i < unique.length; i += PIPELINE_BATCH) {
        const p = redis.pipeline();
        for (const r of unique.slice(i, i + PIPELINE_BATCH)) {
          const value = JSON.stringify({ ...r, writeKey: options.idempotencyKey });
          if (this.o.ttlSeconds !== undefined) p.set(this.keyOf(r.key), value, 'EX', this.o.ttlSeconds, 'NX');
          else p.set(this.keyOf(r.key), value, 'NX');
        }
        for (const [err, reply] of (await p.exec()) ?? []) {
          if (err) throw err;
          if (reply === 'OK') written++;
        }
      }
    } catch (err) {
      throw redisFailure(err, `writing ${unique.length} records under ${this.o.keyPrefix}`, this.o.url);
    }
    return { written, duplicates: records.length - written };
  }

  /** Nothing of its own: the connection is the process's client for the URL (closeRedisClients). */
  async close(): Promise<void> {}
}

/** What an application does to read a record: GET the key, parse the JSON. */
export async function readRedisRecord(url: string, keyPrefix: string, key: string): Promise<(PredictionRecord & { writeKey: string }) | null> {
  const v = await (await connectedRedis(url)).get(`${keyPrefix}:${key}`);
  return v === null ? null : (JSON.parse(v) as PredictionRecord & { writeKey: string });
}
