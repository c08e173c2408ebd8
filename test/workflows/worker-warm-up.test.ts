/**
 * A worker warms its workflow thread by running the no-op warm-up workflow on itself
 * (workers/warm.ts): the server hands the task straight to this worker (eager start), even
 * with another worker polling the same task queue. Real Temporal dev server.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { InferflowConfig } from '../../lib/config/env';
import { WARM_UP_WORKFLOW_TYPE } from '../../workflows/warm-up';
import { warmWorkflowThread } from '../../workers/warm';
import { createInferflowWorker } from '../../workers/worker';
import { tempConfig, uniqueName } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { startWorker, workflowBundle, type RunningWorker } from '../helpers/worker';

let config: InferflowConfig;
let cleanup: () => Promise<void>;
let other: RunningWorker;

beforeAll(async () => {
  ({ config, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-warm-up') }));
  // Another worker already polls the queue: a queued (not eager) warm-up could land on it.
  other = await startWorker(config);
});

afterAll(async () => {
  await other?.stop();
  await cleanup?.();
});

it('runs the warm-up workflow on the starting worker itself, to completion', async () => {
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const { worker, close } = await createInferflowWorker({ config, connection, overrides: { workflowBundle: await workflowBundle() } });
  const running = worker.run();
  const clientConnection = await Connection.connect({ address: config.temporal.address });
  try {
    const warm = await warmWorkflowThread(connection, config.temporal);
    expect(warm.eager).toBe(true);
    expect(warm.workflowId).toMatch(/^inferflow-warm-up-/);
    const handle = new Client({ connection: clientConnection, namespace: config.temporal.namespace }).workflow.getHandle(warm.workflowId);
    const desc = await handle.describe();
    expect([desc.type, desc.status.name, desc.taskQueue]).toEqual([WARM_UP_WORKFLOW_TYPE, 'COMPLETED', config.temporal.taskQueue]);
    expect(await handle.result()).toBe('warm');
    await recordHistory(inject('temporalCli'), config.temporal.address, warm.workflowId, 'inferflowWarmUp.json');
  } finally {
    worker.shutdown();
    await running;
    await close();
    await connection.close();
    await clientConnection.close();
  }
});
