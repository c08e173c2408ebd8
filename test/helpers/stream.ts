/**
 * Stream fixtures: seeded transaction events for the fraud-detector example, JetStream streams of
 * a test's own, what the sinks hold, and the set-up every streaming test file shares
 * (`streamFixture`: services, pipelines, bridges and `inferflow` processes, clean-up).
 */
import { jetstreamManager, RetentionPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Client, Connection } from '@temporalio/client';
import { execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject } from 'vitest';
import type { InferflowConfig } from '../../lib/config/env';
import { createLogger } from '../../lib/log';
import { partitionWorkflowId, type StreamPipelineSpec, type StreamStats } from '../../lib/messages/stream';
import { closeNatsConnections, closePostgresPools, sinkDefaultsFrom } from '../../lib/sinks';
import { StreamBridge, createDeadLetterSink, openStreamSource, parseStreamSpec, partitionsOf, type BridgeStats } from '../../lib/streams';
import { exampleRegistry, REPO_ROOT, tempConfig, uniqueName } from './env';
import { startProcess, type StartedProcess } from './processes';
import { TEST_POSTGRES_URL, TEST_REDIS_URL } from './services';
import { startWorker, type RunningWorker } from './worker';

export const NATS_URL = 'nats://127.0.0.1:4222';
/** The command line as users run it: the compiled package. */
const INFERFLOW_BIN = path.join(REPO_ROOT, 'bin', 'inferflow.js');

export { transactionEvents } from '../../bench/stream-events';

export interface TestJetStream {
  nc: NatsConnection;
  jsm: JetStreamManager;
  /** Create a limits-retention stream on `subjects` (deleted by close). */
  stream(name: string, subjects: string[]): Promise<void>;
  /** Publish payloads (strings as they are, objects as JSON) in order. */
  publish(subject: string, payloads: readonly (string | Record<string, unknown>)[]): Promise<void>;
  /** Messages stored in a stream. */
  count(stream: string): Promise<number>;
  /** Every message of a stream, parsed. */
  read(stream: string): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export async function testJetStream(): Promise<TestJetStream> {
  const nc = await connect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  const js = jsm.jetstream();
  const created: string[] = [];
  return {
    nc,
    jsm,
    async stream(name, subjects) {
      await jsm.streams.add({ name, subjects, retention: RetentionPolicy.Limits });
      created.push(name);
    },
    async publish(subject, payloads) {
      const WINDOW = 500;
      for (let i = 0; i < payloads.length; i += WINDOW) {
        await Promise.all(payloads.slice(i, i + WINDOW).map((p) => js.publish(subject, typeof p === 'string' ? p : JSON.stringify(p))));
      }
    },
    async count(stream) {
      return (await jsm.streams.info(stream)).state.messages;
    },
    async read(stream) {
      const info = await jsm.streams.info(stream);
      const out: Record<string, unknown>[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
        if (m) out.push(m.json<Record<string, unknown>>());
      }
      return out;
    },
    async close() {
      for (const s of created) await jsm.streams.delete(s).catch(() => undefined);
      await nc.close();
    },
  };
}

/** Keys stored in a record table (with repeats, if any: the test compares against the published ids). */
export async function recordKeys(pool: pg.Pool, table: string): Promise<string[]> {
  const exists = await pool.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [table]);
  if (!exists.rows[0]?.t) return [];
  return (await pool.query<{ key: string }>(`SELECT key FROM ${pg.escapeIdentifier(table)}`)).rows.map((r) => r.key);
}

/** Send `signal` to a child process and wait until it exited (at once when it already has). */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** Resident memory of a running process (VmRSS in /proc/<pid>/status), in MB. */
export async function residentMb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kb) throw new Error(`no VmRSS line in /proc/${pid}/status`);
  return Number(kb[1]) / 1024;
}

/** The sum of one counter over partitions. */
export const sumStats = (stats: readonly StreamStats[], f: (s: StreamStats) => number) => stats.reduce((a, s) => a + f(s), 0);

/** A stream pipeline of a test's own: JetStream streams for its events and dead letters, a record table. */
export interface TestPipeline {
  spec: StreamPipelineSpec;
  subject: string;
  /** The JetStream stream of the events. */
  stream: string;
  deadStream: string;
  table: string;
}

/** A bridge running in the test process, until `stop()`. */
export interface InProcessBridge {
  bridge: StreamBridge;
  stop(): Promise<BridgeStats>;
}

/**
 * What every streaming test file sets up: a data dir with the example model registered, a
 * JetStream connection, a PostgreSQL pool, a client of the suite's dev server (with `worker`,
 * an in-process worker on the file's task queue and its client), and the clean-up of whatever
 * the tests created (child processes, partition workflows, record tables, streams). Call at the
 * top of a test file: it registers beforeAll/afterAll.
 */
export interface StreamFixture {
  readonly config: InferflowConfig;
  readonly dir: string;
  readonly bus: TestJetStream;
  readonly pool: pg.Pool;
  readonly client: Client;
  /** The in-process worker (only with `worker: true`). */
  readonly worker: RunningWorker;
  /** Processes the tests started: killed after the file. */
  readonly children: ChildProcess[];
  /** Partition workflows to terminate and record tables to drop after the file. */
  readonly workflowIds: string[];
  readonly tables: string[];
  /** A NATS pipeline of the test's own (3 partitions, batches of 100 / 100 ms, redelivery after 3 s unless `overrides` say otherwise). */
  natsPipeline(overrides?: Partial<StreamPipelineSpec>): Promise<TestPipeline>;
  /** The bridge in this process, signalling through `client` (the fixture's by default) onto `taskQueue` (the file's by default). */
  runBridge(spec: StreamPipelineSpec, o?: { client?: Client; taskQueue?: string }): Promise<InProcessBridge>;
  /** Each partition's `stats` (through `client`, the fixture's by default). */
  partitionStats(spec: StreamPipelineSpec, client?: Client): Promise<StreamStats[]>;
  /** Every published id exactly once in the table. */
  expectEveryIdOnce(table: string, ids: readonly string[]): Promise<void>;
  /** Every published id exactly once in the table; the partitions' counters agree, none paused or failing. */
  expectExactlyOnce(spec: StreamPipelineSpec, table: string, ids: readonly string[], client?: Client): Promise<void>;
  /** The environment of an `inferflow` process: the test services, the file's data dir, task queue and dev server, then `env`. */
  binEnv(env?: Record<string, string>): NodeJS.ProcessEnv;
  /** `inferflow <args>` from the compiled package; its stdout, failing on a non-zero exit (asynchronous: an in-process worker keeps answering meanwhile). */
  cli(args: string[], env?: Record<string, string>): Promise<string>;
  /** `inferflow worker` from the compiled package, as a user runs it, once it said it started. */
  workerProcess(env?: Record<string, string>): Promise<StartedProcess>;
  /** `inferflow stream run <spec>` from the compiled package (the spec written to a file first), once it said it started. */
  bridgeProcess(spec: StreamPipelineSpec, env?: Record<string, string>): Promise<StartedProcess>;
  /** The spec as a file in the data dir (what the CLI reads). */
  specFile(spec: StreamPipelineSpec): Promise<string>;
}

export function streamFixture(o: { taskQueuePrefix: string; worker?: boolean }): StreamFixture {
  let cleanup: (() => Promise<void>) | undefined;
  let connection: Connection | undefined;
  const f = { children: [], workflowIds: [], tables: [] } as unknown as { -readonly [K in keyof StreamFixture]: StreamFixture[K] };

  beforeAll(async () => {
    const made = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName(o.taskQueuePrefix), INFERFLOW_NATS_URL: NATS_URL });
    ({ config: f.config, dir: f.dir, cleanup } = made);
    await exampleRegistry(f.config);
    f.bus = await testJetStream();
    f.pool = new pg.Pool({ connectionString: TEST_POSTGRES_URL, max: 2 });
    if (o.worker) {
      f.worker = await startWorker(f.config);
      f.client = f.worker.client;
    } else {
      connection = await Connection.connect({ address: f.config.temporal.address });
      f.client = new Client({ connection, namespace: f.config.temporal.namespace });
    }
  });

  afterAll(async () => {
    for (const c of f.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const id of f.workflowIds) await f.client?.workflow.getHandle(id).terminate('test over').catch(() => undefined);
    await f.worker?.stop();
    await connection?.close();
    await f.bus?.close();
    for (const t of f.tables) await f.pool?.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(t)}`);
    await f.pool?.end();
    await closeNatsConnections();
    await closePostgresPools();
    await cleanup?.();
  });

  f.natsPipeline = async (overrides = {}) => {
    const id = uniqueName('st').replace(/-/g, '_');
    const stream = `EV_${id}`;
    const deadStream = `DL_${id}`;
    const subject = `${id}.events`;
    const table = `scores_${id}`;
    await f.bus.stream(stream, [subject]);
    await f.bus.stream(deadStream, [`${id}.dead`]);
    f.tables.push(table);
    const spec = parseStreamSpec({
      name: id.replace(/_/g, '-'),
      source: { type: 'nats', stream, subject, ackWaitSeconds: 3 },
      key: 'customer_id',
      idField: 'transaction_id',
      partitions: 3,
      batch: { size: 100, maxDelayMs: 100 },
      model: 'fraud-detector@production',
      sink: { type: 'postgres', table },
      deadLetter: { type: 'nats', subject: `${id}.dead` },
      ...overrides,
    });
    for (let p = 0; p < partitionsOf(spec); p++) f.workflowIds.push(partitionWorkflowId(spec.name, p));
    return { spec, subject, stream, deadStream, table };
  };

  f.runBridge = async (spec, b = {}) => {
    const source = await openStreamSource(spec, f.config);
    const abort = new AbortController();
    const bridge = new StreamBridge({ client: b.client ?? f.client, taskQueue: b.taskQueue ?? f.config.temporal.taskQueue, spec, source, deadLetters: createDeadLetterSink(spec.deadLetter, sinkDefaultsFrom(f.config)), logger: createLogger('warn'), pullWaitMs: 200 });
    const running = bridge.run(abort.signal);
    return {
      bridge,
      async stop() {
        abort.abort();
        const stats = await running;
        await source.close();
        return stats;
      },
    };
  };

  f.partitionStats = (spec, client = f.client) => Promise.all(Array.from({ length: partitionsOf(spec) }, (_, p) => client.workflow.getHandle(partitionWorkflowId(spec.name, p)).query<StreamStats>('stats')));

  f.expectEveryIdOnce = async (table, ids) => {
    const keys = await recordKeys(f.pool, table);
    expect(keys.length).toBe(ids.length);
    expect(keys.sort()).toEqual([...ids].sort());
  };

  f.expectExactlyOnce = async (spec, table, ids, client = f.client) => {
    await f.expectEveryIdOnce(table, ids);
    const stats = await f.partitionStats(spec, client);
    expect(sumStats(stats, (s) => s.predictionsOut)).toBe(ids.length);
    expect(stats.every((s) => s.lastError === null && !s.paused)).toBe(true);
  };

  f.binEnv = (env = {}) => ({
    ...process.env,
    TEMPORAL_ADDRESS: f.config.temporal.address,
    INFERFLOW_TASK_QUEUE: f.config.temporal.taskQueue,
    INFERFLOW_NATS_URL: NATS_URL,
    INFERFLOW_REDIS_URL: TEST_REDIS_URL,
    INFERFLOW_POSTGRES_URL: TEST_POSTGRES_URL,
    INFERFLOW_DATA_DIR: f.dir,
    INFERFLOW_LOG_LEVEL: 'info',
    ...env,
  });

  f.cli = async (args, env) => (await promisify(execFile)(process.execPath, [INFERFLOW_BIN, ...args], { env: f.binEnv(env), cwd: REPO_ROOT, encoding: 'utf8' })).stdout;

  f.workerProcess = (env) => startProcess({ command: process.execPath, argv: [INFERFLOW_BIN, 'worker'], env: f.binEnv(env), cwd: REPO_ROOT, ready: /"msg":"worker started"/, children: f.children });

  f.specFile = async (spec) => {
    const file = path.join(f.dir, `${spec.name}.json`);
    await fs.writeFile(file, JSON.stringify(spec));
    return file;
  };

  f.bridgeProcess = async (spec, env) => startProcess({ command: process.execPath, argv: [INFERFLOW_BIN, 'stream', 'run', await f.specFile(spec)], env: f.binEnv(env), cwd: REPO_ROOT, ready: /stream bridge started/, children: f.children });

  return f;
}
