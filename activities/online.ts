/**
 * The online prediction activity: requests + online-store features → predictions, through
 * the same assembly step and `predict` as batch and the HTTP server. Run as a local activity by
 * the onlineInference workflow (low latency: no task-queue round trip), so every durable
 * prediction is recorded in that workflow's history with its request and its answer.
 */
import { InvalidInputError } from '../lib/errors';
import type { OnlineStoreSpec } from '../lib/features/online';
import type { FeatureViewInput } from '../lib/features/spec';
import type { OnDemandRef } from '../lib/features/on-demand';
import type { PostProcessStep } from '../lib/messages/post-process';
import { openPipeline } from '../lib/pipeline/pipeline';
import { predictionLists, type PredictionLists } from '../lib/pipeline/post-process';
import type { Resources } from '../lib/pipeline/resources';
import type { ResolvedModel } from '../lib/registry/manifest';
import { withFailureMapping } from './failures';

export interface OnlinePredictInput {
  model: ResolvedModel;
  featureViews: FeatureViewInput[];
  onDemand: OnDemandRef[];
  postProcess?: PostProcessStep[];
  store?: OnlineStoreSpec;
  idColumn?: string;
  /** Request rows: entity keys, event time (ISO 8601 or epoch ms) and request fields. */
  rows: Record<string, unknown>[];
  /** ISO 8601: judge feature freshness at this time instead of now. */
  asOf?: string;
  /** Epoch ms by which external-API lookups give up (their rows get a TIMEOUT status). */
  deadline?: number;
}

export interface OnlinePrediction extends PredictionLists {
  /** Per row, per `<view>__<feature>`: the online store's status (PRESENT, NULL, NOT_FOUND, STALE). */
  featureStatus: Record<string, string>[];
}

export function createOnlineActivities(resources: Resources) {
  return withFailureMapping({
    async predictOnline(input: OnlinePredictInput): Promise<OnlinePrediction> {
      if (!Array.isArray(input.rows) || input.rows.length === 0) throw new InvalidInputError('no rows to predict', ['rows: at least one request row']);
      const pipeline = await openPipeline(input, resources);
      const { predictions, statuses } = await pipeline.infer({
        requests: input.rows,
        ...(input.asOf ? { now: new Date(input.asOf) } : {}),
        ...(input.deadline !== undefined ? { deadline: input.deadline } : {}),
      });
      return { ...predictionLists(predictions), featureStatus: statuses };
    },
  });
}
