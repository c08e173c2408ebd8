import type { Logger } from 'pino';
import type { InferflowConfig } from '../lib/config/env';
import { ModelCache, ModelRegistry } from '../lib/registry';
import { SessionCache } from '../lib/runtime/sessions';
import { openStore } from '../lib/storage';
import { createLogger } from '../lib/log';
import { RunStaging } from '../lib/pipeline/staging';
import { OnDemandRegistry } from '../lib/features/on-demand';

/** Everything activities need, created once per worker process. */
export interface ActivityDeps {
  config: InferflowConfig;
  registry: ModelRegistry;
  cache: ModelCache;
  sessions: SessionCache;
  logger: Logger;
  /** Shared run staging (INFERFLOW_STAGING) for workers on several machines; absent: local disk only. */
  staging?: RunStaging;
  /** The on-demand features pipelines may name: the modules of INFERFLOW_MODULES, imported when the deps are created. */
  onDemand: Promise<OnDemandRegistry>;
}

export function createActivityDeps(config: InferflowConfig, logger: Logger = createLogger(config.logLevel)): ActivityDeps {
  const cacheLogger = logger.child({ component: 'model-cache' });
  const onDemand = OnDemandRegistry.load(config.modules);
  // Awaited by the worker at start (a bad module stops it there) and by every plan; not an unhandled rejection meanwhile.
  onDemand.catch(() => undefined);
  return {
    onDemand,
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
