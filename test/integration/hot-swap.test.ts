/**
 * Hot swap: `inferflow serve` of `fraud-features@production` while `inferflow models alias`
 * moves the alias under a load of concurrent requests (real registry on file://, real Redis
 * online store, real ONNX models): no request fails, both versions answer, a version that does
 * not fit the pipeline is refused and the serving one keeps answering; the swapped-out session is
 * released once its requests (infer, and withPipeline: top-k answers) end.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_MODEL_DIR, FEATURES_MODEL_DIR, FEATURES_PIPELINE, REPO_ROOT, registerFeaturesExampleModel } from '../../cli/examples';
import { serve } from '../../cli/serve';
import { loadConfig } from '../../lib/config/env';
import { materializeView } from '../../lib/features/materialize';
import { openOnlineStore } from '../../lib/features/online';
import { createResources, type Resources } from '../../lib/pipeline/resources';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { modelDeployment } from '../../server/deployment';
import { tempConfig, uniqueName } from '../helpers/env';
import { TEST_REDIS_URL } from '../helpers/services';

const run = promisify(execFile);
const T = '2026-10-13T12:00:00Z';
const keyPrefix = uniqueName('swap');
const POLL_MS = 100;
const saved = { ...process.env };
let dir: string;
let cleanup: () => Promise<void>;
let spec: Awaited<ReturnType<typeof loadPipelineSpec>>;

/** The fraud-features spec served from the test's Redis keys. */
const servedDefinition = () => ({ featureViews: spec.featureViews ?? [], store: { type: 'redis' as const, keyPrefix }, onDemand: spec.onDemand ?? [], idColumn: 'transaction_id' });

/** fraud-features@production, re-resolved every POLL_MS. */
const swapping = (resources: Resources) => modelDeployment({ ref: 'fraud-features@production', definition: servedDefinition(), resources, pollMs: POLL_MS });

/** The same ONNX graph with a doc string appended (protobuf field 6): another artifact, another sha256, the same signature. */
async function variantOf(modelDir: string, into: string, doc: string): Promise<string> {
  const bytes = await fs.readFile(path.join(modelDir, 'model.onnx'));
  const text = Buffer.from(doc, 'utf8');
  const file = path.join(into, `${doc}.onnx`);
  await fs.writeFile(file, Buffer.concat([bytes, Buffer.from([0x32, text.length]), text]));
  return file;
}

async function metadataOf(modelDir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fs.readFile(path.join(modelDir, 'metadata.json'), 'utf8')) as Record<string, unknown>;
}

const body = {
  inputs: [
    { name: 'transaction_id', datatype: 'BYTES', shape: [1], data: ['t-1'] },
    { name: 'customer_id', datatype: 'INT64', shape: [1], data: [17] },
    { name: 'event_timestamp', datatype: 'BYTES', shape: [1], data: [T] },
    { name: 'amount', datatype: 'FP64', shape: [1], data: [120.5] },
    { name: 'merchant_category', datatype: 'BYTES', shape: [1], data: ['travel'] },
    { name: 'lat', datatype: 'FP64', shape: [1], data: [52.5] },
    { name: 'lon', datatype: 'FP64', shape: [1], data: [13.4] },
  ],
  parameters: { as_of: T },
};

/** Requests from `connections` loops until `stop()`: every answer's status and model version. */
function loadLoop(url: string, connections: number) {
  const answers: { status: number; version?: string; error?: string }[] = [];
  let running = true;
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      try {
        const res = await fetch(`${url}/v2/models/fraud-features/infer`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
        const json = (await res.json()) as { model_version?: string; error?: string };
        answers.push({ status: res.status, ...(json.model_version ? { version: json.model_version } : {}), ...(json.error ? { error: json.error } : {}) });
      } catch (err) {
        answers.push({ status: 0, error: String(err) });
      }
    }
  });
  return {
    answers,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  const env = await tempConfig();
  ({ dir, cleanup } = env);
  const registry = new ModelRegistry(openStore(env.config.registry));
  await registerFeaturesExampleModel(registry); // version 1, production
  await registry.register(await variantOf(FEATURES_MODEL_DIR, dir, 'retrained'), { name: 'fraud-features', metadata: await metadataOf(FEATURES_MODEL_DIR) }); // 2
  // Another model's inputs (prepared columns the clients do not send) under the same name: 3.
  await registry.register(path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), { name: 'fraud-features', metadata: { ...(await metadataOf(EXAMPLE_MODEL_DIR)), name: 'fraud-features' } });
  spec = await loadPipelineSpec(FEATURES_PIPELINE);
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: dir });
  await materializeView({ view: spec.featureViews![0], store, end: new Date(Date.parse(T)) });
  await store.close();
  process.env.INFERFLOW_DATA_DIR = dir;
  process.env.INFERFLOW_LOG_LEVEL = 'warn';
  process.env.INFERFLOW_REDIS_URL = TEST_REDIS_URL;
});

afterAll(async () => {
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: '/tmp' });
  await store.deleteView('customer_stats');
  await store.close();
  process.env = saved;
  await cleanup?.();
});

const alias = (version: number) =>
  run(process.execPath, [path.join(REPO_ROOT, 'bin/inferflow.js'), 'models', 'alias', 'fraud-features', 'production', String(version)], { env: { ...process.env, INFERFLOW_DATA_DIR: dir }, cwd: REPO_ROOT });

describe('hot swap (inferflow serve of name@production while `models alias` moves it)', () => {
  it('swaps under load with no failed request, names the answering version, and refuses a version that does not fit', async () => {
    await alias(1);
    const server = await serve(FEATURES_PIPELINE, { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix }, pollMs: POLL_MS });
    try {
      const load = loadLoop(server.url, 8);
      try {
        await until('answers from version 1', () => load.answers.filter((a) => a.version === '1').length >= 50);
        expect((await alias(2)).stdout).toContain('fraud-features@production → 2');
        await until('answers from version 2', () => load.answers.filter((a) => a.version === '2').length >= 50);
        const meta = (await (await fetch(`${server.url}/v2/models/fraud-features`)).json()) as { versions: string[]; parameters: { sha256: string } };
        expect(meta.versions).toEqual(['2']);
        expect(meta.parameters.sha256).toBe(server.deployments[0]!.current!.model.sha256);
        expect((await alias(3)).stdout).toContain('fraud-features@production → 3');
        await until('the refused swap', () => server.deployments[0]!.counters.refusedSwaps === 1);
        const afterRefusal = load.answers.length;
        await until('answers after the refusal', () => load.answers.length >= afterRefusal + 50);
        await load.stop();
        const failed = load.answers.filter((a) => a.status !== 200);
        expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
        expect(new Set(load.answers.map((a) => a.version))).toEqual(new Set(['1', '2']));
        expect(load.answers.slice(afterRefusal).every((a) => a.version === '2')).toBe(true);
        // Once version 2 answered, version 1 never did again: the switch is one step.
        const firstTwo = load.answers.findIndex((a) => a.version === '2');
        expect(load.answers.slice(firstTwo + 8).some((a) => a.version === '1')).toBe(false);
      } finally {
        await load.stop();
      }
      const c = server.deployments[0]!.counters;
      expect(c).toMatchObject({ version: 2, swaps: 1, refusedSwaps: 1 });
      expect(c.lastRefusal).toContain('model swap refused: fraud-features:3 does not fit the pipeline');
      expect(c.lastRefusal).toContain('request field customer_avg_amount_30d (numeric) is not read by the serving version');
      // Moving the alias back to a good version swaps again.
      await alias(1);
      await until('the swap back to version 1', () => server.deployments[0]!.counters.version === 1);
      const res = await fetch(`${server.url}/v2/models/fraud-features/infer`, { method: 'POST', body: JSON.stringify(body) });
      expect(((await res.json()) as { model_version: string }).model_version).toBe('1');
    } finally {
      await server.shutdown();
    }
  });

  it('is not ready until the first version loads, then releases a swapped-out session once its requests end', async () => {
    await alias(1);
    const resources = createResources(loadConfig());
    const deployment = swapping(resources);
    try {
      expect(deployment.ready).toBe(false);
      const early = await deployment.infer({ requests: [{ customer_id: 17 }] }).catch((e: unknown) => e);
      expect(early).toMatchObject({ type: 'Transient' });
      await deployment.loaded;
      expect(deployment.ready).toBe(true);
      const v1 = deployment.current!.model;
      expect([...resources.heldSessions]).toEqual([[v1.sha256, 1]]);
      expect(resources.sessions.size).toBe(1);
      const request = { transaction_id: 't-1', customer_id: 17, event_timestamp: T, amount: 120.5, merchant_category: 'travel', lat: 52.5, lon: 13.4 };
      const inflight = deployment.infer({ requests: [request], now: new Date(T) });
      await alias(2);
      await until('version 2', () => deployment.counters.version === 2);
      expect((await inflight).model.version).toBe(1);
      const v2 = deployment.current!.model;
      expect(v2.sha256).not.toBe(v1.sha256);
      expect((await deployment.infer({ requests: [request], now: new Date(T) })).model.version).toBe(2);
      await until('the old session released', () => resources.sessions.size === 1);
      expect([...resources.heldSessions]).toEqual([[v2.sha256, 1]]);
    } finally {
      await deployment.close();
      await resources.close();
    }
    expect(resources.heldSessions.size).toBe(0);
  });

  it('withPipeline (top-k answers) holds the version it started on across a swap, like infer', async () => {
    await alias(1);
    const resources = createResources(loadConfig());
    const deployment = swapping(resources);
    try {
      await deployment.loaded;
      let sessionsWhileHeld = 0;
      const version = await deployment.withPipeline(async (p) => {
        await alias(2);
        await until('version 2', () => deployment.counters.version === 2);
        sessionsWhileHeld = resources.sessions.size;
        return p.model.version;
      });
      expect(version).toBe(1);
      expect(sessionsWhileHeld).toBe(2); // version 1's session stays until the held call ends
      await until('the old session released', () => resources.sessions.size === 1);
    } finally {
      await deployment.close();
      await resources.close();
    }
  });
});

describe('dynamic batching through a deployment (real pipeline, Redis, ONNX Runtime)', () => {
  it('coalesces concurrent requests into fewer calls with the scores each gets alone; a bad request fails alone', async () => {
    await alias(1);
    const resources = createResources(loadConfig());
    const definition = servedDefinition();
    const batched = modelDeployment({ ref: 'fraud-features@production', definition, resources, pollMs: 0, batching: { enabled: true, maxBatchRows: 64, maxQueueDelayUs: 2_000 } });
    const alone = modelDeployment({ ref: 'fraud-features@production', definition, resources, pollMs: 0 });
    try {
      await Promise.all([batched.loaded, alone.loaded]);
      const now = new Date(T);
      const rows = Array.from({ length: 40 }, (_, i) => ({ transaction_id: `t-${i}`, customer_id: 1 + (i % 20), event_timestamp: T, amount: 10 + i * 7.5, merchant_category: ['travel', 'grocery', 'fuel'][i % 3]!, lat: 52.5, lon: 13.4 }));
      const good = await Promise.all(rows.map((r) => batched.infer({ requests: [r], now })));
      expect(good.map((g) => g.predictions.rows)).toEqual(rows.map(() => 1));
      const first = { ...batched.counters.batching };
      expect(first).toMatchObject({ requests: 40, fallbacks: 0 });
      expect(first.calls).toBeLessThanOrEqual(3); // the first request alone, the rest coalesced behind it
      expect(first.maxRows).toBeGreaterThan(1);
      const inputs = rows.map((r, i) => ({ requests: i === 7 ? [{ ...r, amount: null }] : i === 9 ? [{ ...r, customer_id: 'x'.repeat(3), amount: 'abc' }] : [r], now }));
      const got = await Promise.allSettled(inputs.map((input) => batched.infer(input)));
      const want = await Promise.allSettled(inputs.map((input) => alone.infer(input)));
      expect(got.map((g) => g.status)).toEqual(want.map((w) => w.status));
      expect(got[7]).toMatchObject({ status: 'rejected', reason: { type: 'InvalidValue' } });
      expect(((got[7] as PromiseRejectedResult).reason as Error).message).toContain('transaction_id=t-7: amount = null');
      expect(got[9]).toMatchObject({ status: 'rejected', reason: { type: 'InvalidInput' } });
      got.forEach((g, i) => {
        if (g.status !== 'fulfilled') return;
        const w = (want[i] as PromiseFulfilledResult<Awaited<ReturnType<typeof alone.infer>>>).value;
        expect(g.value.predictions.rows).toBe(1);
        expect(Array.from(g.value.predictions.label!)).toEqual(Array.from(w.predictions.label!));
        expect(Math.abs(g.value.predictions.score![0]! - w.predictions.score![0]!)).toBeLessThan(1e-6);
        expect(g.value.statuses).toEqual(w.statuses);
      });
      const b = batched.counters.batching;
      expect(b.requests - first.requests).toBe(39); // the InvalidInput one never joined a batch
      expect(b.fallbacks).toBe(1); // the batch holding t-7 was run again request by request
    } finally {
      await batched.close();
      await alone.close();
      await resources.close();
    }
  });
});
