import { ApplicationFailure, allHandlersFinished, condition, continueAsNew, proxyActivities, proxyLocalActivities, setHandler } from '@temporalio/workflow';
import type { InferflowActivities } from '../../activities';
import type { ResolvedModel } from '../../lib/registry/manifest';
import { checkedMessage } from '../shared';
import {
  DEFAULT_MAX_PREDICTIONS_PER_RUN,
  ONLINE_WORKFLOW_TYPE,
  OnlineInferenceInputSchema,
  PredictRequestSchema,
  deploymentStatusQuery,
  predictUpdate,
  type DeploymentStatus,
  type OnlineInferenceInput,
} from './shared';

const steps = proxyActivities<InferflowActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

/** Predictions run as local activities (no task-queue round trip); a brief store outage is retried a few times, then the update fails. */
const online = proxyLocalActivities<InferflowActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '100ms', backoffCoefficient: 2, maximumInterval: '2s', maximumAttempts: 4 },
});

/**
 * A durable, audited online deployment of one pipeline: the model is resolved once and pinned;
 * each `predict` Update (a few request rows) is answered through the same assembly step and
 * `predict` as batch and the HTTP server, and its request and answer stay in the history.
 * Malformed requests are rejected by the validator before they enter history. The workflow
 * continues as new every `maxPredictionsPerRun` predictions; cancel it to stop the deployment.
 */
export async function onlineInference(raw: OnlineInferenceInput): Promise<DeploymentStatus> {
  const input = checkedMessage(OnlineInferenceInputSchema, raw, `${ONLINE_WORKFLOW_TYPE} input`);
  const max = input.maxPredictionsPerRun ?? DEFAULT_MAX_PREDICTIONS_PER_RUN;
  const status: DeploymentStatus = { model: input.pinned ?? null, served: input.servedBefore ?? 0, servedThisRun: 0, failed: input.failedBefore ?? 0 };
  setHandler(deploymentStatusQuery, () => status);

  let model: ResolvedModel | undefined = input.pinned;
  setHandler(
    predictUpdate,
    async (req) => {
      status.servedThisRun++;
      await condition(() => model !== undefined);
      try {
        const r = await online.predictOnline({
          model: model!,
          featureViews: input.featureViews ?? [],
          onDemand: input.onDemand ?? [],
          ...(input.postProcess ? { postProcess: input.postProcess } : {}),
          store: input.store,
          idColumn: input.idColumn,
          rows: req.rows,
          asOf: req.asOf,
        });
        status.served++;
        return { ...r, model: { name: model!.name, version: model!.version, sha256: model!.sha256 }, requestId: req.requestId };
      } catch (err) {
        status.failed++;
        throw err;
      }
    },
    {
      validator: (req) => {
        // Typed failures: a malformed request is a permanent InvalidInput; a request that arrives
        // while the run hands over to the next (continue-as-new) can be sent again.
        checkedMessage(PredictRequestSchema, req, 'predict request');
        if (status.servedThisRun >= max) throw ApplicationFailure.retryable('deployment is continuing as new; retry', 'ContinuingAsNew');
      },
    },
  );

  model ??= await steps.resolveModel({ ref: input.model });
  status.model = model;
  await condition(() => status.servedThisRun >= max && allHandlersFinished());
  return continueAsNew<typeof onlineInference>({ ...input, pinned: model, servedBefore: status.served, failedBefore: status.failed });
}
