/**
 * THE activity set: thin Temporal-facing callers of the runtime (lib/pipeline). Created with the
 * worker's Resources (`createActivities(resources)`); the workflow types its proxies with
 * `ReturnType<typeof createActivities>`.
 */
import { Context, heartbeat } from '@temporalio/activity';
import fs from 'node:fs/promises';
import path from 'node:path';
import { predictShard as predictShardLib, sameFingerprint, stageSnapshot, type InputFingerprint, type ShardDescriptor, type ShardResult } from '../lib/pipeline/batch';
import type { FeatureViewInput } from '../lib/features';
import type { OnDemandRef } from '../lib/features/on-demand';
import type { PostProcessStep } from '../lib/messages/post-process';
import type { ResolvedModel } from '../lib/registry/manifest';
import { parseSinkSpec, SinkSpecSchema, type CommitResult, type RunSink, type SinkSpec } from '../lib/sinks';
import { localPathOf } from '../lib/storage';
import { checkLocationAllowed } from '../lib/storage/roots';
import { InvalidInputError, SchemaMismatchError } from '../lib/errors';
import { OBJECT_STORE_CONCURRENCY, eachLimited } from '../lib/util/concurrency';
import { openPipeline, resolveModel, type Pipeline } from '../lib/pipeline/pipeline';
import { rankShard, stageRankingSnapshot, type CandidateFile } from '../lib/pipeline/rank';
import { candidatesObject, exportPostgresCandidates } from '../lib/postgres/candidates';
import type { RankingSpec } from '../lib/messages/batch';
import type { Resources } from '../lib/pipeline/resources';
import { withFailureMapping } from './failures';
import { keepAlive } from './heartbeat';
import { createFeatureActivities } from './features';
import { createOnlineActivities } from './online';
import { createStreamActivities } from './stream';

export interface PlanBatchInput {
  runId: string;
  /** A model reference (`name`, `name:3`, `name@alias`): planBatch resolves it and returns the exact version as `model`. */
  modelRef: string;
  /** ISO 8601 as-of time: with featureViews and no spine, every entity is scored as of it. */
  asOf?: string;
  /** A prepared feature file, or… */
  features?: string;
  /** …feature views joined point-in-time onto the spine (staged as the run's feature snapshot). */
  featureViews?: FeatureViewInput[];
  spine?: string;
  entityTimestampField?: string;
  onDemand?: OnDemandRef[];
  postProcess?: PostProcessStep[];
  /** Rank the candidate pairs of `features`: rowsIn, shardCount and shardSize then count entities. */
  ranking?: RankingSpec;
  idColumn?: string;
  sink?: SinkSpec;
  shardSize: number;
}

export interface PlanBatchResult {
  /** The exact model version planned for. */
  model: ResolvedModel;
  rowsIn: number;
  snapshotPath: string;
  /** Set when shards read the Parquet input in place instead of a staged snapshot. */
  inPlace?: InputFingerprint;
  idColumn: string | null;
  /** Shard i covers rows [i × shardSize, min(rowsIn, (i + 1) × shardSize)); no list travels through history. */
  shardCount: number;
  /** Ranking runs: entities per shard (each about the requested shard size in candidate pairs). */
  shardSize?: number;
  sink: SinkSpec;
}

export interface PredictShardInput {
  runId: string;
  model: ResolvedModel;
  /** ISO 8601 as-of time, written into every output row. */
  asOf: string;
  snapshotPath: string;
  inPlace?: InputFingerprint;
  idColumn: string | null;
  shard: ShardDescriptor;
  /** The run's parsed sink: sinks that stage per shard (PostgreSQL) load the part right away. */
  sink: SinkSpec;
  /** On-demand features computed before the model's transforms. */
  onDemand?: OnDemandRef[];
  /** Post-processing steps run on the model's outputs. */
  postProcess?: PostProcessStep[];
  /** A ranking run: the shard is a range of entities of the ranking snapshot. */
  ranking?: RankingSpec;
}

export interface CommitInput {
  runId: string;
  workflowId: string;
  pipeline: string;
  model: ResolvedModel;
  sink: SinkSpec;
  /** Parts are found by convention: `runs/<runId>/parts/part-<index>.parquet` for every shard. */
  shardCount: number;
  rows: number;
}

/** Run identifiers become directory names: keep them to a safe alphabet. */
function runDir(resources: Resources, runId: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(runId) || runId.startsWith('.')) throw new InvalidInputError(`invalid run id ${JSON.stringify(runId)}`, ['runId must be [A-Za-z0-9._-]']);
  return path.join(resources.config.dataDir, 'runs', runId);
}

const PARQUET_PART = '.parquet';

/** A shard's part, relative to the run directory (locally and in shared staging): Parquet, or the sink's own format (PostgreSQL: CSV). */
function partNameOf(index: number, sink: RunSink): string {
  return `parts/part-${String(index).padStart(5, '0')}${sink.partFormat?.extension ?? PARQUET_PART}`;
}

function partPathOf(resources: Resources, runId: string, index: number, sink: RunSink): string {
  return path.join(runDir(resources, runId), partNameOf(index, sink));
}

/** The snapshot's name in shared staging (and in a worker's local run directory). */
const SNAPSHOT_NAME = 'snapshot.parquet';
/** A ranking's PostgreSQL candidates, exported into the run's directory before the snapshot is staged from them. */
const CANDIDATES_EXPORT_NAME = 'candidates.parquet';

export function createActivities(resources: Resources) {
  const log = resources.logger;

  /**
   * The snapshot file this worker reads. Without shared staging: the planned path. With it:
   * this worker's own copy (`<dataDir>/runs/<runId>/snapshot.parquet`, fetched from staging
   * when absent), unless the input is read in place and the same file is visible here.
   */
  async function localSnapshot(input: PredictShardInput): Promise<{ snapshotPath: string; inPlace: InputFingerprint | undefined }> {
    if (!resources.staging) return { snapshotPath: input.snapshotPath, inPlace: input.inPlace };
    const own = path.join(runDir(resources, input.runId), SNAPSHOT_NAME);
    if (input.inPlace && input.snapshotPath !== own && (await sameFingerprint(input.snapshotPath, input.inPlace))) return { snapshotPath: input.snapshotPath, inPlace: input.inPlace };
    let st = await fs.stat(own).catch(() => undefined);
    if (!st) {
      await resources.staging.fetch(input.runId, SNAPSHOT_NAME, own);
      st = await fs.stat(own);
      log.info({ runId: input.runId, bytes: st.size, from: resources.staging.url }, 'snapshot fetched from shared staging');
    }
    // A copy of an in-place input is read the same way (by file_row_number), guarded by its own size and mtime.
    return { snapshotPath: own, inPlace: input.inPlace ? { size: st.size, mtimeMs: st.mtimeMs } : undefined };
  }

  const sinkOf = (spec: SinkSpec): Promise<RunSink> => resources.sink(spec);

  /** Remove a run's files: its shared staging and its local run directory. Idempotent. */
  async function removeRunFiles(runId: string): Promise<void> {
    await resources.staging?.discard(runId);
    await fs.rm(runDir(resources, runId), { recursive: true, force: true });
  }

  /** planBatch of a ranking run: the candidates staged sorted by entity, shards as ranges of entities. */
  async function planRanking(input: PlanBatchInput, ranking: RankingSpec, pipeline: Pipeline, model: ResolvedModel, sink: SinkSpec): Promise<PlanBatchResult> {
    const snapshotPath = path.join(runDir(resources, input.runId), SNAPSHOT_NAME);
    let candidates: CandidateFile;
    if (ranking.candidates) {
      // Exported once into the run's directory; the snapshot below is staged from it like from a file.
      const exported = path.join(runDir(resources, input.runId), CANDIDATES_EXPORT_NAME);
      await exportPostgresCandidates(ranking.candidates, exported, { url: resources.config.postgresUrl });
      candidates = { path: exported, object: candidatesObject(ranking.candidates) };
    } else {
      if (input.features === undefined) throw new InvalidInputError('a ranking run needs candidates', ['features: the candidate pairs (a Parquet or CSV file), or ranking.candidates (PostgreSQL)']);
      checkLocationAllowed(input.features, resources.config.allowedRoots, 'features');
      candidates = { path: localPathOf(input.features), object: localPathOf(input.features) };
    }
    const planned = await stageRankingSnapshot({ pipeline, candidates, snapshotPath, ranking, shardSize: input.shardSize });
    if (ranking.candidates) await fs.rm(candidates.path, { force: true });
    await resources.staging?.publish(input.runId, SNAPSHOT_NAME, snapshotPath);
    const shardCount = Math.ceil(planned.entities / planned.entitiesPerShard);
    log.info({ runId: input.runId, entities: planned.entities, pairs: planned.pairs, shards: shardCount, staging: resources.staging?.url }, 'ranking planned');
    return { model, rowsIn: planned.entities, snapshotPath, idColumn: ranking.entity, shardCount, shardSize: planned.entitiesPerShard, sink };
  }

  /** predictShard of a ranking run: one row per entity of the shard, staged like any part. */
  async function rankShardActivity(input: PredictShardInput, ranking: RankingSpec, pipeline: Pipeline, sink: RunSink, snapshotPath: string): Promise<ShardResult> {
    using _alive = keepAlive();
    const started = performance.now();
    const result = await rankShard({
      pipeline,
      snapshotPath,
      ranking,
      shard: input.shard,
      partPath: partPathOf(resources, input.runId, input.shard.index, sink),
      lineage: { runId: input.runId, model: input.model, asOf: input.asOf },
      ...(sink.partFormat ? { partFormat: sink.partFormat } : {}),
    });
    await resources.staging?.publish(input.runId, partNameOf(input.shard.index, sink), result.partPath);
    await sink.stage?.({ runId: input.runId, shardIndex: input.shard.index, partPath: result.partPath, rows: result.rows, idColumn: ranking.entity });
    log.info({ runId: input.runId, shard: input.shard.index, entities: result.rows, attempt: Context.current().info.attempt, rankMs: Math.round(performance.now() - started) }, 'ranking shard done');
    return result;
  }

  return {
    // Feature and online activities map their own failures.
    ...createFeatureActivities(resources),
    ...createOnlineActivities(resources),
    ...createStreamActivities(resources),
    ...withFailureMapping({
    /** Resolve a reference (`name`, `name:3`, `name@alias`) to one exact version; the workflow records it. */
    async resolveModel(input: { ref: string }): Promise<ResolvedModel> {
      return resolveModel(resources, input.ref);
    },

    /** Resolve the model reference, validate features against it, stage a snapshot, and cut it into shards (descriptors only). */
    async planBatch(input: PlanBatchInput): Promise<PlanBatchResult> {
      using _alive = keepAlive();
      const sink = parseSinkSpec(input.sink);
      resources.checkSink(sink); // before any work: the run fails here, not at its commit
      const model = await resolveModel(resources, input.modelRef);
      // Planning needs the manifest and the assembly plan, not the model file or a session.
      // The post-processing steps are compiled here too: a bad step fails the run before any row is predicted.
      const pipeline = await openPipeline(
        { model, ...(input.onDemand ? { onDemand: input.onDemand } : {}), ...(input.postProcess ? { postProcess: input.postProcess } : {}), ...(input.featureViews ? { featureViews: input.featureViews } : {}) },
        resources,
        { session: false },
      );
      const { manifest, plan: assembly } = pipeline;
      if (input.ranking) return planRanking(input, input.ranking, pipeline, model, sink);
      let featuresPath: string;
      if (input.featureViews) {
        await fs.mkdir(runDir(resources, input.runId), { recursive: true });
        // Point-in-time retrieval: the joined rows become the run's feature snapshot (read in place by shards).
        const joined = await pipeline.retrieveFeatures({
          spine: input.spine ?? { allEntitiesAsOf: new Date(input.asOf ?? Date.now()) },
          output: path.join(runDir(resources, input.runId), 'features.parquet'),
          ...(input.entityTimestampField ? { entityTimestampField: input.entityTimestampField } : {}),
          tempDir: runDir(resources, input.runId),
        });
        log.info({ runId: input.runId, rows: joined.rows, views: input.featureViews.length }, 'features retrieved point-in-time');
        featuresPath = joined.output;
      } else if (input.features !== undefined) {
        checkLocationAllowed(input.features, resources.config.allowedRoots, 'features');
        featuresPath = localPathOf(input.features);
      } else {
        throw new InvalidInputError('planBatch needs features or featureViews', ['features: required unless featureViews are given']);
      }
      const runSink = await sinkOf(sink);
      const plan = await stageSnapshot({
        featuresPath,
        snapshotPath: path.join(runDir(resources, input.runId), SNAPSHOT_NAME),
        manifest,
        idColumn: input.idColumn ?? null,
        shardSize: input.shardSize,
        plan: assembly,
        needsIds: (idColumn) => runSink.needsIds?.(idColumn) ?? false,
      });
      if (resources.staging) {
        // Workers on other machines read the snapshot from shared staging.
        await resources.staging.publish(input.runId, SNAPSHOT_NAME, plan.snapshotPath);
      }
      log.info({ runId: input.runId, rows: plan.rowsIn, shards: plan.shards.length, staging: resources.staging?.url }, 'batch planned');
      return { model, rowsIn: plan.rowsIn, snapshotPath: plan.snapshotPath, ...(plan.inPlace ? { inPlace: plan.inPlace } : {}), idColumn: plan.idColumn, shardCount: plan.shards.length, sink };
    },

    /** Predict one shard into a staged Parquet part; heartbeats rows done. Idempotent: a retry overwrites the part. */
    async predictShard(input: PredictShardInput): Promise<ShardResult> {
      const ctx = Context.current();
      const pipeline = await openPipeline({ model: input.model, ...(input.onDemand ? { onDemand: input.onDemand } : {}), ...(input.postProcess ? { postProcess: input.postProcess } : {}) }, resources);
      const sink = await sinkOf(parseSinkSpec(input.sink));
      const partPath = partPathOf(resources, input.runId, input.shard.index, sink);
      const { snapshotPath, inPlace } = await localSnapshot(input);
      if (input.ranking) return rankShardActivity(input, input.ranking, pipeline, sink, snapshotPath);
      // A retry resumes after the segments its previous attempt reported as written.
      const previous = ctx.info.heartbeatDetails as { segmentsDone?: number } | undefined;
      let segmentsDone = previous?.segmentsDone ?? 0;
      if (segmentsDone > 0) log.info({ runId: input.runId, shard: input.shard.index, segmentsDone, attempt: ctx.info.attempt }, 'resuming shard');
      let latest: { rowsDone?: number; segmentsDone: number } = { segmentsDone };
      const beat = (details: { rowsDone?: number; segmentsDone: number }) => {
        latest = details;
        heartbeat(details);
      };
      // Between inference calls too: one call of a slow model can outlast the heartbeat timeout.
      using _alive = keepAlive(() => latest);
      const started = performance.now();
      const { segmentsComputed: _computed, ...result } = await predictShardLib({
        pipeline,
        snapshotPath,
        ...(inPlace ? { inPlace } : {}),
        idColumn: input.idColumn,
        shard: input.shard,
        partPath,
        lineage: { runId: input.runId, model: input.model, asOf: input.asOf },
        ...(sink.partFormat ? { partFormat: sink.partFormat } : {}),
        resumeFromSegment: segmentsDone,
        onSegment: (done) => {
          segmentsDone = done;
          beat({ segmentsDone });
        },
        onProgress: (rowsDone) => {
          beat({ rowsDone, segmentsDone });
          // Cancellation arrives through heartbeats: stop between chunks.
          ctx.cancellationSignal.throwIfAborted();
        },
      });
      const predicted = performance.now();
      await resources.staging?.publish(input.runId, partNameOf(input.shard.index, sink), result.partPath);
      const published = performance.now();
      await sink.stage?.({ runId: input.runId, shardIndex: input.shard.index, partPath: result.partPath, rows: result.rows, idColumn: input.idColumn, onProgress: () => beat({ rowsDone: result.rows, segmentsDone }) });
      const ms = (from: number, to: number) => Math.round(to - from);
      log.info(
        {
          runId: input.runId,
          shard: input.shard.index,
          rows: result.rows,
          attempt: ctx.info.attempt,
          predictMs: ms(started, predicted),
          ...(resources.staging ? { publishMs: ms(predicted, published) } : {}),
          ...(sink.stage ? { stageMs: ms(published, performance.now()) } : {}),
        },
        'shard done',
      );
      return result;
    },

    /** Publish all staged parts to the sink atomically, then remove the run's staged files. Idempotent per run id. */
    async commitPredictions(input: CommitInput): Promise<CommitResult> {
      using _alive = keepAlive();
      const sink = await sinkOf(parseSinkSpec(input.sink));
      // A retry after a commit whose clean-up finished (the worker died before reporting) finds no
      // staged parts: the sink's record of the run answers it instead.
      const done = await sink.committed(input);
      if (done) {
        log.info({ runId: input.runId, location: done.location, rows: done.rows }, 'predictions were committed before');
        await removeRunFiles(input.runId);
        return done;
      }
      const parts = Array.from({ length: input.shardCount }, (_, i) => partPathOf(resources, input.runId, i, sink));
      const staging = resources.staging;
      // Shared staging is the source of truth when there is one: every part comes from there, wherever its shard ran.
      const published = staging ? new Set(await staging.list(input.runId, 'parts/')) : undefined;
      const present = async (name: string) => published?.has(name) ?? (await fs.stat(path.join(runDir(resources, input.runId), name)).catch(() => undefined)) !== undefined;
      const missing: string[] = [];
      for (let i = 0; i < input.shardCount; i++) {
        if (!(await present(partNameOf(i, sink)))) missing.push(path.basename(parts[i]!));
      }
      // Sinks that stage each shard as it is predicted (PostgreSQL, Redis) commit from their own
      // staging and never read a part: only the sinks that publish the parts themselves fetch them.
      if (staging && missing.length === 0 && !sink.stage) await eachLimited(parts, OBJECT_STORE_CONCURRENCY, (local, i) => staging.fetch(input.runId, partNameOf(i, sink), local));
      if (missing.length > 0) {
        // Never publish partial output: every shard must have its part.
        throw new SchemaMismatchError(`run ${input.runId} is incomplete`, [`missing staged parts: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ` and ${missing.length - 10} more` : ''}`]);
      }
      const started = performance.now();
      const result = await sink.commit({ runId: input.runId, workflowId: input.workflowId, pipeline: input.pipeline, model: input.model, parts, rows: input.rows });
      const committed = performance.now();
      log.info(
        { runId: input.runId, location: result.location, rows: result.rows, created: result.created, ...(result.keptNewer ? { keptNewer: result.keptNewer } : {}), commitMs: Math.round(committed - started) },
        'predictions committed',
      );
      // Published: the run's files are no longer needed. The sink's own staging went with the
      // commit (PostgreSQL drops its staging tables in the commit's transaction; Redis's staged keys
      // are the published version), so there is no sink.discard to call. A failure here retries
      // the whole activity, whose commit is then a no-op (idempotent per run id).
      await removeRunFiles(input.runId);
      log.info({ runId: input.runId, cleanUpMs: Math.round(performance.now() - committed) }, 'run staging removed');
      return result;
    },

    /** Remove a run's staged files and whatever the sink staged (after commit, failure or cancellation). */
    async discardRun(input: { runId: string; sink?: SinkSpec }): Promise<void> {
      // No sink: the default (Parquet), which stages nothing of its own; a spec that never parsed staged nothing.
      const spec = SinkSpecSchema.safeParse(input.sink).data;
      if (spec) await (await sinkOf(spec)).discard?.(input.runId);
      await removeRunFiles(input.runId);
    },
    }),
  };
}

export type InferflowActivities = ReturnType<typeof createActivities>;
