import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { InferflowConfig } from '../lib/config/env';
import { createActivities } from '../activities';
import { errorMessage } from '../lib/errors';
import { warmSharedDuckDB } from '../lib/io/duckdb';
import { createResources, type Resources } from '../lib/pipeline/resources';
import { WORKFLOW_BUNDLER_OPTIONS } from './bundle-options';
import { connectOrExplain, connectionOptions } from './connection';
import { warmTemporalCodecs } from './warm';

/** The workflow code beside this module: workflows/index.ts from the sources, dist/workflows/index.js when compiled. */
export const WORKFLOWS_PATH = path.resolve(__dirname, '..', 'workflows', `index${path.extname(__filename)}`);

/**
 * The workflow bundle `npm run build` writes beside the compiled code (dist/workflow-bundle.js,
 * workers/bundle.ts). A worker run from the sources has none and bundles WORKFLOWS_PATH itself.
 */
export const WORKFLOW_BUNDLE_PATH = path.resolve(__dirname, '..', 'workflow-bundle.js');

/** The prebuilt bundle when there is one, else the workflow sources to bundle at start-up. */
function workflowCode(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'bundlerOptions'> {
  return existsSync(WORKFLOW_BUNDLE_PATH) ? { workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH } } : { workflowsPath: WORKFLOWS_PATH, bundlerOptions: WORKFLOW_BUNDLER_OPTIONS };
}

/**
 * Activities one worker runs at once. ONNX Runtime runs on the inference pool's threads
 * (lib/runtime/pool.ts), not the event loop, so shards in flight beyond the pool size overlap
 * DuckDB reading/writing with inference.
 */
export const MAX_CONCURRENT_ACTIVITIES = 4;

export interface InferflowWorkerOptions {
  config: InferflowConfig;
  /** Reuse a connection (tests); otherwise one is opened from `config.temporal`. */
  connection?: NativeConnection;
  /** The process's resources (tests); otherwise created from `config`. Closed by `close()` either way. */
  resources?: Resources;
  /** Extra Temporal worker options (e.g. a prebuilt `workflowBundle`). */
  overrides?: Partial<WorkerOptions>;
}

/** A worker for the Inferflow task queue with the whole activity set registered. */
export async function createInferflowWorker(options: InferflowWorkerOptions): Promise<{ worker: Worker; resources: Resources; connection: NativeConnection; close: () => Promise<void> }> {
  const { config } = options;
  const connection = options.connection ?? (await connectOrExplain(config.temporal.address, () => NativeConnection.connect(connectionOptions(config.temporal))));
  const resources = options.resources ?? createResources(config);
  // The registered feature modules load before the worker polls: a module that fails stops the worker here, naming it.
  const onDemand = await resources.onDemand;
  resources.logger.info({ onDemand: onDemand.names() }, 'on-demand features registered');
  // Inference threads load ONNX Runtime while the worker waits for its first task, not inside it
  // (cold benchmark runs took 40–140 ms longer without this).
  resources.sessions.warm();
  // So do the SDK's message codecs and the shared DuckDB instance (warm.ts says what they cost).
  warmTemporalCodecs();
  warmSharedDuckDB().catch((err: unknown) => resources.logger.warn({ err: errorMessage(err) }, 'could not create the shared DuckDB instance ahead of the first task; the first task will try again'));
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    activities: createActivities(resources),
    ...(options.overrides?.workflowBundle ? {} : workflowCode()),
    maxConcurrentActivityTaskExecutions: MAX_CONCURRENT_ACTIVITIES,
    shutdownGraceTime: '10s',
    // Heartbeats reach the server at most every 2 s (default: 80 % of the 30 s heartbeat timeout),
    // so cancellation reaches a running shard and `inferflow batch run` shows its rows within seconds.
    maxHeartbeatThrottleInterval: '2s',
    ...options.overrides,
  });
  return {
    worker,
    resources,
    connection,
    close: async () => {
      const { unfinished } = await resources.close();
      if (unfinished > 0) resources.logger.warn({ unfinished }, 'inference calls still running after the shutdown grace: their threads were stopped anyway');
      if (!options.connection) await connection.close();
    },
  };
}
