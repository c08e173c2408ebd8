/**
 * Durable online predictions: a deployment is N `onlineInference` workflows (partitions,
 * `<name>-p<i>`); a request goes to one by a stable hash of its request id, through
 * Update-with-Start (the first request starts its partition), and the request id is the Update
 * id (a retry gets the recorded answer). Every answered request is in its partition's history
 * (audit), with the exact model.
 *
 *   const deployment = { name: 'fraud-online', partitions: 4, taskQueue: 'inferflow', input: { model: 'fraud-features@production', featureViews, onDemand, store: { type: 'redis' } } };
 *   await ensureDeployment(client, deployment);                       // optional: the first request starts its partition anyway
 *   const r = await predictOnDeployment(client, deployment, { rows: [{ customer_id: 17, … }], requestId: 'req-1' });
 *   // r.answer.score, r.workflowId ('fraud-online-p2'), r.updateId ('req-1')
 */
import { randomUUID } from 'node:crypto';
import { defaultGrpcRetryOptions, makeGrpcRetryInterceptor, WithStartWorkflowOperation, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { google, temporal } from '@temporalio/proto';
import { NotFoundError } from '../lib/errors';
import { checkMessage } from '../lib/messages/problems';
import type { onlineInference } from '../workflows/online/workflow';
import {
  CONTINUING_AS_NEW,
  DeploymentRefSchema,
  ONLINE_WORKFLOW_TYPE,
  OnlineInferenceInputSchema,
  PredictRequestSchema,
  deploymentStatusQuery,
  partitionOf,
  partitionWorkflowId,
  predictUpdate,
  type DeploymentStatus,
  type OnlineInferenceInput,
  type PredictRequest,
  type PredictResponse,
} from '../workflows/online/shared';
import { InvalidBatchInputError } from './index';

export * from '../workflows/online/shared';

/** Memo key of a partition: the deployment's name, partition count, spec reference and input (what `online predict` and `online status` read back). */
export const DEPLOYMENT_MEMO = 'inferflowDeployment';

export interface OnlineDeployment {
  name: string;
  partitions: number;
  taskQueue: string;
  /** The partitions' input (the pipeline's model, views, on-demand features, store). */
  input: OnlineInferenceInput;
  /** Where the spec came from (a file path), recorded on each partition. */
  spec?: string;
}

interface DeploymentMemo {
  name: string;
  partitions: number;
  spec?: string;
  input: OnlineInferenceInput;
}

/** Resends of a request the deployment rejected because its partition was handing over to the next run (each lands on the new run). */
const HANDOVER_RETRIES = 50;
const HANDOVER_BACKOFF_MS = 2;

/** First resend of a request the server refused because its partition was continuing as new; grows ×1.5. */
const CLOSING_RETRY_MS = 5;
const CLOSING_RETRY_MAX_ATTEMPTS = 20;
const CLOSING = 'workflow is closing';

/** Whether a gRPC status is the server's "workflow is closing" (directly, or inside an Update-with-Start's MultiOperationExecutionFailure). */
function isClosing(status: { code: number; details: string; metadata?: { get(key: string): (string | Buffer)[] } }): boolean {
  if (status.details.includes(CLOSING)) return true;
  const bin = status.metadata?.get('grpc-status-details-bin')[0];
  if (!bin || typeof bin === 'string') return false;
  const detail = google.rpc.Status.decode(bin).details.find((d) => d.type_url?.endsWith('MultiOperationExecutionFailure'));
  if (!detail?.value) return false;
  return temporal.api.errordetails.v1.MultiOperationExecutionFailure.decode(detail.value).statuses.some((s) => s.message?.includes(CLOSING));
}

/**
 * The gRPC retry interceptor of a connection that sends durable predictions. While a partition
 * continues as new the server refuses Update-with-Start with RESOURCE_EXHAUSTED ("workflow
 * operation can not be applied because workflow is closing"), which the SDK's default retry
 * backs off by 1 s × 1.7^n: the 1–2 s stalls at each continue-as-new. Here such a request is
 * resent after 5 ms, growing ×1.5 (the new run is up within tens to hundreds of ms); every other
 * error keeps the SDK's default retry.
 */
export function durableGrpcRetry(onClosing?: () => void) {
  const defaults = defaultGrpcRetryOptions();
  return makeGrpcRetryInterceptor({
    delayFunction: (attempt, status) => {
      if (!isClosing(status)) return defaults.delayFunction(attempt, status);
      onClosing?.();
      return CLOSING_RETRY_MS * 1.5 ** (attempt - 1);
    },
    retryableDecider: (attempt, status) => (isClosing(status) ? attempt < CLOSING_RETRY_MAX_ATTEMPTS : defaults.retryableDecider(attempt, status)),
  });
}

function checked(deployment: OnlineDeployment): void {
  const problems = [
    ...checkMessage(DeploymentRefSchema, { name: deployment.name, partition: 0, partitions: deployment.partitions }).problems,
    ...checkMessage(OnlineInferenceInputSchema, deployment.input).problems,
  ];
  if (problems.length > 0) throw new InvalidBatchInputError(problems, `online deployment ${deployment.name}`);
}

function startOptions(deployment: OnlineDeployment, partition: number) {
  const memo: DeploymentMemo = { name: deployment.name, partitions: deployment.partitions, input: deployment.input, ...(deployment.spec ? { spec: deployment.spec } : {}) };
  const input: OnlineInferenceInput = { ...deployment.input, deployment: { name: deployment.name, partition, partitions: deployment.partitions, ...(deployment.spec ? { spec: deployment.spec } : {}) } };
  return {
    taskQueue: deployment.taskQueue,
    workflowId: partitionWorkflowId(deployment.name, partition),
    args: [input] as [OnlineInferenceInput],
    memo: { [DEPLOYMENT_MEMO]: memo },
    staticSummary: `online deployment ${deployment.name}, partition ${partition + 1}/${deployment.partitions}: ${deployment.input.model}`,
  };
}

/** Start every partition that is not running (idempotent: running partitions are left as they are). Returns the partitions' workflow ids. */
export async function ensureDeployment(client: Client, deployment: OnlineDeployment): Promise<{ workflowId: string; runId: string }[]> {
  checked(deployment);
  return Promise.all(
    Array.from({ length: deployment.partitions }, async (_, i) => {
      const handle = await client.workflow.start<typeof onlineInference>(ONLINE_WORKFLOW_TYPE, { ...startOptions(deployment, i), workflowIdConflictPolicy: 'USE_EXISTING' });
      return { workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
    }),
  );
}

export interface DurableAnswer {
  answer: PredictResponse;
  /** Where the prediction is recorded: the partition's workflow id and the Update id (= the request id). */
  workflowId: string;
  updateId: string;
  partition: number;
  /** Times the request was resent because its partition was continuing as new. */
  resent: number;
}

function isHandover(err: unknown): boolean {
  return err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure && err.cause.type === CONTINUING_AS_NEW;
}

/**
 * One durable prediction: Update-with-Start on the request's partition (started with the
 * deployment's input if it is not running). The request id (generated when absent) is the
 * Update id: sending the same request id again returns the recorded answer.
 */
export async function predictOnDeployment(client: Client, deployment: OnlineDeployment, req: PredictRequest): Promise<DurableAnswer> {
  const { problems } = checkMessage(PredictRequestSchema, req);
  if (problems.length > 0) throw new InvalidBatchInputError(problems, 'predict request');
  const requestId = req.requestId ?? randomUUID();
  const partition = partitionOf(requestId, deployment.partitions);
  const options = startOptions(deployment, partition);
  for (let resent = 0; ; resent++) {
    try {
      const startWorkflowOperation = new WithStartWorkflowOperation<typeof onlineInference>(ONLINE_WORKFLOW_TYPE, { ...options, workflowIdConflictPolicy: 'USE_EXISTING' });
      const answer = await client.workflow.executeUpdateWithStart(predictUpdate, { args: [{ ...req, requestId }], updateId: requestId, startWorkflowOperation });
      return { answer, workflowId: options.workflowId, updateId: requestId, partition, resent };
    } catch (err) {
      if (resent >= HANDOVER_RETRIES || !isHandover(err)) throw err;
      if (resent > 0) await new Promise((r) => setTimeout(r, HANDOVER_BACKOFF_MS * resent));
    }
  }
}

/** The deployment recorded on partition 0 (by `ensureDeployment` or the first request): NotFound when there is none. */
export async function findDeployment(client: Client, name: string): Promise<OnlineDeployment> {
  const workflowId = partitionWorkflowId(name, 0);
  try {
    const d = await client.workflow.getHandle(workflowId).describe();
    const memo = d.memo?.[DEPLOYMENT_MEMO] as DeploymentMemo | undefined;
    if (!memo) throw new NotFoundError(`workflow ${workflowId} is not an inferflow online deployment (no ${DEPLOYMENT_MEMO} memo)`, { object: workflowId });
    return { name: memo.name, partitions: memo.partitions, taskQueue: d.taskQueue, input: memo.input, ...(memo.spec ? { spec: memo.spec } : {}) };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no online deployment ${JSON.stringify(name)} (workflow ${workflowId} not found); create it with: inferflow online deploy <spec> --name ${name}`, { object: name });
    throw err;
  }
}

export interface PartitionStatus {
  partition: number;
  workflowId: string;
  runId: string | null;
  /** RUNNING, CONTINUED_AS_NEW, CANCELLED, … or NOT_STARTED. */
  state: string;
  /** The run's status (null when the partition is not running). */
  status: DeploymentStatus | null;
}

/** Each partition's state and, when running, its status query (predictions this run, continue-as-new count, model, in-flight Updates). */
export async function deploymentStatus(client: Client, deployment: OnlineDeployment): Promise<PartitionStatus[]> {
  return Promise.all(
    Array.from({ length: deployment.partitions }, async (_, partition) => {
      const workflowId = partitionWorkflowId(deployment.name, partition);
      const handle = client.workflow.getHandle(workflowId);
      try {
        const d = await handle.describe();
        const status = d.status.name === 'RUNNING' ? await handle.query(deploymentStatusQuery) : null;
        return { partition, workflowId, runId: d.runId, state: d.status.name, status };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return { partition, workflowId, runId: null, state: 'NOT_STARTED', status: null };
        throw err;
      }
    }),
  );
}

/** Start one standalone `onlineInference` workflow (not part of a partitioned deployment). */
export async function startOnlineDeployment(client: Client, input: OnlineInferenceInput, options: { taskQueue: string; workflowId: string }): Promise<WorkflowHandleWithFirstExecutionRunId<typeof onlineInference>> {
  const { problems } = checkMessage(OnlineInferenceInputSchema, input);
  if (problems.length > 0) throw new InvalidBatchInputError(problems, 'onlineInference input');
  return client.workflow.start<typeof onlineInference>(ONLINE_WORKFLOW_TYPE, { taskQueue: options.taskQueue, workflowId: options.workflowId, args: [input] });
}

/**
 * One durable prediction on a running workflow; the request id (if any) is the Update id. A
 * request rejected while the workflow hands over to its next run is resent.
 */
export async function predictDurably(handle: WorkflowHandle, req: PredictRequest): Promise<PredictResponse> {
  const { problems } = checkMessage(PredictRequestSchema, req);
  if (problems.length > 0) throw new InvalidBatchInputError(problems, 'predict request');
  for (let resent = 0; ; resent++) {
    try {
      return await handle.executeUpdate(predictUpdate, { args: [req], ...(req.requestId ? { updateId: req.requestId } : {}) });
    } catch (err) {
      if (resent >= HANDOVER_RETRIES || !isHandover(err)) throw err;
      if (resent > 0) await new Promise((r) => setTimeout(r, HANDOVER_BACKOFF_MS * resent));
    }
  }
}
