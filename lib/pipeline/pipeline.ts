/**
 * THE runtime: a pipeline opened once from its definition (model version, on-demand features,
 * feature views, online store, id column) and the process's Resources, offering the steps by name:
 *
 *   resolveModel       ref → exact version                       Resources.resolveModel (resources.ts)
 *   retrieveFeatures   offline point-in-time (batch)             lib/features/offline.ts getHistoricalFeatures
 *                      or online store lookup (online, stream)   online.ts retrieveOnlineFeatures
 *   onDemand           on-demand features                        assemble.ts onDemandColumns
 *   onDemandAsync      … with external-API features              assemble.ts onDemandColumnsAsync (lib/features/external.ts)
 *   transform          fitted transforms → model input matrices  assemble.ts transformColumns
 *   predict            the model, in chunks                      predict.ts predict (lib/runtime/predict.ts runModel)
 *   postProcess        outputs → label / score / prediction      post-process.ts postProcess
 *   write              records → the record sink (idempotent     Resources.recordSink → lib/sinks createRecordSink
 *                      per key: prediction logs, streaming)
 *                      batch: the shard's staged part            batch.ts predictShard, then the run sink (lib/sinks)
 *
 * Batch runs the same steps inside its shard machinery (batch.ts predictShard takes the opened
 * pipeline: onDemand → transform → predict); online (`server/http.ts`, the predictOnline activity)
 * calls `infer`, which chains retrieveFeatures → onDemand → transform → predict. The model context and the session come from Resources, so opening a pipeline again for
 * the same model costs a few map lookups.
 */
import type * as ortTypes from 'onnxruntime-node';
import { isExternalFeature } from '../features/external';
import { explainMissing, type OnDemandRef, type OnDemandResult } from '../features/on-demand';
import type { OnlineStore, OnlineStoreSpec } from '../features/online';
import type { AllEntitiesSpine, HistoricalFeaturesResult } from '../features/offline';
import type { FeatureView, FeatureViewInput } from '../features/spec';
import { InvalidInputError } from '../errors';
import type { ModelManifest, ResolvedModel } from '../registry/manifest';
import type { PredictionRecord, RecordSinkSpec, RecordWriteOptions, RecordWriteResult } from '../sinks';
import type { FeatureBlock, PredictOptions } from '../runtime/predict';
import { onDemandColumns, onDemandColumnsAsync, transformColumns, type AssemblyPlan, type RawBatch } from './assemble';
import { retrieveOnlineFeatures, type OnlineRequest, type OnlineRetrieved } from './online';
import { postProcess, type PostProcess, type Predictions } from './post-process';
import { baseSchema, type OutputField } from './outputs';
import { predict } from './predict';
import type { CompiledPostProcessing, PostProcessStep } from './post-steps';
import type { Resources } from './resources';

export interface PipelineDefinition {
  model: ResolvedModel;
  /** On-demand features computed before the model's transforms, by registered name. */
  onDemand?: readonly OnDemandRef[];
  /** Feature views whose `<view>__<feature>` columns the model reads. */
  featureViews?: readonly FeatureViewInput[];
  /** The online store of the views (online and streaming); absent: the embedded SQLite store. */
  store?: OnlineStoreSpec;
  /** The field naming rows in error messages (e.g. transaction_id). */
  idColumn?: string;
  /** Where `write` stores prediction records (online prediction logs, streaming output). */
  recordSink?: RecordSinkSpec;
  /** Post-processing steps run on the model's outputs (post-steps.ts), in order. */
  postProcess?: readonly PostProcessStep[];
}

export interface OpenPipelineOptions {
  /** false: manifest and plan only (planning a batch run), no model download and no session. Default true. */
  session?: boolean;
  /** Hold the session (Resources.retainSession) until `close`: a served version that may be swapped out. Default false. */
  retain?: boolean;
}

/** Offline retrieval: the views joined point-in-time onto a spine, written to a Parquet file. */
export interface OfflineRetrieval {
  spine: string | AllEntitiesSpine;
  output: string;
  entityTimestampField?: string;
  /** Parent of the temporary directory (downloads, DuckDB spill files). */
  tempDir?: string;
}

/** Online retrieval: the online store's features for request rows. */
export interface OnlineRetrieval {
  requests: readonly OnlineRequest[];
  /** Judge feature freshness (the views' TTLs) at this time. Default: now. */
  now?: Date;
  /** Epoch ms by which the answer is due: external-API features get what is left of it. Default: none (each feature's own timeout and retries). */
  deadline?: number;
}

/** `resolveModel`: a reference (`name`, `name:3`, `name@alias`) → one exact version. */
export function resolveModel(resources: Resources, ref: string): Promise<ResolvedModel> {
  return resources.resolveModel(ref);
}

export class Pipeline {
  readonly model: ResolvedModel;
  readonly manifest: ModelManifest;
  readonly plan: AssemblyPlan;
  /** The compiled post-processing steps; absent when the pipeline names none. */
  readonly post: CompiledPostProcessing | undefined;
  private readonly resources: Resources;
  private readonly definition: PipelineDefinition;
  private readonly loaded: ortTypes.InferenceSession | undefined;
  /** Kept once looked up: a server's requests then skip the Resources' lookups. */
  private parsedViews: FeatureView[] | undefined;
  private openedStore: OnlineStore | undefined;

  private constructor(args: { resources: Resources; definition: PipelineDefinition; manifest: ModelManifest; plan: AssemblyPlan; post: CompiledPostProcessing | undefined; session: ortTypes.InferenceSession | undefined }) {
    this.resources = args.resources;
    this.definition = args.definition;
    this.model = args.definition.model;
    this.manifest = args.manifest;
    this.plan = args.plan;
    this.post = args.post;
    this.loaded = args.session;
  }

  /** Open a pipeline: its model context (manifest + assembly plan, checked against the ONNX signature) and, unless told otherwise, its session. */
  static async open(definition: PipelineDefinition, resources: Resources, options: OpenPipelineOptions = {}): Promise<Pipeline> {
    const { manifest, plan, post } = await resources.modelContext(definition.model, definition.onDemand, definition.postProcess);
    const retain = options.session !== false && options.retain === true;
    // An external-API feature whose environment variables are unset here fails now, not on the first row.
    for (const f of plan.onDemand) if (isExternalFeature(f)) resources.external.client(f, f.ref.name);
    const session = options.session === false ? undefined : retain ? await resources.retainSession(definition.model, plan) : await resources.session(definition.model, plan);
    const pipeline = new Pipeline({ resources, definition, manifest, plan, post, session });
    pipeline.held = retain;
    return pipeline;
  }

  private held = false;

  /** Give back the session hold of a pipeline opened with `retain` (the last holder releases the session); nothing otherwise. */
  async close(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await this.resources.releaseSession(this.model);
  }

  /** The model's session (pipelines opened with `session: false` have none). */
  get session(): ortTypes.InferenceSession {
    if (!this.loaded) throw new TypeError(`pipeline for model ${this.model.name}:${this.model.version} was opened without a session`);
    return this.loaded;
  }

  /** The parsed feature views (validated once per process per distinct list). */
  get views(): FeatureView[] {
    return (this.parsedViews ??= this.resources.featureViews(this.definition.featureViews ?? []));
  }

  /** The online store the views are read from, opened on first use. */
  get store(): OnlineStore {
    return (this.openedStore ??= this.resources.onlineStore(this.definition.store));
  }

  get idColumn(): string | undefined {
    return this.definition.idColumn;
  }

  /** `retrieveFeatures`: offline point-in-time onto a spine (batch), or the online store's features for request rows (online, streaming). */
  retrieveFeatures(input: OnlineRetrieval): Promise<OnlineRetrieved>;
  retrieveFeatures(input: OfflineRetrieval): Promise<HistoricalFeaturesResult>;
  retrieveFeatures(input: OnlineRetrieval | OfflineRetrieval): Promise<OnlineRetrieved | HistoricalFeaturesResult> {
    if ('requests' in input) {
      const idColumn = this.definition.idColumn;
      return retrieveOnlineFeatures({ plan: this.plan, views: this.views, store: this.store, requests: input.requests, ...(input.now ? { now: input.now } : {}), ...(idColumn ? { idField: idColumn } : {}) });
    }
    const { config } = this.resources;
    // Loaded here: the offline path (DuckDB, PostgreSQL sources) is batch's; a model server never loads it.
    return import('../features/offline.js').then(({ getHistoricalFeatures }) =>
      getHistoricalFeatures({ ...input, views: this.definition.featureViews ?? [], postgres: { url: config.postgresUrl }, allowedRoots: config.allowedRoots }),
    );
  }

  /** `onDemand`: the pipeline's on-demand features added to the raw columns. */
  onDemand(batch: RawBatch, rows: number, rowLabel: (row: number) => string): RawBatch {
    return onDemandColumns(this.plan, batch, rows, rowLabel);
  }

  /** `onDemand` with external-API features: looked up through the process's clients (Resources.external), within `deadline` (epoch ms) when given. */
  onDemandAsync(batch: RawBatch, rows: number, rowLabel: (row: number) => string, options: { deadline?: number } = {}): Promise<OnDemandResult> {
    return onDemandColumnsAsync(this.plan, batch, rows, rowLabel, { external: this.resources.external, ...options });
  }

  /** `transform`: the model's fitted transforms, then one float32 matrix per model input. */
  transform(columns: RawBatch, rows: number, rowLabel: (row: number) => string): FeatureBlock {
    return transformColumns(this.plan, columns, rows, rowLabel);
  }

  /** `predict`: the model over a block in chunks, each chunk post-processed as it comes, then the pipeline's post-processing steps. */
  predict(block: FeatureBlock, options: PredictOptions = {}): Promise<Predictions> {
    return predict(this.session, this.manifest, block, options, this.post);
  }

  /** The output columns every prediction of this pipeline has (names, kinds, list widths), known before any row is predicted. */
  get outputSchema(): readonly OutputField[] {
    return this.post?.schema ?? baseSchema(this.manifest);
  }

  /** `postProcess`: the model's outputs → label / score / prediction columns for `rows` rows (what predict runs per chunk). */
  postProcess(rows: number): PostProcess {
    return postProcess(this.manifest, this.session.outputNames, rows);
  }

  /**
   * `write`: prediction records → the pipeline's record sink, idempotent per record key (a retried
   * write stores nothing twice). The records are checked first; nothing is written when one is bad.
   * @throws InvalidInputError the pipeline has no record sink, or a record is malformed (naming the field)
   */
  async write(records: readonly PredictionRecord[], options: RecordWriteOptions): Promise<RecordWriteResult> {
    const spec = this.definition.recordSink;
    if (!spec) throw new InvalidInputError(`pipeline for model ${this.model.name}:${this.model.version} has no record sink to write to`, ['recordSink: required to write prediction records']);
    return this.resources.recordSink(spec).write(records, options);
  }

  /** Online and streaming: request rows → features from the online store → on-demand → transform → predict. */
  async infer(input: OnlineRetrieval): Promise<{ predictions: Predictions; statuses: OnlineRetrieved['statuses'] }> {
    const r = await this.retrieveFeatures(input);
    const d = await this.onDemandAsync(r.batch, r.rows, r.rowLabel, input.deadline !== undefined ? { deadline: input.deadline } : {});
    const block = this.transform(d.columns, r.rows, r.rowLabel);
    block.missing = (row, column) => r.missing(row, column) || d.missing(row, column);
    const predictions = await this.predict(block).catch((err: unknown) => {
      throw explainMissing(err, d, r.rowLabel);
    });
    return { predictions, statuses: r.statuses.map((s, i) => ({ ...s, ...d.statuses[i] })) };
  }
}

/** Open a pipeline from its definition and the process's resources (see Pipeline.open). */
export function openPipeline(definition: PipelineDefinition, resources: Resources, options: OpenPipelineOptions = {}): Promise<Pipeline> {
  return Pipeline.open(definition, resources, options);
}
