/**
 * Online assembly: request rows + the online store → model inputs, through the same
 * on-demand features and fitted transforms as batch (`assembleBlock`), so a request scored
 * online gets the score batch would give it for the same feature values.
 *
 *   const plan = planAssembly(manifest, registry.resolve(spec.onDemand ?? []));  // registry: OnDemandRegistry.load(config.modules)
 *   const views = spec.featureViews.map((v) => parseFeatureView(v));  // once
 *   const { block, statuses } = await assembleOnline({ plan, views, store, requests });
 *   const predictions = await predict(session, manifest, block);
 *
 * Feature values that are NOT_FOUND, STALE (older than the view's TTL at `now`) or NULL go in
 * as missing (NaN / null): the model's imputers fill them where it was trained to, otherwise
 * predict() rejects the row with its id named. Statuses are returned for auditing.
 */
import { SchemaMismatchError } from '../errors';
import { lookupOnlineFeatures, type EntityKeyPart, type FeatureStatus, type OnlineStore } from '../features/online';
import { outputColumnName, type FeatureView } from '../features/spec';
import type { FeatureBlock } from '../runtime/predict';
import { assembleBlock, type AssemblyPlan, type RawBatch } from './assemble';

/** One request: entity keys, event time and request columns (numbers, strings, booleans, bigints, Dates / ISO strings for instants). */
export type OnlineRequest = Readonly<Record<string, unknown>>;

export interface OnlineAssembleArgs {
  plan: AssemblyPlan;
  /** Feature views (validated once with parseFeatureView, not per request) whose `<view>__<feature>` columns the model needs. */
  views: readonly FeatureView[];
  store: OnlineStore;
  requests: readonly OnlineRequest[];
  /** Freshness reference for the views' TTLs. Default: now. */
  now?: Date;
  /** Request field naming rows in errors (e.g. transaction_id). */
  idField?: string;
}

export interface OnlineAssembled {
  block: FeatureBlock;
  /** Per request, per `<view>__<feature>` column: the online store's status. */
  statuses: Record<string, FeatureStatus>[];
}

function toNumber(v: unknown): number {
  if (v === null || v === undefined) return NaN;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return NaN;
}

function toInstant(v: unknown): number {
  if (v === null || v === undefined) return NaN;
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Date.parse(v);
  return NaN;
}

/**
 * Look up every view's features for the requests' entity keys (one multi-get per view), fill
 * the plan's raw columns from the requests and the lookups, and assemble the model inputs.
 *
 * @throws SchemaMismatchError a raw column that neither the requests nor the views provide, or a request value of the wrong type (every problem listed)
 * @throws InvalidInputError an invalid entity key
 */
export async function assembleOnline(args: OnlineAssembleArgs): Promise<OnlineAssembled> {
  const { plan, requests } = args;
  const rows = requests.length;
  const { views } = args;
  const fromViews = new Map<string, unknown[]>();
  const statuses: Record<string, FeatureStatus>[] = requests.map(() => ({}));
  for (const view of views) {
    const keys = requests.map((req) => Object.fromEntries(view.entities.map((e) => [e, req[e] as EntityKeyPart])));
    const vectors = await lookupOnlineFeatures(args.store, view, keys, args.now ? { now: args.now } : {});
    for (const f of view.features) {
      const col = outputColumnName(view.name, f.name);
      fromViews.set(col, vectors.map((v, i) => {
        const value = v.features[f.name]!;
        statuses[i]![col] = value.status;
        return value.status === 'PRESENT' ? value.value : null;
      }));
    }
  }
  const problems: string[] = [];
  const batch: RawBatch = {};
  for (const { name, kind, by } of plan.sourceColumns) {
    const values = fromViews.get(name) ?? (requests.some((r) => Object.hasOwn(r, name)) ? requests.map((r) => r[name]) : undefined);
    if (!values) {
      problems.push(`${name} is missing from the requests (${by} needs it as ${kind})`);
      continue;
    }
    if (kind === 'string') {
      const bad = values.findIndex((v) => v !== null && v !== undefined && typeof v !== 'string');
      if (bad >= 0) problems.push(`${name} must be a string, request ${bad} has ${typeof values[bad]}`);
      batch[name] = values.map((v) => (typeof v === 'string' ? v : null));
    } else if (kind === 'timestamp') {
      batch[name] = Float64Array.from(values, toInstant);
    } else {
      const bad = values.findIndex((v) => typeof v === 'string');
      if (bad >= 0) problems.push(`${name} must be a number, request ${bad} has a string`);
      batch[name] = Float64Array.from(values, toNumber);
    }
  }
  if (problems.length > 0) throw new SchemaMismatchError('requests do not fit the pipeline', problems);
  const idField = args.idField;
  const rowLabel = (i: number) => {
    const id = idField ? requests[i]?.[idField] : undefined;
    return idField && (typeof id === 'string' || typeof id === 'number' || typeof id === 'bigint') ? `${idField}=${id}` : `request ${i}`;
  };
  return { block: assembleBlock(plan, batch, rows, rowLabel), statuses };
}
