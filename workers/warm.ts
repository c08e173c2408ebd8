import { coresdk } from '@temporalio/proto';

/**
 * Build the Temporal SDK's message codecs on the worker's main thread before it polls.
 *
 * protobufjs (8.x) builds a message type's encoder/decoder on its first use, and the first use
 * of any type also resolves the whole Temporal schema: 20–40 ms in a fresh process, then a few
 * ms per further type (measured with a throwaway script; docs/benchmarks.md). The main thread
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
