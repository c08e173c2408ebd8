import { defaultPayloadConverter, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { queryProgress, type BatchInferenceResult, type BatchProgress } from '../client';
import { bar, duration, int, table } from '../lib/util/format';

/** Seconds without any answer from a worker before the watcher checks whether one polls the task queue. */
const NO_WORKER_HINT_AFTER_MS = 5_000;

/** Whether any worker polls the run's task queue (null when the server cannot tell us). */
async function workersPolling(handle: WorkflowHandle): Promise<{ taskQueue: string; polling: boolean } | null> {
  try {
    const d = await handle.describe();
    const r = await handle.client.workflowService.describeTaskQueue({
      namespace: handle.client.options.namespace,
      taskQueue: { name: d.taskQueue },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    return { taskQueue: d.taskQueue, polling: (r.pollers ?? []).length > 0 };
  } catch {
    return null;
  }
}

/** How often the watcher reads running shards' heartbeats (a describe call) while it shows a bar. */
const IN_FLIGHT_EVERY_MS = 1_000;

type PendingActivity = temporal.api.workflow.v1.IPendingActivityInfo;

/**
 * Rows already predicted by shards still running, from their last heartbeat (`{ rowsDone }`):
 * the workflow counts a shard's rows when it completes, so with large shards the bar would
 * otherwise stand still between completions. Undecodable details count as 0.
 */
export function rowsInFlight(pending: readonly PendingActivity[] | null | undefined): number {
  let rows = 0;
  for (const a of pending ?? []) {
    if (a.activityType?.name !== 'predictShard') continue;
    const payload = a.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    try {
      const d = defaultPayloadConverter.fromPayload<{ rowsDone?: unknown }>(payload);
      if (typeof d?.rowsDone === 'number' && Number.isFinite(d.rowsDone) && d.rowsDone > 0) rows += d.rowsDone;
    } catch {
      // not ours to interpret
    }
  }
  return rows;
}

/**
 * Await a batch run while printing its progress (a live bar on a terminal, phase lines
 * otherwise). When no worker has answered for a few seconds and none polls the task queue, it
 * says so once (the run waits until one starts).
 */
export async function watchBatch(handle: WorkflowHandle, out: NodeJS.WriteStream = process.stderr): Promise<BatchInferenceResult> {
  const tty = out.isTTY === true;
  let last = '';
  let stopped = false;
  let answered = false;
  // A query to a run no worker has picked up waits for one: check the task queue on a timer of its own.
  const hint = setTimeout(() => {
    if (answered || stopped) return;
    void workersPolling(handle).then((w) => {
      if (w && !w.polling && !answered && !stopped) {
        out.write(`${tty ? '\r\x1b[2K' : ''}waiting: no worker polls task queue "${w.taskQueue}" — start one with \`npm run worker\` (same TEMPORAL_ADDRESS and INFERFLOW_TASK_QUEUE); the run starts when it does\n`);
      }
    });
  }, NO_WORKER_HINT_AFTER_MS);
  let inFlight = 0;
  let shown = 0;
  const render = (p: BatchProgress) => {
    const model = p.model ? ` ${p.model.name}:${p.model.version}` : '';
    // Completed shards' rows plus what running shards reported (live bar only), never moving back:
    // the query and the heartbeats are read at different moments.
    shown = p.phase === 'predicting' && tty ? Math.max(shown, Math.min(p.rowsTotal, p.rowsDone + inFlight)) : p.rowsDone;
    const line =
      p.phase === 'predicting' || p.phase === 'committing' || p.phase === 'done'
        ? `${p.phase.padEnd(10)} ${bar(shown, p.rowsTotal)} ${int(shown)}/${int(p.rowsTotal)} rows, shards ${p.shardsDone}/${p.shardsTotal}${p.shardsFailed ? ` (${p.shardsFailed} failed)` : ''}, ${int(p.rowsPerSecond)} rows/s${p.etaSeconds !== null && p.phase === 'predicting' ? `, ETA ${duration(p.etaSeconds * 1000)}` : ''}`
        : `${p.phase.padEnd(10)}${model}`;
    if (line === last) return;
    if (tty) out.write(`\r\x1b[2K${line}`);
    else if (line.split(' ')[0] !== last.split(' ')[0] || p.phase !== 'predicting') out.write(`${line}\n`);
    last = line;
  };
  const poll = (async () => {
    let describedAt = 0;
    let shardsDone = 0;
    while (!stopped) {
      const p = await queryProgress(handle);
      if (p) answered = true;
      // Read the heartbeats again when a shard completed too, or its rows would count twice.
      if (p?.phase === 'predicting' && tty && (Date.now() - describedAt >= IN_FLIGHT_EVERY_MS || p.shardsDone !== shardsDone)) {
        describedAt = Date.now();
        shardsDone = p.shardsDone;
        inFlight = await handle.describe().then(
          (d) => rowsInFlight(d.raw.pendingActivities),
          () => inFlight,
        );
      }
      if (p && !stopped) render(p);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    const result = (await handle.result()) as BatchInferenceResult;
    stopped = true;
    await poll;
    render({ phase: 'done', shardsTotal: result.shards, shardsDone: result.shards, shardsFailed: 0, rowsTotal: result.rowsIn, rowsDone: result.rowsOut, rowsPerSecond: result.rowsPerSecond, etaSeconds: 0 });
    if (tty) out.write('\n');
    return result;
  } finally {
    stopped = true;
    clearTimeout(hint);
    await poll;
  }
}

export function summaryTable(r: BatchInferenceResult, extra: [string, string][] = []): string {
  return table([
    ['workflow id', r.workflowId],
    ['pipeline', r.pipeline],
    ['model', `${r.model.name} version ${r.model.version} (${r.model.ref})`],
    ['model sha256', r.model.sha256],
    ['rows in / out', `${int(r.rowsIn)} / ${int(r.rowsOut)}`],
    ['shards', String(r.shards)],
    ['duration', duration(r.durationMs)],
    ['throughput', `${int(r.rowsPerSecond)} rows/s (end to end, including scheduling)`],
    ['output', `${r.output.type}: ${r.output.location}`],
    ...extra,
  ]);
}
