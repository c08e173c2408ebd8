/**
 * Message and payload definitions shared by workflows and their clients (CLI, tests,
 * user code). Keep this file free of Node APIs: it is bundled into the workflow sandbox.
 */
import { ApplicationFailure, defineQuery, defineSignal } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { ResolvedModel } from '../lib/registry/manifest';
import type { SinkSpec } from '../lib/sinks/spec';
import type { FeatureViewInput } from '../lib/features/spec';
import type { OnDemandRef } from '../lib/features/on-demand';

/** The permanent failure of a workflow started with bad input: every problem listed (in the message and as details), never retried. */
export function invalidInput(workflowType: string, problems: string[]): ApplicationFailure {
  return invalidInputFailure(`${workflowType} input`, problems);
}

/** The permanent `InvalidInput` failure of a malformed message (`invalid <subject>: <problems>`), e.g. a rejected Update. */
export function invalidInputFailure(subject: string, problems: string[]): ApplicationFailure {
  return ApplicationFailure.create({ type: 'InvalidInput', message: `invalid ${subject}: ${problems.join('; ')}`, nonRetryable: true, details: [{ problems }] });
}

export const BATCH_WORKFLOW_TYPE = 'batchInference';
/** The no-op workflow each worker runs on itself once it polls (workers/warm.ts). */
export const WARM_UP_WORKFLOW_TYPE = 'inferflowWarmUp';

export const SEARCH_ATTRIBUTES = {
  pipeline: defineSearchAttributeKey('InferflowPipeline', SearchAttributeType.KEYWORD),
  model: defineSearchAttributeKey('InferflowModel', SearchAttributeType.KEYWORD),
  modelVersion: defineSearchAttributeKey('InferflowModelVersion', SearchAttributeType.KEYWORD),
  asOf: defineSearchAttributeKey('InferflowAsOf', SearchAttributeType.DATETIME),
} as const;

/** Set by Temporal Schedules on every run they start: the time the run was scheduled for. */
export const SCHEDULED_START_TIME = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);

/**
 * The time a run is "as of", ISO 8601: `given` when set, else the schedule's scheduled time
 * (so a backfill reproduces each scheduled run), else the run's start time. Call from workflow
 * code with `workflowInfo()`.
 */
export function runTime(given: string | undefined, info: { typedSearchAttributes: { get(key: typeof SCHEDULED_START_TIME): Date | undefined }; runStartTime: Date }): string {
  if (given !== undefined) return new Date(given).toISOString();
  return (info.typedSearchAttributes.get(SCHEDULED_START_TIME) ?? info.runStartTime).toISOString();
}

/** Input of `batchInference`: one JSON object (the same from code, the CLI and the Temporal UI). */
export interface BatchInferenceInput {
  /** Model reference in the worker's registry: `name` (latest), `name:3`, or `name@production`. */
  model: string;
  /**
   * Feature file: a Parquet or CSV path (or `file://` URL) readable by the workers, holding the
   * model's raw columns. Give either this or `featureViews`.
   */
  features?: string;
  /**
   * Feature views (docs/features.md) joined point-in-time onto the `spine`: each row gets the
   * latest values with event time ≤ its timestamp, within the view's TTL, never a later value.
   */
  featureViews?: FeatureViewInput[];
  /**
   * With `featureViews`: a Parquet or CSV file (path, `file://` or `s3://`) of rows to score —
   * entity keys, a timestamp column (`entityTimestampField`) and request columns such as the
   * amount. Default: every entity of the views, as of the run's as-of time.
   */
  spine?: string;
  /** The spine's timestamp column. Default `event_timestamp`. */
  entityTimestampField?: string;
  /**
   * On-demand features computed from request data and retrieved features before the model's
   * transforms: `{ "module": "examples/features/fraud.ts", "export": "transactionFeatures" }`,
   * a module inside the worker's working directory exporting a defineOnDemandFeature value.
   */
  onDemand?: OnDemandRef[];
  /** Pipeline name, used for output paths and the InferflowPipeline search attribute. Default: the model name. */
  pipeline?: string;
  /** Column that identifies a row in the output. Default: the model's `id_column` when the file has it. */
  idColumn?: string;
  /** Where predictions go. Default: `{ "type": "parquet" }` under the worker's output directory. */
  sink?: SinkSpec;
  /**
   * The time the predictions are "as of" (ISO 8601), recorded in every output row and in the
   * InferflowAsOf search attribute. Default: the schedule's scheduled time for scheduled runs
   * (so backfills reproduce each day's run), else the workflow start time.
   */
  asOf?: string;
  /** Rows per shard (one activity each). Default 250,000. */
  shardSize?: number;
  /** Shards predicted at the same time. Default 4. */
  maxConcurrency?: number;
  /** Runs with more shards than this fan out through child workflows of this many shards each. Default 200. */
  shardsPerChild?: number;
}

/**
 * Defaults. shardSize 250,000 was chosen by `npm run bench -- batch` (docs/decisions/0003-default-shard-size.md): at
 * 1M rows on 2 cores, once shards up to 262,144 rows are written in one piece (no segment
 * merge), 4 shards of 250,000 ran 0.8–1.3× the raw baseline's time against 1.3–1.4× with 20
 * shards of 50,000 (each activity costs worker and server CPU; warm workers, three sweeps), with
 * a worker peak RSS of 0.6–0.75 GB.
 */
export { BATCH_DEFAULTS } from './defaults';

/** Accepted range of the whole-number run settings (checked by the workflow, the spec file schema and the benchmark's flags). */
export const BATCH_LIMITS = { shardSize: { min: 1, max: 5_000_000 }, maxConcurrency: { min: 1, max: 500 }, shardsPerChild: { min: 1, max: 2_000 } } as const;

/** `must be an integer between 1 and 5,000,000` for a BATCH_LIMITS field. */
export function batchLimitMessage(field: keyof typeof BATCH_LIMITS): string {
  const { min, max } = BATCH_LIMITS[field];
  const grouped = (n: number) => String(n).replace(/\B(?=(\d{3})+$)/g, ',');
  return `must be an integer between ${grouped(min)} and ${grouped(max)}`;
}
export interface BatchInferenceResult {
  workflowId: string;
  runId: string;
  pipeline: string;
  model: ResolvedModel;
  /** ISO 8601 as-of time of the run. */
  asOf: string;
  rowsIn: number;
  rowsOut: number;
  shards: number;
  output: { type: string; location: string };
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  rowsPerSecond: number;
}

export type BatchPhase = 'resolving' | 'planning' | 'predicting' | 'committing' | 'done' | 'failed';

export interface BatchProgress {
  phase: BatchPhase;
  model?: { name: string; version: number };
  shardsTotal: number;
  shardsDone: number;
  /** Shards that failed for good (after retries); any makes the run fail. */
  shardsFailed: number;
  rowsTotal: number;
  rowsDone: number;
  rowsPerSecond: number;
  /** Seconds until done at the current rate; null until it can be estimated. */
  etaSeconds: number | null;
}

export const progressQuery = defineQuery<BatchProgress>('progress');

/** `95` → `1m 35s`, for ETAs people read. */
function etaText(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

/**
 * A run's progress as the Web UI shows it on the workflow page (the workflow's current details,
 * Markdown): phase, model, shards, rows, rate and ETA. The same numbers as `progressQuery`.
 */
export function progressDetails(p: BatchProgress): string {
  const n = (x: number) => x.toLocaleString('en-US');
  return [
    `**${p.phase}**${p.model ? ` · model ${p.model.name} version ${p.model.version}` : ''}`,
    `shards ${n(p.shardsDone)}/${n(p.shardsTotal)}${p.shardsFailed ? ` (${n(p.shardsFailed)} failed)` : ''} · rows ${n(p.rowsDone)}/${n(p.rowsTotal)}`,
    `${n(p.rowsPerSecond)} rows/s · ETA ${p.etaSeconds === null ? 'unknown' : etaText(p.etaSeconds)}`,
  ].join('\n\n');
}

/** The one-line summary a batch run starts with (Web UI list and run page): pipeline and model reference. */
export function batchSummary(input: Pick<BatchInferenceInput, 'pipeline' | 'model'>): string {
  return `batch ${input.pipeline ?? input.model.split(/[:@]/)[0]} · model ${input.model}`;
}

/** Child shard groups tell the parent how many shards and rows they finished since the last report. */
export const shardGroupProgressSignal = defineSignal<[{ shards: number; rows: number }]>('shardGroupProgress');

/** Input checks that need no I/O; every problem is listed. Used by the workflow and by clients before starting. */
export function checkBatchInput(input: unknown): string[] {
  const problems: string[] = [];
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return ['input must be a JSON object like {"model": "fraud-detector", "features": "examples/data/transactions.parquet"}'];
  const i = input as Record<string, unknown>;
  if (typeof i.model !== 'string' || i.model.trim() === '') problems.push('model: required, a model reference such as "fraud-detector@production"');
  if (i.featureViews === undefined) {
    if (typeof i.features !== 'string' || i.features.trim() === '') problems.push('features: required (a Parquet or CSV file path), unless featureViews are given');
    if (i.spine !== undefined) problems.push('spine: only used with featureViews');
  } else {
    if (i.features !== undefined) problems.push('features: give either features (a prepared file) or featureViews (joined onto a spine), not both');
    if (!Array.isArray(i.featureViews) || i.featureViews.length === 0) problems.push('featureViews: must be a non-empty list of feature view specs');
    else i.featureViews.forEach((v: unknown, n) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) problems.push(`featureViews[${n}]: must be a feature view object (name, entities, timestampField, source, features)`);
    });
    if (i.spine !== undefined && (typeof i.spine !== 'string' || i.spine.trim() === '')) problems.push('spine: must be a Parquet or CSV file path');
  }
  if (i.entityTimestampField !== undefined && (typeof i.entityTimestampField !== 'string' || i.entityTimestampField === '')) problems.push('entityTimestampField: must be a column name');
  problems.push(...checkOnDemandRefs(i.onDemand));
  for (const k of ['pipeline', 'idColumn'] as const) {
    if (i[k] !== undefined && (typeof i[k] !== 'string' || i[k] === '')) problems.push(`${k}: must be a non-empty string`);
  }
  if (typeof i.pipeline === 'string' && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(i.pipeline)) problems.push('pipeline: letters, digits, ".", "_", "-" only (max 64)');
  for (const k of Object.keys(BATCH_LIMITS) as (keyof typeof BATCH_LIMITS)[]) {
    const v = i[k];
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= BATCH_LIMITS[k].min && (v as number) <= BATCH_LIMITS[k].max)) problems.push(`${k}: ${batchLimitMessage(k)}`);
  }
  if (i.sink !== undefined && (typeof i.sink !== 'object' || i.sink === null || typeof (i.sink as { type?: unknown }).type !== 'string')) {
    problems.push('sink: must be an object with a "type" ("parquet", "duckdb", "postgres" or "redis")');
  }
  if (i.asOf !== undefined && (typeof i.asOf !== 'string' || Number.isNaN(Date.parse(i.asOf)))) problems.push('asOf: must be an ISO 8601 time such as "2026-11-25T03:00:00Z"');
  const known = new Set(['model', 'features', 'featureViews', 'spine', 'entityTimestampField', 'onDemand', 'pipeline', 'idColumn', 'sink', 'asOf', 'shardSize', 'maxConcurrency', 'shardsPerChild']);
  for (const k of Object.keys(i)) if (!known.has(k)) problems.push(`${k}: unknown field (known: ${[...known].join(', ')})`);
  return problems;
}

/** Absolute paths (POSIX or Windows) and URLs (`s3://…`, `file:///…`): locations every worker reads alike. */
const WORKER_INDEPENDENT = /^(\/|[A-Za-z]:[\\/]|file:\/\/\/|(?!file:)[a-z][a-z0-9+.-]*:\/\/)/i;

/**
 * Locations of a run that is about to start: a relative path would resolve against each
 * worker's own working directory (the Temporal CLI and the Web UI pass the input as written),
 * so runs take absolute paths or URLs. The inferflow CLI and spec files resolve relative paths
 * against the caller's directory or the spec file before they start a run.
 */
export function checkRunLocations(input: Pick<BatchInferenceInput, 'features' | 'spine' | 'featureViews'>): string[] {
  const problems: string[] = [];
  const check = (field: string, value: unknown) => {
    if (typeof value === 'string' && !WORKER_INDEPENDENT.test(value)) {
      problems.push(`${field}: ${JSON.stringify(value)} is a relative path, which each worker would resolve against its own directory; give an absolute path or a file:///… or s3://… URL`);
    }
  };
  check('features', input.features);
  check('spine', input.spine);
  (input.featureViews ?? []).forEach((v, n) => {
    const source = (v as { source?: { type?: unknown; path?: unknown } }).source;
    if (source?.type === 'file') check(`featureViews[${n}].source.path`, source.path);
  });
  return problems;
}

/** An on-demand feature's registered name: `<module>.<export>` (module names from the worker's INFERFLOW_MODULES). */
export const ON_DEMAND_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * `onDemand` entries (`{"name": "fraud.amountRatio"}`): problems that need no I/O. Whether a name
 * is registered is checked by the workers, which alone know their modules.
 */
export function checkOnDemandRefs(refs: unknown, field = 'onDemand'): string[] {
  if (refs === undefined) return [];
  if (!Array.isArray(refs)) return [`${field}: must be a list of {"name": "<module>.<export>"}`];
  const problems: string[] = [];
  refs.forEach((r: unknown, n) => {
    const o = r as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null || Array.isArray(o)) {
      problems.push(`${field}[${n}]: must be an object {"name": "<module>.<export>"}`);
      return;
    }
    if (typeof o.name !== 'string' || !ON_DEMAND_NAME_PATTERN.test(o.name)) problems.push(`${field}[${n}].name: required, <module>.<export> of a feature module registered with the workers (e.g. fraud.amountRatio)`);
    for (const k of Object.keys(o)) if (k !== 'name') problems.push(`${field}[${n}].${k}: unknown field (known: name; modules are registered with the workers, not named by path)`);
  });
  return problems;
}
