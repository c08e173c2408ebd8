import type { WorkflowHandle } from '@temporalio/client';
import { queryProgress, type BatchInferenceResult, type BatchProgress } from '../client';
import { bar, duration, int, table } from '../lib/util/format';

/** Await a batch run while printing its progress (a live bar on a terminal, phase lines otherwise). */
export async function watchBatch(handle: WorkflowHandle, out: NodeJS.WriteStream = process.stderr): Promise<BatchInferenceResult> {
  const tty = out.isTTY === true;
  let last = '';
  let stopped = false;
  const render = (p: BatchProgress) => {
    const model = p.model ? ` ${p.model.name}:${p.model.version}` : '';
    const line =
      p.phase === 'predicting' || p.phase === 'committing' || p.phase === 'done'
        ? `${p.phase.padEnd(10)} ${bar(p.rowsDone, p.rowsTotal)} ${int(p.rowsDone)}/${int(p.rowsTotal)} rows, shards ${p.shardsDone}/${p.shardsTotal}${p.shardsFailed ? ` (${p.shardsFailed} failed)` : ''}, ${int(p.rowsPerSecond)} rows/s${p.etaSeconds !== null && p.phase === 'predicting' ? `, ETA ${duration(p.etaSeconds * 1000)}` : ''}`
        : `${p.phase.padEnd(10)}${model}`;
    if (line === last) return;
    if (tty) out.write(`\r\x1b[2K${line}`);
    else if (line.split(' ')[0] !== last.split(' ')[0] || p.phase !== 'predicting') out.write(`${line}\n`);
    last = line;
  };
  const poll = (async () => {
    while (!stopped) {
      const p = await queryProgress(handle);
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
