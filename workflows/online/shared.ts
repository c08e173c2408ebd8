/**
 * Messages of the onlineInference workflow (a durable, audited online deployment), shared by
 * the workflow and its clients: the input and the `predict` request are zod schemas
 * (lib/messages/online.ts); a deployment's partitions and the request → partition hash. Free of
 * Node APIs: bundled into the workflow sandbox.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { OnlinePrediction } from '../../activities/online';
import type { DeploymentRef, PredictRequest } from '../../lib/messages/online';
import type { ResolvedModel } from '../../lib/registry/manifest';

export {
  DEDUPE_WINDOW,
  DEDUPE_WINDOW_BYTES,
  DEFAULT_MAX_PREDICTIONS_PER_RUN,
  DeploymentRefSchema,
  LOOKUP_MARGIN_MS,
  MAX_PARTITIONS,
  MAX_ROWS_PER_UPDATE,
  OnlineInferenceInputSchema,
  PREDICT_TIMEOUT_MS,
  PredictRequestSchema,
  type DeploymentRef,
  type OnlineInferenceInput,
  type PredictRequest,
} from '../../lib/messages/online';

export const ONLINE_WORKFLOW_TYPE = 'onlineInference';
export const PREDICT_UPDATE = 'predict';
/** Failure type of a `predict` Update rejected while its run hands over to the next: send it again (it lands on the new run). */
export const CONTINUING_AS_NEW = 'ContinuingAsNew';

export interface PredictResponse extends OnlinePrediction {
  model: { name: string; version: number; sha256: string };
  /** The request id, which is the Update id (the caller's, or one the client generated). */
  requestId?: string;
}

export interface DeploymentStatus {
  model: ResolvedModel | null;
  deployment: DeploymentRef | null;
  /** Predictions answered by the deployment (all runs). */
  served: number;
  /** Predictions in this workflow run (it continues as new at maxPredictionsPerRun Updates). */
  servedThisRun: number;
  /** Updates this run accepted, answered from the record (retries) included. */
  updatesThisRun: number;
  /** Retries answered from the record without predicting again (this run). */
  deduplicatedThisRun: number;
  failed: number;
  /** Runs before this one (continue-as-new count). */
  continuedAsNew: number;
  /** Updates being handled right now (Temporal allows 10 in flight per workflow). */
  inFlight: number;
}

export const predictUpdate = defineUpdate<PredictResponse, [PredictRequest]>(PREDICT_UPDATE);
export const deploymentStatusQuery = defineQuery<DeploymentStatus>('status');

/** Workflow id of partition `i` of a deployment. */
export function partitionWorkflowId(deployment: string, partition: number): string {
  return `${deployment}-p${partition}`;
}

/** The partition a request id goes to: FNV-1a (32 bit) of its UTF-16 code units, modulo the partition count. Stable across processes and versions. */
export function partitionOf(requestId: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < requestId.length; i++) {
    h ^= requestId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}
