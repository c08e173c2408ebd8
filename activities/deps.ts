import type { Logger } from 'pino';
import type { InferflowConfig } from '../lib/config/env';
import { ModelCache, ModelRegistry } from '../lib/registry';
import { SessionCache } from '../lib/runtime/sessions';
import { openStore } from '../lib/storage';
import { createLogger } from '../lib/log';
import { RunStaging } from '../lib/pipeline/staging';

/** Everything activities need, created once per worker process. */
export interface ActivityDeps {
  config: InferflowConfig;
  registry: ModelRegistry;
  cache: ModelCache;
  sessions: SessionCache;
  logger: Logger;
  /** Shared run staging (INFERFLOW_STAGING) for workers on several machines; absent: local disk only. */
  staging?: RunStaging;
}

export function createActivityDeps(config: InferflowConfig, logger: Logger = createLogger(config.logLevel)): ActivityDeps {
  const cacheLogger = logger.child({ component: 'model-cache' });
  return {
    config,
    registry: new ModelRegistry(openStore(config.registry)),
    cache: new ModelCache(config.modelCacheDir, config.modelCacheMaxBytes, (e) => {
      // A hit happens on every shard and online request: debug level; downloads, evictions and corrupt files stay visible.
      if (e.kind === 'hit') cacheLogger.debug({ event: e.kind, sha256: e.sha256 }, 'model cache hit');
      else cacheLogger.info({ event: e.kind, sha256: e.sha256, bytes: e.bytes }, `model cache ${e.kind}`);
    }),
    sessions: new SessionCache({ inferenceThreads: config.inferenceThreads }),
    logger,
    ...(config.stagingUrl ? { staging: new RunStaging(openStore(config.stagingUrl)) } : {}),
  };
}
