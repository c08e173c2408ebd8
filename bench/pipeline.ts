/**
 * One end-to-end pipeline run: a fresh worker process (so its peak RSS belongs to this run
 * only), `batchInference` started with the client helpers, progress printed while it runs,
 * the result awaited, the worker stopped, the history fetched and measured.
 */
import type { Client } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { progressQuery, startBatchInference, type BatchInferenceResult, type BatchProgress } from '../client';
import type { SinkSpec } from '../lib/sinks/spec';
import { errorMessage } from '../lib/errors';
import { analyseHistories, fetchRunHistories, timeline } from './history';
import { processCpuMs } from './machine';
import type { PipelineRun, SinkKind } from './types';
import { startWorkerChild, type WorkerChild } from './worker-process';

export interface PipelineRunOptions {
  client: Client;
  cli: string;
  address: string;
  taskQueue: string;
  workerEnv: NodeJS.ProcessEnv;
  modelRef: string;
  features: string;
  sinkKind: SinkKind;
  sink: SinkSpec;
  shardSize: number;
  concurrency: number;
  /** Give up (and terminate the workflow) after this long. */
  timeoutMs: number;
  label: string;
  /** The Temporal dev server's pid, to measure its CPU time during the run. */
  serverPid?: number;
  /**
   * Warm the fresh worker first with an untimed run over this small feature file (same model,
   * Parquet sink under `outputRoot`): JIT, DuckDB instance, ONNX sessions and pool threads are
   * then ready, as in a long-lived worker. Peak RSS still covers both runs.
   */
  warmup?: { features: string; outputRoot: string };
  say: (msg: string) => void;
}

export interface PipelineOutcome {
  run: PipelineRun;
  result?: BatchInferenceResult;
}

function describe(p: BatchProgress): string {
  const parts = [`${p.phase}`];
  if (p.shardsTotal > 0) parts.push(`${p.shardsDone}/${p.shardsTotal} shards`, `${p.rowsDone.toLocaleString('en-US')} rows`);
  if (p.rowsPerSecond > 0) parts.push(`${p.rowsPerSecond.toLocaleString('en-US')} rows/s`);
  if (p.etaSeconds !== null && p.etaSeconds > 0) parts.push(`eta ${p.etaSeconds} s`);
  return parts.join(', ');
}

/** Print progress on every phase change and every few seconds; queries are cheap but not free, so poll slowly. */
async function watch(handle: Awaited<ReturnType<typeof startBatchInference>>, label: string, say: (m: string) => void, signal: AbortSignal): Promise<void> {
  let lastPhase = '';
  let lastPrint = 0;
  let lastError = '';
  while (!signal.aborted) {
    await sleep(2000, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return;
    let p: BatchProgress;
    try {
      p = await handle.query(progressQuery);
    } catch (err) {
      // Say so once per distinct reason: a silent gap in progress output would look like a hang.
      const reason = errorMessage(err);
      if (reason !== lastError) say(`  ${label}: progress query failed: ${reason}`);
      lastError = reason;
      continue;
    }
    lastError = '';
    if (p.phase !== lastPhase || Date.now() - lastPrint >= 5000) {
      say(`  ${label}: ${describe(p)}`);
      lastPhase = p.phase;
      lastPrint = Date.now();
    }
  }
}

/** Pending activities of a run (type, attempt, last failure), for a failure report. */
async function pendingActivities(handle: Awaited<ReturnType<typeof startBatchInference>>): Promise<string> {
  try {
    const d = await handle.describe();
    return (d.raw.pendingActivities ?? [])
      .map((a) => `${a.activityType?.name ?? '?'}#${a.activityId ?? '?'} attempt ${a.attempt ?? 1}${a.lastFailure?.message ? ` (last failure: ${a.lastFailure.message})` : ''}`)
      .join(', ');
  } catch {
    return '';
  }
}

export async function runPipeline(o: PipelineRunOptions): Promise<PipelineOutcome> {
  const workflowId = `bench-${o.label.replace(/[^A-Za-z0-9._-]/g, '-')}-${randomUUID().slice(0, 8)}`;
  const run: PipelineRun = { sink: o.sinkKind, shardSize: o.shardSize, concurrency: o.concurrency, workflowId };
  let worker: WorkerChild | undefined;
  try {
    o.say(`  ${o.label}: starting a worker process…`);
    worker = await startWorkerChild(o.workerEnv);
    if (o.warmup) {
      const w = await startBatchInference(
        o.client,
        { model: o.modelRef, features: o.warmup.features, sink: { type: 'parquet', path: o.warmup.outputRoot }, shardSize: o.shardSize, maxConcurrency: o.concurrency },
        { taskQueue: o.taskQueue, workflowId: `${workflowId}-warmup` },
      );
      await Promise.race([w.result(), worker.crashed]);
      run.warm = true;
    }
    const stopWatching = new AbortController();
    const loadAtStart = os.loadavg()[0]!;
    const cpu0 = { worker: processCpuMs(worker.pid), server: processCpuMs(o.serverPid) };
    const t0 = performance.now();
    const handle = await startBatchInference(
      o.client,
      { model: o.modelRef, features: o.features, sink: o.sink, shardSize: o.shardSize, maxConcurrency: o.concurrency },
      { taskQueue: o.taskQueue, workflowId },
    );
    const watching = watch(handle, o.label, o.say, stopWatching.signal);
    let result: BatchInferenceResult;
    let e2eMs: number;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no result within ${Math.round(o.timeoutMs / 1000)} s`)), o.timeoutMs);
      });
      result = await Promise.race([handle.result(), worker.crashed, timedOut]);
      // Stop the clock here: nothing after the result (watcher, worker shutdown) is pipeline time.
      e2eMs = performance.now() - t0;
      const cpu1 = { worker: processCpuMs(worker.pid), server: processCpuMs(o.serverPid) };
      run.cpuMs = {
        ...(cpu0.worker !== undefined && cpu1.worker !== undefined ? { worker: cpu1.worker - cpu0.worker } : {}),
        ...(cpu0.server !== undefined && cpu1.server !== undefined ? { server: cpu1.server - cpu0.server } : {}),
      };
    } catch (err) {
      // Say what it was waiting for, then leave nothing running on the server.
      const pending = await pendingActivities(handle);
      await handle.terminate(`benchmark gave up: ${errorMessage(err)}`).catch(() => undefined);
      const tail = worker.stderrTail().split('\n').slice(-5).join(' | ');
      throw new Error(`${errorMessage(err)}${pending ? `; pending: ${pending}` : ''}${tail ? `; worker stderr: ${tail}` : ''}`, { cause: err });
    } finally {
      clearTimeout(timer);
      stopWatching.abort();
      await watching.catch(() => undefined);
    }
    const { peakRssBytes } = await worker.stop();
    Object.assign(run, {
      shards: result.shards,
      e2eMs,
      rowsPerSecond: result.rowsOut / (e2eMs / 1000),
      workflowDurationMs: result.durationMs,
      worker: { idleRssBytes: worker.idleRssBytes, peakRssBytes },
      loadAvg1m: { start: loadAtStart, end: os.loadavg()[0]! },
    });
    const histories = fetchRunHistories(o.cli, o.address, workflowId);
    run.history = analyseHistories(histories);
    if (process.env.BENCH_TIMELINE) o.say(timeline(histories[0]!.events));
    o.say(`  ${o.label}: done in ${(e2eMs / 1000).toFixed(1)} s (${Math.round(run.rowsPerSecond!).toLocaleString('en-US')} rows/s), ${result.shards} shards`);
    return { run, result };
  } catch (err) {
    run.error = errorMessage(err);
    o.say(`  ${o.label}: FAILED: ${run.error}`);
    return { run };
  } finally {
    worker?.kill();
  }
}
