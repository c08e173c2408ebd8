/**
 * Feature-store activities: thin wrappers over lib/features for the materializeFeatures
 * workflow. Spread into the worker's activity set by createActivities (activities/index.ts).
 */
import { Context, heartbeat } from '@temporalio/activity';
import fs from 'node:fs/promises';
import path from 'node:path';
import { materializeView, type FeatureViewInput, type MaterializeResult, type OnlineStoreSpec } from '../lib/features';
import type { Resources } from '../lib/pipeline/resources';
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

export function createFeatureActivities(resources: Resources) {
  const log = resources.logger;
  const { config } = resources;

  return withFailureMapping({
    /**
     * Materialise one view into the online store; heartbeats entities written (and every 10 s
     * while DuckDB reads the source). Idempotent: a retry rewrites nothing that is already there.
     */
    async materializeFeatureView(input: MaterializeViewInput): Promise<MaterializeResult> {
      const ctx = Context.current();
      // The process's store for this spec, kept open across views and runs (closed with the resources).
      const store = resources.onlineStore(input.store);
      const tempDir = path.join(config.dataDir, 'tmp');
      await fs.mkdir(tempDir, { recursive: true });
      using _alive = keepAlive(() => ({ phase: 'reading' }));
      const result = await materializeView({
        view: input.view,
        store,
        ...(input.start !== undefined ? { start: new Date(input.start) } : {}),
        end: new Date(input.end),
        postgres: { url: config.postgresUrl },
        allowedRoots: config.allowedRoots,
        tempDir,
        onProgress: (p) => {
          heartbeat(p);
          ctx.cancellationSignal.throwIfAborted();
        },
      });
      log.info({ view: result.view, store: result.store, rowsRead: result.rowsRead, written: result.written, unchanged: result.unchanged, skippedOlder: result.skippedOlder }, 'features materialised');
      return result;
    },
  });
}

export type FeatureActivities = ReturnType<typeof createFeatureActivities>;
