import { Redis } from 'ioredis';
import { InferflowError, InvalidInputError, PermissionDeniedError, RowCountMismatchError, TransientError, errorMessage } from '../errors';
import { describeColumns, ident, lit, toText, withSharedDuckDB } from '../io/duckdb';
import { registerClientMap } from '../util/shared-clients';
import type { CommitRequest, CommitResult, RunRef, RunSink, StageRequest } from './types';

export interface RedisSinkOptions {
  /** redis://host:port/db from the worker's environment (INFERFLOW_REDIS_URL); never from workflow input. */
  url: string;
  keyPrefix: string;
  /** Seconds an outdated version stays readable after the pointer moves on. */
  retentionSeconds: number;
}


/** How long a discarded run's marker outlives it: far longer than any shard attempt can. */
const DISCARDED_KEPT_SECONDS = 7 * 24 * 3600;
const SHARD_FIELD = 'shard:';

const clients = new Map<string, Redis>();

/** `redis host:port` of a URL, for messages (never its credentials). */
export function redisEndpoint(url: string): string {
  const u = new URL(url);
  return `redis ${u.hostname}:${u.port || 6379}`;
}

/** Redis errors → typed errors: refused credentials are permanent, anything else transient (retried). */
export function redisFailure(err: unknown, op: string, url: string): Error {
  if (err instanceof InferflowError) return err;
  const msg = errorMessage(err);
  const where = redisEndpoint(url);
  if (/NOAUTH|WRONGPASS|NOPERM/.test(msg)) return new PermissionDeniedError(`${op} on ${where} was refused (check the credentials in INFERFLOW_REDIS_URL): ${msg.replace(/\S+@/, '')}`, { endpoint: where });
  return new TransientError(`${op} on ${where} failed: ${msg}`, { endpoint: where }, { cause: err });
}

/** The process's client for `url` (one per URL, shared by the run and record sinks), connected. */
export async function connectedRedis(url: string): Promise<Redis> {
  let c = clients.get(url);
  if (!c) {
    // Fail fast instead of queueing commands while the server is away: Temporal retries the activity.
    c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 3000, retryStrategy: () => null });
    c.on('error', () => {}); // reported through the failing command instead
    clients.set(url, c);
  }
  if (c.status === 'wait' || c.status === 'end' || c.status === 'close') {
    try {
      await c.connect();
    } catch (err) {
      clients.delete(url);
      throw redisFailure(err, 'connect', url);
    }
  }
  return c;
}

/** Close every client of `connectedRedis` (Resources.close() of the last open Resources, tests). */
export async function closeRedisClients(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  await Promise.allSettled(all.map((c) => c.quit()));
}
registerClientMap('redis', closeRedisClients);

/**
 * Redis, for applications that read batch predictions online (one key per entity):
 *   <prefix>:run:<runId>:<id>        JSON {label, score, model_name, model_version, model_sha256, as_of}
 *   <prefix>:run:<runId>             the run's own hash: `shard:<i>` → rows staged (for the
 *                                    completeness check), `committed`, `discarded` (timestamps).
 *                                    No entity key can be it (theirs go on with `:<id>`), so an
 *                                    entity named "committed" or "shards" is just an entity.
 *   <prefix>:<pipeline>:current      the committed run readers use (flipped atomically)
 * Shards write their version's keys; commit checks the row count, flips the pointer in one
 * MULTI/EXEC and lets the previous version expire after `retentionSeconds`. A discarded run's
 * hash keeps `discarded` for DISCARDED_KEPT_SECONDS, so a shard attempt that outlives its run
 * removes what it wrote.
 */
export class RedisSink implements RunSink {
  readonly type = 'redis';

  constructor(readonly o: RedisSinkOptions) {}

  private redis(): Promise<Redis> {
    return connectedRedis(this.o.url);
  }

  private where(): string {
    return redisEndpoint(this.o.url);
  }

  private translate(err: unknown, op: string): Error {
    return redisFailure(err, op, this.o.url);
  }

  /** Every prediction is stored under its id. */
  needsIds(): boolean {
    return true;
  }

  private key(...parts: string[]): string {
    return [this.o.keyPrefix, ...parts].join(':');
  }

  async stage(req: StageRequest): Promise<void> {
    if (!req.idColumn) throw new InvalidInputError('the redis sink needs an id column', ['set idColumn (or the model\'s id_column) so every prediction has a key']);
    const rows = await withSharedDuckDB(async (conn) => {
      // Every output column but the id and the run id, in the part's order (lists become JSON arrays).
      const columns = (await describeColumns(conn, req.partPath)).map((c) => c.name).filter((n) => n !== req.idColumn && n !== 'run_id');
      const value = (n: string) => (n === 'as_of' ? `as_of := strftime(as_of AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ')` : `${ident(n)} := ${ident(n)}`);
      const r = await conn.runAndReadAll(
        `SELECT CAST(${ident(req.idColumn!)} AS VARCHAR), to_json(struct_pack(${columns.map(value).join(', ')}))::VARCHAR
         FROM read_parquet(${lit(req.partPath)})`,
      );
      return r.getRowsJS();
    });
    const redis = await this.redis();
    const run = this.key('run', req.runId);
    try {
      // A late attempt (the run was published or discarded meanwhile) writes nothing.
      if ((await redis.hmget(run, 'committed', 'discarded')).some((v) => v !== null)) return;
      for (let i = 0; i < rows.length; i += 5_000) {
        const p = redis.pipeline();
        for (const [id, value] of rows.slice(i, i + 5_000)) p.set(this.key('run', req.runId, toText(id)), toText(value));
        const results = (await p.exec()) ?? [];
        const failed = results.find(([e]) => e);
        if (failed?.[0]) throw failed[0];
        req.onProgress?.();
      }
      const [, discarded] = (await redis.multi().hset(run, `${SHARD_FIELD}${req.shardIndex}`, String(rows.length)).hget(run, 'discarded').exec()) ?? [];
      if (discarded?.[1] !== null && discarded?.[1] !== undefined) {
        // Discarded while this attempt wrote: its scan may have missed keys written after it
        // passed them, and everything written before the marker was set is gone already.
        for (let i = 0; i < rows.length; i += 5_000) await redis.unlink(...rows.slice(i, i + 5_000).map(([id]) => this.key('run', req.runId, toText(id))));
        await redis.hdel(run, `${SHARD_FIELD}${req.shardIndex}`);
      }
    } catch (err) {
      throw this.translate(err, `staging shard ${req.shardIndex}`);
    }
  }

  /** Rows staged per shard, from the run's hash. */
  private static stagedRows(state: Record<string, string>): number {
    return Object.entries(state).reduce((sum, [field, v]) => sum + (field.startsWith(SHARD_FIELD) ? Number(v) : 0), 0);
  }

  /** The run's hash says `committed`: its rows are the shards' counts kept beside it. */
  async committed(run: RunRef): Promise<CommitResult | undefined> {
    const redis = await this.redis();
    try {
      const state = await redis.hgetall(this.key('run', run.runId));
      return state.committed !== undefined ? { location: `${this.where()} ${this.key(run.pipeline, 'current')}`, rows: RedisSink.stagedRows(state), created: false } : undefined;
    } catch (err) {
      throw this.translate(err, 'reading the run state');
    }
  }

  async commit(req: CommitRequest): Promise<CommitResult> {
    const redis = await this.redis();
    const pointer = this.key(req.pipeline, 'current');
    const location = `${this.where()} ${pointer}`;
    try {
      const run = this.key('run', req.runId);
      const state = await redis.hgetall(run);
      if (state.committed !== undefined) return { location, rows: RedisSink.stagedRows(state), created: false };
      if (state.discarded !== undefined) throw new RowCountMismatchError(`run ${req.runId} was discarded at ${state.discarded}; nothing was published`, { runId: req.runId });
      const staged = RedisSink.stagedRows(state);
      if (staged !== req.rows) throw new RowCountMismatchError(`run ${req.runId} staged ${staged} rows in Redis, expected ${req.rows}`, { runId: req.runId });
      await redis.watch(pointer);
      const previous = await redis.get(pointer);
      const ok = await redis
        .multi()
        .set(pointer, req.runId)
        .hset(run, 'committed', new Date().toISOString())
        .zadd(this.key(req.pipeline, 'runs'), Date.now(), req.runId)
        .exec();
      if (ok === null) throw new TransientError(`pointer ${pointer} moved during commit; retrying`, { pointer });
      if (previous && previous !== req.runId) await this.expireRun(redis, previous);
      return { location, rows: req.rows, created: true };
    } catch (err) {
      throw this.translate(err, 'commit');
    }
  }

  /** Outdated versions stay readable for `retentionSeconds`, then Redis drops them. */
  private async expireRun(redis: Redis, runId: string): Promise<void> {
    await redis.expire(this.key('run', runId), this.o.retentionSeconds);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${this.key('run', runId)}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) {
        const p = redis.pipeline();
        for (const k of keys) p.expire(k, this.o.retentionSeconds);
        await p.exec();
      }
    } while (cursor !== '0');
  }

  async discard(runId: string): Promise<void> {
    const redis = await this.redis();
    try {
      const run = this.key('run', runId);
      if ((await redis.hexists(run, 'committed')) === 1) return; // published: keep
      // The marker first: an attempt still writing sees it when it finishes and removes its own keys.
      await redis.multi().hset(run, 'discarded', new Date().toISOString()).expire(run, DISCARDED_KEPT_SECONDS).exec();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${this.key('run', runId)}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== '0');
    } catch (err) {
      throw this.translate(err, 'discard');
    }
  }
}

/** What an application does to read a batch prediction: follow the pointer, then the key. */
export async function readRedisPrediction(redis: Redis, keyPrefix: string, pipeline: string, id: string): Promise<Record<string, unknown> | null> {
  const runId = await redis.get(`${keyPrefix}:${pipeline}:current`);
  if (!runId) return null;
  const v = await redis.get(`${keyPrefix}:run:${runId}:${id}`);
  return v === null ? null : (JSON.parse(v) as Record<string, unknown>);
}
