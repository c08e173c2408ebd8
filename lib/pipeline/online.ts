/**
 * Online assembly: request rows + the online store → model inputs, through the same
 * on-demand features and fitted transforms as batch (`assembleBlock`), so a request scored
 * online gets the score batch would give it for the same feature values.
 *
 *   const plan = planAssembly(manifest, registry.resolve(spec.onDemand ?? []));  // registry: OnDemandRegistry.load(config.modules)
 *   const views = spec.featureViews.map((v) => parseFeatureView(v));  // once
 *   const { block, statuses } = await assembleOnline({ plan, views, store, requests });  // or Pipeline (pipeline.ts)
 *   const predictions = await predict(session, manifest, block);
 *
 * Feature values that are NOT_FOUND, STALE (older than the view's TTL at `now`) or NULL go in
 * as missing (NaN / null): the model's imputers fill them where it was trained to, otherwise
 * predict() rejects the row with its id named. Statuses are returned for auditing.
 */
import { InvalidInputError, SchemaMismatchError } from '../errors';
import type { ExternalStatus } from '../features/external';
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

/** Request rows and their online features as the plan's raw columns, before the on-demand and transform steps. */
export interface OnlineRetrieved {
  batch: RawBatch;
  rows: number;
  /** `<idField>=<value>` or `request <i>`, for messages. */
  rowLabel: (row: number) => string;
  /** True when a raw column's value in a row was missing (null, absent, or a feature not PRESENT). */
  missing: (row: number, column: string) => boolean;
  /** Per request, per `<view>__<feature>` column: the online store's status (per external-API output column: its lookup's, after the on-demand step). */
  statuses: Record<string, FeatureStatus | ExternalStatus>[];
}

export interface OnlineAssembled {
  block: FeatureBlock;
  /** Per request, per `<view>__<feature>` column: the online store's status. */
  statuses: Record<string, FeatureStatus | ExternalStatus>[];
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return NaN; // null / absent: a missing value (checked by requestValueProblems: nothing else gets here)
}

function toInstant(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Date.parse(v);
  return NaN;
}

const isMissing = (v: unknown) => v === null || v === undefined;

/** What a request field of each kind holds (null, or an absent field, is a missing value in every kind). */
export const EXPECTED_REQUEST_VALUE = {
  numeric: 'a number (FP64) or null',
  string: 'a string (BYTES) or null',
  timestamp: 'an ISO 8601 time (BYTES) or epoch milliseconds (INT64), or null',
  entityKey: 'a string (BYTES) or an integer (INT64) entity key, or null',
} as const;

const VALUE_FITS: Record<keyof typeof EXPECTED_REQUEST_VALUE, (v: unknown) => boolean> = {
  numeric: (v) => typeof v === 'number' || typeof v === 'bigint',
  string: (v) => typeof v === 'string',
  timestamp: (v) => (v instanceof Date || typeof v === 'number' || typeof v === 'string') && Number.isFinite(toInstant(v)),
  entityKey: (v) => typeof v === 'string' || typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v)),
};

/** Problems listed in one error at most (a request may carry thousands of rows). */
const MAX_VALUE_PROBLEMS = 20;

/** A request value as JSON text (for messages): `"abc"`, `true`, `null`, `1.5`. */
export function valueText(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'bigint' || (typeof v === 'number' && !Number.isFinite(v))) return String(v);
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? 'an invalid Date' : v.toISOString();
  const text = JSON.stringify(v) ?? typeof v;
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Every request value that does not fit what the pipeline reads it as, as
 * `<field>[<row>]: expected <what>, got <value>` (at most MAX_VALUE_PROBLEMS): entity keys of
 * the views, then the request fields the model's inputs and on-demand features read. A null or
 * absent value is missing, never a problem here: a null entity key finds no features
 * (NOT_FOUND), a missing number is imputed where the model was trained to impute it.
 * The same check serves the HTTP server and the onlineInference workflow.
 */
export function requestValueProblems(args: { plan: AssemblyPlan; views: readonly FeatureView[]; requests: readonly OnlineRequest[] }): string[] {
  const fromViews = new Set(args.views.flatMap((v) => v.features.map((f) => outputColumnName(v.name, f.name))));
  // A field may be read twice (an entity key the model also takes as a number): its values must fit both.
  const fields = new Map<string, (keyof typeof EXPECTED_REQUEST_VALUE)[]>();
  const need = (field: string, kind: keyof typeof EXPECTED_REQUEST_VALUE) => fields.set(field, [...new Set([...(fields.get(field) ?? []), kind])]);
  for (const e of args.views.flatMap((v) => v.entities)) need(e, 'entityKey');
  for (const c of args.plan.sourceColumns) if (!fromViews.has(c.name)) need(c.name, c.kind);
  const problems: string[] = [];
  for (const [field, kinds] of fields) {
    for (let i = 0; i < args.requests.length && problems.length < MAX_VALUE_PROBLEMS; i++) {
      const v = args.requests[i]![field];
      const unfit = isMissing(v) ? undefined : kinds.find((kind) => !VALUE_FITS[kind](v));
      if (unfit) problems.push(`${field}[${i}]: expected ${EXPECTED_REQUEST_VALUE[unfit]}, got ${valueText(v)}`);
    }
  }
  return problems;
}

/**
 * Look up every view's features for the requests' entity keys (one multi-get per view), fill
 * the plan's raw columns from the requests and the lookups (THE online retrieval step).
 * A request whose key has a null (or absent) part finds no features: NOT_FOUND, as a spine row
 * with a null key gets no features in batch.
 *
 * @throws InvalidInputError a request value that does not fit its field (requestValueProblems)
 * @throws SchemaMismatchError a raw column that neither the requests nor the views provide
 */
export async function retrieveOnlineFeatures(args: OnlineAssembleArgs): Promise<OnlineRetrieved> {
  const { plan, requests } = args;
  const rows = requests.length;
  const { views } = args;
  const invalid = requestValueProblems({ plan, views, requests });
  if (invalid.length > 0) throw new InvalidInputError('request values do not fit the pipeline', invalid);
  const fromViews = new Map<string, unknown[]>();
  const statuses: Record<string, FeatureStatus>[] = requests.map(() => ({}));
  for (const view of views) {
    const keyed = requests.flatMap((req, i) => (view.entities.some((e) => isMissing(req[e])) ? [] : [i]));
    const keys = keyed.map((i) => Object.fromEntries(view.entities.map((e) => [e, requests[i]![e] as EntityKeyPart])));
    const vectors = await lookupOnlineFeatures(args.store, view, keys, args.now ? { now: args.now } : {});
    const vectorOf = new Map(keyed.map((row, k) => [row, vectors[k]!]));
    for (const f of view.features) {
      const col = outputColumnName(view.name, f.name);
      fromViews.set(
        col,
        requests.map((_, i) => {
          const value = vectorOf.get(i)?.features[f.name] ?? { status: 'NOT_FOUND' as const, value: null };
          statuses[i]![col] = value.status;
          return value.status === 'PRESENT' ? value.value : null;
        }),
      );
    }
  }
  const problems: string[] = [];
  const batch: RawBatch = {};
  const missing = new Map<string, Set<number>>();
  for (const { name, kind, by } of plan.sourceColumns) {
    const values = fromViews.get(name) ?? (requests.some((r) => Object.hasOwn(r, name)) ? requests.map((r) => r[name]) : undefined);
    if (!values) {
      problems.push(`${name} is missing from the requests (${by} needs it as ${kind})`);
      continue;
    }
    const nulls = new Set(values.flatMap((v, i) => (isMissing(v) ? [i] : [])));
    if (nulls.size > 0) missing.set(name, nulls);
    if (kind === 'string') batch[name] = values.map((v) => (typeof v === 'string' ? v : null));
    else if (kind === 'timestamp') batch[name] = Float64Array.from(values, toInstant);
    else batch[name] = Float64Array.from(values, toNumber);
  }
  if (problems.length > 0) throw new SchemaMismatchError('requests do not fit the pipeline', problems);
  const idField = args.idField;
  const rowLabel = (i: number) => {
    const id = idField ? requests[i]?.[idField] : undefined;
    return idField && (typeof id === 'string' || typeof id === 'number' || typeof id === 'bigint') ? `${idField}=${id}` : `request ${i}`;
  };
  return { batch, rows, rowLabel, missing: (row, column) => missing.get(column)?.has(row) ?? false, statuses };
}

/** retrieveOnlineFeatures, then the on-demand and transform steps (assembleBlock): the model inputs for the requests. */
export async function assembleOnline(args: OnlineAssembleArgs): Promise<OnlineAssembled> {
  const r = await retrieveOnlineFeatures(args);
  const block = assembleBlock(args.plan, r.batch, r.rows, r.rowLabel);
  return { block: { ...block, missing: r.missing }, statuses: r.statuses };
}
