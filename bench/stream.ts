/**
 * `npm run bench -- stream`: streaming inference through the whole path — JetStream →
 * bridge → streamingInference workflows (a worker process) → predict → NATS record sink — on an
 * in-memory Temporal dev server and the NATS server at INFERFLOW_NATS_URL (default
 * 127.0.0.1:4222). Measures:
 *   - sustained events/s draining a published backlog (bridge start → last prediction received);
 *   - end-to-end latency p50/p99 (publish → prediction received on the output subject) at a fixed rate;
 *   - history events per 10,000 events (every run of every partition);
 *   - the worker's and the bridge process's peak RSS;
 * and in the same run the floor (one Node process, JetStream pull consumer → the same pipeline
 * `infer` → publish → ack, no Temporal) and the Python baseline a user might write
 * (bench/stream_baseline.py: nats-py + onnxruntime, the same work; its packages installed on
 * demand like the batch benchmark's pandas baseline). Where the whole path's time goes: the
 * bridge's time per phase while draining (pull, check, signal, ack, stats queries,
 * back-pressure) and, from the partitions' histories, workflow tasks' and activities' queue and
 * run times. Writes bench/results/stream-<date>.json.
 */
import { jetstreamManager, RetentionPolicy, AckPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { connectClient } from '../client';
import { DEFAULT_NATS_URL } from '../lib/config/defaults';
import { loadConfig } from '../lib/config/env';
import { ensureTemporalCli, freePort, startDevServer, type DevServer } from '../devservices/temporal';
import { createLogger } from '../lib/log';
import { parseStreamSpec, StreamBridge, createDeadLetterSink, openStreamSource } from '../lib/streams';
import { sinkDefaultsFrom } from '../lib/sinks';
import { createResources } from '../lib/pipeline/resources';
import { openPipeline } from '../lib/pipeline/pipeline';
import { predictionLists } from '../lib/pipeline/post-process';
import { ModelRegistry } from '../lib/registry';
import { openStore } from '../lib/storage';
import { EXAMPLE_MODEL_DIR, REPO_ROOT } from '../cli/examples';
import { positiveCount } from '../cli/options';
import { WORKFLOWS_PATH } from '../workers/worker';
import { BENCH_DATA_DIR, withoutTemporalSecrets } from './batch';
import { machineInfo } from './machine';
import { RESULTS_DIR } from './report';
import { ensurePythonPackages, joinPythonPath, trainingPins } from './python';
import { quantile } from './stats';
import { transactionEvents } from './stream-events';
import { startWorkerChild } from './worker-process';

interface StreamFlags {
  events: number;
  rate: number;
  seconds: number;
  partitions: number;
  batchSize: number;
  batchDelay: number;
  pullSize: number;
  /** JSON of Temporal WorkerOptions for the worker process (e.g. maxConcurrentActivityTaskExecutions). */
  workerOptions?: string;
  python: boolean;
}

/** nats-py for the Python baseline (numpy and onnxruntime are pinned with the training scripts). */
const NATS_PY = 'nats-py==2.16.0';

const say = (msg: string) => process.stdout.write(`${msg}\n`);
const MB = 1024 * 1024;
const encoder = new TextEncoder();

/** Publish payloads with bounded concurrency; resolves when JetStream stored them all. */
async function publishAll(nc: NatsConnection, subject: string, events: readonly Record<string, unknown>[]): Promise<void> {
  const js = (await jetstreamManager(nc)).jetstream();
  for (let i = 0; i < events.length; i += 1_000) await Promise.all(events.slice(i, i + 1_000).map((e) => js.publish(subject, JSON.stringify(e))));
}

/** Resolves when `n` distinct record keys arrived on `subject` (core subscription); `onRecord` sees each first arrival. */
function collect(nc: NatsConnection, subject: string, n: number, onRecord: (key: string, at: number) => void = () => {}): Promise<number> {
  const seen = new Set<string>();
  const sub = nc.subscribe(subject);
  return new Promise((resolve) => {
    void (async () => {
      for await (const m of sub) {
        const at = performance.now();
        const key = (m.json<{ key: string }>()).key;
        if (seen.has(key)) continue;
        seen.add(key);
        onRecord(key, at);
        if (seen.size >= n) {
          sub.unsubscribe();
          resolve(at);
        }
      }
    })();
  });
}

/** The floor: one process, pull → infer → publish (Nats-Msg-Id) → ack, no Temporal. */
async function floor(nc: NatsConnection, jsm: JetStreamManager, stream: string, outSubject: string, n: number, registryUrl: string, workDir: string): Promise<number> {
  const config = loadConfig({ ...process.env, INFERFLOW_REGISTRY: registryUrl, INFERFLOW_DATA_DIR: path.join(workDir, 'floor'), INFERFLOW_LOG_LEVEL: 'warn' });
  const resources = createResources(config, { logger: createLogger('warn') });
  try {
    const { resolved } = await resources.registry.resolve('fraud-detector@bench');
    const pipeline = await openPipeline({ model: resolved }, resources);
    await jsm.consumers.add(stream, { durable_name: 'floor', ack_policy: AckPolicy.Explicit });
    const js = jsm.jetstream();
    const consumer = await js.consumers.get(stream, 'floor');
    const started = performance.now();
    let done = 0;
    while (done < n) {
      const batch = await consumer.fetch({ max_messages: 500, expires: 1_000 });
      const msgs = [];
      for await (const m of batch) msgs.push(m);
      if (msgs.length === 0) continue;
      const rows = msgs.map((m) => m.json<Record<string, unknown>>());
      const { predictions } = await pipeline.infer({ requests: rows });
      const lists = predictionLists(predictions);
      const at = new Date().toISOString();
      await Promise.all(
        rows.map((r, i) =>
          js.publish(outSubject, encoder.encode(JSON.stringify({ key: r.transaction_id, entity: String(r.customer_id), outputs: { label: lists.label![i], score: lists.score![i] }, model: { name: resolved.name, version: resolved.version }, predictedAt: at })), { msgID: String(r.transaction_id) }),
        ),
      );
      await Promise.all(msgs.map((m) => m.ackAck()));
      done += msgs.length;
    }
    return n / ((performance.now() - started) / 1000);
  } finally {
    await resources.close();
  }
}

const eventMs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

/** Where the partitions' time went, from their histories: task counts, queue time (scheduled → started) and run time (started → completed), ms. */
interface TaskTimes {
  count: number;
  queueMs: number;
  runMs: number;
}

/**
 * Every run of every streamingInference execution on the (benchmark's own) server: history
 * events in all, signals, and the workflow tasks' and activities' times.
 */
async function historyEvents(client: Client): Promise<{ executions: number; events: number; signals: number; workflowTasks: TaskTimes; activities: TaskTimes }> {
  let executions = 0;
  let events = 0;
  let signals = 0;
  const workflowTasks: TaskTimes = { count: 0, queueMs: 0, runMs: 0 };
  const activities: TaskTimes = { count: 0, queueMs: 0, runMs: 0 };
  for await (const wf of client.workflow.list({ query: `WorkflowType = 'streamingInference'` })) {
    const h = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    executions++;
    events += h.events?.length ?? 0;
    const at = new Map<string, number>();
    for (const e of h.events ?? []) {
      const t = eventMs(e.eventTime);
      at.set(String(e.eventId), t);
      if (e.workflowExecutionSignaledEventAttributes) signals++;
      const wfStarted = e.workflowTaskStartedEventAttributes;
      if (wfStarted) workflowTasks.queueMs += t - at.get(String(wfStarted.scheduledEventId))!;
      const wfDone = e.workflowTaskCompletedEventAttributes;
      if (wfDone) {
        workflowTasks.count++;
        workflowTasks.runMs += t - at.get(String(wfDone.startedEventId))!;
      }
      const actStarted = e.activityTaskStartedEventAttributes;
      if (actStarted) activities.queueMs += t - at.get(String(actStarted.scheduledEventId))!;
      const actDone = e.activityTaskCompletedEventAttributes;
      if (actDone) {
        activities.count++;
        activities.runMs += t - at.get(String(actDone.startedEventId))!;
      }
    }
  }
  return { executions, events, signals, workflowTasks, activities };
}

/** The Python baseline (bench/stream_baseline.py): nats-py pull consumer → onnxruntime → publish → ack, installed on demand. */
async function pythonBaseline(o: { natsUrl: string; stream: string; subject: string; outSubject: string; events: number; batch: number }): Promise<{ eventsPerSecond: number; events: number; peakRssMB: number } | { error: string }> {
  const stack = ensurePythonPackages({ dataDir: path.join(REPO_ROOT, '.data'), name: 'stream-python-baseline', requirements: [...trainingPins(['numpy', 'onnxruntime']), NATS_PY], modules: ['numpy', 'onnxruntime', 'nats'], say });
  if ('unavailable' in stack) return { error: stack.unavailable };
  const pythonPath = joinPythonPath(stack.pythonPath);
  const args = [
    path.join(REPO_ROOT, 'bench', 'stream_baseline.py'),
    '--nats-url', o.natsUrl,
    '--stream', o.stream,
    '--subject', o.subject,
    '--out-subject', o.outSubject,
    '--events', String(o.events),
    '--batch', String(o.batch),
    '--model', path.join(EXAMPLE_MODEL_DIR, 'model.onnx'),
    '--metadata', path.join(EXAMPLE_MODEL_DIR, 'metadata.json'),
  ];
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn('python3', args, { env: { ...process.env, ...(pythonPath ? { PYTHONPATH: pythonPath } : {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4_000)));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  if (r.code !== 0) return { error: `python3 bench/stream_baseline.py failed (exit ${r.code}): ${r.stderr.trim().slice(-800)}` };
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { events: number; events_per_second: number; peak_rss_bytes: number };
  return { eventsPerSecond: Math.round(j.events_per_second), events: j.events, peakRssMB: Math.round(j.peak_rss_bytes / MB) };
}

const round = (ms: number) => Math.round(ms);

export async function runStreamBench(f: StreamFlags, command: string): Promise<void> {
  const natsUrl = process.env.INFERFLOW_NATS_URL ?? DEFAULT_NATS_URL;
  const cli = ensureTemporalCli(process.env.INFERFLOW_TEMPORAL_CLI, say);
  await fs.mkdir(BENCH_DATA_DIR, { recursive: true });
  const work = await fs.mkdtemp(path.join(BENCH_DATA_DIR, 'stream-'));
  const id = randomUUID().slice(0, 8);
  const nc = await connect({ servers: natsUrl });
  const jsm = await jetstreamManager(nc);
  const streams = [`BENCH_EV_${id}`, `BENCH_OUT_${id}`, `BENCH_DL_${id}`, `BENCH_FLOOR_${id}`, `BENCH_FLOOROUT_${id}`, `BENCH_PY_${id}`, `BENCH_PYOUT_${id}`];
  const subjects = [`bench-${id}.ev`, `bench-${id}.out`, `bench-${id}.dead`, `bench-${id}.floor`, `bench-${id}.floorout`, `bench-${id}.py`, `bench-${id}.pyout`];
  let server: DevServer | undefined;
  let client: Client | undefined;
  let worker: Awaited<ReturnType<typeof startWorkerChild>> | undefined;
  try {
    for (const [i, name] of streams.entries()) await jsm.streams.add({ name, subjects: [subjects[i]!], retention: RetentionPolicy.Limits });
    const registryUrl = `file://${path.join(work, 'registry')}`;
    const registry = new ModelRegistry(openStore(registryUrl));
    await registry.register(path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), { name: 'fraud-detector', metadata: JSON.parse(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'metadata.json'), 'utf8')) as unknown, alias: 'bench', reuseIdentical: true });

    const address = `127.0.0.1:${await freePort()}`;
    say(`temporal: starting a headless in-memory dev server on ${address}…`);
    server = await startDevServer({ cli, address, uiPort: null, logFile: path.join(work, 'temporal-server.log') });
    const bundle = path.join(work, 'workflow-bundle.js');
    await fs.writeFile(bundle, (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } })).code);
    const taskQueue = `bench-stream-${id}`;
    worker = await startWorkerChild({
      ...withoutTemporalSecrets(process.env),
      TEMPORAL_ADDRESS: address,
      INFERFLOW_TASK_QUEUE: taskQueue,
      INFERFLOW_DATA_DIR: path.join(work, 'worker'),
      INFERFLOW_REGISTRY: registryUrl,
      INFERFLOW_NATS_URL: natsUrl,
      INFERFLOW_LOG_LEVEL: 'warn',
      BENCH_WORKFLOW_BUNDLE: bundle,
      ...(f.workerOptions ? { BENCH_WORKER_OPTIONS: f.workerOptions } : {}),
    });
    client = await connectClient(loadConfig({ ...withoutTemporalSecrets(process.env), TEMPORAL_ADDRESS: address, INFERFLOW_TASK_QUEUE: taskQueue }).temporal);
    const spec = parseStreamSpec({
      name: `bench-${id}`,
      source: { type: 'nats', stream: streams[0], subject: subjects[0] },
      key: 'customer_id',
      idField: 'transaction_id',
      partitions: f.partitions,
      batch: { size: f.batchSize, maxDelayMs: f.batchDelay },
      model: 'fraud-detector@bench',
      sink: { type: 'nats', subject: subjects[1] },
      deadLetter: { type: 'nats', subject: subjects[2] },
    });
    const bridgeConfig = loadConfig({ ...process.env, INFERFLOW_NATS_URL: natsUrl, INFERFLOW_DATA_DIR: path.join(work, 'bridge') });

    say(`publishing a backlog of ${f.events.toLocaleString('en')} events…`);
    const backlog = transactionEvents(f.events, `tp-${id}`, 7, 10_000);
    await publishAll(nc, subjects[0]!, backlog);
    const drained = collect(nc, subjects[1]!, f.events);
    const source = await openStreamSource(spec, bridgeConfig);
    const abort = new AbortController();
    const bridge = new StreamBridge({ client, taskQueue, spec, source, deadLetters: createDeadLetterSink(spec.deadLetter, sinkDefaultsFrom(bridgeConfig)), logger: createLogger('warn'), pullSize: f.pullSize });
    const t0 = performance.now();
    const running = bridge.run(abort.signal);
    const tEnd = await drained;
    const throughput = f.events / ((tEnd - t0) / 1000);
    const drainMs = tEnd - t0;
    const drainBridge = structuredClone(bridge.stats);
    say(`whole path: ${Math.round(throughput).toLocaleString('en')} events/s draining the backlog`);

    const n = f.rate * f.seconds;
    say(`latency: ${n.toLocaleString('en')} events at ${f.rate}/s…`);
    const paced = transactionEvents(n, `lat-${id}`, 9, 10_000);
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    const allIn = collect(nc, subjects[1]!, n, (key, at) => latencies.push(at - sentAt.get(key)!));
    const js = jsm.jetstream();
    const start = performance.now();
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) {
      const due = start + (i * 1000) / f.rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const e = paced[i]!;
      sentAt.set(e.transaction_id as string, performance.now());
      acks.push(js.publish(subjects[0]!, JSON.stringify(e)));
    }
    await Promise.all(acks);
    await allIn;
    abort.abort();
    const bridgeStats = await running;
    await source.close();
    const bridgePeakRss = process.resourceUsage().maxRSS * 1024;
    const history = await historyEvents(client);
    const totalEvents = f.events + n;
    const { peakRssBytes: workerPeakRss } = await worker.stop();
    worker = undefined;

    say('floor: one Node process, JetStream consumer → infer → publish → ack…');
    await publishAll(nc, subjects[3]!, transactionEvents(f.events, `fl-${id}`, 7, 10_000));
    const floorRate = await floor(nc, jsm, streams[3]!, subjects[4]!, f.events, registryUrl, work);

    let python: Awaited<ReturnType<typeof pythonBaseline>> | { skipped: string };
    if (f.python) {
      say('python: nats-py pull consumer → onnxruntime → publish → ack…');
      await publishAll(nc, subjects[5]!, transactionEvents(f.events, `py-${id}`, 7, 10_000));
      python = await pythonBaseline({ natsUrl, stream: streams[5]!, subject: subjects[5]!, outSubject: subjects[6]!, events: f.events, batch: 500 });
      if ('error' in python) say(`  python baseline: ${python.error}`);
      else {
        const stored = (await jsm.streams.info(streams[6]!)).state.messages;
        if (stored !== f.events) python = { error: `the Python baseline published ${stored} records for ${f.events} events` };
      }
    } else python = { skipped: 'disabled with --no-python' };

    const results = {
      benchmark: 'stream',
      date: new Date().toISOString(),
      command,
      machine: machineInfo(cli),
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
      settings: { ...f, natsUrl, sink: 'nats', model: 'fraud-detector (80-tree GBDT)' },
      wholePath: { eventsPerSecond: Math.round(throughput), events: f.events },
      floor: { eventsPerSecond: Math.round(floorRate), events: f.events },
      ratioToFloor: Number((throughput / floorRate).toFixed(3)),
      python,
      ...('eventsPerSecond' in python ? { ratioPythonToFloor: Number((python.eventsPerSecond / floorRate).toFixed(3)) } : {}),
      drain: {
        ms: round(drainMs),
        bridgeMs: Object.fromEntries(Object.entries(drainBridge.ms).map(([k, v]) => [k, round(v)])),
        signals: drainBridge.signals,
        pulled: drainBridge.pulled,
      },
      latency: { rate: f.rate, events: n, p50Ms: Math.round(quantile(latencies, 0.5)), p99Ms: Math.round(quantile(latencies, 0.99)), maxMs: Math.round(Math.max(...latencies)) },
      history: {
        executions: history.executions,
        events: history.events,
        eventsPer10k: Math.round((history.events / totalEvents) * 10_000),
        signals: history.signals,
        workflowTasks: { count: history.workflowTasks.count, meanQueueMs: round(history.workflowTasks.queueMs / history.workflowTasks.count), meanRunMs: round(history.workflowTasks.runMs / history.workflowTasks.count) },
        activities: { count: history.activities.count, meanQueueMs: round(history.activities.queueMs / history.activities.count), meanRunMs: round(history.activities.runMs / history.activities.count), eventsPerActivity: round(totalEvents / history.activities.count) },
      },
      rss: { workerPeakMB: Math.round(workerPeakRss / MB), bridgePeakMB: Math.round(bridgePeakRss / MB) },
      bridge: { ...bridgeStats, ms: Object.fromEntries(Object.entries(bridgeStats.ms).map(([k, v]) => [k, round(v)])) },
    };
    await fs.mkdir(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `stream-${results.date.slice(0, 10)}.json`);
    await fs.writeFile(file, JSON.stringify(results, null, 2) + '\n');
    const py = 'eventsPerSecond' in python ? `${python.eventsPerSecond.toLocaleString('en')} (${results.ratioPythonToFloor})` : '–';
    say(`\n| whole path events/s | floor events/s | ratio | Python events/s (ratio) | p50 / p99 at ${f.rate}/s | history events per 10k | worker / bridge peak RSS | load average |`);
    say('|---|---|---|---|---|---|---|---|');
    say(`| ${results.wholePath.eventsPerSecond.toLocaleString('en')} | ${results.floor.eventsPerSecond.toLocaleString('en')} | ${results.ratioToFloor} | ${py} | ${results.latency.p50Ms} / ${results.latency.p99Ms} ms | ${results.history.eventsPer10k.toLocaleString('en')} | ${results.rss.workerPeakMB} / ${results.rss.bridgePeakMB} MB | ${results.loadAverage.join(' ')} |`);
    say(`drain ${results.drain.ms} ms; bridge ms: ${JSON.stringify(results.drain.bridgeMs)}; workflow tasks ${JSON.stringify(results.history.workflowTasks)}; activities ${JSON.stringify(results.history.activities)}`);
    say(`\nwrote ${path.relative(process.cwd(), file)}`);
  } finally {
    worker?.kill();
    await client?.connection.close();
    await server?.stop();
    for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
    await nc.close();
    await fs.rm(work, { recursive: true, force: true });
  }
}


export function registerStreamBench(program: Command): void {
  program
    .command('stream')
    .description('Streaming inference through the whole path (JetStream → bridge → workflows → predict → NATS sink) vs. the floor (one process, no Temporal). Writes bench/results/stream-<date>.json.')
    .option('--events <n>', 'backlog events for throughput (whole path and floor)', positiveCount, 50_000)
    .option('--rate <n>', 'events/s for the latency run', positiveCount, 1_000)
    .option('--seconds <n>', 'length of the latency run', positiveCount, 20)
    .option('--partitions <n>', 'partitions (workflows)', positiveCount, 4)
    .option('--batch-size <n>', 'micro-batch size', positiveCount, 500)
    .option('--batch-delay <ms>', 'micro-batch maxDelayMs', positiveCount, 50)
    .option('--pull-size <n>', 'messages per bridge pull', positiveCount, 500)
    .option('--worker-options <json>', 'Temporal WorkerOptions for the worker process, e.g. \'{"maxConcurrentActivityTaskExecutions": 8}\'')
    .option('--no-python', 'skip the Python baseline (nats-py + onnxruntime, installed on demand)')
    .addHelpText('after', '\nExamples:\n  npm run bench -- stream\n  npm run bench -- stream --events 20000 --rate 1000 --seconds 10\n')
    .action(async (f: StreamFlags) => runStreamBench(f, `npm run bench -- stream ${process.argv.slice(3).join(' ')}`.trim()));
}
