/**
 * Online store specs, as workflow inputs and spec files carry them. Pure (zod only): the
 * workflow bundle imports it; lib/features/online opens the stores they name.
 */
import { z } from 'zod';

/** Key prefixes the Redis online store accepts (checked by the store spec and by the store's constructor). */
export const REDIS_KEY_PREFIX = /^[A-Za-z0-9_.:-]{1,128}$/;

export const RedisOnlineStoreSpecSchema = z.strictObject({
  type: z.literal('redis'),
  /** Absent: INFERFLOW_REDIS_URL of the process, else redis://127.0.0.1:6379/0 (keep credentials out of specs: they end up in workflow history). */
  url: z.string().regex(/^rediss?:\/\/[^@]*$/, 'url must be redis://host:port[/db] without credentials (put those in INFERFLOW_REDIS_URL)').optional(),
  keyPrefix: z.string().regex(REDIS_KEY_PREFIX, `keyPrefix must match ${REDIS_KEY_PREFIX.source}`).optional(),
});

export const SqliteOnlineStoreSpecSchema = z.strictObject({
  type: z.literal('sqlite'),
  /** Database file. Default `<INFERFLOW_DATA_DIR>/features/online.sqlite`. */
  path: z.string().min(1).optional(),
});

/** Where online features live: `{type: 'redis', url?, keyPrefix?}` or `{type: 'sqlite', path?}` (the embedded default). */
export const OnlineStoreSpecSchema = z.discriminatedUnion('type', [RedisOnlineStoreSpecSchema, SqliteOnlineStoreSpecSchema]);
export type OnlineStoreSpec = z.infer<typeof OnlineStoreSpecSchema>;
