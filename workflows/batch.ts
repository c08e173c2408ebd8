import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { InferflowActivities } from '../activities';
import type { ResolvedModel } from '../lib/registry/manifest';
import {
  BATCH_DEFAULTS,
  SCHEDULED_START_TIME,
  SEARCH_ATTRIBUTES,
  checkBatchInput,
  progressQuery,
  type BatchInferenceInput,
  type BatchInferenceResult,
  type BatchProgress,
} from './definitions';

/** Short steps: retried with backoff for transient faults (≈ 15 min of outage), never for typed permanent failures. */
const steps = proxyActivities<InferflowActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s', maximumAttempts: 20 },
});

/** Shard predictions: long-running, heartbeating so a dead worker is noticed within 30 s. */
const shards = proxyActivities<InferflowActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30s',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s', maximumAttempts: 20 },
});

/**
 * Batch inference: resolve the model to one exact version, stage a feature snapshot and plan
 * shards, predict shards with bounded concurrency, commit the sink atomically, return a summary.
 * Only descriptors (model ref, paths, row ranges, counts) pass through history.
 */
export async function batchInference(input: BatchInferenceInput): Promise<BatchInferenceResult> {
  const problems = checkBatchInput(input);
  if (problems.length > 0) {
    throw ApplicationFailure.create({ type: 'InvalidInput', message: `invalid batchInference input: ${problems.join('; ')}`, nonRetryable: true, details: [{ problems }] });
  }
  const info = workflowInfo();
  const started = Date.now();
  const shardSize = input.shardSize ?? BATCH_DEFAULTS.shardSize;
  const maxConcurrency = input.maxConcurrency ?? BATCH_DEFAULTS.maxConcurrency;
  const progress: BatchProgress = { phase: 'resolving', shardsTotal: 0, shardsDone: 0, rowsTotal: 0, rowsDone: 0, rowsPerSecond: 0, etaSeconds: null };
  let predictStarted = 0;
  setHandler(progressQuery, () => progress);

  const model: ResolvedModel = await steps.resolveModel({ ref: input.model });
  const pipeline = input.pipeline ?? model.name;
  progress.model = { name: model.name, version: model.version };
  const asOf = input.asOf !== undefined ? new Date(input.asOf).toISOString() : info.typedSearchAttributes.get(SCHEDULED_START_TIME)?.toISOString() ?? new Date(info.runStartTime).toISOString();
  // Runs recorded before the as-of time existed replay without its search attribute.
  const withAsOf = patched('inferflow-as-of');
  upsertSearchAttributes([
    { key: SEARCH_ATTRIBUTES.pipeline, value: pipeline },
    { key: SEARCH_ATTRIBUTES.model, value: model.name },
    { key: SEARCH_ATTRIBUTES.modelVersion, value: String(model.version) },
    ...(withAsOf ? [{ key: SEARCH_ATTRIBUTES.asOf, value: new Date(asOf) }] : []),
  ]);

  try {
    progress.phase = 'planning';
    const plan = await steps.planBatch({
      runId: info.runId,
      model,
      features: input.features,
      ...(input.idColumn !== undefined ? { idColumn: input.idColumn } : {}),
      ...(input.sink !== undefined ? { sink: input.sink } : {}),
      shardSize,
    });
    progress.phase = 'predicting';
    progress.shardsTotal = plan.shards.length;
    progress.rowsTotal = plan.rowsIn;
    predictStarted = Date.now();

    const parts: string[] = new Array<string>(plan.shards.length);
    let rowsOut = 0;
    // Shards run inside their own scope: on the first permanent failure the rest are
    // cancelled and awaited, so nothing writes into the staging area after it is removed.
    const inFlight = new Map<number, Promise<void>>();
    const fanOut = new CancellationScope();
    try {
      await fanOut.run(async () => {
        for (const shard of plan.shards) {
          while (inFlight.size >= maxConcurrency) await Promise.race(inFlight.values());
          const p = shards
            .predictShard({ runId: info.runId, model, asOf, snapshotPath: plan.snapshotPath, idColumn: plan.idColumn, shard })
            .then((r) => {
              parts[r.index] = r.partPath;
              rowsOut += r.rows;
              progress.shardsDone++;
              progress.rowsDone += r.rows;
              const elapsed = (Date.now() - predictStarted) / 1000;
              progress.rowsPerSecond = elapsed > 0 ? Math.round(progress.rowsDone / elapsed) : 0;
              progress.etaSeconds = progress.rowsPerSecond > 0 ? Math.ceil((progress.rowsTotal - progress.rowsDone) / progress.rowsPerSecond) : null;
            })
            .finally(() => inFlight.delete(shard.index));
          inFlight.set(shard.index, p);
        }
        await Promise.all(inFlight.values());
      });
    } catch (err) {
      fanOut.cancel();
      await CancellationScope.nonCancellable(() => Promise.allSettled(inFlight.values()));
      throw err;
    }
    if (rowsOut !== plan.rowsIn) {
      throw ApplicationFailure.create({ type: 'RowCountMismatch', message: `predicted ${rowsOut} rows for ${plan.rowsIn} input rows`, nonRetryable: true });
    }

    progress.phase = 'committing';
    const committed = await steps.commitPredictions({ runId: info.runId, workflowId: info.workflowId, pipeline, model, sink: plan.sink, parts, rows: rowsOut });
    await steps.discardRun({ runId: info.runId });
    progress.phase = 'done';
    progress.etaSeconds = 0;
    const finished = Date.now();
    return {
      workflowId: info.workflowId,
      runId: info.runId,
      pipeline,
      model,
      asOf,
      rowsIn: plan.rowsIn,
      rowsOut,
      shards: plan.shards.length,
      output: { type: plan.sink.type, location: committed.location },
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      rowsPerSecond: Math.round(rowsOut / Math.max(0.001, (finished - started) / 1000)),
    };
  } catch (err) {
    progress.phase = 'failed';
    // Nothing half-done stays behind: staged files go, the sink was never committed.
    await CancellationScope.nonCancellable(() => steps.discardRun({ runId: info.runId }));
    throw err;
  }
}
