/**
 * A model deployment: what a server route or RPC answers with. It owns the pipeline that answers
 * now (the model version behind a served name), whether it is ready, and the `infer` entry every
 * protocol (V2 REST, V2 gRPC, MLflow scoring) calls. The protocol front ends never hold a
 * Pipeline themselves, so a deployment may change what answers (a new version, a batched call)
 * without them knowing.
 *
 * `modelDeployment` serves a model reference: a fixed version (`name:3`) or one that moves
 * (`name@production`, `name` for the latest version), re-resolved every `pollMs`. A new version is
 * opened (model context and plan checked against its ONNX signature, session loaded), checked
 * against the version serving now (same task, no request field the clients do not send today)
 * and warmed up with one synthetic row before it takes traffic; then it replaces the serving one
 * at once. Requests finish on the version they started with; the old version's session is given
 * back when its last request ends. A version that does not fit is refused, logged and counted,
 * and the serving one stays.
 */
import type { Logger } from 'pino';
import { InferflowError, InvalidInputError, InvalidValueError, RowCountMismatchError, SchemaMismatchError, TransientError, errorMessage } from '../lib/errors';
import { outputColumnName } from '../lib/features/spec';
import { isExternalFeature } from '../lib/features/external';
import type { RawBatch } from '../lib/pipeline/assemble';
import { requestValueProblems, type OnlineRetrieved } from '../lib/pipeline/online';
import { openPipeline, type OnlineRetrieval, type Pipeline, type PipelineDefinition } from '../lib/pipeline/pipeline';
import type { Predictions } from '../lib/pipeline/post-process';
import type { Resources } from '../lib/pipeline/resources';
import { parseModelRef } from '../lib/registry/ref';
import type { ResolvedModel } from '../lib/registry/manifest';
import { Batcher, type BatcherStats, type BatchingOptions } from './batcher';

export interface DeploymentAnswer {
  predictions: Predictions;
  /** Per row, the online store status of each feature. */
  statuses: OnlineRetrieved['statuses'];
  /** The model version that answered. */
  model: ResolvedModel;
}

/** What a deployment did so far (exported as metrics by the server). */
export interface DeploymentCounters {
  /** The version answering now; undefined until one is loaded. */
  version: number | undefined;
  /** Versions that replaced the serving one. */
  swaps: number;
  /** Versions refused because they do not fit the pipeline. */
  refusedSwaps: number;
  /** Why the latest version was refused. */
  lastRefusal?: string;
  /** Dynamic batching, summed over the versions served. */
  batching: BatcherStats;
}

export interface Deployment {
  /** The name the deployment is served under (the V2 model name in URLs and RPCs). */
  readonly name: string;
  /** The pipeline answering now; undefined until a version is loaded. */
  readonly current: Pipeline | undefined;
  /** True once a version is loaded and can answer. */
  readonly ready: boolean;
  /**
   * Resolves once the first version is loaded (or the deployment closed before that); rejects with
   * the error when the first load fails for good (unknown model, a pipeline that does not fit it).
   */
  readonly loaded: Promise<void>;
  readonly counters: DeploymentCounters;
  infer(input: OnlineRetrieval): Promise<DeploymentAnswer>;
  /**
   * Run `fn` with the version answering now, held like an `infer` call (a swap gives its session
   * back only after `fn` settles): for answers that are not one `Pipeline.infer` (top-k rankings).
   * TransientError while no version is loaded.
   */
  withPipeline<T>(fn: (pipeline: Pipeline) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const NO_BATCHING: BatchingOptions = { enabled: false, maxBatchRows: 1, maxQueueDelayUs: 0 };

function zeroStats(): BatcherStats {
  return { calls: 0, requests: 0, coalesced: 0, fallbacks: 0, maxRows: 0 };
}

/** One served version: its pipeline, its batcher and the requests it is answering. */
class Slot {
  inflight = 0;
  retired = false;
  private released: Promise<void> | undefined;
  readonly batcher: Batcher;

  constructor(
    readonly pipeline: Pipeline,
    batching: BatchingOptions,
  ) {
    this.batcher = new Batcher((input) => pipeline.infer(input), batching, (input) => {
      const problems = requestValueProblems({ plan: pipeline.plan, views: pipeline.views, requests: input.requests });
      if (problems.length > 0) throw new InvalidInputError('request values do not fit the pipeline', problems);
    });
  }

  /** Give back the session once retired and idle. */
  releaseIfDone(): Promise<void> {
    if (!this.retired || this.inflight > 0) return this.released ?? Promise.resolve();
    return (this.released ??= this.pipeline.close());
  }
}

/** A deployment of one opened pipeline that never changes. */
export function fixedDeployment(pipeline: Pipeline, name: string = pipeline.model.name, batching: BatchingOptions = NO_BATCHING): Deployment {
  const slot = new Slot(pipeline, batching);
  return {
    name,
    current: pipeline,
    ready: true,
    loaded: Promise.resolve(),
    counters: { version: pipeline.model.version, swaps: 0, refusedSwaps: 0, batching: slot.batcher.stats },
    async infer(input) {
      const { predictions, statuses } = await slot.batcher.infer(input);
      return { predictions, statuses, model: pipeline.model };
    },
    withPipeline: (fn) => fn(pipeline),
    close: () => Promise.resolve(),
  };
}

/** Request fields a pipeline reads (not from its views), with what each holds. */
function requestFields(p: Pipeline): Map<string, string> {
  const fromViews = new Set(p.views.flatMap((v) => v.features.map((f) => outputColumnName(v.name, f.name))));
  return new Map(p.plan.sourceColumns.filter((c) => !fromViews.has(c.name)).map((c) => [c.name, c.kind]));
}

/**
 * Why `next` cannot replace `serving` for the clients of a deployment (empty: it can): a different
 * task (other outputs), or a request field the serving version does not read (the clients do not
 * send it) or reads as another kind.
 */
export function swapProblems(serving: Pipeline, next: Pipeline): string[] {
  const problems: string[] = [];
  const task = (p: Pipeline) => p.manifest.metadata.task;
  if (task(next) !== task(serving)) problems.push(`task ${task(next)} differs from the serving version's ${task(serving)} (other outputs)`);
  const now = requestFields(serving);
  for (const [field, kind] of requestFields(next)) {
    const had = now.get(field);
    if (had === undefined) problems.push(`request field ${field} (${kind}) is not read by the serving version: its clients do not send it`);
    else if (had !== kind) problems.push(`request field ${field} is read as ${kind}, the serving version reads it as ${had}`);
  }
  return problems;
}

/** One synthetic row (0, '' and now for every raw column) through on-demand, transform, predict and post-process. */
export async function warmUp(p: Pipeline): Promise<void> {
  // A synthetic row must not reach an external API (a call with made-up keys, counted against its
  // rate limit): such pipelines are checked by their model context alone.
  if (p.plan.onDemand.some(isExternalFeature)) return;
  const batch: RawBatch = {};
  for (const c of p.plan.sourceColumns) batch[c.name] = c.kind === 'string' ? [''] : Float64Array.of(c.kind === 'timestamp' ? Date.now() : 0);
  const label = () => 'warm-up row';
  const block = p.transform(p.onDemand(batch, 1, label), 1, label);
  // A post-processing step refusing the made-up row's values (a user module's NaN for a zero
  // score) says nothing of the version's fit: requests with such values are refused one by one.
  const out = await p.predict(block).catch((err: unknown) => {
    if (err instanceof InvalidValueError && err.details.step !== undefined) return undefined;
    throw err;
  });
  if (out && out.rows !== 1) throw new RowCountMismatchError(`warm-up answered ${out.rows} rows for 1`);
}

export interface ModelDeploymentOptions {
  /** `name`, `name:3` or `name@alias`. */
  ref: string;
  /** The pipeline around the model (views, on-demand features, store, id column). */
  definition: Omit<PipelineDefinition, 'model'>;
  resources: Resources;
  /** Re-resolve a moving reference every this many ms; 0: never. */
  pollMs: number;
  batching?: BatchingOptions;
  /** Served under this name (default: the model's name). */
  name?: string;
  logger?: Logger;
}

/**
 * A deployment of a model reference: the first version loads in the background (`ready` false,
 * `infer` a Transient error until then; a load that failed for a passing reason, such as an
 * unreachable registry, is retried every poll), then an alias or latest reference is followed
 * every `pollMs`.
 */
export function modelDeployment(options: ModelDeploymentOptions): Deployment {
  const ref = parseModelRef(options.ref);
  const name = options.name ?? ref.name;
  const log = (options.logger ?? options.resources.logger).child({ deployment: name, ref: options.ref });
  const batching = options.batching ?? NO_BATCHING;
  const moving = ref.kind !== 'version';
  const retryMs = options.pollMs > 0 ? options.pollMs : 1_000;
  const counters: DeploymentCounters = { version: undefined, swaps: 0, refusedSwaps: 0, batching: zeroStats() };
  let slot: Slot | undefined;
  const retired = new Set<Slot>();
  /** The version refused last: not opened again until the reference moves elsewhere. */
  let refused: { version: number; sha256: string } | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let checking: Promise<void> = Promise.resolve();
  let markLoaded: () => void = () => {};
  let failLoad: (err: unknown) => void = () => {};
  const loaded = new Promise<void>((resolve, reject) => {
    markLoaded = resolve;
    failLoad = reject;
  });
  loaded.catch(() => undefined); // read by whoever waits for the first version; not an unhandled rejection otherwise

  const addStats = (s: BatcherStats) => {
    const b = counters.batching;
    b.calls += s.calls;
    b.requests += s.requests;
    b.coalesced += s.coalesced;
    b.fallbacks += s.fallbacks;
    b.maxRows = Math.max(b.maxRows, s.maxRows);
  };

  const retire = (old: Slot) => {
    old.retired = true;
    retired.add(old);
    void old.releaseIfDone().then(
      () => old.inflight === 0 && retired.delete(old),
      (err: unknown) => log.warn({ err: errorMessage(err) }, 'releasing a retired version failed'),
    );
  };

  /** Resolve the reference; open, check and warm up a new version; switch to it. */
  const check = async (): Promise<void> => {
    const { resolved } = await options.resources.registry.resolve(options.ref);
    const serving = slot?.pipeline.model;
    if (serving && serving.version === resolved.version && serving.sha256 === resolved.sha256) return;
    if (refused && refused.version === resolved.version && refused.sha256 === resolved.sha256) return;
    const pipeline = await openPipeline({ ...options.definition, model: resolved }, options.resources, { retain: true });
    try {
      const problems = slot ? swapProblems(slot.pipeline, pipeline) : [];
      if (problems.length === 0) await warmUp(pipeline).catch((err: unknown) => problems.push(`warm-up failed: ${errorMessage(err)}`));
      if (problems.length > 0) throw new SwapRefused(resolved, problems);
    } catch (err) {
      await pipeline.close();
      throw err;
    }
    if (closed) return void (await pipeline.close());
    const old = slot;
    slot = new Slot(pipeline, batching);
    counters.version = resolved.version;
    refused = undefined;
    if (old) {
      counters.swaps++;
      addStats(old.batcher.stats);
      retire(old);
      log.info({ from: old.pipeline.model.version, to: resolved.version, sha256: resolved.sha256 }, `model swapped: ${name} ${old.pipeline.model.version} → ${resolved.version}`);
    } else {
      log.info({ version: resolved.version, sha256: resolved.sha256 }, `model loaded: ${name}:${resolved.version}`);
      markLoaded();
    }
  };

  const tick = async (): Promise<void> => {
    try {
      await check();
    } catch (err) {
      const permanent = err instanceof InferflowError && err.permanent;
      if (!slot && permanent) {
        // Nothing serves yet and trying again cannot help (unknown model, bad pipeline): say so to whoever waits for the first version.
        log.error({ err: errorMessage(err), type: err.type }, `loading ${options.ref} failed`);
        closed = true;
        failLoad(err);
        return;
      }
      if (err instanceof SwapRefused) {
        const { version, sha256 } = err.model;
        refused = { version, sha256 };
        counters.refusedSwaps++;
        counters.lastRefusal = err.message;
        log.warn({ version, serving: counters.version, reasons: err.problems }, `${err.message}; version ${counters.version} keeps serving`);
      } else if (slot) {
        log.warn({ err: errorMessage(err), serving: counters.version }, `checking ${options.ref} for a new version failed; version ${counters.version} keeps serving`);
      } else log.error({ err: errorMessage(err) }, `loading ${options.ref} failed; retrying in ${retryMs} ms`);
    }
    if (closed) return;
    const wait = slot ? (moving ? options.pollMs : 0) : retryMs;
    if (wait > 0) {
      timer = setTimeout(() => void (checking = tick()), wait);
      timer.unref();
    }
  };
  checking = tick();

  /** `fn` on the serving slot, counted in flight so that a swap releases the slot only after it. */
  const hold = async <T>(fn: (s: Slot) => Promise<T>): Promise<T> => {
    const s = slot;
    if (!s) throw new TransientError(`model ${name} is not loaded yet (${options.ref}); retry later`, { model: name });
    s.inflight++;
    try {
      return await fn(s);
    } finally {
      s.inflight--;
      if (s.retired && s.inflight === 0) void s.releaseIfDone().then(() => retired.delete(s), (err: unknown) => log.warn({ err: errorMessage(err) }, 'releasing a retired version failed'));
    }
  };

  return {
    name,
    get current() {
      return slot?.pipeline;
    },
    get ready() {
      return slot !== undefined;
    },
    loaded,
    get counters() {
      const s = slot?.batcher.stats ?? zeroStats();
      const b = counters.batching;
      return { ...counters, batching: { calls: b.calls + s.calls, requests: b.requests + s.requests, coalesced: b.coalesced + s.coalesced, fallbacks: b.fallbacks + s.fallbacks, maxRows: Math.max(b.maxRows, s.maxRows) } };
    },
    async infer(input) {
      return hold(async (s) => {
        const { predictions, statuses } = await s.batcher.infer(input);
        return { predictions, statuses, model: s.pipeline.model };
      });
    },
    withPipeline: (fn) => hold((s) => fn(s.pipeline)),
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      markLoaded();
      await checking.catch(() => undefined);
      if (slot) retire(slot);
      slot = undefined;
      await Promise.all([...retired].map((r) => r.releaseIfDone()));
    },
  };
}

/** A version that does not fit the pipeline (swapProblems or a failed warm-up). */
class SwapRefused extends SchemaMismatchError {
  constructor(
    readonly model: ResolvedModel,
    problems: string[],
  ) {
    super(`model swap refused: ${model.name}:${model.version} does not fit the pipeline`, problems, { model: model.name, version: model.version });
  }
}
