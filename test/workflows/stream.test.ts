/**
 * Streaming inference end to end on the real services: events published to NATS JetStream (or
 * XADDed to a Redis Stream) → the bridge → streamingInference workflows on the Temporal dev
 * server → fraud-detector predictions in a PostgreSQL record table; poison events in the
 * dead-letter stream with their reason. Ids are compared: every good event has exactly one
 * prediction, every bad one exactly one dead letter.
 */
import { Client } from '@temporalio/client';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { getOnlineFeatures } from '../../lib/features/online';
import { partitionWorkflowId, type StreamPipelineSpec, type StreamStats } from '../../lib/messages/stream';
import { parseStreamSpec, partitionsOf } from '../../lib/streams';
import { REPO_ROOT, uniqueName } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { TEST_REDIS_URL } from '../helpers/services';
import { recordKeys, stopProcess, streamFixture, sumStats as sum, transactionEvents } from '../helpers/stream';

const fx = streamFixture({ taskQueuePrefix: 'test-stream', worker: true });

describe('streamingInference (NATS JetStream → Temporal → PostgreSQL)', () => {
  it('predicts every event exactly once and dead-letters each kind of bad input with its reason', async () => {
    const { spec, subject, deadStream, table } = await fx.natsPipeline();
    const good = transactionEvents(1_000, 'ok');
    const bad: [string | Record<string, unknown>, RegExp][] = [
      ['{"transaction_id": "bad-json", "customer_id": 1, ', /not valid JSON/],
      ['{"transaction_id": "nan", "customer_id": 2, "amount": NaN}', /not valid JSON/],
      [{ ...good[0], transaction_id: 'no-key', customer_id: undefined }, /key field customer_id is missing/],
      [{ ...good[0], transaction_id: 'wrong-type', amount: 'lots' }, /amount: expected a number/],
      [{ ...good[0], transaction_id: 'null-feature', merchant_risk: null }, /merchant_risk/],
      ['[1, 2, 3]', /must be a JSON object/],
    ];
    const bridge = await fx.runBridge(spec);
    try {
      await fx.bus.publish(subject, [...good.slice(0, 500), ...bad.map(([p]) => p), ...good.slice(500)]);
      await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 60_000, interval: 250 }).toBe(good.length);
      await expect.poll(() => fx.bus.count(deadStream), { timeout: 30_000, interval: 250 }).toBe(bad.length);
    } finally {
      await bridge.stop();
    }
    const keys = await recordKeys(fx.pool, table);
    expect(keys.sort()).toEqual(good.map((e) => e.transaction_id as string).sort());
    const rows = await fx.pool.query<{ entity: string; outputs: { label: number; score: number }; model_name: string; model_version: number; event_time: Date; predicted_at: Date }>(
      `SELECT entity, outputs, model_name, model_version, event_time, predicted_at FROM ${pg.escapeIdentifier(table)} LIMIT 5`,
    );
    for (const r of rows.rows) {
      expect(r).toMatchObject({ model_name: 'fraud-detector', model_version: 1 });
      expect(r.outputs.score).toBeGreaterThanOrEqual(0);
      expect(r.outputs.score).toBeLessThanOrEqual(1);
      expect([0, 1]).toContain(r.outputs.label);
      expect(r.predicted_at.getTime()).toBeGreaterThanOrEqual(r.event_time.getTime());
    }
    const letters = await fx.bus.read(deadStream);
    for (const [payload, reason] of bad) {
      // Letters of the bridge hold the payload as received; the activity's hold the event's fields as JSON.
      const original = typeof payload === 'string' ? payload : JSON.stringify(payload);
      const letter = letters.find((l) => l.payload === original);
      expect(letter, `dead letter of ${original}`).toBeDefined();
      expect(letter!.reason).toMatch(reason);
    }
    const stats = await fx.partitionStats(spec);
    expect(sum(stats, (s) => s.predictionsOut)).toBe(good.length);
    expect(sum(stats, (s) => s.deadLetters)).toBe(2); // wrong type and null feature: found by the activity; the rest by the bridge
    expect(stats.every((s) => s.model?.version === 1 && s.lastFlush !== null && s.lagMs !== null)).toBe(true);
  });

  it('acknowledges nothing while Temporal refuses the signals; a bridge that can signal then predicts every event', async () => {
    const { spec, subject, stream, table } = await fx.natsPipeline();
    const events = transactionEvents(50, 'refused');
    await fx.bus.publish(subject, events);
    // A namespace the server does not have: every signal-with-start fails, the bridge retries.
    const refusing = await fx.runBridge(spec, { client: new Client({ connection: fx.client.connection, namespace: uniqueName('no-such-namespace') }) });
    const consumer = () => fx.bus.jsm.consumers.info(stream, `inferflow-${spec.name}`);
    await expect.poll(async () => (await consumer()).num_ack_pending, { timeout: 15_000 }).toBe(50);
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await consumer()).ack_floor.stream_seq).toBe(0);
    await refusing.stop();
    expect((await consumer()).ack_floor.stream_seq).toBe(0);
    const bridge = await fx.runBridge(spec);
    try {
      await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 60_000, interval: 250 }).toBe(50);
      await expect.poll(async () => (await consumer()).ack_floor.stream_seq, { timeout: 30_000 }).toBe(50);
    } finally {
      await bridge.stop();
    }
  });

  it('pause holds the predictions, resume flushes them; partitions continue as new and keep their counters', async () => {
    const { spec, subject, table } = await fx.natsPipeline({ partitions: 2, maxEventsPerRun: 150, batch: { size: 50, maxDelayMs: 50 } });
    const events = transactionEvents(900, 'pr', 11);
    const bridge = await fx.runBridge(spec);
    try {
      await fx.bus.publish(subject, events.slice(0, 300));
      await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 60_000, interval: 250 }).toBe(300);
      const specFile = await fx.specFile(spec);
      expect(await fx.cli(['stream', 'pause', specFile])).toMatch(new RegExp(`${partitionWorkflowId(spec.name, 1)}: paused`));
      await expect.poll(async () => (await fx.partitionStats(spec)).every((s) => s.paused), { timeout: 10_000 }).toBe(true);
      await fx.bus.publish(subject, events.slice(300));
      await expect.poll(async () => sum(await fx.partitionStats(spec), (s) => s.buffered), { timeout: 30_000, interval: 250 }).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await recordKeys(fx.pool, table)).length).toBe(300);
      const status = JSON.parse(await fx.cli(['stream', 'status', specFile, '--json'])) as (StreamStats & { workflowId: string; state: string })[];
      expect(status.map((r) => [r.workflowId, r.state, r.paused])).toEqual([0, 1].map((p) => [partitionWorkflowId(spec.name, p), 'running', true]));
      expect(status.reduce((a, r) => a + r.predictionsOut, 0)).toBe(300);
      await fx.cli(['stream', 'resume', specFile]);
      await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 60_000, interval: 250 }).toBe(900);
    } finally {
      await bridge.stop();
    }
    expect((await recordKeys(fx.pool, table)).sort()).toEqual(events.map((e) => e.transaction_id as string).sort());
    const stats = await fx.partitionStats(spec);
    expect(sum(stats, (s) => s.eventsIn)).toBe(900);
    expect(sum(stats, (s) => s.predictionsOut)).toBe(900);
    expect(stats.every((s) => !s.paused && s.buffered === 0)).toBe(true);
    // 900 events over 2 partitions at 150 per run: every partition continued as new, counters carried.
    expect(stats.every((s) => s.runs >= 2)).toBe(true);
    await recordHistory(inject('temporalCli'), inject('temporalAddress'), partitionWorkflowId(spec.name, 0), 'streamingInference.json');
  });
});

/** Kill −9 the bridge once `killAt` predictions are in, start it again: every event exactly one prediction. */
async function crashAndRecover(spec: StreamPipelineSpec, table: string, publish: () => Promise<void>, ids: string[], killAt: number): Promise<void> {
  const { child: first } = await fx.bridgeProcess(spec);
  await publish();
  await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 120_000, interval: 100 }).toBeGreaterThanOrEqual(killAt);
  await stopProcess(first, 'SIGKILL');
  const atKill = (await recordKeys(fx.pool, table)).length;
  expect(atKill).toBeLessThan(ids.length);
  const { child: second } = await fx.bridgeProcess(spec);
  try {
    await expect.poll(async () => (await recordKeys(fx.pool, table)).length, { timeout: 240_000, interval: 500 }).toBe(ids.length);
    // Let redelivered events that were already predicted reach the partitions (counted as duplicates, not stored again).
    await new Promise((r) => setTimeout(r, 1_000));
  } finally {
    await stopProcess(second);
  }
  const keys = await recordKeys(fx.pool, table);
  expect(keys.length).toBe(ids.length);
  expect(keys.sort()).toEqual([...ids].sort());
  const stats = await fx.partitionStats(spec);
  expect(sum(stats, (s) => s.predictionsOut)).toBe(ids.length);
  expect(sum(stats, (s) => s.eventsIn)).toBe(ids.length + sum(stats, (s) => s.duplicates) + sum(stats, (s) => s.buffered));
}

describe('kill -9 of the bridge mid-stream', () => {
  it('JetStream: 20,000 events over 4 partitions, every event exactly one prediction after a restart', async () => {
    const { spec, subject, table } = await fx.natsPipeline({ partitions: 4, batch: { size: 200, maxDelayMs: 100 } });
    const events = transactionEvents(20_000, 'kn', 3, 1_000);
    await crashAndRecover(spec, table, () => fx.bus.publish(subject, events), events.map((e) => e.transaction_id as string), 4_000);
  });

  it('Redis Streams: a restarted bridge takes its pending entries back; every event exactly one prediction', async () => {
    const id = uniqueName('rs').replace(/-/g, '_');
    const stream = `inferflow-test:${id}:events`;
    fx.tables.push(`scores_${id}`);
    const spec = parseStreamSpec({
      name: id.replace(/_/g, '-'),
      source: { type: 'redis', stream },
      key: 'customer_id',
      idField: 'transaction_id',
      partitions: 3,
      batch: { size: 200, maxDelayMs: 100 },
      model: 'fraud-detector@production',
      sink: { type: 'postgres', table: `scores_${id}` },
      deadLetter: { type: 'redis', stream: `inferflow-test:${id}:dead` },
    });
    for (let p = 0; p < 3; p++) fx.workflowIds.push(partitionWorkflowId(spec.name, p));
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const events = transactionEvents(10_000, 'rk', 5, 500);
      const publish = async () => {
        for (let i = 0; i < events.length; i += 1_000) {
          const p = redis.pipeline();
          for (const e of events.slice(i, i + 1_000)) p.xadd(stream, '*', 'data', JSON.stringify(e));
          await p.exec();
        }
        await redis.xadd(stream, '*', 'data', '{"transaction_id": "rk-bad"');
      };
      await crashAndRecover(spec, `scores_${id}`, publish, events.map((e) => e.transaction_id as string), 2_000);
      await expect.poll(() => redis.xlen(`inferflow-test:${id}:dead`), { timeout: 10_000 }).toBe(1);
      const pending = (await redis.xpending(stream, `inferflow-${spec.name}`)) as [number, ...unknown[]];
      expect(pending[0]).toBe(0);
    } finally {
      const keys = await redis.keys(`inferflow-test:${id}:*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    }
  });
});

describe('feature freshness: a push pipeline routes feature rows into the online store', () => {
  it('pushed rows are read back from the online store seconds later, PRESENT with the pushed values; bad rows dead-lettered', async () => {
    const id = uniqueName('fp').replace(/-/g, '_');
    const events = `EV_${id}`;
    const deadStream = `DL_${id}`;
    await fx.bus.stream(events, [`${id}.events`]);
    await fx.bus.stream(deadStream, [`${id}.dead`]);
    const view = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'examples', 'features', 'customer_stats.json'), 'utf8')) as Record<string, unknown>;
    const featureView = { ...view, name: `customer_stats_${id}`, source: { type: 'file', path: path.join(REPO_ROOT, 'examples', 'data', 'customer_stats.parquet') } };
    const spec = parseStreamSpec({
      name: id.replace(/_/g, '-'),
      source: { type: 'nats', stream: events, subject: `${id}.events`, ackWaitSeconds: 3 },
      key: 'customer_id',
      idField: 'row_id',
      timeField: 'event_timestamp',
      partitions: 2,
      batch: { size: 50, maxDelayMs: 50 },
      push: { featureView },
      deadLetter: { type: 'nats', subject: `${id}.dead` },
    });
    for (let p = 0; p < partitionsOf(spec); p++) fx.workflowIds.push(partitionWorkflowId(spec.name, p));
    const at = (s: number) => new Date(Date.now() - 60_000 + s * 1_000).toISOString();
    const row = (customer: number, n: number, s: number) => ({ row_id: `r-${customer}-${s}`, customer_id: customer, event_timestamp: at(s), avg_amount_30d: customer + n / 10, txn_count_7d: n, home_lat: 47.5, home_lon: 8.5 });
    const rows = [...Array.from({ length: 20 }, (_, c) => row(c, 1, 0)), ...Array.from({ length: 20 }, (_, c) => row(c, 2, 5)), { ...row(99, 1, 0), txn_count_7d: 'many' }];
    const bridge = await fx.runBridge(spec);
    try {
      await fx.bus.publish(`${id}.events`, rows);
      await expect.poll(async () => sum(await fx.partitionStats(spec), (s) => s.predictionsOut + s.duplicates + s.deadLetters), { timeout: 60_000, interval: 250 }).toBe(rows.length);
    } finally {
      await bridge.stop();
    }
    const vectors = await getOnlineFeatures(fx.worker.resources.onlineStore(), featureView, Array.from({ length: 20 }, (_, c) => c));
    for (const [c, v] of vectors.entries()) {
      expect(v.features.avg_amount_30d).toMatchObject({ status: 'PRESENT', value: c + 0.2 });
      expect(v.features.txn_count_7d).toMatchObject({ status: 'PRESENT' });
      expect(Number(v.features.txn_count_7d?.value)).toBe(2);
    }
    const stats = await fx.partitionStats(spec);
    expect(sum(stats, (s) => s.predictionsOut)).toBe(40);
    expect(sum(stats, (s) => s.deadLetters)).toBe(1);
    expect(stats.every((s) => s.model === null && s.lastError === null)).toBe(true);
    const letters = await fx.bus.read(deadStream);
    expect(letters).toHaveLength(1);
    expect(letters[0]!.reason).toMatch(/txn_count_7d/);
  });

  it('refuses a spec with both model and push, or neither, naming the field', () => {
    const base = { name: 'x', source: { type: 'nats', stream: 'S' }, key: 'customer_id', deadLetter: { type: 'nats', subject: 'd' } };
    expect(() => parseStreamSpec(base)).toThrow(/model: required, a model reference \(or push/);
    expect(() => parseStreamSpec({ ...base, model: 'm', push: { featureView: { name: 'v', entities: ['customer_id'], timestampField: 't', source: { type: 'file', path: '/x.parquet' }, features: [{ name: 'a', dtype: 'float64' }] } } })).toThrow(/push: either model or push, not both/);
    expect(() => parseStreamSpec({ ...base, model: 'm' })).toThrow(/sink: required with model/);
  });
});
