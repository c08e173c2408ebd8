/**
 * Redis Streams source: a consumer group. Entries read and not acknowledged (XACK) stay in the
 * group's pending list; on start the reader first takes its own pending entries again, and now
 * and then claims entries other consumers left pending longer than `claimIdleMs` (XAUTOCLAIM),
 * so a crashed bridge's entries are delivered again. The event is the JSON in one entry field.
 */
import type { Redis } from 'ioredis';
import { InvalidInputError } from '../errors';
import { connectedRedis, redisFailure } from '../sinks/redis';
import type { SourceMessage, StreamSourceReader } from './types';

export interface RedisSourceOptions {
  url: string;
  stream: string;
  group: string;
  /** This reader's consumer name in the group (a restarted bridge takes its own pending entries back first). */
  consumer: string;
  /** Entry field holding the event JSON. */
  field: string;
  /** Entries pending with another consumer longer than this are claimed. */
  claimIdleMs?: number;
}

const DEFAULT_CLAIM_IDLE_MS = 30_000;
/** How often (ms) the reader looks for entries other consumers left pending. */
const CLAIM_EVERY_MS = 5_000;

type Entry = [id: string, fields: string[]];

export class RedisSource implements StreamSourceReader {
  readonly description: string;
  /** Reading our own pending entries first (after a restart), from this id. */
  private ownPendingFrom: string | undefined = '0';
  private lastClaim = 0;

  private constructor(
    private readonly redis: Redis,
    private readonly o: RedisSourceOptions,
  ) {
    this.description = `redis stream ${o.stream} (group ${o.group}, consumer ${o.consumer})`;
  }

  /** Connect and create the consumer group (from the stream's start) when missing. */
  static async open(o: RedisSourceOptions): Promise<RedisSource> {
    // A connection of its own: XREADGROUP BLOCK holds it while waiting.
    const shared = await connectedRedis(o.url);
    const redis = shared.duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true, retryStrategy: (n: number) => Math.min(n * 200, 2_000) });
    redis.on('error', () => {});
    try {
      await redis.xgroup('CREATE', o.stream, o.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test(String(err))) {
        redis.disconnect();
        if (/WRONGTYPE/.test(String(err))) throw new InvalidInputError(`redis key ${o.stream} is not a stream`, [`source.stream: ${o.stream} holds another type`], { object: o.stream });
        throw redisFailure(err, `creating consumer group ${o.group} on ${o.stream}`, o.url);
      }
    }
    return new RedisSource(redis, o);
  }

  private toMessages(entries: Entry[]): SourceMessage[] {
    return entries
      .filter((e): e is Entry => Array.isArray(e) && Array.isArray(e[1]))
      .map(([id, fields]) => {
        const i = fields.findIndex((f, n) => n % 2 === 0 && f === this.o.field);
        return { position: `${this.o.stream}:${id}`, payload: i >= 0 ? (fields[i + 1] ?? '') : '', publishedAt: new Date(Number(id.split('-')[0])) };
      });
  }

  async pull(max: number, waitMs: number): Promise<SourceMessage[]> {
    try {
      if (this.ownPendingFrom !== undefined) {
        const r = (await this.redis.xreadgroup('GROUP', this.o.group, this.o.consumer, 'COUNT', max, 'STREAMS', this.o.stream, this.ownPendingFrom)) as [string, Entry[]][] | null;
        const entries = r?.[0]?.[1] ?? [];
        if (entries.length > 0) {
          this.ownPendingFrom = entries[entries.length - 1]![0];
          return this.toMessages(entries);
        }
        this.ownPendingFrom = undefined;
      }
      if (Date.now() - this.lastClaim >= CLAIM_EVERY_MS) {
        this.lastClaim = Date.now();
        const [, claimed] = (await this.redis.xautoclaim(this.o.stream, this.o.group, this.o.consumer, this.o.claimIdleMs ?? DEFAULT_CLAIM_IDLE_MS, '0-0', 'COUNT', max)) as [string, Entry[]];
        if (claimed.length > 0) return this.toMessages(claimed);
      }
      const r = (await this.redis.xreadgroup('GROUP', this.o.group, this.o.consumer, 'COUNT', max, 'BLOCK', waitMs, 'STREAMS', this.o.stream, '>')) as [string, Entry[]][] | null;
      return this.toMessages(r?.[0]?.[1] ?? []);
    } catch (err) {
      throw redisFailure(err, `reading ${this.o.stream}`, this.o.url);
    }
  }

  async ack(messages: readonly SourceMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const prefix = `${this.o.stream}:`;
    try {
      await this.redis.xack(this.o.stream, this.o.group, ...messages.map((m) => m.position.slice(prefix.length)));
    } catch (err) {
      throw redisFailure(err, `acknowledging entries of ${this.o.stream}`, this.o.url);
    }
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
