/**
 * THE activity set: thin Temporal-facing wrappers over lib/. Created with the worker's
 * dependencies (`createActivities(deps)`); the workflow types its proxies with
 * `ReturnType<typeof createActivities>`.
 */
import { Context, heartbeat } from '@temporalio/activity';
import fs from 'node:fs/promises';
import path from 'node:path';
import { predictShard as predictShardLib, stageSnapshot, type ShardDescriptor, type ShardResult } from '../lib/pipeline/batch';
import type { ResolvedModel, ModelManifest } from '../lib/registry/manifest';
import { createSink, parseSinkSpec, type CommitResult, type SinkSpec } from '../lib/sinks';
import { localPathOf } from '../lib/storage';
import { InvalidInputError } from '../lib/errors';
import type { ActivityDeps } from './deps';
import { withFailureMapping } from './failures';

export interface PlanBatchInput {
  runId: string;
  model: ResolvedModel;
  features: string;
  idColumn?: string;
  sink?: SinkSpec;
  shardSize: number;
}

export interface PlanBatchResult {
  rowsIn: number;
  snapshotPath: string;
  idColumn: string | null;
  shards: ShardDescriptor[];
  sink: SinkSpec;
}

export interface PredictShardInput {
  runId: string;
  model: ResolvedModel;
  /** ISO 8601 as-of time, written into every output row. */
  asOf: string;
  snapshotPath: string;
  idColumn: string | null;
  shard: ShardDescriptor;
}

export interface CommitInput {
  runId: string;
  workflowId: string;
  pipeline: string;
  model: ResolvedModel;
  sink: SinkSpec;
  parts: string[];
  rows: number;
}

/** Run identifiers become directory names: keep them to a safe alphabet. */
function runDir(deps: ActivityDeps, runId: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(runId) || runId.startsWith('.')) throw new InvalidInputError(`invalid run id ${JSON.stringify(runId)}`, ['runId must be [A-Za-z0-9._-]']);
  return path.join(deps.config.dataDir, 'runs', runId);
}

export function createActivities(deps: ActivityDeps) {
  const log = deps.logger;

  async function manifestOf(model: ResolvedModel): Promise<ModelManifest> {
    return deps.registry.manifest(model.name, model.version);
  }

  /** Ensure the model is in the local cache (download + verify once per machine) and return its session. */
  async function loadModel(model: ResolvedModel) {
    const { path: modelPath, downloaded } = await deps.cache.ensure(model, deps.registry);
    const session = await deps.sessions.get(model.sha256, modelPath, { intraOpThreads: deps.config.ortThreads });
    return { session, modelPath, downloaded };
  }

  return withFailureMapping({
    /** Resolve a reference (`name`, `name:3`, `name@alias`) to one exact version; the workflow records it. */
    async resolveModel(input: { ref: string }): Promise<ResolvedModel> {
      const { resolved } = await deps.registry.resolve(input.ref);
      log.info({ ref: input.ref, version: resolved.version, sha256: resolved.sha256 }, 'model resolved');
      return resolved;
    },

    /** Validate features against the model, stage a snapshot, and cut it into shards (descriptors only). */
    async planBatch(input: PlanBatchInput): Promise<PlanBatchResult> {
      const sink = parseSinkSpec(input.sink);
      const manifest = await manifestOf(input.model);
      const plan = await stageSnapshot({
        featuresPath: localPathOf(input.features),
        snapshotPath: path.join(runDir(deps, input.runId), 'snapshot.parquet'),
        manifest,
        idColumn: input.idColumn ?? null,
        shardSize: input.shardSize,
      });
      log.info({ runId: input.runId, rows: plan.rowsIn, shards: plan.shards.length }, 'batch planned');
      return { ...plan, sink };
    },

    /** Predict one shard into a staged Parquet part; heartbeats rows done. Idempotent: a retry overwrites the part. */
    async predictShard(input: PredictShardInput): Promise<ShardResult> {
      const ctx = Context.current();
      const { session } = await loadModel(input.model);
      const manifest = await manifestOf(input.model);
      const partPath = path.join(runDir(deps, input.runId), 'parts', `part-${String(input.shard.index).padStart(5, '0')}.parquet`);
      const result = await predictShardLib({
        session,
        manifest,
        snapshotPath: input.snapshotPath,
        idColumn: input.idColumn,
        shard: input.shard,
        partPath,
        lineage: { runId: input.runId, model: input.model, asOf: input.asOf },
        onProgress: (rowsDone) => {
          heartbeat({ rowsDone });
          // Cancellation arrives through heartbeats: stop between chunks.
          ctx.cancellationSignal.throwIfAborted();
        },
      });
      return result;
    },

    /** Publish all staged parts to the sink atomically. Idempotent per run id. */
    async commitPredictions(input: CommitInput): Promise<CommitResult> {
      const sink = createSink(parseSinkSpec(input.sink), { outputDir: deps.config.outputDir, dataDir: deps.config.dataDir });
      const result = await sink.commit(input);
      log.info({ runId: input.runId, location: result.location, rows: result.rows, created: result.created }, 'predictions committed');
      return result;
    },

    /** Remove a run's staged files (after commit, failure or cancellation). */
    async discardRun(input: { runId: string }): Promise<void> {
      await fs.rm(runDir(deps, input.runId), { recursive: true, force: true });
    },
  });
}

export type InferflowActivities = ReturnType<typeof createActivities>;
