/**
 * Streaming inference, defined once: the stream pipeline spec (`inferflow stream run <spec>`),
 * the streamingInference workflow's input, its `events` signal and its `stats` query. Pure (zod
 * only): the workflow bundle imports it.
 */
import { z } from 'zod';
import { RecordSinkSpecSchema } from '../sinks/spec';
import { FeatureViewSchema, featureViewRules } from './feature-view';
import { OnDemandRefsSchema } from './on-demand';
import { OnlineStoreSpecSchema } from './online-store';
import { PostProcessStepsSchema } from './post-process';
import { unknownKeyError, withRules, type Problem } from './problems';

/** Events one `events` signal carries at most (the bridge splits larger groups). */
export const MAX_EVENTS_PER_SIGNAL = 200;
/** Bytes of event payloads one signal carries at most (Temporal warns at 256 KB per payload). */
export const MAX_SIGNAL_BYTES = 64 * 1024;
/** An event larger than this goes to the dead letter (it would make a signal of its own too large). */
export const MAX_EVENT_BYTES = 16 * 1024;
export const DEFAULT_PARTITIONS = 4;
export const DEFAULT_BATCH_SIZE = 100;
export const DEFAULT_BATCH_MAX_DELAY_MS = 200;
/** Events a workflow run takes before it continues as new (each event is in its history twice: signal + activity input). */
export const DEFAULT_MAX_EVENTS_PER_RUN = 5_000;
/** Unflushed events per partition above which the bridge stops pulling (a multiple of the batch size by default). */
export const DEFAULT_MAX_OUTSTANDING_BATCHES = 8;
/**
 * Heartbeat timeout of a partition's micro-batch activity: a worker that dies holding a batch is
 * noticed this long after its last heartbeat and the batch is retried on another worker (the
 * activity heartbeats several times within it while it runs).
 */
export const STREAM_BATCH_HEARTBEAT_TIMEOUT_MS = 10_000;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const SUBJECT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const NATS_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const REDIS_KEY = /^[A-Za-z0-9_.:-]{1,128}$/;
const FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const natsSourceShape = {
  type: z.literal('nats'),
  stream: z.string().regex(NATS_NAME, 'stream: letters, digits, "_", "-" (max 64)').describe('JetStream stream holding the events (limits retention: events stay readable after acknowledgement)'),
  subject: z.string().regex(SUBJECT, 'subject: tokens of letters, digits, "_", "-" separated by "." (no wildcards)').max(255).optional().describe('Only events on this subject (a filter of the consumer). Default: every subject of the stream'),
  durable: z.string().regex(NATS_NAME, 'durable: letters, digits, "_", "-" (max 64)').optional().describe('Durable consumer name. Default inferflow-<pipeline>'),
  ackWaitSeconds: z.number().int().min(1, 'ackWaitSeconds: 1 to 3,600').max(3_600, 'ackWaitSeconds: 1 to 3,600').optional().describe('Seconds before an unacknowledged event is delivered again (after a bridge crash), set when the consumer is created. Default 30'),
};
const redisSourceShape = {
  type: z.literal('redis'),
  stream: z.string().regex(REDIS_KEY, `stream must match ${REDIS_KEY.source}`).describe('Redis Stream key holding the events'),
  group: z.string().regex(NATS_NAME, 'group: letters, digits, "_", "-" (max 64)').optional().describe('Consumer group. Default inferflow-<pipeline>'),
  claimIdleMs: z.number().int().min(1_000, 'claimIdleMs: 1,000 to 3,600,000').max(3_600_000, 'claimIdleMs: 1,000 to 3,600,000').optional().describe("Entries pending with another consumer longer than this are claimed (XAUTOCLAIM). Default 30,000"),
  field: z.string().min(1).max(128).optional().describe('Entry field holding the event JSON. Default "data"'),
};
export const StreamSourceSchema = z.discriminatedUnion('type', [z.strictObject(natsSourceShape, { error: unknownKeyError(natsSourceShape) }), z.strictObject(redisSourceShape, { error: unknownKeyError(redisSourceShape) })], {
  error: () => 'source must be {"type": "nats", "stream": …} or {"type": "redis", "stream": …}',
});
export type StreamSource = z.infer<typeof StreamSourceSchema>;

const natsDeadLetterShape = { type: z.literal('nats'), subject: z.string().regex(SUBJECT, 'subject: tokens of letters, digits, "_", "-" separated by "." (no wildcards)').max(255) };
const redisDeadLetterShape = { type: z.literal('redis'), stream: z.string().regex(REDIS_KEY, `stream must match ${REDIS_KEY.source}`) };
const postgresDeadLetterShape = { type: z.literal('postgres'), table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'table must match ^[A-Za-z_][A-Za-z0-9_]{0,62}$'), schema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/).optional() };
/** Where poison events go, with the reason and the original payload: a JetStream subject, a Redis Stream or a PostgreSQL table. */
export const DeadLetterSpecSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject(natsDeadLetterShape, { error: unknownKeyError(natsDeadLetterShape) }),
    z.strictObject(redisDeadLetterShape, { error: unknownKeyError(redisDeadLetterShape) }),
    z.strictObject(postgresDeadLetterShape, { error: unknownKeyError(postgresDeadLetterShape) }),
  ],
  { error: () => 'deadLetter must be {"type": "nats", "subject": …}, {"type": "redis", "stream": …} or {"type": "postgres", "table": …}' },
);
export type DeadLetterSpec = z.infer<typeof DeadLetterSpecSchema>;

const positiveInt = (what: string, max: number) =>
  z
    .number({ error: `an integer from 1 to ${max.toLocaleString('en')} (${what})` })
    .int(`an integer from 1 to ${max.toLocaleString('en')} (${what})`)
    .min(1, `an integer from 1 to ${max.toLocaleString('en')} (${what})`)
    .max(max, `an integer from 1 to ${max.toLocaleString('en')} (${what})`);

const batchShape = {
  size: positiveInt('events per micro-batch', 10_000).optional().describe(`Flush when this many events are buffered. Default ${DEFAULT_BATCH_SIZE}`),
  maxDelayMs: positiveInt('milliseconds', 60_000).optional().describe(`Flush at most this long after the first buffered event. Default ${DEFAULT_BATCH_MAX_DELAY_MS}`),
};
const BatchSchema = z.strictObject(batchShape, { error: unknownKeyError(batchShape) });

/** The pipeline part every partition's workflow needs (model, features, sink): carried in its input. */
const pipelineShape = {
  model: z
    .string({ error: 'a model reference' })
    .refine((s) => s.trim() !== '', 'a model reference')
    .optional()
    .describe('Model reference, resolved before every micro-batch: when an alias moves, the next batch uses the new version and its records name it. Either model or push'),
  push: z
    .strictObject({ featureView: FeatureViewSchema.describe("The view whose entity and features the events carry") }, { error: 'push must be {"featureView": {…a feature view spec…}}' })
    .optional()
    .describe('Route the events into the online store as feature rows of this view (like a Feast push source) instead of a model. Either model or push'),
  featureViews: z.array(FeatureViewSchema, { error: 'a list of feature view specs' }).optional().describe('Feature views whose online values the model reads'),
  onDemand: OnDemandRefsSchema.optional().describe('On-demand features by registered name'),
  store: OnlineStoreSpecSchema.optional().describe("Online store the views' features come from. Default: the embedded SQLite store under the worker data dir"),
  idColumn: z.string().regex(FIELD, `idColumn must match ${FIELD.source}`).optional().describe('Event field that names rows in errors'),
  postProcess: PostProcessStepsSchema.optional().describe('Post-processing steps run on the model outputs, in order (docs/pipelines.md): threshold, classNames, topK, clip, rule, module'),
  sink: RecordSinkSpecSchema.optional().describe('Record sink of the predictions (PostgreSQL table, Redis keys, JetStream subject), idempotent by event id'),
  deadLetter: DeadLetterSpecSchema.describe('Where poison events go with the reason and the original payload'),
  batch: BatchSchema.optional().describe('Micro-batch size and delay'),
  maxEventsPerRun: positiveInt('events per workflow run', 100_000).optional().describe(`Events before a partition's workflow continues as new. Default ${DEFAULT_MAX_EVENTS_PER_RUN}`),
};

const specShape = {
  $schema: z.string().optional(),
  name: z.string({ error: `required, a pipeline name matching ${NAME.source}` }).regex(NAME, `name must match ${NAME.source} (workflow ids are <name>-stream-p<i>)`).describe('Pipeline name: workflow ids are <name>-stream-p<partition>'),
  source: StreamSourceSchema.describe('Where the events come from'),
  key: z.string({ error: 'required, the event field events are partitioned by (e.g. customer_id)' }).regex(FIELD, `key must match ${FIELD.source}`).describe('Event field events are partitioned by: order per key is kept'),
  idField: z.string().regex(FIELD, `idField must match ${FIELD.source}`).optional().describe("Event field holding the event's id (the record key). Default: the bus position (<stream>:<sequence> or <stream>:<entry id>)"),
  timeField: z.string().regex(FIELD, `timeField must match ${FIELD.source}`).optional().describe("Event field holding the event time (ISO 8601 or epoch ms). Default: the bus's publish time"),
  partitions: positiveInt('partitions', 256).optional().describe(`Workflows the events are spread over by key hash. Default ${DEFAULT_PARTITIONS}`),
  maxOutstandingPerPartition: positiveInt('events', 1_000_000).optional().describe(`Unflushed events per partition above which the bridge stops pulling. Default ${DEFAULT_MAX_OUTSTANDING_BATCHES} × batch.size`),
  ...pipelineShape,
};

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function viewRules(raw: unknown): Problem[] {
  if (!isObject(raw)) return [];
  const problems: Problem[] = [];
  if (Array.isArray(raw.featureViews)) problems.push(...raw.featureViews.flatMap((v, n) => featureViewRules(v).map((p) => ({ path: ['featureViews', n, ...p.path], message: p.message }))));
  if (raw.push === undefined) {
    if (raw.model === undefined) problems.push({ path: ['model'], message: 'required, a model reference (or push: {"featureView": …} to route the events into the online store)' });
    else if (raw.sink === undefined) problems.push({ path: ['sink'], message: 'required with model, the record sink of the predictions' });
  } else {
    if (raw.model !== undefined) problems.push({ path: ['push'], message: 'either model or push, not both' });
    for (const field of ['sink', 'featureViews', 'onDemand', 'postProcess'] as const) if (raw[field] !== undefined) problems.push({ path: [field], message: 'not used with push: the events are written to the online store (store)' });
    if (isObject(raw.push)) problems.push(...featureViewRules(raw.push.featureView).map((p) => ({ path: ['push', 'featureView', ...p.path], message: p.message })));
  }
  return problems;
}

/** A stream pipeline spec file: source, key, partitions, micro-batching, model and features, sink, dead letter. */
export const StreamPipelineSpecSchema = withRules(
  z.strictObject(specShape, {
    error: (issue) =>
      issue.code === 'invalid_type' ? 'spec must be a JSON object like {"name": "fraud", "source": {"type": "nats", "stream": "EVENTS"}, "key": "customer_id", "model": "fraud-detector@production", …}' : unknownKeyError(specShape)(issue),
  }),
  viewRules,
);
export type StreamPipelineSpec = z.output<typeof StreamPipelineSpecSchema>;

/** One event as the bridge hands it to a partition: validated (JSON object with its key), never re-checked in the signal handler. */
export const StreamEventSchema = z.strictObject({
  /** Record key of its prediction: the idField's value or the bus position. */
  id: z.string().min(1).max(512),
  /** The key field's value, as text. */
  key: z.string().max(512),
  /** ISO 8601: the event time (timeField) or the bus's publish time. */
  time: z.string(),
  /** The event's fields. */
  data: z.record(z.string(), z.unknown()),
});
export type StreamEvent = z.infer<typeof StreamEventSchema>;

/** The `events` signal: a small bounded batch of validated events, in bus order. */
export interface EventsSignal {
  events: StreamEvent[];
}

const count = z.number().int().min(0);
export const StreamStatsSchema = z.strictObject({
  eventsIn: count,
  predictionsOut: count,
  deadLetters: count,
  /** Events written before (a redelivered event's record was already stored). */
  duplicates: count,
  /** Events signalled and not yet flushed. */
  buffered: count,
  /** ms from the newest flushed event's time to its prediction, at the last flush. */
  lagMs: z.number().nullable(),
  lastFlush: z.string().nullable(),
  model: z.strictObject({ name: z.string(), version: z.number().int() }).nullable(),
  paused: z.boolean(),
  /** The failure that paused the partition (a permanent one: an unknown model, a sink that refuses the records); null when none. */
  lastError: z.string().nullable(),
  /** Workflow runs of this partition so far (continue-as-new). */
  runs: z.number().int().min(1),
});
export type StreamStats = z.infer<typeof StreamStatsSchema>;

const inputShape = {
  ...pipelineShape,
  pipeline: z.string().regex(NAME, `pipeline must match ${NAME.source}`).describe('The stream pipeline name'),
  partition: z.number().int().min(0).describe('This workflow\'s partition'),
  carried: z
    .strictObject({ stats: StreamStatsSchema, events: z.array(StreamEventSchema).max(100_000) })
    .optional()
    .describe('Set by the workflow when it continues as new: its counters and the events not flushed yet'),
};

/** Input of `streamingInference`: one partition of a stream pipeline. */
export const StreamingInferenceInputSchema = withRules(
  z.strictObject(inputShape, { error: (issue) => (issue.code === 'invalid_type' ? 'input must be a JSON object (see StreamingInferenceInput)' : unknownKeyError(inputShape)(issue)) }),
  viewRules,
);
export type StreamingInferenceInput = z.input<typeof StreamingInferenceInputSchema>;

/** The workflow id of a pipeline's partition. */
export function partitionWorkflowId(pipeline: string, partition: number): string {
  return `${pipeline}-stream-p${partition}`;
}
