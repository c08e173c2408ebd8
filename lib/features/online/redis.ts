/**
 * Redis online store: one hash per entity per view.
 *
 *   <keyPrefix>:<view>:<entity key>   hash  _ts → event time (epoch µs), _h → digest of the values,
 *                                            <feature> → encoded value (absent = NULL)
 *
 * Reads are one pipelined HMGET per entity (a single round trip for any number of keys).
 * Writes go through a Lua script, so the check "is the stored event time newer?" and the
 * replacement happen atomically on the server: writes are idempotent and never go back in
 * time, whatever the order in which concurrent writers arrive. Keys do not expire: the
 * reader marks rows older than the view's TTL as STALE.
 *
 * The connection comes from the worker's environment (INFERFLOW_REDIS_URL), never from a spec.
 * A failed command (server down, connection cut) is retried with exponential backoff on a
 * fresh connection; when the attempts are used up a TransientError names the server.
 */
import { createHash } from 'node:crypto';
import type { ChainableCommander, Redis } from 'ioredis';
import { InferflowError, InvalidInputError, PermissionDeniedError, TransientError, errorMessage } from '../../errors';
import { REDIS_KEY_PREFIX } from '../../messages/online-store';
import type { OnlineStore, StoredRow, StoredWrite, WriteCounts } from './types';

export interface RedisOnlineStoreOptions {
  /** `redis://[user:password@]host:port[/db]`; from the environment, never from workflow input. */
  url: string;
  /** Prefix of every key. Default `inferflow:features`. */
  keyPrefix?: string;
  /** Attempts per operation before giving up (default 5) and the first backoff (default 100 ms, doubling, at most 2 s). */
  retry?: { attempts?: number; initialDelayMs?: number; maxDelayMs?: number };
  /** Commands per pipeline round trip when writing (default 1,000). */
  writeBatch?: number;
  /** A command (or pipeline) without an answer after this long fails and is retried (default 5,000 ms): a hung server is not waited on forever. */
  commandTimeoutMs?: number;
}

export const DEFAULT_REDIS_KEY_PREFIX = 'inferflow:features';
const TS_FIELD = '_ts';
const DIGEST_FIELD = '_h';

/**
 * KEYS[1] the entity hash; ARGV[1] event time (µs), ARGV[2] digest, ARGV[3..] field/value pairs (non-null values).
 * Returns 1 written, 2 unchanged (same event time and digest), 0 older than the stored row.
 */
const PUT_SCRIPT = `
local old = redis.call('HMGET', KEYS[1], '${TS_FIELD}', '${DIGEST_FIELD}')
if old[1] then
  local o = tonumber(old[1])
  local n = tonumber(ARGV[1])
  if n < o then return 0 end
  if n == o and old[2] == ARGV[2] then return 2 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '${TS_FIELD}', ARGV[1], '${DIGEST_FIELD}', ARGV[2], unpack(ARGV, 3))
return 1
`;

type ScriptedRedis = Redis & { inferflowPutFeatures(key: string, ts: string, digest: string, ...fields: string[]): Promise<number> };
/** In a pipeline the command queues and returns the pipeline. */
type ScriptedPipeline = ChainableCommander & { inferflowPutFeatures(key: string, ts: string, digest: string, ...fields: string[]): ScriptedPipeline };

/** Digest of a row's values (order-independent over feature names; distinguishes NULL from any string). */
export function valuesDigest(values: Record<string, string | null>): string {
  const h = createHash('sha1');
  for (const name of Object.keys(values).sort()) {
    const v = values[name];
    h.update(name).update('\0').update(v === null ? '\x01' : `\x02${v}`).update('\0');
  }
  return h.digest('base64').slice(0, 16);
}

export class RedisOnlineStore implements OnlineStore {
  readonly type = 'redis';
  readonly location: string;
  private readonly prefix: string;
  private client: ScriptedRedis | undefined;
  private readonly attempts: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly writeBatch: number;

  constructor(private readonly o: RedisOnlineStoreOptions) {
    this.prefix = o.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
    if (!REDIS_KEY_PREFIX.test(this.prefix)) throw new InvalidInputError('invalid Redis key prefix', [`keyPrefix: ${JSON.stringify(this.prefix)} must match [A-Za-z0-9_.:-]{1,128}`]);
    let where: string;
    try {
      const u = new URL(o.url);
      where = `redis://${u.hostname}:${u.port || 6379}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
    } catch {
      throw new InvalidInputError('invalid Redis URL', ['INFERFLOW_REDIS_URL: expected redis://host:port[/db]']);
    }
    this.location = `${where} ${this.prefix}:*`;
    this.attempts = Math.max(1, o.retry?.attempts ?? 5);
    this.initialDelayMs = o.retry?.initialDelayMs ?? 100;
    this.maxDelayMs = o.retry?.maxDelayMs ?? 2_000;
    this.writeBatch = o.writeBatch ?? 1_000;
  }

  private entityKey(view: string, key: string): string {
    return `${this.prefix}:${view}:${key}`;
  }

  private connecting: Promise<ScriptedRedis> | undefined;

  private connected(): Promise<ScriptedRedis> {
    if (this.client && this.client.status === 'ready') return Promise.resolve(this.client);
    // Concurrent callers share one connection attempt.
    this.connecting ??= (async () => {
      this.client?.disconnect();
      // ioredis loads with the first connection: a process that opens a Redis store it never reads does not pay for it.
      const { Redis: RedisClient } = await import('ioredis');
      // Fail fast while the server is away (no offline queue, no auto-reconnect): run() retries with backoff.
      const c = new RedisClient(this.o.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 2_000, commandTimeout: this.o.commandTimeoutMs ?? 5_000, retryStrategy: () => null }) as ScriptedRedis;
      c.on('error', () => undefined); // reported through the failing command
      c.defineCommand('inferflowPutFeatures', { numberOfKeys: 1, lua: PUT_SCRIPT });
      this.client = c;
      await c.connect();
      return c;
    })().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Run `fn` with retries on connection-level failures; typed errors pass through. */
  private async run<T>(op: string, fn: (c: ScriptedRedis) => Promise<T>): Promise<T> {
    const started = Date.now();
    let delay = this.initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(await this.connected());
      } catch (err) {
        if (err instanceof InferflowError) throw err;
        const msg = errorMessage(err);
        if (/NOAUTH|WRONGPASS|NOPERM/.test(msg)) throw new PermissionDeniedError(`${op} on ${this.location} was refused (check the credentials in INFERFLOW_REDIS_URL): ${msg}`, { store: this.location });
        if (/NOSCRIPT|ERR .*script|WRONGTYPE/i.test(msg)) throw err as Error; // not a connectivity problem
        if (this.client?.status !== 'ready') {
          this.client?.disconnect();
          this.client = undefined;
        }
        if (attempt >= this.attempts) {
          throw new TransientError(`online store ${this.location} unavailable: ${op} failed ${attempt} times over ${Date.now() - started} ms (last error: ${msg})`, { store: 'redis', location: this.location, attempts: attempt }, { cause: err });
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, this.maxDelayMs);
      }
    }
  }

  async get(view: string, features: readonly string[], keys: readonly string[]): Promise<(StoredRow | null)[]> {
    if (keys.length === 0) return [];
    const fields = [TS_FIELD, ...features];
    const results = await this.run(`reading ${keys.length} entities of ${view}`, async (c) => {
      const p = c.pipeline();
      for (const k of keys) p.hmget(this.entityKey(view, k), ...fields);
      const out = (await p.exec()) ?? [];
      const failed = out.find(([e]) => e);
      if (failed?.[0]) throw failed[0];
      return out.map(([, r]) => r as (string | null)[]);
    });
    return results.map((r) => {
      if (r[0] === null || r[0] === undefined) return null;
      const values: Record<string, string | null> = {};
      features.forEach((f, i) => (values[f] = r[i + 1] ?? null));
      return { eventTimeUs: Number(r[0]), values };
    });
  }

  async put(view: string, rows: readonly StoredWrite[]): Promise<WriteCounts> {
    const counts: WriteCounts = { written: 0, unchanged: 0, skippedOlder: 0 };
    for (let i = 0; i < rows.length; i += this.writeBatch) {
      const batch = rows.slice(i, i + this.writeBatch);
      // A retried batch re-applies rows already applied: the script makes that a no-op ("unchanged").
      const results = await this.run(`writing ${batch.length} entities of ${view}`, async (c) => {
        const p = c.pipeline() as ScriptedPipeline;
        for (const r of batch) {
          const fields: string[] = [];
          for (const [name, v] of Object.entries(r.values)) if (v !== null) fields.push(name, v);
          p.inferflowPutFeatures(this.entityKey(view, r.key), String(r.eventTimeUs), valuesDigest(r.values), ...fields);
        }
        const out = (await p.exec()) ?? [];
        const failed = out.find(([e]) => e);
        if (failed?.[0]) throw failed[0];
        return out.map(([, v]) => Number(v));
      });
      for (const v of results) {
        if (v === 1) counts.written++;
        else if (v === 2) counts.unchanged++;
        else counts.skippedOlder++;
      }
    }
    return counts;
  }

  async deleteView(view: string): Promise<number> {
    return this.run(`deleting view ${view}`, async (c) => {
      let removed = 0;
      let cursor = '0';
      // Neither the prefix ([A-Za-z0-9_.:-]) nor a view name holds glob characters.
      const pattern = `${this.prefix}:${view}:*`;
      do {
        const [next, keys] = await c.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) removed += await c.unlink(...keys);
      } while (cursor !== '0');
      return removed;
    });
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.quit().catch(() => c.disconnect());
  }
}
