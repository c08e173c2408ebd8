/**
 * The set-up batch workflow tests with example models share: a temporary config on the test
 * Temporal server with its own task queue and the test PostgreSQL, the models registered, a real
 * worker, an admin pool for reading sink tables, `run` (start a batchInference and wait for it),
 * and one `close` that stops the worker and drops the tables the test named.
 */
import type { WorkflowHandle } from '@temporalio/client';
import pg from 'pg';
import { inject } from 'vitest';
import { startBatchInference, type BatchInferenceInput } from '../../client';
import type { InferflowConfig } from '../../lib/config/env';
import type { batchInference } from '../../workflows/batch/workflow';
import { ModelRegistry } from '../../lib/registry';
import { closePostgresPools } from '../../lib/sinks';
import { openStore } from '../../lib/storage';
import { tempConfig, uniqueName } from './env';
import { startWorker, type RunningWorker } from './worker';

export interface BatchRunEnv {
  config: InferflowConfig;
  dir: string;
  postgresUrl: string;
  worker: RunningWorker;
  /** A pool on the test database (reading sink tables, creating sources). */
  admin: pg.Pool;
  /** A new table name in the public schema, dropped by `close`. */
  table(prefix: string): string;
  /** Start a batchInference on the worker's task queue and wait for its result. */
  run(input: BatchInferenceInput): Promise<{ handle: WorkflowHandle<typeof batchInference>; result: Awaited<ReturnType<typeof batchInference>> }>;
  close(): Promise<void>;
}

/**
 * @param name prefix of the task queue and workflow ids
 * @param modules INFERFLOW_MODULES of the worker ('none': no on-demand modules)
 * @param register registers the example models the test runs
 */
export async function startBatchRunEnv(options: { name: string; modules: string; register: (registry: ModelRegistry) => Promise<unknown> }): Promise<BatchRunEnv> {
  const postgresUrl = inject('postgresUrl');
  const { config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName(`test-${options.name}`), INFERFLOW_POSTGRES_URL: postgresUrl, INFERFLOW_MODULES: options.modules });
  const tables: string[] = [];
  let admin: pg.Pool | undefined;
  let worker: RunningWorker | undefined;
  const close = async () => {
    await worker?.stop();
    await closePostgresPools();
    for (const t of tables) await admin?.query(`DROP TABLE IF EXISTS public.${pg.escapeIdentifier(t)}`);
    await admin?.end();
    await cleanup();
  };
  try {
    await options.register(new ModelRegistry(openStore(config.registry)));
    admin = new pg.Pool({ connectionString: postgresUrl, max: 2 });
    worker = await startWorker(config);
  } catch (err) {
    await close();
    throw err;
  }
  const w = worker;
  return {
    config,
    dir,
    postgresUrl,
    worker: w,
    admin,
    table(prefix) {
      const t = uniqueName(prefix).replace(/-/g, '_');
      tables.push(t);
      return t;
    },
    async run(input) {
      const handle = await startBatchInference(w.client, input, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName(`wf-${options.name}`) });
      return { handle, result: await handle.result() };
    },
    close,
  };
}
