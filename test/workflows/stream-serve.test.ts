/**
 * Feature freshness through online serving: a push stream pipeline (NATS JetStream → bridge →
 * streamingInference → pushStreamFeatures on the Temporal dev server) routes customer_stats rows
 * into the Redis online store that `inferflow serve` (the server factory) reads, and serve
 * answers with the pushed values seconds later. The fixture's store holds October snapshots,
 * STALE when judged now; once their values are pushed again with the current time, serve reads
 * them PRESENT and scores every request as Python's training code did.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FEATURES_PIPELINE } from '../../cli/examples';
import { serve } from '../../cli/serve';
import type { InferflowConfig } from '../../lib/config/env';
import { getOnlineFeatures, openOnlineStore } from '../../lib/features/online';
import { createLogger } from '../../lib/log';
import { partitionWorkflowId } from '../../lib/messages/stream';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { closeNatsConnections, sinkDefaultsFrom } from '../../lib/sinks';
import { StreamBridge, createDeadLetterSink, openStreamSource, parseStreamSpec, partitionsOf } from '../../lib/streams';
import { tempConfig, uniqueName } from '../helpers/env';
import { DAY, T, serveFixture, v2Body, type ServeFixture, type ServeRequest } from '../helpers/serve-fixture';
import { TEST_REDIS_URL } from '../helpers/services';
import { NATS_URL, testJetStream, type TestJetStream } from '../helpers/stream';
import { startWorker, type RunningWorker } from '../helpers/worker';

const STATUS = 'customer_stats__avg_amount_30d';

let fx: ServeFixture;
let server: Awaited<ReturnType<typeof serve>>;
let config: InferflowConfig;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let bus: TestJetStream;
const workflowIds: string[] = [];

beforeAll(async () => {
  fx = await serveFixture();
  server = await serve(FEATURES_PIPELINE, { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix: fx.keyPrefix } });
  ({ config, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-stream-serve'), INFERFLOW_NATS_URL: NATS_URL }));
  bus = await testJetStream();
  w = await startWorker(config);
});

afterAll(async () => {
  for (const id of workflowIds) await w?.client.workflow.getHandle(id).terminate('test over').catch(() => undefined);
  await w?.stop();
  await bus?.close();
  await server?.shutdown();
  await closeNatsConnections();
  await cleanup?.();
  await fx?.cleanup();
});

/** serve's answer for each request on its own, judged now (no as_of): score and the view's status. */
async function answers(rows: readonly ServeRequest[]): Promise<{ score: number; status: string }[]> {
  const res = await fetch(`${server.url}/v2/models/fraud-features/infer`, { method: 'POST', body: JSON.stringify(v2Body(rows)), headers: { 'content-type': 'application/json' } });
  const json = (await res.json()) as { outputs: { name: string; data: number[] }[]; parameters: { feature_status: Record<string, string>[] } };
  expect(res.status, JSON.stringify(json)).toBe(200);
  const scores = json.outputs.find((o) => o.name === 'score')!.data;
  return scores.map((score, i) => ({ score, status: json.parameters.feature_status[i]![STATUS]! }));
}

describe('feature freshness through serve', () => {
  it('rows pushed over JetStream are served PRESENT seconds later, and the scores are Python\'s on those values', async () => {
    const view = (await loadPipelineSpec(FEATURES_PIPELINE)).featureViews![0]!;
    const requests = fx.requests;
    const customers = [...new Set(requests.map((r) => r.customer_id))];

    // The store's values for the requests' customers as materialised (up to the end of day T).
    const store = openOnlineStore({ type: 'redis', keyPrefix: fx.keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: fx.dir });
    const stored = await getOnlineFeatures(store, view, customers, { now: new Date(T + DAY) });
    await store.close();
    const features = view.features.map((f) => f.name);

    const before = await answers(requests);
    expect(before.every((a) => a.status === 'STALE')).toBe(true);
    // Without fresh rows the scores are not Python's (the stale values are not used): the push is what makes them so below.
    expect(requests.filter((r, i) => Math.abs(before[i]!.score - fx.expected.get(r.transaction_id)!.score) > 1e-6).length).toBeGreaterThan(0);

    const id = uniqueName('fs').replace(/-/g, '_');
    await bus.stream(`EV_${id}`, [`${id}.rows`]);
    await bus.stream(`DL_${id}`, [`${id}.dead`]);
    const spec = parseStreamSpec({
      name: id.replace(/_/g, '-'),
      source: { type: 'nats', stream: `EV_${id}`, subject: `${id}.rows`, ackWaitSeconds: 5 },
      key: 'customer_id',
      timeField: 'event_timestamp',
      partitions: 2,
      batch: { size: 50, maxDelayMs: 50 },
      push: { featureView: view },
      store: { type: 'redis', keyPrefix: fx.keyPrefix },
      deadLetter: { type: 'nats', subject: `${id}.dead` },
    });
    for (let p = 0; p < partitionsOf(spec); p++) workflowIds.push(partitionWorkflowId(spec.name, p));
    const now = new Date().toISOString();
    const rows = stored.map((v, i) => ({
      customer_id: customers[i]!,
      event_timestamp: now,
      ...Object.fromEntries(features.map((f) => {
        const s = v.features[f]!;
        expect(['PRESENT', 'NULL'], `customer ${customers[i]} ${f}`).toContain(s.status);
        return [f, s.status === 'NULL' ? null : Number(s.value)];
      })),
    }));

    const source = await openStreamSource(spec, config);
    const abort = new AbortController();
    const bridge = new StreamBridge({ client: w.client, taskQueue: config.temporal.taskQueue, spec, source, deadLetters: createDeadLetterSink(spec.deadLetter, sinkDefaultsFrom(config)), logger: createLogger('warn'), pullWaitMs: 200 });
    const running = bridge.run(abort.signal);
    try {
      await bus.publish(`${id}.rows`, rows);
      await expect.poll(async () => (await answers(requests)).every((a) => a.status === 'PRESENT'), { timeout: 30_000, interval: 200 }).toBe(true);
    } finally {
      abort.abort();
      await running;
      await source.close();
    }

    const after = await answers(requests);
    const bad = requests.flatMap((r, i) => {
      const want = fx.expected.get(r.transaction_id)!.score;
      return Math.abs(after[i]!.score - want) < 1e-6 ? [] : [`${r.transaction_id}: ${after[i]!.score} vs ${want}`];
    });
    expect(bad).toEqual([]);
  });
});
