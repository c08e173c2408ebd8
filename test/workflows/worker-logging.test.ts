/**
 * One log format per worker: the Temporal SDK's runtime logger is the worker's pino logger
 * (workers/runtime.ts), so the SDK's own lines are JSON lines like the worker's. Real Temporal
 * dev server; this file installs the runtime itself, before any helper does.
 */
import { NativeConnection } from '@temporalio/worker';
import fs from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { InferflowConfig } from '../../lib/config/env';
import { installTemporalRuntime } from '../../workers/runtime';
import { warmWorkflowThread } from '../../workers/warm';
import { createInferflowWorker } from '../../workers/worker';
import { tempConfig, uniqueName } from '../helpers/env';
import { workflowBundle } from '../helpers/worker';

let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-logging') }));
});

afterAll(async () => {
  await cleanup?.();
});

it("writes the Temporal SDK's log lines through the worker's pino logger, as JSON", async () => {
  const file = path.join(dir, 'worker.log');
  const logger = pino({ name: 'inferflow-worker', level: 'info' }, pino.destination({ dest: file, sync: true }));
  installTemporalRuntime(logger);
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const { worker, close } = await createInferflowWorker({ config, connection, overrides: { workflowBundle: await workflowBundle() } });
  const running = worker.run();
  try {
    await warmWorkflowThread(connection, config.temporal);
  } finally {
    worker.shutdown();
    await running;
    await close();
    await connection.close();
  }
  const lines = (await fs.readFile(file, 'utf8')).trimEnd().split('\n');
  const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const sdk = entries.filter((e) => e.sdkComponent === 'worker');
  expect(sdk.length, lines.join('\n')).toBeGreaterThan(0);
  expect(sdk.every((e) => e.name === 'inferflow-worker' && typeof e.level === 'number' && typeof e.msg === 'string' && typeof e.time === 'number')).toBe(true);
  expect(sdk.some((e) => e.taskQueue === config.temporal.taskQueue)).toBe(true);
});
