/**
 * Streaming faults on the real services: a worker (`inferflow worker` from the compiled
 * package) killed with SIGKILL mid-stream and started again; the PostgreSQL record sink
 * unreachable for 30 s (a TCP proxy in front of the real server that refuses and cuts
 * connections) while the bridge runs as its own process (`inferflow stream run`); a Temporal dev
 * server of the test's own killed with SIGKILL mid-stream and started again on its database
 * file. Ids are compared: every event exactly one prediction, none lost.
 */
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, startDevServer, type DevServer } from '../../devservices/temporal';
import { loadConfig } from '../../lib/config/env';
import { partitionWorkflowId, type StreamPipelineSpec } from '../../lib/messages/stream';
import { defaultConsumerName, partitionsOf } from '../../lib/streams';
import { uniqueName } from '../helpers/env';
import { TEST_POSTGRES, TEST_REDIS_URL } from '../helpers/services';
import { NATS_URL, recordKeys, residentMb, stopProcess, streamFixture, sumStats, transactionEvents } from '../helpers/stream';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';
import { startWorker, type RunningWorker } from '../helpers/worker';

const fx = streamFixture({ taskQueuePrefix: 'test-stream-faults' });

const { PendingActivityState, TimeoutType } = temporal.api.enums.v1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const idsOf = (events: readonly Record<string, unknown>[]) => events.map((e) => e.transaction_id as string);

const partitionHandles = (client: Client, spec: StreamPipelineSpec) => Array.from({ length: partitionsOf(spec) }, (_, p) => client.workflow.getHandle(partitionWorkflowId(spec.name, p)));

/** The timeout type of every retried micro-batch attempt in the partitions' histories (all runs: partitions continue as new). */
async function batchRetryCauses(client: Client, spec: StreamPipelineSpec): Promise<(number | null)[]> {
  const causes: (number | null)[] = [];
  for (let p = 0; p < partitionsOf(spec); p++) {
    const workflowId = partitionWorkflowId(spec.name, p);
    for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      const history = await client.workflow.getHandle(workflowId, run.runId).fetchHistory();
      for (const e of history.events ?? []) {
        const started = e.activityTaskStartedEventAttributes;
        if (started && (started.attempt ?? 1) > 1) causes.push(started.lastFailure?.timeoutFailureInfo?.timeoutType ?? null);
      }
    }
  }
  return causes;
}

describe('kill -9 of a worker mid-stream', () => {
  it('JetStream: 20,000 events over 4 partitions; the batches the dead worker held are retried after their heartbeat timeout, every event exactly one prediction', async () => {
    const taskQueue = uniqueName('test-stream-kill-worker');
    const queue = { INFERFLOW_TASK_QUEUE: taskQueue };
    const { spec, subject, table } = await fx.natsPipeline({ partitions: 4, batch: { size: 200, maxDelayMs: 100 } });
    const events = transactionEvents(20_000, 'kw', 13, 1_000);
    const ids = idsOf(events);
    const { child: first } = await fx.workerProcess(queue);
    const bridge = await fx.runBridge(spec, { taskQueue });
    try {
      await fx.bus.publish(subject, events);
      await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 120_000, interval: 100 }).toBeGreaterThanOrEqual(4_000);
      // Hold every partition's next batch in its sink write (the table locked against inserts, not reads), so the worker dies holding batches.
      const lock = await fx.pool.connect();
      try {
        await lock.query('BEGIN');
        await lock.query(`LOCK TABLE ${pg.escapeIdentifier(table)} IN EXCLUSIVE MODE`);
        const held = async () => (await Promise.all(partitionHandles(fx.client, spec).map((h) => h.describe()))).every((d) => d.raw.pendingActivities?.some((a) => a.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED));
        await expect.poll(held, { timeout: 60_000, interval: 200 }).toBe(true);
        await stopProcess(first, 'SIGKILL');
        // The dead worker's sessions go with it (the server would notice the closed sockets by itself, later).
        await lock.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`);
        await lock.query('COMMIT');
      } finally {
        lock.release();
      }
      const atKill = (await recordKeys(fx.pool, table)).length;
      expect(atKill).toBeLessThan(ids.length);
      // No worker: nothing more lands.
      await sleep(1_000);
      expect((await recordKeys(fx.pool, table)).length).toBe(atKill);
      const { child: second } = await fx.workerProcess(queue);
      try {
        await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 240_000, interval: 500 }).toBe(ids.length);
        await expect.poll(async () => sumStats(await fx.partitionStats(spec), (s) => s.buffered), { timeout: 30_000, interval: 250 }).toBe(0);
        await fx.expectExactlyOnce(spec, table, ids);
      } finally {
        await stopProcess(second);
      }
      // The batches held at the kill were retried because their heartbeats stopped, not after the 1-minute start-to-close timeout.
      const causes = await batchRetryCauses(fx.client, spec);
      expect(causes.length).toBeGreaterThanOrEqual(partitionsOf(spec));
      expect(causes.every((c) => c === TimeoutType.TIMEOUT_TYPE_HEARTBEAT)).toBe(true);
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
    const proxied = loadConfig({ INFERFLOW_DATA_DIR: fx.dir, INFERFLOW_LOG_LEVEL: 'warn', INFERFLOW_REDIS_URL: TEST_REDIS_URL, INFERFLOW_POSTGRES_URL: behindProxy, TEMPORAL_ADDRESS: fx.config.temporal.address, INFERFLOW_TASK_QUEUE: sinkQueue, INFERFLOW_NATS_URL: NATS_URL });
    w = await startWorker(proxied);
  });

  afterAll(async () => {
    await w?.stop();
    await proxy?.close();
  });

  it('retries with backoff, the bridge process stops pulling (outstanding and memory bounded, events wait on the bus), then every event lands once', async () => {
    const maxOutstanding = 300;
    const pull = 500; // the bridge's pull size
    const { spec, subject, stream, table } = await fx.natsPipeline({ partitions: 2, batch: { size: 100, maxDelayMs: 100 }, maxOutstandingPerPartition: maxOutstanding });
    const events = transactionEvents(9_500, 'sd', 17, 200);
    const ids = idsOf(events);
    const bridge = await fx.bridgeProcess(spec, { INFERFLOW_TASK_QUEUE: sinkQueue });
    const pid = bridge.child.pid!;
    const consumer = () => fx.bus.jsm.consumers.info(stream, defaultConsumerName(spec.name));
    try {
      await fx.bus.publish(subject, events.slice(0, 500));
      await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 60_000, interval: 100 }).toBe(500);
      const baselineMb = await residentMb(pid);
      await proxy.stop();
      const downAt = Date.now();
      // Events keep coming during the outage: 500 about every second, until all are out (then the outage lasts its 30 s).
      let published = 500;
      let peakAckPending = 0;
      let peakBuffered = 0;
      let peakMb = baselineMb;
      while (Date.now() - downAt < 30_000 || published < events.length) {
        if (published < events.length) {
          await fx.bus.publish(subject, events.slice(published, published + 500));
          published += 500;
        }
        peakAckPending = Math.max(peakAckPending, (await consumer()).num_ack_pending);
        peakBuffered = Math.max(peakBuffered, ...(await fx.partitionStats(spec)).map((s) => s.buffered));
        peakMb = Math.max(peakMb, await residentMb(pid));
        await sleep(1_000);
      }
      console.log(`bridge process RSS: ${baselineMb.toFixed(1)} MB before the outage, at most ${peakMb.toFixed(1)} MB during it (${events.length - 500} events published meanwhile)`);
      // Nothing written while the sink is down; the bridge stopped pulling and most events still wait on the bus.
      expect((await recordKeys(fx.pool, table)).length).toBe(500);
      expect(bridge.output()).toMatch(/back-pressure: a partition is behind; not pulling/);
      // Signalled but unflushed: at most the limit plus one pull per partition, not the 9,000 published.
      expect(peakBuffered).toBeLessThanOrEqual(maxOutstanding + pull);
      const held = await consumer();
      expect(held.delivered.consumer_seq).toBeLessThan(500 + 2 * (maxOutstanding + pull));
      expect(held.num_pending).toBeGreaterThan(5_000);
      expect(peakAckPending).toBeLessThanOrEqual(pull);
      // The bridge's memory stays bounded while events pile up on the bus (a generous bound: one pull is well under 1 MB).
      expect(peakMb).toBeLessThan(baselineMb + 150);
      const stats = await fx.partitionStats(spec);
      expect(stats.every((s) => !s.paused && s.lastError === null)).toBe(true);
      // The write is being retried (backoff 0.5 s doubling to 10 s: several attempts in 30 s, not hundreds).
      const attempts = await Promise.all(partitionHandles(fx.client, spec).map(async (h) => (await h.describe()).raw.pendingActivities?.[0]?.attempt ?? 0));
      for (const a of attempts) {
        expect(a).toBeGreaterThanOrEqual(3);
        expect(a).toBeLessThanOrEqual(10);
      }
      await proxy.start();
      await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 120_000, interval: 250 }).toBe(ids.length);
      await expect.poll(async () => sumStats(await fx.partitionStats(spec), (s) => s.buffered), { timeout: 30_000, interval: 250 }).toBe(0);
      await fx.expectExactlyOnce(spec, table, ids);
    } finally {
      await stopProcess(bridge.child);
    }
    // What the bridge counted, printed when it stops.
    const stopped = JSON.parse(/^\{"stopped".*$/m.exec(bridge.output())?.[0] ?? 'null') as { backPressureWaits: number; peakOutstanding: number } | null;
    expect(stopped?.backPressureWaits).toBeGreaterThan(0);
    expect(stopped?.peakOutstanding).toBeLessThanOrEqual(maxOutstanding + pull);
  }, 300_000);
});

describe('the Temporal dev server restarted mid-stream', () => {
  let server: DevServer | undefined;
  afterAll(() => server?.stop());

  it('SIGKILL the dev server with 20,000 events in flight, start it again on its database file and port: the bridge and the worker reconnect by themselves, every event exactly one prediction', async () => {
    // A server of this test's own (the suite's shared one stays up), its state in a file.
    const address = `127.0.0.1:${await freePort()}`;
    const start = () => startDevServer({ cli: inject('temporalCli'), address, dbFile: path.join(fx.dir, 'temporal-restart', 'dev.db'), uiPort: null, logFile: path.join(fx.dir, 'temporal-restart', 'server.log') });
    server = await start();
    const connection = await Connection.connect({ address });
    const client = new Client({ connection, namespace: fx.config.temporal.namespace });
    const own = { TEMPORAL_ADDRESS: address, INFERFLOW_TASK_QUEUE: uniqueName('test-stream-temporal-restart') };
    try {
      const { spec, subject, table } = await fx.natsPipeline({ partitions: 4, batch: { size: 200, maxDelayMs: 100 } });
      const events = transactionEvents(20_000, 'tr', 19, 1_000);
      const ids = idsOf(events);
      const worker = await fx.workerProcess(own);
      const bridge = await fx.bridgeProcess(spec, own);
      try {
        await fx.bus.publish(subject, events);
        await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 120_000, interval: 100 }).toBeGreaterThanOrEqual(4_000);
        await stopProcess(server.process!, 'SIGKILL');
        expect((await recordKeys(fx.pool, table)).length).toBeLessThan(ids.length);
        // Down long enough for the bridge's signals and the worker's polls and completions to fail.
        await sleep(5_000);
        server = await start();
        await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 240_000, interval: 500 }).toBe(ids.length);
        await expect.poll(async () => sumStats(await fx.partitionStats(spec, client), (s) => s.buffered), { timeout: 30_000, interval: 250 }).toBe(0);
        await fx.expectEveryIdOnce(table, ids);
        // A batch written while the server was down, whose completion the worker could not report, was written again and
        // stored nothing: its events count as duplicates, not predictions. Every event is counted once either way.
        const stats = await fx.partitionStats(spec, client);
        expect(sumStats(stats, (s) => s.predictionsOut + s.duplicates)).toBe(sumStats(stats, (s) => s.eventsIn));
        expect(sumStats(stats, (s) => s.predictionsOut)).toBeLessThanOrEqual(ids.length);
        expect(stats.every((s) => s.lastError === null && !s.paused && s.deadLetters === 0)).toBe(true);
        // The same processes carried on: nobody restarted them.
        expect([worker.child.exitCode, worker.child.signalCode, bridge.child.exitCode, bridge.child.signalCode]).toEqual([null, null, null, null]);
      } finally {
        await stopProcess(bridge.child);
        await stopProcess(worker.child);
      }
    } finally {
      await connection.close();
    }
  }, 420_000);
});
