/**
 * The streaming micro-batch activity: events (from an `events` signal) → the pipeline's `infer`
 * step (online-store features → on-demand → transform → predict → post-process) → the pipeline's `write` step
 * (its record sink, idempotent by event id) → dead letters for the rows the pipeline rejects. The model reference
 * is resolved for every batch, so a moved alias takes effect at the next batch and each record
 * names the version that produced it.
 */
import { parseOnlineStoreSpec, storedWrite, toEpochUs, type EntityKeyPart, type StoredWrite } from '../lib/features/online';
import { parseFeatureView } from '../lib/features/spec';
import { EmptyInputError, InvalidInputError, InvalidValueError, SchemaMismatchError, errorMessage } from '../lib/errors';
import { STREAM_BATCH_HEARTBEAT_TIMEOUT_MS, type StreamEvent, type StreamingInferenceInput } from '../lib/messages/stream';
import { requestValueProblems } from '../lib/pipeline/online';
import { openPipeline, type Pipeline } from '../lib/pipeline/pipeline';
import type { OutputColumns } from '../lib/pipeline/outputs';
import { baseColumns } from '../lib/pipeline/post-process';
import type { Resources } from '../lib/pipeline/resources';
import { parseRecordSinkSpec, type PredictionRecord } from '../lib/sinks';
import { POST_PROCESS_LINEAGE_COLUMNS } from '../lib/sinks/types';
import { createDeadLetterSink, type DeadLetter } from '../lib/streams/dead-letter';
import { withFailureMapping } from './failures';
import { keepAlive } from './heartbeat';

/** Heartbeats per heartbeat timeout while a micro-batch runs (a slow feature lookup or sink write must not look like a dead worker). */
const BEATS_PER_TIMEOUT = 4;
const keepBatchAlive = () => keepAlive(undefined, STREAM_BATCH_HEARTBEAT_TIMEOUT_MS / BEATS_PER_TIMEOUT);

export interface StreamBatchInput {
  pipeline: string;
  partition: number;
  model?: string | undefined;
  featureViews?: StreamingInferenceInput['featureViews'];
  onDemand?: StreamingInferenceInput['onDemand'];
  store?: StreamingInferenceInput['store'];
  idColumn?: string | undefined;
  postProcess?: StreamingInferenceInput['postProcess'];
  sink?: StreamingInferenceInput['sink'];
  deadLetter: StreamingInferenceInput['deadLetter'];
  events: StreamEvent[];
}

/** A push partition's micro-batch: feature rows of `push.featureView` for the online store. */
export interface StreamPushInput {
  pipeline: string;
  partition: number;
  push: NonNullable<StreamingInferenceInput['push']>;
  store?: StreamingInferenceInput['store'];
  deadLetter: StreamingInferenceInput['deadLetter'];
  events: StreamEvent[];
}

export interface StreamBatchResult {
  /** The version that predicted; null for a push partition. */
  model: { name: string; version: number } | null;
  /** Records stored (predictions; feature rows for a push partition). */
  predictions: number;
  /** Events stored before (redelivered), or feature rows not newer than the stored ones. */
  duplicates: number;
  deadLetters: number;
  /** ms from the newest event's time to its prediction. */
  lagMs: number;
  flushedAt: string;
}

/** Problems of a row that no retry can fix: the row goes to the dead letter. */
const isRowProblem = (err: unknown) => err instanceof InvalidInputError || err instanceof InvalidValueError || err instanceof SchemaMismatchError || err instanceof EmptyInputError;

type Outputs = PredictionRecord['outputs'];
type Inferred = { outputs: Outputs; attributes?: PredictionRecord['attributes'] } | string;

/**
 * Row `i` of the pipeline's output columns as a record's outputs (numbers, post-processed labels,
 * list columns such as top-k classes or a multi-output regression), or the reason it cannot be one:
 * a NaN or infinite value, or a missing label, is never written (a sink would store null).
 */
function rowOutputs(columns: OutputColumns, i: number): Outputs | string {
  const o: Outputs = {};
  for (const [name, c] of columns) {
    if (c.kind === 'string') {
      const v = c.values[i];
      if (v === null || v === undefined) return `the pipeline's ${name} has no value`;
      o[name] = v;
    } else if (c.kind === 'strings') {
      const v = c.values.slice(i * c.width, (i + 1) * c.width);
      const at = v.findIndex((x) => x === null || x === undefined);
      if (at >= 0) return `the pipeline's ${name}[${at}] has no value`;
      o[name] = v as string[];
    } else if (c.kind === 'floats') {
      const v = Array.from(c.values.subarray(i * c.width, (i + 1) * c.width));
      const at = v.findIndex((x) => !Number.isFinite(x));
      if (at >= 0) return `the model's ${name}[${at}] is ${String(v[at])}`;
      o[name] = v;
    } else {
      const v = c.values[i]!;
      if (!Number.isFinite(v)) return `the model's ${name} is ${String(v)}`;
      o[name] = v;
    }
  }
  return o;
}

/**
 * Predict the rows; rows the pipeline rejects (a value it cannot use, a feature failing the
 * model's checks) are found one by one and returned with the reason, the others predicted. A
 * post-processed row's record names its steps and their hash (attributes post_process,
 * post_process_sha256), as batch output rows do.
 */
async function inferRows(pipeline: Pipeline, rows: Record<string, unknown>[]): Promise<{ outputs: Inferred[] }> {
  if (rows.length === 0) return { outputs: [] };
  try {
    const { predictions } = await pipeline.infer({ requests: rows });
    const columns = baseColumns(predictions);
    const post = predictions.postProcessing;
    const [stepsAttr, shaAttr] = POST_PROCESS_LINEAGE_COLUMNS;
    const attributes = post ? { [stepsAttr]: post.steps, [shaAttr]: post.sha256 } : undefined;
    return {
      outputs: rows.map((_, i) => {
        const o = rowOutputs(columns, i);
        return typeof o === 'string' ? o : { outputs: o, ...(attributes ? { attributes } : {}) };
      }),
    };
  } catch (err) {
    if (!isRowProblem(err) || rows.length === 1) {
      if (rows.length === 1 && isRowProblem(err)) return { outputs: [errorMessage(err)] };
      throw err;
    }
  }
  const outputs: Inferred[] = [];
  for (const row of rows) outputs.push(...(await inferRows(pipeline, [row])).outputs);
  return { outputs };
}

const lagOf = (events: readonly StreamEvent[]) => {
  const newest = Math.max(...events.map((e) => Date.parse(e.time)));
  return Number.isFinite(newest) ? Math.max(0, Date.now() - newest) : 0;
};

export function createStreamActivities(resources: Resources) {
  const deadLetters = (input: { pipeline: string; partition: number; deadLetter: StreamingInferenceInput['deadLetter'] }, dead: DeadLetter[]) => {
    if (dead.length === 0) return Promise.resolve();
    resources.logger.warn({ pipeline: input.pipeline, partition: input.partition, deadLetters: dead.length, first: dead[0]!.reason }, 'events dead-lettered');
    return createDeadLetterSink(input.deadLetter, resources.sinkDefaults).write(dead);
  };
  return withFailureMapping({
    /**
     * Feature rows into the online store (a push source): each event's entity columns and the
     * view's features it carries, at the event's time. Idempotent: the store keeps the latest
     * row per entity, a replayed row changes nothing. Rows the view cannot take are dead-lettered.
     */
    async pushStreamFeatures(input: StreamPushInput): Promise<StreamBatchResult> {
      using _alive = keepBatchAlive();
      const view = parseFeatureView(input.push.featureView, 'push.featureView');
      const store = resources.onlineStore(input.store ? parseOnlineStoreSpec(input.store) : undefined);
      const now = new Date().toISOString();
      const dead: DeadLetter[] = [];
      const writes: StoredWrite[] = [];
      for (const e of input.events) {
        const missing = view.entities.filter((c) => e.data[c] === undefined || e.data[c] === null);
        const values = Object.fromEntries(view.features.filter((f) => f.name in e.data).map((f) => [f.name, e.data[f.name]]));
        try {
          if (missing.length > 0) throw new InvalidInputError(`entity column ${missing.join(', ')} of view ${view.name} is missing`);
          const key = Object.fromEntries(view.entities.map((c) => [c, e.data[c] as EntityKeyPart]));
          writes.push(storedWrite(view, key, toEpochUs(e.time, 'time'), values));
        } catch (err) {
          if (!isRowProblem(err)) throw err;
          dead.push({ id: e.id, pipeline: input.pipeline, reason: errorMessage(err), payload: JSON.stringify(e.data), position: e.id, at: now });
        }
      }
      const counts = writes.length > 0 ? await store.put(view.name, writes) : { written: 0, unchanged: 0, skippedOlder: 0 };
      await deadLetters(input, dead);
      return { model: null, predictions: counts.written, duplicates: counts.unchanged + counts.skippedOlder, deadLetters: dead.length, lagMs: lagOf(input.events), flushedAt: new Date().toISOString() };
    },

    async predictStreamBatch(input: StreamBatchInput): Promise<StreamBatchResult> {
      using _alive = keepBatchAlive();
      const sinkSpec = parseRecordSinkSpec(input.sink);
      if (!input.model) throw new InvalidInputError(`stream pipeline ${input.pipeline} has neither model nor push`, ['model: required without push']);
      const { resolved: model } = await resources.registry.resolve(input.model);
      const pipeline = await openPipeline({ model, recordSink: sinkSpec, ...(input.featureViews ? { featureViews: input.featureViews } : {}), ...(input.onDemand ? { onDemand: input.onDemand } : {}), ...(input.store ? { store: input.store } : {}), ...(input.idColumn ? { idColumn: input.idColumn } : {}), ...(input.postProcess ? { postProcess: input.postProcess } : {}) }, resources);
      const now = new Date();
      const dead: DeadLetter[] = [];
      const letter = (e: StreamEvent, reason: string): DeadLetter => ({ id: e.id, pipeline: input.pipeline, reason, payload: JSON.stringify(e.data), position: e.id, at: now.toISOString() });
      // Values that do not fit their fields: per row, so one bad event does not take its batch with it.
      const fit: StreamEvent[] = [];
      for (const e of input.events) {
        const problems = requestValueProblems({ plan: pipeline.plan, views: pipeline.views, requests: [e.data] });
        if (problems.length > 0) dead.push(letter(e, `values do not fit the pipeline: ${problems.map((p) => p.replace('[0]', '')).join('; ')}`));
        else fit.push(e);
      }
      const { outputs } = await inferRows(pipeline, fit.map((e) => e.data));
      const predictedAt = new Date().toISOString();
      const records: PredictionRecord[] = [];
      outputs.forEach((o, i) => {
        const e = fit[i]!;
        if (typeof o === 'string') dead.push(letter(e, o));
        else records.push({ key: e.id, entity: e.key, outputs: o.outputs, ...(o.attributes ? { attributes: o.attributes } : {}), model: { name: model.name, version: model.version, sha256: model.sha256 }, eventTime: e.time, predictedAt });
      });
      const first = input.events[0]?.id ?? 'empty';
      const batchKey = `${input.pipeline}-p${input.partition}:${first}+${input.events.length}`;
      const written = records.length > 0 ? await pipeline.write(records, { idempotencyKey: batchKey }) : { written: 0, duplicates: 0 };
      await deadLetters(input, dead);
      return {
        model: { name: model.name, version: model.version },
        predictions: written.written,
        duplicates: written.duplicates,
        deadLetters: dead.length,
        lagMs: lagOf(input.events),
        flushedAt: predictedAt,
      };
    },
  });
}
