/**
 * Inferflow worker process: `npm run worker` (or `inferflow worker`).
 * Connects to TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, polls INFERFLOW_TASK_QUEUE, and runs the
 * batch workflow and the shared activity set. SIGINT/SIGTERM drain in-flight work and exit.
 */
import { loadConfig } from '../lib/config/env';
import path from 'node:path';
import { createLogger } from '../lib/log';
import { sweepStaleRuns } from '../lib/pipeline/staging';
import { installTemporalRuntime, shutdownTemporalRuntime } from './runtime';
import { errorMessage } from '../lib/errors';
import { createInferflowWorker } from './worker';
import { warmWorkflowThread } from './warm';

/** Local run directories older than this are removed when a worker starts. */
const STALE_RUN_MS = 24 * 3600 * 1000;

export async function runWorker(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel, 'inferflow-worker');
  installTemporalRuntime(log);
  // Local run directories nobody touched for a day: copies fetched from shared staging, leftovers of killed processes.
  const swept = await sweepStaleRuns(path.join(config.dataDir, 'runs'), STALE_RUN_MS);
  if (swept.length > 0) log.info({ removed: swept.length }, 'removed stale local run directories');
  const { worker, connection, close } = await createInferflowWorker({ config }).catch(async (err: unknown) => {
    await shutdownTemporalRuntime();
    throw err;
  });
  try {
    const running = worker.run(); // resolves after SIGINT/SIGTERM once in-flight tasks finish
    running.catch(() => undefined); // awaited below; not an unhandled rejection while warming up
    if (config.workerWarmUp) {
      await warmWorkflowThread(connection, config.temporal).then(
        (w) => log.info({ workflowId: w.workflowId, eager: w.eager, ms: w.ms }, w.eager ? 'workflow thread warmed up' : 'warm-up workflow ran, not dispatched eagerly (another worker may have run it)'),
        (err: unknown) => log.warn({ err: errorMessage(err) }, 'warm-up workflow failed; the first run pays the workflow thread start-up instead'),
      );
    }
    // A shutdown signal during the warm-up leaves nothing to announce.
    if (worker.getState() === 'RUNNING') log.info({ address: config.temporal.address, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, registry: config.registry }, 'worker started');
    await running;
  } finally {
    await close();
    log.info('worker stopped');
  }
}

if (require.main === module) {
  runWorker().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
