/**
 * Streaming inference end to end on the real services: events published to NATS JetStream (or
 * XADDed to a Redis Stream) → the bridge → streamingInference workflows on the Temporal dev
 * server → fraud-detector predictions in a PostgreSQL record table; poison events in the
 * dead-letter stream with their reason. Ids are compared: every good event has exactly one
 * prediction, every bad one exactly one dead letter.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { InferflowConfig } from '../../lib/config/env';
import { createLogger } from '../../lib/log';
import type { StreamPipelineSpec, StreamStats } from '../../lib/messages/stream';
import { closeNatsConnections, closePostgresPools, sinkDefaultsFrom } from '../../lib/sinks';
import { StreamBridge, createDeadLetterSink, openStreamSource, parseStreamSpec, partitionsOf, type BridgeStats } from '../../lib/streams';
import { partitionWorkflowId } from '../../lib/messages/stream';
import { exampleRegistry, REPO_ROOT, tempConfig, uniqueName } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { startProcess } from '../helpers/processes';
import { TEST_POSTGRES_URL, TEST_REDIS_URL } from '../helpers/services';
import { NATS_URL, recordKeys, testJetStream, transactionEvents, type TestJetStream } from '../helpers/stream';
import { startWorker, type RunningWorker } from '../helpers/worker';

let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let bus: TestJetStream;
let pool: pg.Pool;
const tables: string[] = [];
const children: ChildProcess[] = [];
const workflowIds: string[] = [];

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-stream'), INFERFLOW_NATS_URL: NATS_URL }));
  await exampleRegistry(config);
  bus = await testJetStream();
  pool = new pg.Pool({ connectionString: TEST_POSTGRES_URL, max: 2 });
  w = await startWorker(config);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const id of workflowIds) await w?.client.workflow.getHandle(id).terminate('test over').catch(() => undefined);
  await w?.stop();
  await bus?.close();
  for (const t of tables) await pool?.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(t)}`);
  await pool?.end();
  await closeNatsConnections();
  await closePostgresPools();
  await cleanup?.();
});

/** A pipeline of the test's own: a JetStream stream for events and one for dead letters, a record table. */
async function natsPipeline(overrides: Partial<StreamPipelineSpec> = {}): Promise<{ spec: StreamPipelineSpec; subject: string; deadStream: string }> {
  const id = uniqueName('st').replace(/-/g, '_');
  const events = `EV_${id}`;
  const deadStream = `DL_${id}`;
  await bus.stream(events, [`${id}.events`]);
  await bus.stream(deadStream, [`${id}.dead`]);
  tables.push(`scores_${id}`);
  const spec = parseStreamSpec({
    name: id.replace(/_/g, '-'),
    source: { type: 'nats', stream: events, subject: `${id}.events`, ackWaitSeconds: 3 },
    key: 'customer_id',
    idField: 'transaction_id',
    partitions: 3,
    batch: { size: 100, maxDelayMs: 100 },
    model: 'fraud-detector@production',
    sink: { type: 'postgres', table: `scores_${id}` },
    deadLetter: { type: 'nats', subject: `${id}.dead` },
    ...overrides,
  });
  for (let p = 0; p < partitionsOf(spec); p++) workflowIds.push(partitionWorkflowId(spec.name, p));
  return { spec, subject: `${id}.events`, deadStream };
}

/** The bridge in this process until `stop()`. */
async function runBridge(spec: StreamPipelineSpec): Promise<{ stop: () => Promise<BridgeStats> }> {
  const source = await openStreamSource(spec, config);
  const abort = new AbortController();
  const bridge = new StreamBridge({ client: w.client, taskQueue: config.temporal.taskQueue, spec, source, deadLetters: createDeadLetterSink(spec.deadLetter, sinkDefaultsFrom(config)), logger: createLogger('warn'), pullWaitMs: 200 });
  const running = bridge.run(abort.signal);
  return {
    async stop() {
      abort.abort();
      const stats = await running;
      await source.close();
      return stats;
    },
  };
}

async function partitionStats(spec: StreamPipelineSpec): Promise<StreamStats[]> {
  return Promise.all(Array.from({ length: partitionsOf(spec) }, (_, p) => w.client.workflow.getHandle(partitionWorkflowId(spec.name, p)).query<StreamStats>('stats')));
}

const sum = (stats: StreamStats[], f: (s: StreamStats) => number) => stats.reduce((a, s) => a + f(s), 0);

describe('streamingInference (NATS JetStream → Temporal → PostgreSQL)', () => {
  it('predicts every event exactly once and dead-letters each kind of bad input with its reason', async () => {
    const { spec, subject, deadStream } = await natsPipeline();
    const good = transactionEvents(1_000, 'ok');
    const bad: [string | Record<string, unknown>, RegExp][] = [
      ['{"transaction_id": "bad-json", "customer_id": 1, ', /not valid JSON/],
      ['{"transaction_id": "nan", "customer_id": 2, "amount": NaN}', /not valid JSON/],
      [{ ...good[0], transaction_id: 'no-key', customer_id: undefined }, /key field customer_id is missing/],
      [{ ...good[0], transaction_id: 'wrong-type', amount: 'lots' }, /amount: expected a number/],
      [{ ...good[0], transaction_id: 'null-feature', merchant_risk: null }, /merchant_risk/],
      ['[1, 2, 3]', /must be a JSON object/],
    ];
    const bridge = await runBridge(spec);
    try {
      await bus.publish(subject, [...good.slice(0, 500), ...bad.map(([p]) => p), ...good.slice(500)]);
      await expect.poll(async () => (await recordKeys(pool, spec.sink.type === 'postgres' ? spec.sink.table : '')).length, { timeout: 60_000, interval: 250 }).toBe(good.length);
      await expect.poll(() => bus.count(deadStream), { timeout: 30_000, interval: 250 }).toBe(bad.length);
    } finally {
      await bridge.stop();
    }
    const keys = await recordKeys(pool, spec.sink.type === 'postgres' ? spec.sink.table : '');
    expect(keys.sort()).toEqual(good.map((e) => e.transaction_id as string).sort());
    const rows = await pool.query<{ entity: string; outputs: { label: number; score: number }; model_name: string; model_version: number; event_time: Date; predicted_at: Date }>(
      `SELECT entity, outputs, model_name, model_version, event_time, predicted_at FROM ${pg.escapeIdentifier(spec.sink.type === 'postgres' ? spec.sink.table : '')} LIMIT 5`,
    );
    for (const r of rows.rows) {
      expect(r).toMatchObject({ model_name: 'fraud-detector', model_version: 1 });
      expect(r.outputs.score).toBeGreaterThanOrEqual(0);
      expect(r.outputs.score).toBeLessThanOrEqual(1);
      expect([0, 1]).toContain(r.outputs.label);
      expect(r.predicted_at.getTime()).toBeGreaterThanOrEqual(r.event_time.getTime());
    }
    const letters = await bus.read(deadStream);
    for (const [payload, reason] of bad) {
      // Letters of the bridge hold the payload as received; the activity's hold the event's fields as JSON.
      const original = typeof payload === 'string' ? payload : JSON.stringify(payload);
      const letter = letters.find((l) => l.payload === original);
      expect(letter, `dead letter of ${original}`).toBeDefined();
      expect(letter!.reason).toMatch(reason);
    }
    const stats = await partitionStats(spec);
    expect(sum(stats, (s) => s.predictionsOut)).toBe(good.length);
    expect(sum(stats, (s) => s.deadLetters)).toBe(2); // wrong type and null feature: found by the activity; the rest by the bridge
    expect(stats.every((s) => s.model?.version === 1 && s.lastFlush !== null && s.lagMs !== null)).toBe(true);
  });
});
