/**
 * batchInference's input, defined once: the workflow checks it, clients check it before
 * starting, pipeline spec files are this input as a file (lib/pipeline/spec.ts), and
 * `npm run schemas` writes its JSON Schema. Pure (zod only): the workflow bundle imports it.
 */
import { z } from 'zod';
import { SinkSpecSchema } from '../sinks/spec';
import { FeatureViewSchema, PostgresSourceSchema, featureViewRules } from './feature-view';
import { ResolvedModelSchema } from './model';
import { OnDemandRefsSchema } from './on-demand';
import { PostProcessStepsSchema } from './post-process';
import { unknownKeyError, withRules, type Problem } from './problems';

/**
 * Defaults. shardSize 250,000 was chosen by `npm run bench -- batch`
 * (docs/decisions/0003-default-shard-size.md): at 1M rows on 2 cores, 4 shards of 250,000 ran
 * 0.8–1.3× the raw baseline's time against 1.3–1.4× with 20 shards of 50,000 (each activity
 * costs worker and server CPU), with a worker peak RSS of 0.6–0.75 GB.
 */
export const BATCH_DEFAULTS = { shardSize: 250_000, maxConcurrency: 4, shardsPerChild: 200 } as const;

/** Accepted range of the whole-number run settings (checked by the schema and by the benchmark's flags). */
export const BATCH_LIMITS = { shardSize: { min: 1, max: 5_000_000 }, maxConcurrency: { min: 1, max: 500 }, shardsPerChild: { min: 1, max: 2_000 } } as const;

/** `must be an integer between 1 and 5,000,000` for a BATCH_LIMITS field. */
export function batchLimitMessage(field: keyof typeof BATCH_LIMITS): string {
  const { min, max } = BATCH_LIMITS[field];
  const grouped = (n: number) => String(n).replace(/\B(?=(\d{3})+$)/g, ',');
  return `must be an integer between ${grouped(min)} and ${grouped(max)}`;
}

/** An optional whole-number run setting in its BATCH_LIMITS range. */
function limited(field: keyof typeof BATCH_LIMITS, description: string) {
  const { min, max } = BATCH_LIMITS[field];
  const message = batchLimitMessage(field);
  return z.number({ error: message }).int(message).min(min, message).max(max, message).optional().describe(description);
}

const ISO_TIME = 'must be an ISO 8601 time such as "2026-11-25T03:00:00Z"';
/** An ISO 8601 time (anything Date.parse reads). */
export const isoTime = () => z.string({ error: ISO_TIME }).refine((s) => !Number.isNaN(Date.parse(s)), ISO_TIME);
const nonEmpty = (message: string) => z.string({ error: message }).min(1, message);

/** A pipeline name: output paths and the InferflowPipeline search attribute. */
export const PIPELINE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Largest k a ranking may ask for. */
export const MAX_TOP_K = 1_000;

const rankColumn = (what: string) => nonEmpty(`must be the column naming the ${what}`);
const K_RANGE = `must be an integer between 1 and ${MAX_TOP_K}`;

/**
 * Candidate pairs from PostgreSQL: a table or a query (exactly one) with the entity, item and model
 * columns. The connection comes from the environment (INFERFLOW_POSTGRES_URL or PG*), never from
 * the spec; lib/postgres/candidates.ts exports it.
 */
export const PostgresCandidatesSchema = PostgresSourceSchema.refine((s) => (s.table === undefined) !== (s.query === undefined), { message: 'a postgres candidate source needs exactly one of table and query' });
export type PostgresCandidates = z.infer<typeof PostgresCandidatesSchema>;

/**
 * A ranking run: the candidate pairs (entity × item) come from the features file, or from
 * PostgreSQL (`candidates`); each entity's pairs are scored together in one shard and the run
 * writes one row per entity: the entity column, `items` (best first) and `scores` (list columns).
 */
const rankingShape = {
  entity: rankColumn('entity a list is for (user_id)').describe('Column naming the entity a list is for (user_id)'),
  item: rankColumn('ranked item (song_id)').describe('Column naming the ranked item (song_id)'),
  k: z.number({ error: K_RANGE }).int(K_RANGE).min(1, K_RANGE).max(MAX_TOP_K, K_RANGE).describe('Items per list'),
  candidates: PostgresCandidatesSchema.optional().describe('The candidate pairs from a PostgreSQL table or query ({"type": "postgres", "table": "playlist_candidates"}) instead of the features file'),
};
export const RankingSpecSchema = z
  .strictObject(rankingShape, { error: unknownKeyError(rankingShape) })
  .refine((r) => r.entity !== r.item, { path: ['item'], message: 'must differ from entity' });
export type RankingSpec = z.infer<typeof RankingSpecSchema>;

const batchShape = {
  model: z
    .string({ error: 'required, a model reference such as "fraud-detector@production"' })
    .refine((s) => s.trim() !== '', 'required, a model reference such as "fraud-detector@production"')
    .describe('Model reference in the worker registry: name (latest), name:3, or name@alias'),
  features: nonEmpty('must be a Parquet or CSV file path').optional().describe('A prepared feature file (Parquet or CSV path, file:// or s3:// URL) holding the model\'s raw columns. Give this or featureViews'),
  featureViews: z
    .array(FeatureViewSchema, { error: 'must be a non-empty list of feature view specs' })
    .min(1, 'must be a non-empty list of feature view specs')
    .optional()
    .describe('Feature views (docs/features.md) joined point-in-time onto the spine: each row gets the latest values with event time ≤ its timestamp, within the view TTL'),
  spine: nonEmpty('must be a Parquet or CSV file path').optional().describe('With featureViews: rows to score (entity keys, timestamp column, request columns). Default: every entity of the views, as of the run'),
  entityTimestampField: nonEmpty('must be a column name').optional().describe("The spine's timestamp column. Default event_timestamp"),
  onDemand: OnDemandRefsSchema.optional().describe('On-demand features computed before the model transforms, by registered name ({"name": "fraud.amountRatio"})'),
  postProcess: PostProcessStepsSchema.optional().describe('Post-processing steps run on the model outputs, in order (docs/pipelines.md): threshold, classNames, topK, clip, rule, module'),
  ranking: RankingSpecSchema.optional().describe('Rank candidates: features (a file) or ranking.candidates (PostgreSQL) holds the entity × item pairs; the run writes one row per entity with its top k items and scores (docs/pipelines.md)'),
  pipeline: z
    .string({ error: 'must be a non-empty string' })
    .regex(PIPELINE_NAME_PATTERN, 'letters, digits, ".", "_", "-" only (max 64)')
    .optional()
    .describe('Pipeline name (output paths, InferflowPipeline search attribute). Default: the model name'),
  idColumn: nonEmpty('must be a non-empty string').optional().describe("Column that identifies a row in the output. Default: the model's id_column when the file has it"),
  sink: SinkSpecSchema.optional().describe('Where predictions go. Default: {"type": "parquet"} under the worker output directory'),
  asOf: isoTime().optional().describe('ISO 8601 as-of time recorded in every output row. Default: the schedule\'s scheduled time, else the workflow start time'),
  shardSize: limited('shardSize', `Rows per shard (one activity each). Default ${BATCH_DEFAULTS.shardSize}`),
  maxConcurrency: limited('maxConcurrency', `Shards predicted at the same time. Default ${BATCH_DEFAULTS.maxConcurrency}`),
  shardsPerChild: limited('shardsPerChild', `Runs with more shards than this fan out through child workflows of this many shards each. Default ${BATCH_DEFAULTS.shardsPerChild}`),
};

const NOT_AN_OBJECT = 'input must be a JSON object like {"model": "fraud-detector", "features": "/data/transactions.parquet"}';
const strictError = (shape: Record<string, unknown>) => {
  const unknownKey = unknownKeyError(shape);
  return (issue: { code?: string | undefined }) => (issue.code === 'invalid_type' ? NOT_AN_OBJECT : unknownKey(issue));
};

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const blank = (x: unknown) => typeof x !== 'string' || x.trim() === '';

/** Rules between fields of a batch input or spec file (features or feature views, a spine only with views), and the views' own. */
function batchRules(raw: unknown): Problem[] {
  if (!isObject(raw)) return [];
  const problems: Problem[] = [];
  const fromPostgres = isObject(raw.ranking) && raw.ranking.candidates !== undefined;
  if (fromPostgres && raw.features !== undefined) problems.push({ path: ['features'], message: 'give either features (a candidate file) or ranking.candidates (PostgreSQL), not both' });
  if (raw.featureViews === undefined) {
    if (blank(raw.features) && !fromPostgres) problems.push({ path: ['features'], message: 'required (a Parquet or CSV file path), unless featureViews are given (or ranking.candidates, for a ranking)' });
    if (raw.spine !== undefined) problems.push({ path: ['spine'], message: 'only used with featureViews' });
  } else {
    if (raw.ranking !== undefined) problems.push({ path: ['ranking'], message: 'ranks the candidate pairs of features or ranking.candidates; not with featureViews' });
    if (raw.features !== undefined) problems.push({ path: ['features'], message: 'give either features (a prepared file) or featureViews (joined onto a spine), not both' });
    if (Array.isArray(raw.featureViews)) raw.featureViews.forEach((v, n) => problems.push(...featureViewRules(v).map((p) => ({ path: ['featureViews', n, ...p.path], message: p.message }))));
  }
  return problems;
}

/** Absolute paths (POSIX or Windows) and URLs (`s3://…`, `file:///…`): locations every worker reads alike. */
const WORKER_INDEPENDENT = /^(\/|[A-Za-z]:[\\/]|file:\/\/\/|(?!file:)[a-z][a-z0-9+.-]*:\/\/)/i;

/**
 * Locations of a run: a relative path would resolve against each worker's own working
 * directory (the Temporal CLI and the Web UI pass the input as written), so runs take absolute
 * paths or URLs. The CLI and spec files resolve relative paths before they start a run.
 */
function runLocationRules(raw: unknown): Problem[] {
  if (!isObject(raw)) return [];
  const problems: Problem[] = [];
  const check = (path: PropertyKey[], value: unknown) => {
    if (typeof value === 'string' && value !== '' && !WORKER_INDEPENDENT.test(value)) {
      problems.push({ path, message: `${JSON.stringify(value)} is a relative path, which each worker would resolve against its own directory; give an absolute path or a file:///… or s3://… URL` });
    }
  };
  check(['features'], raw.features);
  check(['spine'], raw.spine);
  if (Array.isArray(raw.featureViews)) {
    raw.featureViews.forEach((v: unknown, n) => {
      const source = isObject(v) ? v.source : undefined;
      if (isObject(source) && source.type === 'file') check(['featureViews', n, 'source', 'path'], source.path);
    });
  }
  return problems;
}

/** Input of `batchInference`: one JSON object (the same from code, the CLI, a schedule and the Temporal UI); locations absolute. */
export const BatchInferenceInputSchema = withRules(z.strictObject(batchShape, { error: strictError(batchShape) }), (raw) => [...batchRules(raw), ...runLocationRules(raw)]);
export type BatchInferenceInput = z.input<typeof BatchInferenceInputSchema>;

const specShape = { $schema: z.string().optional().describe('JSON Schema for editors (ignored by Inferflow)'), ...batchShape };

/** A batch pipeline spec file: the batchInference input, with paths relative to the file allowed and an optional `$schema`. */
export const BatchPipelineSpecSchema = withRules(z.strictObject(specShape, { error: strictError(specShape) }), batchRules);
export type BatchPipelineSpec = z.infer<typeof BatchPipelineSpecSchema>;

const nonNegativeInt = z.number().int().min(0);
const positiveInt = z.number().int().min(1);

/**
 * What every shard of a run needs (built by batchInference after planBatch): the predictShard
 * input without its shard (row ranges derive from rowsIn and shardSize). runId is the top-level
 * batchInference's (it names the staging area).
 */
export const ShardRunContextSchema = z.strictObject({
  runId: z.string().min(1),
  model: ResolvedModelSchema,
  asOf: isoTime(),
  snapshotPath: z.string().min(1),
  /** Size and mtime of a Parquet input shards read in place. */
  inPlace: z.strictObject({ size: nonNegativeInt, mtimeMs: z.number() }).optional(),
  idColumn: z.string().min(1).nullable(),
  sink: SinkSpecSchema,
  onDemand: OnDemandRefsSchema.optional(),
  postProcess: PostProcessStepsSchema.optional(),
  /** Ranking runs: rowsIn and shardSize count entities, not rows. */
  ranking: RankingSpecSchema.optional(),
  rowsIn: positiveInt,
  shardSize: positiveInt.max(BATCH_LIMITS.shardSize.max),
});

/** Input of `batchShardGroup`, the child workflow of a large batchInference run: shards [first, first + count) of the parent's run. */
export const ShardGroupInputSchema = z.strictObject({
  ctx: ShardRunContextSchema,
  first: nonNegativeInt,
  count: positiveInt,
  maxConcurrency: positiveInt.max(BATCH_LIMITS.maxConcurrency.max),
  parentWorkflowId: z.string().min(1),
});
export type ShardGroupInput = z.infer<typeof ShardGroupInputSchema>;

/** The `shardGroupProgress` signal: shards and rows a child finished since its last report. */
export const ShardGroupProgressSchema = z.strictObject({ shards: nonNegativeInt, rows: nonNegativeInt });
export type ShardGroupProgress = z.infer<typeof ShardGroupProgressSchema>;
