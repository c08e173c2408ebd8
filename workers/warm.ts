import { Client } from '@temporalio/client';
import { coresdk } from '@temporalio/proto';
import type { NativeConnection } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { TemporalConfig } from '../lib/config/env';
import { WARM_UP_WORKFLOW_TYPE } from '../workflows/warm-up';

/**
 * Build the Temporal SDK's message codecs on the worker's main thread before it polls.
 *
 * protobufjs (8.x) builds a message type's encoder/decoder on its first use, and the first use
 * of any type also resolves the whole Temporal schema: 20–40 ms in a fresh process, then a few
 * ms per further type. The main thread
 * decodes workflow activations and activity tasks and encodes completions and heartbeats, so
 * without this a new worker pays for it inside the first run it picks up. Each message here is a
 * minimal instance of the type the SDK handles; nothing is sent anywhere.
 *
 * The workflow thread has its own copy of the codecs, which only the SDK can reach: its first
 * activation still pays for them.
 */
export function warmTemporalCodecs(): void {
  const { workflow_activation, workflow_completion, activity_task } = coresdk;
  const token = new Uint8Array([1]);
  workflow_activation.WorkflowActivation.decode(
    workflow_activation.WorkflowActivation.encode({ runId: 'warm-up', jobs: [{ initializeWorkflow: { workflowType: 'warm-up', workflowId: 'warm-up' } }] }).finish(),
  );
  workflow_completion.WorkflowActivationCompletion.decodeDelimited(
    workflow_completion.WorkflowActivationCompletion.encodeDelimited({
      runId: 'warm-up',
      successful: { commands: [{ scheduleActivity: { seq: 1, activityId: '1', activityType: 'warm-up' } }] },
    }).finish(),
  );
  activity_task.ActivityTask.decode(activity_task.ActivityTask.encode({ taskToken: token, start: { activityType: 'warm-up', workflowType: 'warm-up' } }).finish());
  coresdk.ActivityTaskCompletion.encodeDelimited({ taskToken: token, result: { completed: {} } }).finish();
  coresdk.ActivityHeartbeat.encodeDelimited({ taskToken: token, details: [] }).finish();
}

/** What `warmWorkflowThread` did: whether this worker ran the warm-up itself, and how long it took. */
export interface WorkflowThreadWarmUp {
  workflowId: string;
  /** True when the server handed the warm-up's first task straight to this worker (eager start). */
  eager: boolean;
  ms: number;
}

/**
 * Run the no-op `inferflowWarmUp` workflow on this worker, right after `worker.run()` started:
 * the SDK's workflow thread sets up its own message codecs and its first workflow on the first
 * activation it handles (a cold worker's first workflow task took 76–125 ms, 22–31 ms after this
 * warm-up, 18–26 ms on a worker that had run a job: docs/decisions/0004-worker-warm-up.md),
 * which would otherwise be paid inside the first real run. The start asks for eager dispatch, so
 * the server hands the task to this very worker (through the connection the worker polls with)
 * even when other workers share the task queue; a server that does not dispatch eagerly queues it
 * like any run, and `eager` says so. Leaves one completed `inferflow-warm-up-…` execution in the
 * namespace per worker start.
 */
export async function warmWorkflowThread(connection: NativeConnection, temporal: Pick<TemporalConfig, 'namespace' | 'taskQueue'>, timeoutMs = 5_000): Promise<WorkflowThreadWarmUp> {
  const started = performance.now();
  const client = new Client({ connection, namespace: temporal.namespace });
  const workflowId = `inferflow-warm-up-${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const handle = await client.workflow.start(WARM_UP_WORKFLOW_TYPE, {
    taskQueue: temporal.taskQueue,
    workflowId,
    requestEagerStart: true,
    workflowExecutionTimeout: '1 minute',
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      handle.result(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`warm-up workflow ${workflowId} did not complete within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  return { workflowId, eager: handle.eagerlyStarted, ms: Math.round(performance.now() - started) };
}
