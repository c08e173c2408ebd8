import {
  ApplicationFailure,
  CancellationScope,
  executeChild,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { InferflowActivities } from '../../activities';
import type { ResolvedModel } from '../../lib/registry/manifest';
import { SEARCH_ATTRIBUTES, checkedMessage, runTime } from '../shared';
import { batchShardGroup, runShards, type ShardRunContext } from './shard-group';
import {
  BATCH_DEFAULTS,
  BATCH_WORKFLOW_TYPE,
  BatchInferenceInputSchema,
  ShardGroupProgressSchema,
  progressDetails,
  progressQuery,
  shardGroupProgressSignal,
  type BatchInferenceInput,
  type BatchInferenceResult,
  type BatchProgress,
  type ShardGroupInput,
} from './shared';

/** Short steps: retried with backoff for transient faults (≈ 15 min of outage), never for typed permanent failures. */
const steps = proxyActivities<InferflowActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s', maximumAttempts: 20 },
});

/** Whole-run steps (snapshot, commit) grow with the run: long limit, liveness by heartbeat. */
const runSteps = proxyActivities<InferflowActivities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s', maximumAttempts: 20 },
});

/**
 * Batch inference: resolve the model to one exact version, stage a feature snapshot and plan
 * shards, predict shards with bounded concurrency, commit the sink atomically, return a summary.
 * Only descriptors (model ref, paths, row ranges, counts) pass through history.
 */
export async function batchInference(raw: BatchInferenceInput): Promise<BatchInferenceResult> {
  const input = checkedMessage(BatchInferenceInputSchema, raw, `${BATCH_WORKFLOW_TYPE} input`);
  const info = workflowInfo();
  const started = Date.now();
  const shardSize = input.shardSize ?? BATCH_DEFAULTS.shardSize;
  const maxConcurrency = input.maxConcurrency ?? BATCH_DEFAULTS.maxConcurrency;
  const shardsPerChild = input.shardsPerChild ?? BATCH_DEFAULTS.shardsPerChild;
  const progress: BatchProgress = { phase: 'resolving', shardsTotal: 0, shardsDone: 0, shardsFailed: 0, rowsTotal: 0, rowsDone: 0, rowsPerSecond: 0, etaSeconds: null };
  let predictStarted = 0;
  setHandler(progressQuery, () => progress);
  // The Web UI's run page shows the current details: kept in step with every progress change.
  const showProgress = () => setCurrentDetails(progressDetails(progress));
  showProgress();
  const shardDone = (shardCount: number, rows: number) => {
    progress.shardsDone += shardCount;
    progress.rowsDone += rows;
    const elapsed = (Date.now() - predictStarted) / 1000;
    progress.rowsPerSecond = elapsed > 0 ? Math.round(progress.rowsDone / elapsed) : 0;
    progress.etaSeconds = progress.rowsPerSecond > 0 ? Math.ceil((progress.rowsTotal - progress.rowsDone) / progress.rowsPerSecond) : null;
    showProgress();
  };

  const asOf = runTime(input.asOf, info);
  /** The resolved model into progress and search attributes. */
  const describeRun = (model: ResolvedModel) => {
    progress.model = { name: model.name, version: model.version };
    showProgress();
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.pipeline, value: input.pipeline ?? model.name },
      { key: SEARCH_ATTRIBUTES.model, value: model.name },
      { key: SEARCH_ATTRIBUTES.modelVersion, value: String(model.version) },
      { key: SEARCH_ATTRIBUTES.asOf, value: new Date(asOf) },
    ]);
  };
  try {
    progress.phase = 'planning';
    showProgress();
    // The input goes on whole, less what only the workflow uses; absent fields stay absent (the parsed input has no undefined values).
    const { model: modelRef, pipeline: _pipeline, maxConcurrency: _maxConcurrency, shardsPerChild: _shardsPerChild, ...planInput } = input;
    const plan = await runSteps.planBatch({ ...planInput, runId: info.runId, modelRef, asOf, shardSize });
    // planBatch resolves the model reference to one exact version, which every shard then uses.
    const model = plan.model;
    describeRun(model);
    const pipeline = input.pipeline ?? model.name;
    progress.phase = 'predicting';
    progress.rowsTotal = plan.rowsIn;
    predictStarted = Date.now();
    const ctx: ShardRunContext = { runId: info.runId, model, asOf, snapshotPath: plan.snapshotPath, inPlace: plan.inPlace, idColumn: plan.idColumn, sink: plan.sink, rowsIn: plan.rowsIn, shardSize: plan.shardSize ?? shardSize, onDemand: input.onDemand, ...(input.postProcess ? { postProcess: input.postProcess } : {}), ...(input.ranking ? { ranking: input.ranking } : {}) };
    const shardCount = plan.shardCount;
    progress.shardsTotal = shardCount;
    showProgress();

    let rowsOut = 0;
    if (shardCount <= shardsPerChild) {
      rowsOut = await runShards(ctx, 0, shardCount, maxConcurrency, (rows) => shardDone(1, rows), () => progress.shardsFailed++);
    } else {
      // Large runs: one child workflow per group of shards keeps every history small.
      // A signal handler never throws: a malformed report is logged and left out of the progress (the rows come from the children's results).
      setHandler(shardGroupProgressSignal, (raw) => {
        const report = ShardGroupProgressSchema.safeParse(raw);
        if (report.success) shardDone(report.data.shards, report.data.rows);
        else log.warn('ignored a malformed shard group progress signal', { problems: report.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) });
      });
      for (let first = 0; first < shardCount; first += shardsPerChild) {
        const group: ShardGroupInput = { ctx, first, count: Math.min(shardsPerChild, shardCount - first), maxConcurrency, parentWorkflowId: info.workflowId };
        rowsOut += await executeChild(batchShardGroup, { workflowId: `${info.workflowId}/shards-${first}`, args: [group] }).catch((err: unknown) => {
          progress.shardsFailed++; // at least one shard of the group failed for good
          throw err;
        });
      }
    }
    if (rowsOut !== plan.rowsIn) {
      throw ApplicationFailure.create({ type: 'RowCountMismatch', message: `predicted ${rowsOut} rows for ${plan.rowsIn} input rows`, nonRetryable: true });
    }

    progress.phase = 'committing';
    showProgress();
    // The commit publishes the run and then removes its staged files (no separate clean-up step).
    const committed = await runSteps.commitPredictions({ runId: info.runId, workflowId: info.workflowId, pipeline, model, sink: plan.sink, shardCount, rows: rowsOut });
    progress.phase = 'done';
    progress.etaSeconds = 0;
    showProgress();
    const finished = Date.now();
    return {
      workflowId: info.workflowId,
      runId: info.runId,
      pipeline,
      model,
      asOf,
      rowsIn: plan.rowsIn,
      rowsOut,
      shards: shardCount,
      output: { type: plan.sink.type, location: committed.location },
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      rowsPerSecond: Math.round(rowsOut / Math.max(0.001, (finished - started) / 1000)),
    };
  } catch (err) {
    progress.phase = 'failed';
    showProgress();
    // Nothing half-done stays behind: staged files go, the sink was never committed.
    await CancellationScope.nonCancellable(() => steps.discardRun({ runId: info.runId, sink: input.sink }));
    throw err;
  }
}
