/**
 * The rest of the pipeline in streaming, on the real services (NATS JetStream → bridge →
 * streamingInference on the Temporal dev server → record sink): post-processing steps (the
 * risk-tier example's classNames, topK, rule and user module) into PostgreSQL, a multi-output
 * regression (spend-forecast: a list output) into Redis, and an external-API feature
 * (examples/features/risk.ts against a local merchant-risk API). Every output is compared value
 * by value with the Python reference outputs in examples/data (written by
 * examples/train/train_multi_output.py), or, for the external feature, with ONNX Runtime on the
 * file's own merchant_risk column.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXAMPLE_FEATURES, RISK_MODULE, RISK_TIER_EXPECTED, RISK_TIER_PIPELINE, SPEND_FORECAST_EXPECTED, registerExampleModel, registerMultiOutputExampleModels } from '../../cli/examples';
import type { InferflowConfig } from '../../lib/config/env';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { createLogger } from '../../lib/log';
import { partitionWorkflowId, type StreamPipelineSpec } from '../../lib/messages/stream';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { ModelRegistry } from '../../lib/registry';
import { closeNatsConnections, closePostgresPools, closeRedisClients, sinkDefaultsFrom } from '../../lib/sinks';
import { readRedisRecord } from '../../lib/sinks/redis-records';
import { StreamBridge, createDeadLetterSink, openStreamSource, parseStreamSpec, partitionsOf } from '../../lib/streams';
import { openStore } from '../../lib/storage';
import { referenceScores } from '../helpers/data';
import { tempConfig, uniqueName } from '../helpers/env';
import { startRiskApi, type RiskApi } from '../helpers/risk-api';
import { TEST_POSTGRES_URL, TEST_REDIS_URL } from '../helpers/services';
import { NATS_URL, recordKeys, testJetStream, type TestJetStream } from '../helpers/stream';
import { startWorker, type RunningWorker } from '../helpers/worker';

const TOKEN = 'stream-token-7f3a';
const TIER_NAMES: Record<string, string> = { '0': 'low', '1': 'medium', '2': 'high' };

let config: InferflowConfig;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let bus: TestJetStream;
let pool: pg.Pool;
let redis: Redis;
let api: RiskApi;
const tables: string[] = [];
const redisPrefixes: string[] = [];
const workflowIds: string[] = [];

type Row = Record<string, unknown>;

/** Rows as plain JSON values (DuckDB's BIGINT → number, timestamps → ISO 8601). */
async function rowsOf(sql: string): Promise<Row[]> {
  const rows = await withDuckDB(async (conn) => (await conn.runAndReadAll(sql)).getRowObjectsJS() as Row[]);
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.toISOString() : v])));
}

/** float32 model outputs against Python's float64: within a few float32 ulps. */
const close = (a: number, b: number, rel = 2e-6, abs = 1e-6) => Math.abs(a - b) <= abs + rel * Math.abs(b);

beforeAll(async () => {
  api = await startRiskApi(TOKEN);
  ({ config, cleanup } = await tempConfig({
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    INFERFLOW_TASK_QUEUE: uniqueName('test-stream-steps'),
    INFERFLOW_NATS_URL: NATS_URL,
    INFERFLOW_MODULES: `risk=${RISK_MODULE}`,
    RISK_API_URL: api.url,
    RISK_API_TOKEN: TOKEN,
  }));
  const registry = new ModelRegistry(openStore(config.registry));
  await registerExampleModel(registry);
  await registerMultiOutputExampleModels(registry);
  bus = await testJetStream();
  pool = new pg.Pool({ connectionString: TEST_POSTGRES_URL, max: 2 });
  redis = new Redis(TEST_REDIS_URL);
  w = await startWorker(config);
});

afterAll(async () => {
  for (const id of workflowIds) await w?.client.workflow.getHandle(id).terminate('test over').catch(() => undefined);
  await w?.stop();
  await bus?.close();
  for (const t of tables) await pool?.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(t)}`);
  await pool?.end();
  for (const p of redisPrefixes) {
    const keys = await redis.keys(`${p}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis?.disconnect();
  await api?.close();
  await closeNatsConnections();
  await closePostgresPools();
  await closeRedisClients();
  await cleanup?.();
});

/** A pipeline of the test's own: a JetStream stream of events, one of dead letters; `pipeline` adds model, sink and steps. */
async function natsPipeline(pipeline: Partial<StreamPipelineSpec>): Promise<{ spec: StreamPipelineSpec; subject: string; deadStream: string }> {
  const id = uniqueName('ss').replace(/-/g, '_');
  await bus.stream(`EV_${id}`, [`${id}.events`]);
  await bus.stream(`DL_${id}`, [`${id}.dead`]);
  const spec = parseStreamSpec({
    name: id.replace(/_/g, '-'),
    source: { type: 'nats', stream: `EV_${id}`, subject: `${id}.events`, ackWaitSeconds: 5 },
    key: 'customer_id',
    idField: 'transaction_id',
    timeField: 'event_time',
    partitions: 2,
    batch: { size: 200, maxDelayMs: 100 },
    deadLetter: { type: 'nats', subject: `${id}.dead` },
    ...pipeline,
  });
  for (let p = 0; p < partitionsOf(spec); p++) workflowIds.push(partitionWorkflowId(spec.name, p));
  return { spec, subject: `${id}.events`, deadStream: `DL_${id}` };
}

/** Run the bridge over `events` until `done` holds; returns what `done` last saw. */
async function streamThrough<T>(spec: StreamPipelineSpec, subject: string, events: readonly Row[], done: () => Promise<T>, until: (t: T) => boolean): Promise<void> {
  const source = await openStreamSource(spec, config);
  const abort = new AbortController();
  const bridge = new StreamBridge({ client: w.client, taskQueue: config.temporal.taskQueue, spec, source, deadLetters: createDeadLetterSink(spec.deadLetter, sinkDefaultsFrom(config)), logger: createLogger('warn'), pullWaitMs: 200 });
  const running = bridge.run(abort.signal);
  try {
    await bus.publish(subject, events);
    await expect.poll(async () => until(await done()), { timeout: 90_000, interval: 250 }).toBe(true);
  } finally {
    abort.abort();
    await running;
    await source.close();
  }
}

/** The reference rows with the transactions they were computed on (every column an event carries). */
async function referenceEvents(expectedFile: string): Promise<{ events: Row[]; expected: Map<string, Row> }> {
  const events = await rowsOf(`SELECT t.* FROM read_parquet(${lit(EXAMPLE_FEATURES)}) t SEMI JOIN read_parquet(${lit(expectedFile)}) e USING (transaction_id) ORDER BY transaction_id`);
  const expected = await rowsOf(`SELECT * FROM read_parquet(${lit(expectedFile)})`);
  return { events, expected: new Map(expected.map((e) => [String(e.transaction_id), e])) };
}

type Stored = { key: string; outputs: Record<string, unknown>; attributes: Record<string, unknown> | null; model_name: string; model_version: number; event_time: Date };

async function storedRecords(table: string): Promise<Map<string, Stored>> {
  const rows = await pool.query<Stored>(`SELECT key, outputs, attributes, model_name, model_version, event_time FROM ${pg.escapeIdentifier(table)}`);
  return new Map(rows.rows.map((r) => [r.key, r]));
}

describe('streaming with the rest of the pipeline', () => {
  it('post-processing: the risk-tier spec\'s steps (classNames, topK, rule, risk.action) give Python\'s outputs in the PostgreSQL sink, naming the steps in every record', async () => {
    const steps = (await loadPipelineSpec(RISK_TIER_PIPELINE)).postProcess!;
    const table = `tiers_${uniqueName('t').replace(/-/g, '_')}`;
    tables.push(table);
    const { spec, subject } = await natsPipeline({ model: 'risk-tier@production', postProcess: steps, idColumn: 'transaction_id', sink: { type: 'postgres', table } });
    const { events, expected } = await referenceEvents(RISK_TIER_EXPECTED);
    await streamThrough(spec, subject, events, async () => (await recordKeys(pool, table)).length, (n) => n >= events.length);

    const stored = await storedRecords(table);
    expect(stored.size).toBe(events.length);
    const amounts = new Map(events.map((e) => [String(e.transaction_id), Number(e.amount)]));
    let reviewed = 0;
    const bad: string[] = [];
    for (const [id, e] of expected) {
      const r = stored.get(id);
      const probs = [0, 1, 2].map((c) => ({ name: TIER_NAMES[c]!, p: Number(e[`prob_${c}`]) }));
      const ranked = [...probs].sort((a, b) => b.p - a.p);
      const amount = amounts.get(id)!;
      const label = amount > 2000 ? 'review' : TIER_NAMES[String(e.label)]!;
      if (label === 'review') reviewed++;
      const action = label === 'high' ? 'decline' : label !== 'low' && amount > 500 ? 'hold' : 'approve';
      const o = r?.outputs as { label: string; score: number; top_classes: string[]; top_probabilities: number[]; action: string } | undefined;
      const prob = (name: string) => Number(r?.outputs[`prob_${name}`]);
      const ok =
        o !== undefined &&
        o.label === label &&
        o.action === action &&
        close(o.score, ranked[0]!.p) &&
        probs.every((c) => close(prob(c.name), c.p)) &&
        o.top_classes.join() === ranked.slice(0, 2).map((c) => c.name).join() &&
        ranked.slice(0, 2).every((c, k) => close(o.top_probabilities[k]!, c.p));
      if (!ok) bad.push(`${id}: ${JSON.stringify(o)} vs label ${label}, action ${action}, ${JSON.stringify(ranked)}`);
    }
    expect(bad.slice(0, 5)).toEqual([]);
    expect(reviewed).toBeGreaterThan(0);
    const first = [...stored.values()][0]!;
    expect(first).toMatchObject({ model_name: 'risk-tier', model_version: 1 });
    expect(first.attributes?.post_process).toBe('classNames > topK(2) > rule(amount > 2000 → review) > risk.action');
    expect(first.attributes?.post_process_sha256).toMatch(/^[0-9a-f]{64}$/);
    // The event time is the event's own (timeField), not the bus's.
    const event = events.find((e) => e.transaction_id === first.key)!;
    expect(first.event_time.toISOString()).toBe(new Date(String(event.event_time)).toISOString());
  });

  it('a multi-output model: spend-forecast\'s two targets as a list output in the Redis sink, equal to scikit-learn\'s', async () => {
    const keyPrefix = uniqueName('spend');
    redisPrefixes.push(keyPrefix);
    const { spec, subject } = await natsPipeline({ model: 'spend-forecast@production', sink: { type: 'redis', keyPrefix } });
    const { events, expected } = await referenceEvents(SPEND_FORECAST_EXPECTED);
    await streamThrough(spec, subject, events, async () => (await redis.keys(`${keyPrefix}:*`)).length, (n) => n >= events.length);

    expect(await redis.keys(`${keyPrefix}:*`)).toHaveLength(events.length);
    const bad: string[] = [];
    for (const [id, e] of expected) {
      const r = await readRedisRecord(TEST_REDIS_URL, keyPrefix, id);
      const p = r?.outputs.prediction as number[] | undefined;
      if (!p || p.length !== 2 || !close(p[0]!, Number(e.spend_7d), 1e-5, 1e-3) || !close(p[1]!, Number(e.spend_30d), 1e-5, 1e-3)) bad.push(`${id}: ${JSON.stringify(r?.outputs)} vs [${String(e.spend_7d)}, ${String(e.spend_30d)}]`);
    }
    expect(bad.slice(0, 5)).toEqual([]);
    const one = await readRedisRecord(TEST_REDIS_URL, keyPrefix, [...expected.keys()][0]!);
    expect(Object.keys(one!.outputs)).toEqual(['prediction']);
    expect(one!.model).toMatchObject({ name: 'spend-forecast', version: 1 });
  });

  it('an external-API feature: looked up per event (scores equal ONNX Runtime\'s on the file\'s merchant_risk); an API down for a while is retried, NOT_FOUND and MALFORMED are dead-lettered with the status', async () => {
    api.reset();
    // fuel's lookups fail (503) for a while: three activity attempts' worth of the feature's retries (3 calls per lookup).
    api.behaviour.set('fuel', { kind: 'fail', status: 503, times: 9 });
    api.behaviour.set('casino', { kind: 'malformed', body: '{"risk": "very"}' });
    const table = `risk_${uniqueName('t').replace(/-/g, '_')}`;
    tables.push(table);
    const { spec, subject, deadStream } = await natsPipeline({ model: 'fraud-detector@production', onDemand: [{ name: 'risk.merchantRisk' }], idColumn: 'transaction_id', sink: { type: 'postgres', table } });
    const good = (await rowsOf(`SELECT * EXCLUDE (merchant_risk) FROM read_parquet(${lit(EXAMPLE_FEATURES)}) ORDER BY transaction_id LIMIT 600`));
    const poison = [
      { ...good[0]!, transaction_id: 'unknown-category', merchant_category: 'bowling' },
      { ...good[1]!, transaction_id: 'malformed-answer', merchant_category: 'casino' },
    ];
    const events = [...good.slice(0, 300), ...poison, ...good.slice(300)];
    await streamThrough(spec, subject, events, async () => ({ records: (await recordKeys(pool, table)).length, letters: await bus.count(deadStream) }), (s) => s.records >= good.length && s.letters >= poison.length);

    const stored = await storedRecords(table);
    expect([...stored.keys()].sort()).toEqual(good.map((e) => String(e.transaction_id)).sort());
    const reference = await referenceScores(EXAMPLE_FEATURES);
    const bad = good.flatMap((e) => {
      const id = String(e.transaction_id);
      const o = stored.get(id)!.outputs as { label: number; score: number };
      const want = reference.get(id)!;
      return o.label === want.label && o.score === want.score ? [] : [`${id}: ${JSON.stringify(o)} vs ${JSON.stringify(want)}`];
    });
    expect(bad.slice(0, 5)).toEqual([]);
    expect(good.some((e) => e.merchant_category === 'fuel')).toBe(true);
    expect(api.callsByKey.get('fuel')).toBeGreaterThan(9);

    const letters = await bus.read(deadStream);
    expect(letters.map((l) => l.id).sort()).toEqual(['malformed-answer', 'unknown-category']);
    expect(letters.find((l) => l.id === 'unknown-category')!.reason).toContain('transaction_id=unknown-category: merchant_risk NOT_FOUND');
    expect(letters.find((l) => l.id === 'malformed-answer')!.reason).toContain('transaction_id=malformed-answer: merchant_risk MALFORMED');
    const stats = await Promise.all(Array.from({ length: partitionsOf(spec) }, (_, p) => w.client.workflow.getHandle(partitionWorkflowId(spec.name, p)).query<{ paused: boolean; deadLetters: number }>('stats')));
    expect(stats.every((s) => !s.paused)).toBe(true);
    expect(stats.reduce((a, s) => a + s.deadLetters, 0)).toBe(poison.length);
  });
});
