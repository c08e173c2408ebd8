/** The no-op workflow each worker runs on itself once it polls (workers/warm.ts). */
export const WARM_UP_WORKFLOW_TYPE = 'inferflowWarmUp';

/**
 * A workflow that does nothing, run once by each worker process right after it starts polling
 * (workers/warm.ts, `warmWorkflowThread`): the SDK's workflow thread builds its message codecs
 * and its first workflow on the first activation it handles, which would otherwise be the first
 * real run's first workflow task.
 */
export async function inferflowWarmUp(): Promise<'warm'> {
  return Promise.resolve('warm');
}
