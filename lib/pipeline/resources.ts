/**
 * Everything a process needs to run pipelines, created once from the config (a worker, `inferflow
 * serve`, the demo): the model registry and the verified local model cache, ONNX sessions (one
 * per model sha256, on the process's inference pool), the model contexts (manifest + assembly
 * plan, each checked against the model's ONNX signature), online stores (one per store spec,
 * opened on first use), run staging, the on-demand features of INFERFLOW_MODULES, and the
 * backend clients (Redis, PostgreSQL pools, NATS, S3). One `close()` releases all of it.
 *
 * Creating one loads no heavy library: ONNX Runtime loads with the first session, DuckDB with the
 * first query, the PostgreSQL, Redis and NATS clients and the AWS SDK with the first sink or
 * store that uses them (test/unit/resources-lazy.test.ts). So the CLI's registry and feature
 * commands go through Resources at no start-up cost.
 */
import type { Logger } from 'pino';
import type * as ortTypes from 'onnxruntime-node';
import type { InferflowConfig } from '../config/env';
import { checkSignature, planAssembly, type AssemblyPlan } from './assemble';
import { ExternalFeatures } from '../features/external';
import { OnDemandRegistry, type OnDemandRef } from '../features/on-demand';
import { openOnlineStore, type OnlineStore, type OnlineStoreContext, type OnlineStoreSpec } from '../features/online';
import { parseFeatureView, type FeatureView, type FeatureViewInput } from '../features/spec';
import { createLogger } from '../log';
import { ModelCache, ModelRegistry } from '../registry';
import type { ModelManifest, ResolvedModel } from '../registry/manifest';
import { signatureOf } from '../runtime/onnx';
import { SessionCache } from '../runtime/sessions';
import { checkSinkAllowed, createRecordSink, createRunSink, sinkDefaultsFrom, type SinkDefaults } from '../sinks/factory';
import type { RecordSink } from '../sinks/records';
import type { RecordSinkSpec, SinkSpec } from '../sinks/spec';
import type { RunSink } from '../sinks/types';
import { openStore } from '../storage';
import { holdSharedClients } from '../util/shared-clients';
import { compilePostProcessing, type CompiledPostProcessing, type PostProcessStep } from './post-steps';
import { RunStaging } from './staging';

/** A model version's manifest, the assembly plan of a pipeline's on-demand features for it, and its compiled post-processing steps. */
export interface ModelContext {
  manifest: ModelManifest;
  plan: AssemblyPlan;
  post: CompiledPostProcessing | undefined;
}

export interface ResourcesOptions {
  logger?: Logger;
  /** Another registry than the config's (tests). */
  registry?: ModelRegistry;
}

/** Distinct feature-view lists kept parsed (a deployment sends the same views with every request). */
const MAX_PARSED_VIEW_LISTS = 100;

export class Resources {
  readonly config: InferflowConfig;
  readonly logger: Logger;
  readonly registry: ModelRegistry;
  readonly cache: ModelCache;
  readonly sessions: SessionCache;
  /** Shared run staging (INFERFLOW_STAGING) for workers on several machines; absent: local disk only. */
  readonly staging: RunStaging | undefined;
  /** The clients of external-API features (external.ts): one concurrency limit and one cache per feature, shared by every shard and request of the process. */
  readonly external: ExternalFeatures;
  /** Where sinks write by default and which locations they may use. */
  readonly sinkDefaults: SinkDefaults;
  private readonly storeContext: OnlineStoreContext;
  private readonly contexts = new Map<string, Promise<ModelContext>>();
  /** Sessions whose real input signature was checked against an assembly plan. */
  private readonly checked = new WeakMap<object, Set<AssemblyPlan>>();
  /** Holders of each model's session (sha256 → count) taken with `retainSession`. */
  private readonly holds = new Map<string, number>();
  /** Models whose session was also handed out by `session` (never released: its users hold no count). */
  private readonly unheld = new Set<string>();
  private readonly stores = new Map<string, OnlineStore>();
  private readonly recordSinks = new Map<string, RecordSink>();
  private readonly parsedViews = new Map<string, FeatureView[]>();
  private closing: Promise<{ unfinished: number }> | undefined;
  private onDemandLoad: Promise<OnDemandRegistry> | undefined;
  /** Lets go of the process's client maps (lib/util/shared-clients.ts): they close with the last open Resources. */
  private readonly releaseClients = holdSharedClients();

  constructor(config: InferflowConfig, options: ResourcesOptions = {}) {
    this.config = config;
    this.logger = options.logger ?? createLogger(config.logLevel);
    const cacheLogger = this.logger.child({ component: 'model-cache' });
    this.external = new ExternalFeatures(config.featureEnv, this.logger.child({ component: 'external-features' }));
    this.registry = options.registry ?? new ModelRegistry(openStore(config.registry));
    this.cache = new ModelCache(config.modelCacheDir, config.modelCacheMaxBytes, (e) => {
      // A hit happens on every shard and online request: debug level; downloads, evictions and corrupt files stay visible.
      if (e.kind === 'hit') cacheLogger.debug({ event: e.kind, sha256: e.sha256 }, 'model cache hit');
      else cacheLogger.info({ event: e.kind, sha256: e.sha256, bytes: e.bytes }, `model cache ${e.kind}`);
    });
    this.sessions = new SessionCache({ inferenceThreads: config.inferenceThreads });
    this.staging = config.stagingUrl ? new RunStaging(openStore(config.stagingUrl)) : undefined;
    this.sinkDefaults = sinkDefaultsFrom(config);
    this.storeContext = { redisUrl: config.redisUrl, dataDir: config.dataDir };
  }

  /**
   * The on-demand features pipelines may name: the modules of INFERFLOW_MODULES, imported on first
   * use (the worker awaits this at start, so a bad module stops it there; every model context
   * awaits it), never by a command that opens no pipeline.
   */
  get onDemand(): Promise<OnDemandRegistry> {
    if (!this.onDemandLoad) {
      this.onDemandLoad = OnDemandRegistry.load(this.config.modules);
      this.onDemandLoad.catch(() => undefined); // rejected to whoever awaits it, not an unhandled rejection meanwhile
    }
    return this.onDemandLoad;
  }

  /** Resolve a reference (`name`, `name:3`, `name@alias`) to one exact version. */
  async resolveModel(ref: string): Promise<ResolvedModel> {
    const { resolved } = await this.registry.resolve(ref);
    this.logger.info({ ref, version: resolved.version, sha256: resolved.sha256 }, 'model resolved');
    return resolved;
  }

  /** Manifest + assembly plan for a model version and a pipeline's on-demand features (once per process; versions are immutable). */
  modelContext(model: ResolvedModel, onDemand: readonly OnDemandRef[] = [], postProcess: readonly PostProcessStep[] = []): Promise<ModelContext> {
    const key = `${model.name}:${model.version}:${model.sha256}:${JSON.stringify(onDemand)}:${JSON.stringify(postProcess)}`;
    let p = this.contexts.get(key);
    if (!p) {
      p = (async () => {
        const manifest = await this.registry.manifest(model.name, model.version);
        const registry = await this.onDemand;
        // The output schema follows from the steps: checked here, before any row is predicted.
        const post = postProcess.length > 0 ? compilePostProcessing(manifest, postProcess, registry) : undefined;
        const plan = planAssembly(manifest, registry.resolve(onDemand), post?.featureInputs);
        checkSignature(plan, manifest.signature, `model ${model.name}:${model.version}`);
        return { manifest, plan, post };
      })();
      this.contexts.set(key, p);
      p.catch(() => this.contexts.delete(key));
    }
    return p;
  }

  /** The model in the local cache (downloaded and verified once per machine) and its session, checked against the plan once. */
  session(model: ResolvedModel, plan: AssemblyPlan): Promise<ortTypes.InferenceSession> {
    this.unheld.add(model.sha256);
    return this.loadSession(model, plan);
  }

  /**
   * `session`, counted: the session stays loaded until every holder called `releaseSession`
   * (a served model swapped out), unless `session` also handed it out.
   */
  async retainSession(model: ResolvedModel, plan: AssemblyPlan): Promise<ortTypes.InferenceSession> {
    this.holds.set(model.sha256, (this.holds.get(model.sha256) ?? 0) + 1);
    try {
      return await this.loadSession(model, plan);
    } catch (err) {
      await this.releaseSession(model);
      throw err;
    }
  }

  /** Give back a `retainSession` hold; the last one releases the session (resolves once released). */
  async releaseSession(model: ResolvedModel): Promise<void> {
    const left = (this.holds.get(model.sha256) ?? 0) - 1;
    if (left > 0) return void this.holds.set(model.sha256, left);
    this.holds.delete(model.sha256);
    if (this.unheld.has(model.sha256) || this.closing) return;
    await this.sessions.release(model.sha256, { intraOpThreads: this.config.ortThreads });
  }

  /** Models whose session is loaded and held by `retainSession` (sha256 → holders). */
  get heldSessions(): ReadonlyMap<string, number> {
    return this.holds;
  }

  private async loadSession(model: ResolvedModel, plan: AssemblyPlan): Promise<ortTypes.InferenceSession> {
    const { path: modelPath } = await this.cache.ensure(model, this.registry);
    const s = await this.sessions.get(model.sha256, modelPath, { intraOpThreads: this.config.ortThreads });
    let plans = this.checked.get(s);
    if (!plans) this.checked.set(s, (plans = new Set()));
    if (!plans.has(plan)) {
      checkSignature(plan, signatureOf(s), `model ${model.name}:${model.version} (${model.sha256.slice(0, 12)})`);
      plans.add(plan);
    }
    return s;
  }

  /** The online store of a spec (absent: the embedded SQLite store under the data dir), opened on first use and kept open. */
  onlineStore(spec?: OnlineStoreSpec): OnlineStore {
    const key = JSON.stringify(spec ?? null);
    let store = this.stores.get(key);
    if (!store) {
      store = openOnlineStore(spec, this.storeContext);
      this.stores.set(key, store);
    }
    return store;
  }

  /** Feature views validated once per distinct list. */
  featureViews(raw: readonly FeatureViewInput[]): FeatureView[] {
    const key = JSON.stringify(raw);
    let views = this.parsedViews.get(key);
    if (!views) {
      views = raw.map((v, i) => parseFeatureView(v, `featureViews[${i}]`)); // throws: nothing cached
      if (this.parsedViews.size >= MAX_PARSED_VIEW_LISTS) this.parsedViews.clear();
      this.parsedViews.set(key, views);
    }
    return views;
  }

  /** The sink of a parsed spec, with this process's defaults (output dir, connections, allowed roots); its backend loads on first use. */
  sink(spec: SinkSpec): Promise<RunSink> {
    return createRunSink(spec, this.sinkDefaults);
  }

  /** The record sink of a parsed spec (prediction logs, streaming output), created on first use and kept until close(). */
  recordSink(spec: RecordSinkSpec): RecordSink {
    const key = JSON.stringify(spec);
    let sink = this.recordSinks.get(key);
    if (!sink) {
      sink = createRecordSink(spec, this.sinkDefaults);
      this.recordSinks.set(key, sink);
    }
    return sink;
  }

  /** Refuse a sink outside the allowed roots before any work is done. */
  checkSink(spec: SinkSpec): void {
    checkSinkAllowed(spec, this.sinkDefaults);
  }

  /**
   * Release everything: sessions and the inference pool (resolves with the pool's calls left
   * unfinished), online stores, record sinks, and — when no other Resources of the process is
   * open — the shared Redis clients, PostgreSQL pools, NATS connections and S3 clients.
   * Idempotent: a second call waits for the first.
   */
  close(): Promise<{ unfinished: number }> {
    this.closing ??= (async () => {
      const stores = [...this.stores.values(), ...this.recordSinks.values()];
      this.stores.clear();
      this.recordSinks.clear();
      this.contexts.clear();
      const [sessions] = await Promise.all([
        this.sessions.close(),
        Promise.allSettled([...stores.map((s) => s.close()), this.releaseClients()]),
      ]);
      return sessions;
    })();
    return this.closing;
  }
}

/** The process's resources, from its config. */
export function createResources(config: InferflowConfig, options: ResourcesOptions = {}): Resources {
  return new Resources(config, options);
}
