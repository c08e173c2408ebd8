/**
 * Feature-store activities: thin wrappers over lib/features for the materializeFeatures
 * workflow. Spread into the worker's activity set by createActivities (activities/index.ts).
 */
import { Context, heartbeat } from '@temporalio/activity';
import fs from 'node:fs/promises';
import path from 'node:path';
import { materializeView, openOnlineStore, type FeatureViewInput, type MaterializeResult, type OnlineStoreSpec } from '../lib/features';
import type { ActivityDeps } from './deps';
import { withFailureMapping } from './failures';
import { keepAlive } from './heartbeat';

export interface MaterializeViewInput {
  view: FeatureViewInput;
  /** Absent: the embedded SQLite store under the worker's data dir. */
  store?: OnlineStoreSpec;
  /** ISO 8601; event times in (start, end]. Absent start: everything up to end. */
  start?: string;
  end: string;
}

export function createFeatureActivities(deps: ActivityDeps) {
  const log = deps.logger;
  const storeContext = { redisUrl: deps.config.redisUrl, dataDir: deps.config.dataDir };

  return withFailureMapping({
    /**
     * Materialise one view into the online store; heartbeats entities written (and every 10 s
     * while DuckDB reads the source). Idempotent: a retry rewrites nothing that is already there.
     */
    async materializeFeatureView(input: MaterializeViewInput): Promise<MaterializeResult> {
      const ctx = Context.current();
      const store = openOnlineStore(input.store, storeContext);
      const tempDir = path.join(deps.config.dataDir, 'tmp');
      await fs.mkdir(tempDir, { recursive: true });
      using _alive = keepAlive(() => ({ phase: 'reading' }));
      try {
        const result = await materializeView({
          view: input.view,
          store,
          ...(input.start !== undefined ? { start: new Date(input.start) } : {}),
          end: new Date(input.end),
          postgres: { url: deps.config.postgresUrl },
          allowedRoots: deps.config.allowedRoots,
          tempDir,
          onProgress: (p) => {
            heartbeat(p);
            ctx.cancellationSignal.throwIfAborted();
          },
        });
        log.info({ view: result.view, store: result.store, rowsRead: result.rowsRead, written: result.written, unchanged: result.unchanged, skippedOlder: result.skippedOlder }, 'features materialised');
        return result;
      } finally {
        await store.close();
      }
    },
  });
}

export type FeatureActivities = ReturnType<typeof createFeatureActivities>;
