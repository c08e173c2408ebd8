/**
 * Messages of the onlineInference workflow (a durable, audited online deployment), shared by
 * the workflow and its clients. Free of Node APIs: bundled into the workflow sandbox.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { OnlinePrediction } from '../activities/online';
import type { FeatureViewInput } from '../lib/features/spec';
import type { OnDemandRef } from '../lib/features/on-demand';
import type { OnlineStoreSpec } from '../lib/features/online/index';
import type { ResolvedModel } from '../lib/registry/manifest';
import { checkOnDemandRefs } from './definitions';

export const ONLINE_WORKFLOW_TYPE = 'onlineInference';

/** Input of `onlineInference`: one JSON object (a pipeline spec's model, views and on-demand features). */
export interface OnlineInferenceInput {
  /** Model reference, resolved once when the deployment starts: every prediction of the deployment uses that exact version. */
  model: string;
  featureViews?: FeatureViewInput[];
  onDemand?: OnDemandRef[];
  /** Online store the views' features come from. Default: the embedded SQLite store under the worker's data dir. */
  store?: OnlineStoreSpec;
  /** Request field that names rows in errors. */
  idColumn?: string;
  /** Predictions per workflow run before it continues as new (keeps each history small). Default 500. */
  maxPredictionsPerRun?: number;
  /** Carried across continue-as-new: the pinned model and the predictions served so far. */
  pinned?: ResolvedModel;
  servedBefore?: number;
  failedBefore?: number;
}

/** One durable prediction: a few request rows. */
export interface PredictRequest {
  rows: Record<string, unknown>[];
  /** ISO 8601: judge feature freshness at this time instead of now. */
  asOf?: string;
  /** Caller's id for the request, echoed back and kept in the history (audit). */
  requestId?: string;
}

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

/** Rows one durable prediction may carry (history stays small: use batch for volume). */
export const MAX_ROWS_PER_UPDATE = 100;
export const DEFAULT_MAX_PREDICTIONS_PER_RUN = 500;

/** Problems of a predict request, checked by the update's validator (a rejected request never enters history). */
export function checkPredictRequest(req: unknown): string[] {
  const r = req as Partial<PredictRequest> | null;
  if (typeof r !== 'object' || r === null) return ['request must be an object {"rows": [ {…}, … ]}'];
  const problems: string[] = [];
  if (!Array.isArray(r.rows) || r.rows.length === 0) problems.push('rows: at least one request row');
  else if (r.rows.length > MAX_ROWS_PER_UPDATE) problems.push(`rows: at most ${MAX_ROWS_PER_UPDATE} per durable prediction (got ${r.rows.length}); use batchInference for volume`);
  else r.rows.forEach((row, i) => {
    if (typeof row !== 'object' || row === null || Array.isArray(row)) problems.push(`rows[${i}]: must be an object of request fields`);
  });
  if (r.asOf !== undefined && (typeof r.asOf !== 'string' || Number.isNaN(Date.parse(r.asOf)))) problems.push('asOf: an ISO 8601 time');
  if (r.requestId !== undefined && typeof r.requestId !== 'string') problems.push('requestId: a string');
  return problems;
}

/** Problems of the deployment input that need no I/O. */
export function checkOnlineInput(input: unknown): string[] {
  const i = input as Partial<OnlineInferenceInput> | null;
  if (typeof i !== 'object' || i === null || Array.isArray(i)) return ['input must be a JSON object like {"model": "fraud-features@production", "featureViews": [ … ], "onDemand": [ … ]}'];
  const problems: string[] = [];
  if (typeof i.model !== 'string' || i.model.trim() === '') problems.push('model: required, a model reference');
  if (i.featureViews !== undefined && !Array.isArray(i.featureViews)) problems.push('featureViews: a list of feature view specs');
  problems.push(...checkOnDemandRefs(i.onDemand));
  if (i.maxPredictionsPerRun !== undefined && !(Number.isInteger(i.maxPredictionsPerRun) && i.maxPredictionsPerRun >= 1 && i.maxPredictionsPerRun <= 10_000)) problems.push('maxPredictionsPerRun: an integer from 1 to 10,000');
  return problems;
}
