/**
 * Shard fan-out shared by `batchInference` (small runs) and `batchShardGroup` (the child
 * workflow of large runs, one per group of shards). Deterministic workflow code: no I/O, no Node APIs.
 */
import { ActivityCancellationType, CancellationScope, getExternalWorkflowHandle, proxyActivities } from '@temporalio/workflow';
import type { InferflowActivities } from '../../activities';
import { checkedMessage } from '../shared';
import { SHARD_GROUP_WORKFLOW_TYPE, ShardGroupInputSchema, shardGroupProgressSignal, type ShardGroupInput, type ShardGroupProgress } from './shared';

/** Shard predictions: long-running, heartbeating so a dead worker is noticed within 30 s. */
const shardActivities = proxyActivities<InferflowActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30s',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s', maximumAttempts: 20 },
});

/** What every shard of a run needs (lib/messages/batch.ts ShardRunContextSchema). */
export type ShardRunContext = ShardGroupInput['ctx'];

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
  // The first shard failure, kept here: a shard that fails while the loop waits on another one's
  // completion would otherwise leave inFlight unobserved and its error would be lost.
  let failed: { err: unknown } | undefined;
  const rethrow = () => {
    if (failed) throw failed.err;
  };
  const scope = new CancellationScope();
  try {
    await scope.run(async () => {
      for (let index = first; index < first + count; index++) {
        while (inFlight.size >= maxConcurrency) {
          await Promise.race(inFlight.values());
          rethrow();
        }
        rethrow();
        const { rowsIn: _rowsIn, shardSize: _shardSize, ...shardInput } = ctx;
        const p = shardActivities
          .predictShard({ ...shardInput, shard: shardRange(ctx, index) })
          .then(
            (r) => {
              rows += r.rows;
              onShardDone(r.rows);
            },
            (err: unknown) => {
              onShardFailed();
              failed ??= { err };
            },
          )
          .finally(() => inFlight.delete(index));
        inFlight.set(index, p);
      }
      while (inFlight.size > 0) {
        await Promise.race(inFlight.values());
        rethrow();
      }
    });
  } catch (err) {
    scope.cancel();
    await CancellationScope.nonCancellable(() => Promise.allSettled(inFlight.values()));
    throw err;
  }
  return rows;
}


/** Shards reported to the parent per progress signal (signals are events: keep them few). */
const PROGRESS_EVERY = 10;

/**
 * Child workflow of a large batchInference run: predicts one group of shards and reports
 * progress to the parent every few shards. Returns the rows predicted.
 */
export async function batchShardGroup(raw: ShardGroupInput): Promise<number> {
  const input = checkedMessage(ShardGroupInputSchema, raw, `${SHARD_GROUP_WORKFLOW_TYPE} input`);
  const parent = getExternalWorkflowHandle(input.parentWorkflowId);
  let pending: ShardGroupProgress = { shards: 0, rows: 0 };
  const flush = async () => {
    if (pending.shards === 0) return;
    const report = pending;
    pending = { shards: 0, rows: 0 };
    await parent.signal(shardGroupProgressSignal, report);
  };
  const reports: Promise<void>[] = [];
  const rows = await runShards(input.ctx, input.first, input.count, input.maxConcurrency, (r) => {
    pending.shards++;
    pending.rows += r;
    if (pending.shards >= PROGRESS_EVERY) reports.push(flush());
  });
  reports.push(flush());
  await Promise.all(reports);
  return rows;
}
