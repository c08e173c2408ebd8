/**
 * An Inferflow worker in its own process, so the benchmark can measure its peak RSS alone
 * (the parent holds the dataset, the baselines and the Temporal client).
 *
 * Started by bench/worker-process.ts as `node --import tsx bench/worker-child.ts` with an IPC
 * channel; configuration comes from the environment like `npm run worker`, plus
 * BENCH_WORKFLOW_BUNDLE (a prebuilt workflow bundle: bundling in this process would put
 * webpack's memory into the peak RSS we want to measure) and BENCH_WORKER_OPTIONS (JSON of
 * Temporal WorkerOptions to try, e.g. {"maxConcurrentActivityTaskExecutions": 8}).
 *
 * Protocol: child → {type: 'ready', …memory}; parent → {type: 'stop'} (or SIGTERM);
 * child → {type: 'stopped', …memory} and exits.
 */
import type { WorkerOptions } from '@temporalio/worker';
import { loadConfig } from '../lib/config/env';
import { createLogger } from '../lib/log';
import { createInferflowWorker } from '../workers/worker';
import { installTemporalRuntime } from '../workers/runtime';
import { warmWorkflowThread } from '../workers/warm';
import type { ChildMessage } from './worker-process';

function memory(): { rssBytes: number; maxRssBytes: number } {
  // resourceUsage().maxRSS is in kilobytes on Linux.
  return { rssBytes: process.memoryUsage.rss(), maxRssBytes: process.resourceUsage().maxRSS * 1024 };
}

function send(msg: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) => process.send!(msg, (err: Error | null) => (err ? reject(err) : resolve())));
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('bench/worker-child.ts needs an IPC channel: it is started by bench/worker-process.ts');
  installTemporalRuntime(createLogger('warn', 'bench-worker'));
  const config = loadConfig();
  const codePath = process.env.BENCH_WORKFLOW_BUNDLE;
  const tried = JSON.parse(process.env.BENCH_WORKER_OPTIONS ?? '{}') as Partial<WorkerOptions>;
  const { worker, connection, close } = await createInferflowWorker({ config, overrides: { ...(codePath ? { workflowBundle: { codePath } } : {}), ...tried } });
  const running = worker.run();
  running.catch(() => undefined); // awaited below; not an unhandled rejection while warming up
  // As `npm run worker` does before it reports itself started.
  if (config.workerWarmUp) {
    const warmUp = await warmWorkflowThread(connection, config.temporal);
    if (!warmUp.eager) console.error(`bench worker: the warm-up workflow ${warmUp.workflowId} was not dispatched eagerly`);
  }
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    try {
      worker.shutdown();
    } catch (err) {
      // Already stopping or stopped (e.g. it failed on its own): run() settles either way.
      console.error(`bench worker: shutdown: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  process.on('message', (m: unknown) => {
    if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'stop') stop();
  });
  process.on('SIGTERM', stop);
  // The parent going away must not leave a polling worker behind.
  process.on('disconnect', stop);
  await send({ type: 'ready', ...memory() });
  await running;
  await close();
  if (process.connected) {
    await send({ type: 'stopped', ...memory() });
    process.disconnect();
  }
}

main().catch((err: unknown) => {
  console.error(`bench worker failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
