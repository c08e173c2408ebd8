/**
 * Streaming faults on the real services: a worker (`inferflow worker` from the compiled
 * package) killed with SIGKILL mid-stream and started again, and the PostgreSQL record sink
 * unreachable for 30 s (a TCP proxy in front of the real server that refuses and cuts
 * connections). Ids are compared: every event exactly one prediction, none lost.
 */
import { Client, Connection } from '@temporalio/client';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig, type InferflowConfig } from '../../lib/config/env';
import { createLogger } from '../../lib/log';
import { partitionWorkflowId, type StreamPipelineSpec, type StreamStats } from '../../lib/messages/stream';
import { closeNatsConnections, closePostgresPools, sinkDefaultsFrom } from '../../lib/sinks';
import { StreamBridge, createDeadLetterSink, openStreamSource, parseStreamSpec, partitionsOf, type BridgeStats } from '../../lib/streams';
import { exampleRegistry, REPO_ROOT, tempConfig, uniqueName } from '../helpers/env';
import { startProcess } from '../helpers/processes';
import { TEST_POSTGRES, TEST_POSTGRES_URL, TEST_REDIS_URL } from '../helpers/services';
import { NATS_URL, recordKeys, testJetStream, transactionEvents, type TestJetStream } from '../helpers/stream';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';
import { startWorker, type RunningWorker } from '../helpers/worker';

let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let client: Client;
let connection: Connection;
let bus: TestJetStream;
let pool: pg.Pool;
const tables: string[] = [];
const children: ChildProcess[] = [];
const workflowIds: string[] = [];

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-stream-faults'), INFERFLOW_NATS_URL: NATS_URL }));
  await exampleRegistry(config);
  bus = await testJetStream();
  pool = new pg.Pool({ connectionString: TEST_POSTGRES_URL, max: 2 });
  connection = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection, namespace: config.temporal.namespace });
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const id of workflowIds) await client?.workflow.getHandle(id).terminate('test over').catch(() => undefined);
  await connection?.close();
  await bus?.close();
  for (const t of tables) await pool?.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(t)}`);
  await pool?.end();
  await closeNatsConnections();
  await closePostgresPools();
  await cleanup?.();
});

/** A JetStream stream for the events, one for dead letters, a record table: all the test's own. */
async function natsPipeline(o: { partitions: number; batchSize: number; maxOutstandingPerPartition?: number }) {
  const id = uniqueName('sf').replace(/-/g, '_');
  const events = `EV_${id}`;
  await bus.stream(events, [`${id}.events`]);
  await bus.stream(`DL_${id}`, [`${id}.dead`]);
  const table = `scores_${id}`;
  tables.push(table);
  const spec = parseStreamSpec({
    name: id.replace(/_/g, '-'),
    source: { type: 'nats', stream: events, subject: `${id}.events`, ackWaitSeconds: 5 },
    key: 'customer_id',
    idField: 'transaction_id',
    partitions: o.partitions,
    batch: { size: o.batchSize, maxDelayMs: 100 },
    model: 'fraud-detector@production',
    sink: { type: 'postgres', table },
    deadLetter: { type: 'nats', subject: `${id}.dead` },
    ...(o.maxOutstandingPerPartition ? { maxOutstandingPerPartition: o.maxOutstandingPerPartition } : {}),
  });
  for (let p = 0; p < partitionsOf(spec); p++) workflowIds.push(partitionWorkflowId(spec.name, p));
  return { spec, subject: `${id}.events`, stream: events, table };
}

/** The bridge in this process, signalling onto `taskQueue`, until `stop()`. */
async function runBridge(spec: StreamPipelineSpec, taskQueue: string): Promise<{ bridge: StreamBridge; stop: () => Promise<BridgeStats> }> {
  const source = await openStreamSource(spec, config);
  const abort = new AbortController();
  const bridge = new StreamBridge({ client, taskQueue, spec, source, deadLetters: createDeadLetterSink(spec.deadLetter, sinkDefaultsFrom(config)), logger: createLogger('warn'), pullWaitMs: 200 });
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
}

const partitionStats = (spec: StreamPipelineSpec) =>
  Promise.all(Array.from({ length: partitionsOf(spec) }, (_, p) => client.workflow.getHandle(partitionWorkflowId(spec.name, p)).query<StreamStats>('stats')));

const sum = (stats: StreamStats[], f: (s: StreamStats) => number) => stats.reduce((a, s) => a + f(s), 0);

/** Every published id exactly once in the table, and the partitions' counters agree. */
async function expectExactlyOnce(spec: StreamPipelineSpec, table: string, ids: string[]): Promise<void> {
  const keys = await recordKeys(pool, table);
  expect(keys.length).toBe(ids.length);
  expect(keys.sort()).toEqual([...ids].sort());
  const stats = await partitionStats(spec);
  expect(sum(stats, (s) => s.predictionsOut)).toBe(ids.length);
  expect(stats.every((s) => s.lastError === null && !s.paused)).toBe(true);
}

/** `inferflow worker` from the compiled package on `taskQueue`, as a user runs it. */
async function workerProcess(taskQueue: string): Promise<ChildProcess> {
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: config.temporal.address,
    INFERFLOW_TASK_QUEUE: taskQueue,
    INFERFLOW_NATS_URL: NATS_URL,
    INFERFLOW_REDIS_URL: TEST_REDIS_URL,
    INFERFLOW_POSTGRES_URL: TEST_POSTGRES_URL,
    INFERFLOW_DATA_DIR: dir,
    INFERFLOW_LOG_LEVEL: 'info',
  };
  const { child } = await startProcess({ command: process.execPath, argv: [path.join(REPO_ROOT, 'bin', 'inferflow.js'), 'worker'], env, cwd: REPO_ROOT, ready: /"msg":"worker started"/, children });
  return child;
}

describe('kill -9 of a worker mid-stream', () => {
  it('JetStream: 20,000 events over 4 partitions; the restarted worker finishes them, every event exactly one prediction', async () => {
    const taskQueue = uniqueName('test-stream-kill-worker');
    const { spec, subject, table } = await natsPipeline({ partitions: 4, batchSize: 200 });
    const events = transactionEvents(20_000, 'kw', 13, 1_000);
    const ids = events.map((e) => e.transaction_id as string);
    const first = await workerProcess(taskQueue);
    const bridge = await runBridge(spec, taskQueue);
    try {
      await bus.publish(subject, events);
      await expect.poll(async () => (await recordKeys(pool, table)).length, { timeout: 120_000, interval: 100 }).toBeGreaterThanOrEqual(4_000);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      const atKill = (await recordKeys(pool, table)).length;
      expect(atKill).toBeLessThan(ids.length);
      // No worker: nothing more lands.
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await recordKeys(pool, table)).length).toBe(atKill);
      const second = await workerProcess(taskQueue);
      try {
        // The activity the killed worker held is retried after its start-to-close timeout (1 minute).
        await expect.poll(async () => (await recordKeys(pool, table)).length, { timeout: 240_000, interval: 500 }).toBe(ids.length);
        await expect.poll(async () => sum(await partitionStats(spec), (s) => s.buffered), { timeout: 30_000, interval: 250 }).toBe(0);
        await expectExactlyOnce(spec, table, ids);
      } finally {
        second.kill('SIGTERM');
        await new Promise((r) => second.once('exit', r));
      }
    } finally {
      await bridge.stop();
    }
  }, 420_000);
});

describe('the PostgreSQL record sink down for 30 s', () => {
  let proxy: TcpProxy;
  let w: RunningWorker;
  const sinkQueue = uniqueName('test-stream-sink-down');

  beforeAll(async () => {
    proxy = await startTcpProxy({ host: TEST_POSTGRES.host, port: TEST_POSTGRES.port });
    const behindProxy = `postgres://${TEST_POSTGRES.user}@127.0.0.1:${proxy.port}/${TEST_POSTGRES.database}`;
    const proxied = loadConfig({ INFERFLOW_DATA_DIR: dir, INFERFLOW_LOG_LEVEL: 'warn', INFERFLOW_REDIS_URL: TEST_REDIS_URL, INFERFLOW_POSTGRES_URL: behindProxy, TEMPORAL_ADDRESS: config.temporal.address, INFERFLOW_TASK_QUEUE: sinkQueue, INFERFLOW_NATS_URL: NATS_URL });
    w = await startWorker(proxied);
  });

  afterAll(async () => {
    await w?.stop();
    await proxy?.close();
  });

  it('retries with backoff, the bridge stops pulling (outstanding bounded, events wait on the bus), then every event lands once', async () => {
    const maxOutstanding = 300;
    const { spec, subject, stream, table } = await natsPipeline({ partitions: 2, batchSize: 100, maxOutstandingPerPartition: maxOutstanding });
    const events = transactionEvents(6_000, 'sd', 17, 200);
    const ids = events.map((e) => e.transaction_id as string);
    const bridge = await runBridge(spec, sinkQueue);
    try {
      await bus.publish(subject, events.slice(0, 500));
      await expect.poll(async () => (await recordKeys(pool, table)).length, { timeout: 60_000, interval: 100 }).toBe(500);
      await proxy.stop();
      const downAt = Date.now();
      await bus.publish(subject, events.slice(500));
      const consumer = () => bus.jsm.consumers.info(stream, `inferflow-${spec.name}`);
      let peakAckPending = 0;
      while (Date.now() - downAt < 30_000) {
        peakAckPending = Math.max(peakAckPending, (await consumer()).num_ack_pending);
        await new Promise((r) => setTimeout(r, 500));
      }
      // Nothing written while the sink is down; the bridge stopped pulling and most events still wait on the bus.
      expect((await recordKeys(pool, table)).length).toBe(500);
      const held = bridge.bridge.stats;
      expect(held.backPressureWaits).toBeGreaterThan(0);
      // Signalled but unflushed: at most the limit plus one pull per partition, not the 5,500 published.
      expect(held.peakOutstanding).toBeLessThanOrEqual(maxOutstanding + 500);
      expect(held.pulled).toBeLessThan(500 + 2 * (maxOutstanding + 500));
      expect((await consumer()).num_pending).toBeGreaterThan(3_000);
      expect(peakAckPending).toBeLessThanOrEqual(500);
      const stats = await partitionStats(spec);
      expect(stats.every((s) => !s.paused && s.lastError === null)).toBe(true);
      // The write is being retried (backoff 0.5 s doubling to 10 s: several attempts in 30 s, not hundreds).
      const attempts = await Promise.all(Array.from({ length: partitionsOf(spec) }, async (_, p) => (await client.workflow.getHandle(partitionWorkflowId(spec.name, p)).describe()).raw.pendingActivities?.[0]?.attempt ?? 0));
      for (const a of attempts) {
        expect(a).toBeGreaterThanOrEqual(3);
        expect(a).toBeLessThanOrEqual(10);
      }
      await proxy.start();
      await expect.poll(async () => (await recordKeys(pool, table)).length, { timeout: 120_000, interval: 250 }).toBe(ids.length);
      await expect.poll(async () => sum(await partitionStats(spec), (s) => s.buffered), { timeout: 30_000, interval: 250 }).toBe(0);
      await expectExactlyOnce(spec, table, ids);
    } finally {
      await bridge.stop();
    }
  }, 300_000);
});
