/**
 * `npm run bench -- online-durable`: the durable online path (Update-with-Start on a deployment's
 * partitions, predictions as local activities with Redis features) against its floor, an Update
 * that does nothing on the same dev server through the same client. Sequential Updates p50/p99;
 * concurrent callers across partitions: Updates/s, p99 and max, through continue-as-new.
 * Writes bench/results/online-durable-<YYYY-MM-DD>.json.
 *
 * One process: the client and the workers (inferflow's and the floor's) share its event loop,
 * as they do for both sides of each comparison.
 */
import { Client, Connection, WithStartWorkflowOperation, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Command } from 'commander';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FEATURES_PIPELINE, REPO_ROOT, registerFeaturesExampleModel } from '../cli/examples';
import { positiveInt } from '../cli/options';
import { deploymentStatus, durableGrpcRetry, predictOnDeployment, type OnlineDeployment, type PredictRequest } from '../client/online';
import { ensureTemporalCli, freePort, startDevServer, type DevServer } from '../devservices/temporal';
import { loadConfig } from '../lib/config/env';
import { materializeView } from '../lib/features/materialize';
import { openOnlineStore } from '../lib/features/online';
import { createLogger } from '../lib/log';
import { createResources } from '../lib/pipeline/resources';
import { loadPipelineSpec } from '../lib/pipeline/spec';
import { ModelRegistry } from '../lib/registry';
import { openStore } from '../lib/storage';
import { installTemporalRuntime } from '../workers/runtime';
import { createInferflowWorker } from '../workers/worker';
import { noopUpdate, type updateFloor } from './floor-workflow';
import { machineInfo, sourceState, writeDailyResults } from './machine';

interface Flags {
  sequential: number;
  concurrent: number;
  callers: number;
  partitions: number;
  perRun?: number;
  nonStickyRatio?: number;
  tag?: string;
}

interface Latencies {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Updates per second over the whole scenario (wall clock). */
  rate: number;
}

const say = (m: string) => console.error(m);
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const round = (x: number) => Math.round(x * 100) / 100;

function summarise(times: number[], wallMs: number): Latencies {
  const s = [...times].sort((a, b) => a - b);
  const q = (p: number) => round(s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!);
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: round(s[s.length - 1]!), rate: round((s.length / wallMs) * 1000) };
}

/** `total` calls of `call(i)` from `callers` concurrent loops; each call's latency. */
async function drive(total: number, callers: number, call: (i: number) => Promise<void>): Promise<Latencies> {
  const times: number[] = [];
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      for (let i = c; i < total; i += callers) {
        const t = process.hrtime.bigint();
        await call(i);
        times.push(ms(t));
      }
    }),
  );
  return summarise(times, ms(t0));
}

const eventMs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

/**
 * The handovers of a deployment's partitions: for each continue-as-new, the time from the old
 * run's last Update completed to the new run's first, split at the continue-as-new event and at
 * the new run's first workflow task completed.
 */
async function handovers(client: Client, d: OnlineDeployment): Promise<{ drainMs: number; startMs: number; firstUpdateMs: number }[]> {
  const out: { drainMs: number; startMs: number; firstUpdateMs: number }[] = [];
  for (const p of await deploymentStatus(client, d)) {
    if (!p.runId) continue;
    let newer: { firstTaskDone: number; firstUpdate: number } | undefined;
    for (let runId: string | undefined = p.runId; runId; ) {
      const history: Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>> = await client.workflow.getHandle(p.workflowId, runId).fetchHistory();
      const events = history.events ?? [];
      const updatesDone = events.filter((e) => e.workflowExecutionUpdateCompletedEventAttributes).map((e) => eventMs(e.eventTime));
      const can = events.find((e) => e.workflowExecutionContinuedAsNewEventAttributes);
      if (newer && can) out.push({ drainMs: round(eventMs(can.eventTime) - (updatesDone.at(-1) ?? eventMs(can.eventTime))), startMs: round(newer.firstTaskDone - eventMs(can.eventTime)), firstUpdateMs: round(newer.firstUpdate - eventMs(can.eventTime)) });
      newer = { firstTaskDone: eventMs(events.find((e) => e.workflowTaskCompletedEventAttributes)?.eventTime), firstUpdate: updatesDone[0] ?? Number.NaN };
      runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    }
  }
  return out;
}

const fmtRow = (name: string, l: Latencies) => `${name.padEnd(34)} n=${String(l.n).padStart(5)}  p50 ${l.p50.toFixed(1).padStart(6)} ms  p99 ${l.p99.toFixed(1).padStart(6)} ms  max ${l.max.toFixed(1).padStart(7)} ms  ${l.rate.toFixed(0).padStart(5)} Updates/s`;

export async function runOnlineDurableBench(f: Flags, command: string): Promise<void> {
  const cli = ensureTemporalCli(process.env.INFERFLOW_TEMPORAL_CLI, say);
  const machine = machineInfo(cli);
  const source = sourceState(REPO_ROOT, ['workflows/online', 'client/online.ts', 'activities/online.ts', 'bench/online-durable.ts']);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-bench-durable-'));
  let server: DevServer | undefined;
  const closers: (() => Promise<void>)[] = [];
  try {
    const address = `127.0.0.1:${await freePort()}`;
    server = await startDevServer({ cli, address, uiPort: null, logFile: path.join(dir, 'temporal-server.log') });
    say(`temporal dev server on ${address}`);
    const config = loadConfig({ ...process.env, TEMPORAL_ADDRESS: address, INFERFLOW_DATA_DIR: dir, INFERFLOW_TASK_QUEUE: 'bench-online-durable', INFERFLOW_LOG_LEVEL: 'warn' });
    await registerFeaturesExampleModel(new ModelRegistry(openStore(config.registry)));
    const spec = await loadPipelineSpec(FEATURES_PIPELINE);
    const keyPrefix = `bench-durable-${process.pid}`;
    const store = openOnlineStore({ type: 'redis', keyPrefix }, { ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), dataDir: dir });
    await materializeView({ view: spec.featureViews![0]!, store, end: new Date('2026-10-13T23:59:59.999Z') });
    closers.push(async () => {
      await store.deleteView(spec.featureViews![0]!.name);
      await store.close();
    });

    installTemporalRuntime(createLogger('warn'));
    const nativeConnection = await NativeConnection.connect({ address });
    closers.push(() => nativeConnection.close());
    const resources = createResources(config, { logger: createLogger('warn') });
    const { worker, close } = await createInferflowWorker({ config, connection: nativeConnection, resources, ...(f.nonStickyRatio ? { overrides: { nonStickyToStickyPollRatio: f.nonStickyRatio } } : {}) });
    const floorWorker = await Worker.create({ connection: nativeConnection, taskQueue: 'bench-update-floor', workflowsPath: path.join(REPO_ROOT, 'bench', 'floor-workflow.ts') });
    const running = [worker.run(), floorWorker.run()];
    closers.push(async () => {
      worker.shutdown();
      floorWorker.shutdown();
      await Promise.all(running);
      await close();
    });
    // Two clients of the durable path: the SDK's default gRPC retry (counting what it retries) and durableGrpcRetry.
    const retried = new Map<string, number>();
    const sdkDefaults = defaultGrpcRetryOptions();
    const countingRetry = makeGrpcRetryInterceptor({
      ...sdkDefaults,
      delayFunction: (attempt, status) => {
        const bin = status.metadata?.get('grpc-status-details-bin')[0];
        const inner = bin ? Buffer.from(bin as Buffer).toString('latin1').replace(/[^\x20-\x7e]+/g, ' ').trim() : '';
        const key = `${status.code} ${status.details} ${inner}`;
        retried.set(key, (retried.get(key) ?? 0) + 1);
        return sdkDefaults.delayFunction(attempt, status);
      },
    });
    const defaultConnection = await Connection.connect({ address, interceptors: [countingRetry] });
    closers.push(() => defaultConnection.close());
    const defaultClient = new Client({ connection: defaultConnection });
    let closingResent = 0;
    const connection = await Connection.connect({ address, interceptors: [durableGrpcRetry(() => closingResent++)] });
    closers.push(() => connection.close());
    const client = new Client({ connection });

    // The floor: one workflow per partition, each answering a no-op Update.
    const floorIds = Array.from({ length: f.partitions }, (_, i) => `floor-${process.pid}-${i}`);
    for (const id of floorIds) await client.workflow.start<typeof updateFloor>('updateFloor', { taskQueue: 'bench-update-floor', workflowId: id });
    const floorCall = (i: number) => client.workflow.getHandle(floorIds[i % floorIds.length]!).executeUpdate(noopUpdate, { args: [i] }).then(() => undefined);
    // The same no-op Update sent as Update-with-Start (what the durable path sends): the cost of the start operation alone.
    const floorWithStartCall = (i: number) =>
      client.workflow
        .executeUpdateWithStart(noopUpdate, {
          args: [i],
          startWorkflowOperation: new WithStartWorkflowOperation<typeof updateFloor>('updateFloor', { taskQueue: 'bench-update-floor', workflowId: floorIds[i % floorIds.length]!, workflowIdConflictPolicy: 'USE_EXISTING' }),
        })
        .then(() => undefined);

    const deployment = (name: string, partitions: number): OnlineDeployment => ({
      name: `${name}-${process.pid}`,
      partitions,
      taskQueue: config.temporal.taskQueue,
      spec: path.relative(REPO_ROOT, FEATURES_PIPELINE),
      input: { model: spec.model, featureViews: spec.featureViews!, onDemand: spec.onDemand!, store: { type: 'redis', keyPrefix }, idColumn: 'transaction_id', ...(f.perRun ? { maxPredictionsPerRun: f.perRun } : {}) },
    });
    const row = { transaction_id: 't', customer_id: 17, event_timestamp: '2026-10-13T12:00:00Z', amount: 120.5, merchant_category: 'travel', lat: 52.5, lon: 13.4 };
    const request = (i: number, tag: string): PredictRequest => ({ rows: [{ ...row, transaction_id: `${tag}-${i}` }], asOf: '2026-10-13T12:00:00Z', requestId: `${tag}-${i}` });
    let resent = 0;
    const durableCall = (d: OnlineDeployment, tag: string, via = client) => async (i: number) => {
      resent += (await predictOnDeployment(via, d, request(i, tag))).resent;
    };

    // Warm-up: first Update of each kind, model load, bundle caches.
    await drive(20, 1, floorCall);
    const warm = deployment('warm', 1);
    await drive(20, 1, durableCall(warm, 'warm'));

    const results: Record<string, Latencies & { resent?: number; closingResent?: number; continuedAsNew?: number }> = {};
    results.floorSequential = await drive(f.sequential, 1, floorCall);
    say(fmtRow('floor, sequential', results.floorSequential));
    results.floorWithStartSequential = await drive(f.sequential, 1, floorWithStartCall);
    say(fmtRow('floor with start, sequential', results.floorWithStartSequential));
    const seq = deployment('seq', 1);
    resent = 0;
    results.durableSequential = { ...(await drive(f.sequential, 1, durableCall(seq, 'seq'))), resent };
    results.durableSequential.continuedAsNew = (await deploymentStatus(client, seq)).reduce((n, p) => n + (p.status?.continuedAsNew ?? 0), 0);
    say(fmtRow('durable, sequential', results.durableSequential) + `  (${results.durableSequential.continuedAsNew} continue-as-new, ${resent} resent)`);
    results.floorConcurrent = await drive(f.concurrent, f.callers, floorCall);
    say(fmtRow(`floor, ${f.callers} callers`, results.floorConcurrent));
    const concDefault = deployment('conc-sdk-retry', f.partitions);
    resent = 0;
    results.durableConcurrentSdkRetry = { ...(await drive(f.concurrent, f.callers, durableCall(concDefault, 'concd', defaultClient))), resent };
    results.durableConcurrentSdkRetry.continuedAsNew = (await deploymentStatus(client, concDefault)).reduce((n, p) => n + (p.status?.continuedAsNew ?? 0), 0);
    say(fmtRow(`durable, SDK gRPC retry`, results.durableConcurrentSdkRetry) + `  (${results.durableConcurrentSdkRetry.continuedAsNew} continue-as-new, ${resent} resent)`);
    for (const [k, n] of retried) say(`  SDK retried ${n}× ${k}`);
    const gapsDefault = await handovers(client, concDefault);
    const conc = deployment('conc', f.partitions);
    resent = 0;
    results.durableConcurrent = { ...(await drive(f.concurrent, f.callers, durableCall(conc, 'conc'))), resent, closingResent };
    results.durableConcurrent.continuedAsNew = (await deploymentStatus(client, conc)).reduce((n, p) => n + (p.status?.continuedAsNew ?? 0), 0);
    say(fmtRow(`durable, ${f.callers} callers / ${f.partitions} partitions`, results.durableConcurrent) + `  (${results.durableConcurrent.continuedAsNew} continue-as-new, ${resent} resent, ${closingResent} closing resent)`);
    const gaps = await handovers(client, conc);
    for (const [name, g] of [['SDK retry', gapsDefault], ['durable retry', gaps]] as const)
      say(`  handovers (${name}): continue-as-new → new run's first task done ${g.map((x) => x.startMs.toFixed(0)).join(', ')} ms; → its first Update done ${g.map((x) => x.firstUpdateMs.toFixed(0)).join(', ')} ms`);

    for (const d of [warm, seq, concDefault, conc]) for (const p of await deploymentStatus(client, d)) if (p.state === 'RUNNING') await client.workflow.getHandle(p.workflowId).cancel();
    for (const id of floorIds) await client.workflow.getHandle(id).cancel();

    const date = new Date();
    const out = { benchmark: 'online-durable', schema: 1, date: date.toISOString(), command, machine, source, settings: f, results, handovers: { sdkRetry: gapsDefault, durableRetry: gaps }, sdkRetried: Object.fromEntries(retried) };
    say(`wrote ${await writeDailyResults(f.tag ? `online-durable-${f.tag}` : 'online-durable', date, out)}`);
  } finally {
    for (const c of closers.reverse()) await c().catch((err: unknown) => say(`cleanup: ${String(err)}`));
    await server?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** `npm run bench -- online-durable …` (registered by bench/index.ts). */
export function registerOnlineDurableBench(program: Command): void {
  program
    .command('online-durable')
    .description('The durable online path (Update-with-Start on a deployment of onlineInference partitions, Redis features) against its floor, a no-op Update on the same server: sequential p50/p99, and Updates/s, p99, max with concurrent callers through continue-as-new. Writes bench/results/online-durable-<date>.json.')
    .option('--sequential <n>', 'sequential Updates per side', positiveInt, 500)
    .option('--concurrent <n>', 'Updates per side with concurrent callers', positiveInt, 3000)
    .option('--callers <n>', 'concurrent callers', positiveInt, 10)
    .option('--partitions <n>', 'partitions of the concurrent deployment (and floor workflows)', positiveInt, 4)
    .option('--per-run <n>', 'maxPredictionsPerRun of the deployments (default: the workflow default)', positiveInt)
    .option('--tag <tag>', 'results file online-durable-<tag>-<date>.json instead of online-durable-<date>.json')
    .option('--non-sticky-ratio <x>', "the Inferflow worker's nonStickyToStickyPollRatio (SDK default 0.2): pollers of the normal queue, where a new run's first task waits", parseFloat)
    .addHelpText('after', '\nExamples:\n  npm run bench -- online-durable\n  npm run bench -- online-durable --per-run 100 --callers 10\n')
    .action(async (f: Flags) => {
      await runOnlineDurableBench(f, `npm run bench -- online-durable ${process.argv.slice(3).join(' ')}`.trim());
    });
}
