/**
 * Inferflow worker process: `npm run worker` (or `inferflow worker`).
 * Connects to TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, polls INFERFLOW_TASK_QUEUE, and runs the
 * batch workflow and the shared activity set. SIGINT/SIGTERM drain in-flight work and exit.
 */
import { loadConfig } from '../lib/config/env';
import { createLogger } from '../lib/log';
import { installTemporalRuntime } from './runtime';
import { createInferflowWorker } from './worker';

export async function runWorker(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel, 'inferflow-worker');
  installTemporalRuntime(config.logLevel === 'debug' || config.logLevel === 'trace' ? 'DEBUG' : 'INFO');
  const { worker, close } = await createInferflowWorker({ config });
  log.info({ address: config.temporal.address, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, registry: config.registry }, 'worker started');
  try {
    await worker.run(); // resolves after SIGINT/SIGTERM once in-flight tasks finish
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
