/**
 * The online prediction activity: requests + online-store features → predictions, through
 * the same assembly step and `predict` as batch and the HTTP server. Run as a local activity by
 * the onlineInference workflow (low latency: no task-queue round trip), so every durable
 * prediction is recorded in that workflow's history with its request and its answer.
 */
import { InvalidInputError } from '../lib/errors';
import { openOnlineStore, type OnlineStore, type OnlineStoreSpec } from '../lib/features/online';
import { parseFeatureView, type FeatureView, type FeatureViewInput } from '../lib/features/spec';
import type { OnDemandRef } from '../lib/features/on-demand';
import { assembleOnline } from '../lib/pipeline/online';
import type { ResolvedModel } from '../lib/registry/manifest';
import { predict } from '../lib/runtime/predict';
import type { ActivityDeps } from './deps';
import type { ModelContexts } from './models';
import { withFailureMapping } from './failures';

export interface OnlinePredictInput {
  model: ResolvedModel;
  featureViews: FeatureViewInput[];
  onDemand: OnDemandRef[];
  store?: OnlineStoreSpec;
  idColumn?: string;
  /** Request rows: entity keys, event time (ISO 8601 or epoch ms) and request fields. */
  rows: Record<string, unknown>[];
  /** ISO 8601: judge feature freshness at this time instead of now. */
  asOf?: string;
}

export interface OnlinePrediction {
  /** Predicted class per row (classification). */
  label?: number[];
  /** Positive-class probability per row (binary) or the predicted class's (multiclass). */
  score?: number[];
  /** Regression output per row. */
  prediction?: number[];
  /** Per row, per `<view>__<feature>`: the online store's status (PRESENT, NULL, NOT_FOUND, STALE). */
  featureStatus: Record<string, string>[];
}

/** Online stores stay open across predictions (one per spec per worker process). */
const stores = new Map<string, OnlineStore>();

/** Feature views validated once per distinct list (a deployment sends the same views with every request). */
const parsedViews = new Map<string, FeatureView[]>();
const MAX_PARSED_VIEW_LISTS = 100;

function viewsOf(raw: OnlinePredictInput['featureViews']): FeatureView[] {
  const key = JSON.stringify(raw);
  let views = parsedViews.get(key);
  if (!views) {
    views = raw.map((v, i) => parseFeatureView(v, `featureViews[${i}]`)); // throws: nothing cached
    if (parsedViews.size >= MAX_PARSED_VIEW_LISTS) parsedViews.clear();
    parsedViews.set(key, views);
  }
  return views;
}

/** Close the online stores opened for predictions (worker shutdown). */
export async function closeOnlineStores(): Promise<void> {
  const all = [...stores.values()];
  stores.clear();
  await Promise.allSettled(all.map((s) => s.close()));
}

export function createOnlineActivities(deps: ActivityDeps, models: ModelContexts) {
  return withFailureMapping({
    async predictOnline(input: OnlinePredictInput): Promise<OnlinePrediction> {
      if (!Array.isArray(input.rows) || input.rows.length === 0) throw new InvalidInputError('no rows to predict', ['rows: at least one request row']);
      const { manifest, plan } = await models.context(input.model, input.onDemand);
      const session = await models.session(input.model, plan);
      const storeKey = JSON.stringify(input.store ?? null);
      let store = stores.get(storeKey);
      if (!store) {
        store = openOnlineStore(input.store, { redisUrl: deps.config.redisUrl, dataDir: deps.config.dataDir });
        stores.set(storeKey, store);
      }
      const { block, statuses } = await assembleOnline({
        plan,
        views: viewsOf(input.featureViews),
        store,
        requests: input.rows,
        ...(input.asOf ? { now: new Date(input.asOf) } : {}),
        ...(input.idColumn ? { idField: input.idColumn } : {}),
      });
      const p = await predict(session, manifest, block);
      return {
        ...(p.label ? { label: Array.from(p.label) } : {}),
        ...(p.score ? { score: Array.from(p.score) } : {}),
        ...(p.value ? { prediction: Array.from(p.value) } : {}),
        featureStatus: statuses,
      };
    },
  });
}
