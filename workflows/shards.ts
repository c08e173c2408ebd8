/**
 * Shard fan-out shared by `batchInference` (small runs) and `batchShardGroup` (child
 * workflows of large runs). Deterministic workflow code: no I/O, no Node APIs.
 */
import { ActivityCancellationType, CancellationScope, proxyActivities } from '@temporalio/workflow';
import type { InferflowActivities, PredictShardInput } from '../activities';
import type { SinkSpec } from '../lib/sinks/spec';

/** Shard predictions: long-running, heartbeating so a dead worker is noticed within 30 s. */
const shardActivities = proxyActivities<InferflowActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30s',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s', maximumAttempts: 20 },
});

/**
 * What every shard of a run needs: the predictShard input without its shard (row ranges derive
 * from rowsIn and shardSize). runId is the top-level batchInference's (it names the staging area).
 */
export interface ShardRunContext extends Omit<PredictShardInput, 'shard' | 'sink'> {
  sink: SinkSpec;
  rowsIn: number;
  shardSize: number;
}

export function shardRange(ctx: Pick<ShardRunContext, 'rowsIn' | 'shardSize'>, index: number): { index: number; start: number; end: number } {
  const start = index * ctx.shardSize;
  return { index, start, end: Math.min(ctx.rowsIn, start + ctx.shardSize) };
}

/**
 * Predict shards [first, first + count) with at most `maxConcurrency` in flight. On the first
 * failure the others are cancelled and awaited, so nothing writes into the staging area after
 * the caller removes it. Returns the rows predicted.
 */
export async function runShards(
  ctx: ShardRunContext,
  first: number,
  count: number,
  maxConcurrency: number,
  onShardDone: (rows: number) => void,
  onShardFailed: () => void = () => {},
): Promise<number> {
  let rows = 0;
  const inFlight = new Map<number, Promise<void>>();
  const scope = new CancellationScope();
  try {
    await scope.run(async () => {
      for (let index = first; index < first + count; index++) {
        while (inFlight.size >= maxConcurrency) await Promise.race(inFlight.values());
        const p = shardActivities
          .predictShard({ runId: ctx.runId, model: ctx.model, asOf: ctx.asOf, snapshotPath: ctx.snapshotPath, ...(ctx.inPlace ? { inPlace: ctx.inPlace } : {}), idColumn: ctx.idColumn, sink: ctx.sink, ...(ctx.onDemand ? { onDemand: ctx.onDemand } : {}), shard: shardRange(ctx, index) })
          .then(
            (r) => {
              rows += r.rows;
              onShardDone(r.rows);
            },
            (err: unknown) => {
              onShardFailed();
              throw err;
            },
          )
          .finally(() => inFlight.delete(index));
        inFlight.set(index, p);
      }
      await Promise.all(inFlight.values());
    });
  } catch (err) {
    scope.cancel();
    await CancellationScope.nonCancellable(() => Promise.allSettled(inFlight.values()));
    throw err;
  }
  return rows;
}
