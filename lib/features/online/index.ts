/**
 * Online feature lookup (see docs/features.md, "Online store").
 *
 *   const store = openOnlineStore({ type: 'redis' }, { redisUrl, dataDir });
 *   const vectors = await getOnlineFeatures(store, view, [1, 2, 3]);
 *   // vectors[i].features.txn_count_7d = { value: 5n, status: 'PRESENT', eventTime: Date }
 *
 * Backends (./redis.ts, ./sqlite.ts) store encoded rows and apply the write rule; typing,
 * statuses and the TTL are decided here, once.
 */
import path from 'node:path';
import { DEFAULT_REDIS_URL } from '../../config/defaults';
import { InvalidInputError } from '../../errors';
import { durationSeconds, parseFeatureView, type FeatureView } from '../spec';
import { decodeEntityKey, decodeValue, encodeEntityKey, encodeValue, toEpochUs, type EntityKeyInput, type FeatureValue } from './codec';
import { OnlineStoreSpecSchema, type OnlineStoreSpec } from '../../messages/online-store';
import { checkMessage } from '../../messages/problems';
import { RedisOnlineStore, DEFAULT_REDIS_KEY_PREFIX } from './redis';
import { SqliteOnlineStore } from './sqlite';
import type { OnlineStore, StoredWrite, WriteCounts } from './types';

export type { OnlineStore, StoredRow, StoredWrite, WriteCounts } from './types';
export type { EntityKeyInput, EntityKeyPart, FeatureValue } from './codec';
export { encodeEntityKey, decodeEntityKey, encodeValue, decodeValue, toEpochUs } from './codec';
export { RedisOnlineStore, DEFAULT_REDIS_KEY_PREFIX } from './redis';
export { SqliteOnlineStore } from './sqlite';
export * from '../../messages/online-store';

/** Process settings a store may need (from lib/config/env.ts): never part of a spec. */
export interface OnlineStoreContext {
  /** INFERFLOW_REDIS_URL (default redis://127.0.0.1:6379/0). */
  redisUrl?: string | undefined;
  /** INFERFLOW_DATA_DIR: the embedded store's default file lives under it. */
  dataDir: string;
}

export const DEFAULT_ONLINE_STORE: OnlineStoreSpec = { type: 'sqlite' };

/** The embedded store's default file. */
export function defaultSqlitePath(dataDir: string): string {
  return path.join(dataDir, 'features', 'online.sqlite');
}

const FACTORIES: { [T in OnlineStoreSpec['type']]: (spec: Extract<OnlineStoreSpec, { type: T }>, ctx: OnlineStoreContext) => OnlineStore } = {
  redis: (spec, ctx) => {
    // The same default server as the Redis sink.
    const url = spec.url ?? ctx.redisUrl ?? DEFAULT_REDIS_URL;
    return new RedisOnlineStore({ url, keyPrefix: spec.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX });
  },
  sqlite: (spec, ctx) => new SqliteOnlineStore({ path: path.resolve(spec.path ?? defaultSqlitePath(ctx.dataDir)) }),
};

/** Validate a store spec. @throws InvalidInputError listing every problem. */
export function parseOnlineStoreSpec(input: unknown, field = 'store'): OnlineStoreSpec {
  const r = checkMessage(OnlineStoreSpecSchema, input ?? DEFAULT_ONLINE_STORE, field);
  if (!r.data) throw new InvalidInputError('invalid online store spec', r.problems);
  return r.data;
}

/** Open the store a spec names (connections are opened lazily, on first use). */
export function openOnlineStore(spec: unknown, ctx: OnlineStoreContext): OnlineStore {
  const s = parseOnlineStoreSpec(spec);
  return (FACTORIES[s.type] as (spec: OnlineStoreSpec, ctx: OnlineStoreContext) => OnlineStore)(s, ctx);
}

export type FeatureStatus = 'PRESENT' | 'NULL' | 'NOT_FOUND' | 'STALE';

export interface OnlineFeatureValue {
  /** The typed value when PRESENT; null for NULL, NOT_FOUND and STALE (an expired value is never handed out). */
  value: FeatureValue;
  status: FeatureStatus;
  /** Event time of the entity's stored row (null when NOT_FOUND); millisecond precision. */
  eventTime: Date | null;
}

export interface OnlineFeatureVector {
  /** The entity key as requested, each column as text. */
  key: Record<string, string>;
  /** Per feature of the view, in the view's order. */
  features: Record<string, OnlineFeatureValue>;
}


/**
 * The latest stored features of each key, in key order (duplicates answered each time).
 * A row older than the view's TTL relative to `now` is STALE for every feature; a stored NULL
 * is NULL; a key the store does not hold is NOT_FOUND.
 * @throws InvalidInputError an invalid view or key (every bad key listed)
 * @throws TransientError the store stayed unreachable through its retries
 */
export async function getOnlineFeatures(store: OnlineStore, viewSpec: unknown, keys: readonly EntityKeyInput[], opts: { now?: Date } = {}): Promise<OnlineFeatureVector[]> {
  return lookupOnlineFeatures(store, parseFeatureView(viewSpec, 'view'), keys, opts);
}

/** getOnlineFeatures for a view validated already (parseFeatureView): the per-request path of online serving. */
export async function lookupOnlineFeatures(store: OnlineStore, view: FeatureView, keys: readonly EntityKeyInput[], opts: { now?: Date } = {}): Promise<OnlineFeatureVector[]> {
  const problems: string[] = [];
  const encoded = keys.map((k, i) => {
    try {
      return encodeEntityKey(view, k);
    } catch (err) {
      problems.push(...(err instanceof InvalidInputError ? err.problems : [String(err)]).map((p) => `keys[${i}].${p}`));
      return '';
    }
  });
  if (problems.length > 0) throw new InvalidInputError(`invalid entity keys for view ${view.name}`, problems);
  const unique = [...new Set(encoded)];
  const names = view.features.map((f) => f.name);
  const rows = await store.get(view.name, names, unique);
  const byKey = new Map(unique.map((k, i) => [k, rows[i] ?? null]));
  const nowUs = (opts.now ?? new Date()).getTime() * 1000;
  const oldestFreshUs = view.ttl ? nowUs - durationSeconds(view.ttl) * 1_000_000 : -Infinity;
  return encoded.map((k) => {
    const row = byKey.get(k) ?? null;
    const eventTime = row ? new Date(Math.floor(row.eventTimeUs / 1000)) : null;
    const stale = row !== null && row.eventTimeUs < oldestFreshUs;
    const features: Record<string, OnlineFeatureValue> = {};
    for (const f of view.features) {
      if (!row) features[f.name] = { value: null, status: 'NOT_FOUND', eventTime: null };
      else if (stale) features[f.name] = { value: null, status: 'STALE', eventTime };
      else {
        const raw = row.values[f.name] ?? null;
        features[f.name] = raw === null ? { value: null, status: 'NULL', eventTime } : { value: decodeValue(f.dtype, raw), status: 'PRESENT', eventTime };
      }
    }
    return { key: decodeEntityKey(view, k), features };
  });
}

export interface OnlineWriteRow {
  key: EntityKeyInput;
  /** The row's event time (a Date or an ISO 8601 string; microseconds kept). */
  eventTime: Date | string;
  /** Values by feature name (missing or null = NULL), typed per the view's dtypes. */
  values: Readonly<Record<string, unknown>>;
}

/** Encode one row for a store. `eventTimeUs` is epoch microseconds. */
export function storedWrite(view: FeatureView, key: EntityKeyInput, eventTimeUs: number, values: Readonly<Record<string, unknown>>): StoredWrite {
  const encodedValues: Record<string, string | null> = {};
  for (const f of view.features) encodedValues[f.name] = encodeValue(f.dtype, values[f.name], f.name);
  return { key: encodeEntityKey(view, key), eventTimeUs, values: encodedValues };
}

/**
 * Write rows (idempotent; a row older than the stored one is ignored, never applied).
 * @throws InvalidInputError / InvalidValueError an invalid view, key, time or value (nothing written)
 */
export async function writeOnlineFeatures(store: OnlineStore, viewSpec: unknown, rows: readonly OnlineWriteRow[]): Promise<WriteCounts> {
  const view = parseFeatureView(viewSpec, 'view');
  const known = new Set(view.features.map((f) => f.name));
  const writes = rows.map((r, i) => {
    const extra = Object.keys(r.values).filter((k) => !known.has(k));
    if (extra.length > 0) throw new InvalidInputError(`rows[${i}]: not features of view ${view.name}: ${extra.join(', ')}`);
    return storedWrite(view, r.key, toEpochUs(r.eventTime, `rows[${i}].eventTime`), r.values);
  });
  return store.put(view.name, writes);
}
