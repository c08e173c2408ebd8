import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  currentUpdateInfo,
  makeContinueAsNewFunc,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { InferflowActivities } from '../../activities';
import type { ResolvedModel } from '../../lib/registry/manifest';
import { checkedMessage } from '../shared';
import {
  CONTINUING_AS_NEW,
  DEDUPE_WINDOW,
  DEDUPE_WINDOW_BYTES,
  DEFAULT_MAX_PREDICTIONS_PER_RUN,
  LOOKUP_MARGIN_MS,
  ONLINE_WORKFLOW_TYPE,
  PREDICT_TIMEOUT_MS,
  OnlineInferenceInputSchema,
  PredictRequestSchema,
  deploymentStatusQuery,
  predictUpdate,
  type DeploymentStatus,
  type OnlineInferenceInput,
  type PredictResponse,
} from './shared';

const steps = proxyActivities<InferflowActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

/** Predictions run as local activities (no task-queue round trip); a brief store outage is retried a few times, then the update fails. */
const online = proxyLocalActivities<InferflowActivities>({
  startToCloseTimeout: PREDICT_TIMEOUT_MS,
  retry: { initialInterval: '100ms', backoffCoefficient: 2, maximumInterval: '2s', maximumAttempts: 4 },
});

/** The newest answers whose JSON fits the carried budget, oldest first, at most DEDUPE_WINDOW. */
function answersToCarry(answers: Map<string, PredictResponse>): [string, PredictResponse][] {
  const out: [string, PredictResponse][] = [];
  let bytes = 0;
  for (const entry of [...answers].reverse()) {
    bytes += JSON.stringify(entry).length;
    if (bytes > DEDUPE_WINDOW_BYTES || out.length >= DEDUPE_WINDOW) break;
    out.push(entry);
  }
  return out.reverse();
}

/**
 * A durable, audited online deployment of one pipeline (one partition of it): the model is
 * resolved once and pinned; each `predict` Update (a few request rows) is answered through the
 * same assembly step and `predict` as batch and the HTTP server, and its request and answer stay
 * in the history. Malformed requests are rejected by the validator before they enter history.
 *
 * The Update id is the request id. Within a run Temporal de-duplicates Update ids; across runs
 * the latest answers are carried into the next run (bounded), so a retry is answered from the
 * record instead of predicting twice. After `maxPredictionsPerRun` Updates (or when Temporal
 * suggests it) the run stops accepting Updates (rejected with a retryable ContinuingAsNew the
 * client resends at once), lets in-flight ones finish and continues as new.
 */
export async function onlineInference(raw: OnlineInferenceInput): Promise<DeploymentStatus> {
  const input = checkedMessage(OnlineInferenceInputSchema, raw, `${ONLINE_WORKFLOW_TYPE} input`);
  const max = input.maxPredictionsPerRun ?? DEFAULT_MAX_PREDICTIONS_PER_RUN;
  const status: DeploymentStatus = {
    model: input.pinned ?? null,
    deployment: input.deployment ?? null,
    served: input.servedBefore ?? 0,
    servedThisRun: 0,
    updatesThisRun: 0,
    deduplicatedThisRun: 0,
    failed: input.failedBefore ?? 0,
    continuedAsNew: input.continuedAsNew ?? 0,
    inFlight: 0,
  };
  setHandler(deploymentStatusQuery, () => status);
  const answers = new Map<string, PredictResponse>((input.recentAnswers ?? []) as unknown as [string, PredictResponse][]);
  const handingOver = () => status.updatesThisRun >= max || workflowInfo().continueAsNewSuggested;

  let model: ResolvedModel | undefined = input.pinned;
  setHandler(
    predictUpdate,
    async (req) => {
      const requestId = currentUpdateInfo()!.id;
      status.updatesThisRun++;
      const recorded = answers.get(requestId);
      if (recorded) {
        status.deduplicatedThisRun++;
        return recorded;
      }
      status.inFlight++;
      try {
        await condition(() => model !== undefined);
        // External-API features get the request's time budget (workflow time: when this task
        // started), always ending before the activity's own timeout.
        const deadline = Date.now() + Math.min(req.timeoutMs ?? PREDICT_TIMEOUT_MS, PREDICT_TIMEOUT_MS - LOOKUP_MARGIN_MS);
        const r = await online.predictOnline({
          model: model!,
          featureViews: input.featureViews ?? [],
          onDemand: input.onDemand ?? [],
          ...(input.postProcess ? { postProcess: input.postProcess } : {}),
          store: input.store,
          idColumn: input.idColumn,
          rows: req.rows,
          asOf: req.asOf,
          deadline,
        });
        status.served++;
        status.servedThisRun++;
        const answer: PredictResponse = { ...r, model: { name: model!.name, version: model!.version, sha256: model!.sha256 }, requestId: req.requestId ?? requestId };
        answers.set(requestId, answer);
        if (answers.size > DEDUPE_WINDOW) answers.delete(answers.keys().next().value!);
        return answer;
      } catch (err) {
        status.failed++;
        throw err;
      } finally {
        status.inFlight--;
      }
    },
    {
      validator: (req) => {
        // Typed failures: a malformed request is a permanent InvalidInput; a request that arrives
        // while the run hands over to the next can be sent again at once.
        checkedMessage(PredictRequestSchema, req, 'predict request');
        if (handingOver() && !answers.has(currentUpdateInfo()?.id ?? '')) throw ApplicationFailure.retryable('deployment is continuing as new; send the request again', CONTINUING_AS_NEW);
      },
    },
  );

  model ??= await steps.resolveModel({ ref: input.model });
  status.model = model;
  await condition(() => handingOver() && allHandlersFinished());
  // The deployment's memo (name, partitions, spec) goes with every run.
  const next = makeContinueAsNewFunc<typeof onlineInference>({ memo: workflowInfo().memo });
  return next({
    ...input,
    pinned: model,
    servedBefore: status.served,
    failedBefore: status.failed,
    continuedAsNew: status.continuedAsNew + 1,
    recentAnswers: answersToCarry(answers) as unknown as [string, Record<string, unknown>][],
  });
}
