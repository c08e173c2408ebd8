/**
 * Durable online predictions: start an `onlineInference` deployment and send it `predict`
 * Updates. Every answered request is in the workflow's history (audit), with the exact model.
 *
 *   const handle = await startOnlineDeployment(client, { model: 'fraud-features@production', featureViews, onDemand, store: { type: 'redis' } }, { taskQueue, workflowId: 'fraud-online' });
 *   const r = await predictDurably(handle, { rows: [{ customer_id: 17, event_timestamp: '2026-10-15T12:00:00Z', amount: 120.5, … }], requestId: 'req-1' });
 */
import { WorkflowUpdateFailedError, type Client, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { checkMessage } from '../lib/messages/problems';
import type { onlineInference } from '../workflows/online/workflow';
import { ONLINE_WORKFLOW_TYPE, OnlineInferenceInputSchema, PredictRequestSchema, predictUpdate, type OnlineInferenceInput, type PredictRequest, type PredictResponse } from '../workflows/online/shared';
import { InvalidBatchInputError } from './index';

export * from '../workflows/online/shared';

export async function startOnlineDeployment(client: Client, input: OnlineInferenceInput, options: { taskQueue: string; workflowId: string }): Promise<WorkflowHandleWithFirstExecutionRunId<typeof onlineInference>> {
  const { problems } = checkMessage(OnlineInferenceInputSchema, input);
  if (problems.length > 0) throw new InvalidBatchInputError(problems, 'onlineInference input');
  return client.workflow.start<typeof onlineInference>(ONLINE_WORKFLOW_TYPE, { taskQueue: options.taskQueue, workflowId: options.workflowId, args: [input] });
}

/**
 * One durable prediction. A deployment that is handing over to its next run (continue-as-new)
 * asks callers to retry: this retries a few times, briefly.
 */
export async function predictDurably(handle: WorkflowHandle, req: PredictRequest, attempts = 20): Promise<PredictResponse> {
  const { problems } = checkMessage(PredictRequestSchema, req);
  if (problems.length > 0) throw new InvalidBatchInputError(problems, 'predict request');
  for (let i = 1; ; i++) {
    try {
      return await handle.executeUpdate(predictUpdate, { args: [req] });
    } catch (err) {
      const handingOver = err instanceof WorkflowUpdateFailedError && /continuing as new/.test(String(err.cause?.message ?? err.message));
      const closed = err instanceof Error && /workflow execution already completed/i.test(err.message);
      if (i >= attempts || !(handingOver || closed)) throw err;
      await new Promise((r) => setTimeout(r, 50 * i));
    }
  }
}
