/**
 * `npm run bench -- workflow-start`: what a new workflow execution costs the worker before its
 * first command, by bundle. The reusable V8 context evaluates the bundle's modules again for each
 * execution, so this cost is paid by every batch run's first workflow task. Each round replays the
 * recorded batchInference history `--executions` times with the shipped bundle of the compiled code
 * (dist/, what `npm run build` writes: WORKFLOW_BUNDLER_OPTIONS) and with the plain bundle (the
 * baseline: every module of every dependency), alternating, in one process; replaying runs the same
 * workflow code a real execution runs, without a server. Run `npm run build` first.
 */
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createLogger } from '../lib/log';
import { WORKFLOW_BUNDLER_OPTIONS } from '../workers/bundle-options';
import { installTemporalRuntime } from '../workers/runtime';
import { REPO_ROOT } from '../cli/examples';
import { hostInfo, loadAverage, packageVersion, sourceState, writeDailyResults } from './machine';
import { median } from './stats';

/** The compiled workflows `npm run build` bundles (CommonJS: zod's package entry loads all of zod, unlike the ESM sources). */
const COMPILED_WORKFLOWS = path.join(REPO_ROOT, 'dist', 'workflows', 'index.js');
const HISTORY = path.join(REPO_ROOT, 'test', 'workflows', 'histories', 'batchInference-success.json');
const quiet = { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} };

export interface WorkflowStartBenchOptions {
  rounds: number;
  executions: number;
  say: (line: string) => void;
}

async function replayMs(bundle: WorkflowBundleWithSourceMap, history: unknown, executions: number): Promise<number> {
  const histories = Array.from({ length: executions }, (_, i) => ({ workflowId: `bench-start-${i}`, history: historyFromJSON(history) }));
  const started = performance.now();
  for await (const r of Worker.runReplayHistories({ workflowBundle: bundle, replayName: 'bench-workflow-start' }, histories)) {
    if (r.error) throw r.error;
  }
  return (performance.now() - started) / executions;
}

export async function runWorkflowStartBench(o: WorkflowStartBenchOptions): Promise<void> {
  installTemporalRuntime(createLogger('warn'));
  const history: unknown = JSON.parse(await fs.readFile(HISTORY, 'utf8'));
  await fs.access(COMPILED_WORKFLOWS).catch(() => {
    throw new Error(`${path.relative(REPO_ROOT, COMPILED_WORKFLOWS)} is missing: run npm run build first`);
  });
  const workflowsPath = COMPILED_WORKFLOWS;
  // The plain bundle first: webpack's resolver cache outlives a compilation in the same process.
  const plain = await bundleWorkflowCode({ workflowsPath, logger: quiet });
  const variants = { shipped: await bundleWorkflowCode({ workflowsPath, ...WORKFLOW_BUNDLER_OPTIONS, logger: quiet }), plain };
  const codeBytes = (b: WorkflowBundleWithSourceMap) => Buffer.byteLength(b.code.slice(0, b.code.lastIndexOf('//# sourceMappingURL')));
  const loadBefore = loadAverage();
  // One replay each first: the replay worker's own start-up is not the bundle's.
  for (const b of Object.values(variants)) await replayMs(b, history, 1);
  const times: Record<keyof typeof variants, number[]> = { shipped: [], plain: [] };
  for (let r = 0; r < o.rounds; r++) {
    for (const name of r % 2 === 0 ? (['plain', 'shipped'] as const) : (['shipped', 'plain'] as const)) times[name].push(await replayMs(variants[name], history, o.executions));
  }
  const results = (Object.keys(variants) as (keyof typeof variants)[]).map((name) => ({
    bundle: name,
    codeBytes: codeBytes(variants[name]),
    msPerExecution: times[name].map((t) => Number(t.toFixed(2))),
    medianMs: Number(median(times[name]).toFixed(2)),
  }));
  const ratio = median(times.shipped) / median(times.plain);
  o.say('| bundle | code (MB, no source map) | ms per replayed batchInference execution (median) |\n|---|---|---|');
  for (const r of results) o.say(`| ${r.bundle} | ${(r.codeBytes / 1e6).toFixed(2)} | ${r.medianMs} |`);
  o.say(`shipped / plain: ${ratio.toFixed(2)}× (${o.rounds} alternating rounds of ${o.executions} executions)`);
  const date = new Date();
  const written = await writeDailyResults('workflow-start', date, {
    benchmark: 'workflow-start',
    schema: 1,
    date: date.toISOString(),
    command: `npm run bench -- workflow-start --rounds ${o.rounds} --executions ${o.executions}`,
    machine: { ...hostInfo(), temporalSdk: packageVersion('@temporalio/worker'), zod: packageVersion('zod'), loadAverageBefore: loadBefore, loadAverageAfter: loadAverage() },
    source: sourceState(REPO_ROOT, ['workflows', 'lib/messages', 'workers/bundle-options.ts', 'bench/workflow-start.ts']),
    settings: { rounds: o.rounds, executions: o.executions, history: path.relative(REPO_ROOT, HISTORY) },
    results,
    shippedOverPlain: Number(ratio.toFixed(3)),
  });
  o.say(`wrote ${written}`);
}
