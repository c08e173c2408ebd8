/**
 * Messages of the onlineInference workflow (a durable, audited online deployment), shared by
 * the workflow and its clients: the input and the `predict` request are zod schemas
 * (lib/messages/online.ts). Free of Node APIs: bundled into the workflow sandbox.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { OnlinePrediction } from '../../activities/online';
import type { PredictRequest } from '../../lib/messages/online';
import type { ResolvedModel } from '../../lib/registry/manifest';

export {
  DEFAULT_MAX_PREDICTIONS_PER_RUN,
  MAX_ROWS_PER_UPDATE,
  OnlineInferenceInputSchema,
  PredictRequestSchema,
  type OnlineInferenceInput,
  type PredictRequest,
} from '../../lib/messages/online';

export const ONLINE_WORKFLOW_TYPE = 'onlineInference';

export interface PredictResponse extends OnlinePrediction {
  model: { name: string; version: number; sha256: string };
  requestId?: string;
}

export interface DeploymentStatus {
  model: ResolvedModel | null;
  /** Predictions answered by the deployment (all runs). */
  served: number;
  /** Predictions in this workflow run (it continues as new at maxPredictionsPerRun). */
  servedThisRun: number;
  failed: number;
}

export const predictUpdate = defineUpdate<PredictResponse, [PredictRequest]>('predict');
export const deploymentStatusQuery = defineQuery<DeploymentStatus>('status');
