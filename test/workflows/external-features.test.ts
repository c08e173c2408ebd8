/**
 * batchInference with an external-API feature (examples/features/risk.ts) on a real Temporal
 * server, against a local merchant-risk API: the file has no merchant_risk column, the shards
 * look it up. Output equal to ONNX Runtime's on the file's own merchant_risk; the feature's
 * concurrency limit holds across the shards a worker runs at once and its cache spans them;
 * an API that fails for a while makes shards retry (Transient) and the run completes exactly;
 * a malformed answer fails the run for good, naming the row, the output and the status.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBatchInference } from '../../client';
import { REPO_ROOT } from '../../cli/examples';
import type { InferflowConfig } from '../../lib/config/env';
import { readOutput, referenceScores, writeVariant } from '../helpers/data';
import { exampleRegistry, tempConfig, uniqueName } from '../helpers/env';
import { permanentFailureOf } from '../helpers/failures';
import { startRiskApi, type RiskApi } from '../helpers/risk-api';
import { startWorker, type RunningWorker } from '../helpers/worker';

const TOKEN = 'batch-token-e09b';
const ROWS = 10_000;
/** examples/features/risk.ts's concurrency. */
const RISK_CONCURRENCY = 4;

let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let api: RiskApi;
let withRisk: string;
let noRisk: string;

beforeAll(async () => {
  api = await startRiskApi(TOKEN);
  ({ config, dir, cleanup } = await tempConfig({
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    INFERFLOW_TASK_QUEUE: uniqueName('test-external'),
    INFERFLOW_MODULES: `risk=${path.join(REPO_ROOT, 'examples', 'features', 'risk.ts')}`,
    RISK_API_URL: api.url,
    RISK_API_TOKEN: TOKEN,
  }));
  await exampleRegistry(config);
  withRisk = await writeVariant(dir, 'with-risk.parquet', '*', 'true', ROWS);
  noRisk = await writeVariant(dir, 'no-risk.parquet', '* EXCLUDE (merchant_risk)', 'true', ROWS);
});

afterAll(async () => {
  await w?.stop();
  await api?.close();
  await cleanup?.();
});

/** A worker with fresh resources (an empty lookup cache). */
async function freshWorker(): Promise<void> {
  await w?.stop();
  w = await startWorker(config);
  api.reset();
}

const input = () => ({ model: 'fraud-detector@production', features: noRisk, onDemand: [{ name: 'risk.merchantRisk' }], shardSize: 1_000, maxConcurrency: 6, pipeline: uniqueName('risk-api') });

async function expectExact(location: string): Promise<void> {
  const ref = await referenceScores(withRisk);
  const out = await readOutput(location);
  expect(out).toHaveLength(ROWS);
  for (const r of out) {
    const want = ref.get(r.transaction_id)!;
    expect(r.label).toBe(want.label);
    expect(r.score).toBe(want.score);
  }
}

describe('batchInference with an external-API feature', () => {
  it('looks the feature up in the shards: output exact, one call per category, at most `concurrency` in flight across the worker', async () => {
    await freshWorker();
    for (const c of ['electronics', 'fuel', 'jewelry', 'pharmacy', 'restaurant', 'grocery', 'travel', 'online_gaming']) api.behaviour.set(c, { kind: 'ok', delayMs: 150 });
    const handle = await startBatchInference(w.client, input(), { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-external') });
    const result = await handle.result();
    expect(result.rowsOut).toBe(ROWS);
    await expectExact(result.output.location);
    expect(api.calls).toBe(8);
    expect(api.maxInFlight).toBeGreaterThan(1);
    expect(api.maxInFlight).toBeLessThanOrEqual(RISK_CONCURRENCY);
  });

  it('an API failing for a while: the shards retry (Transient) and the run completes exactly', async () => {
    await freshWorker();
    // examples/features/risk.ts tries 3 times per lookup: the first lookup fails, a later one succeeds.
    api.behaviour.set('travel', { kind: 'fail', status: 503, times: 3 });
    const handle = await startBatchInference(w.client, input(), { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-external-flaky') });
    const result = await handle.result();
    await expectExact(result.output.location);
    expect(api.callsByKey.get('travel')).toBeGreaterThan(3);
  });

  it('a malformed answer fails the run for good, naming the row, the output and MALFORMED', async () => {
    await freshWorker();
    api.behaviour.set('jewelry', { kind: 'malformed', body: '{"risk": null, "note": "x"' });
    const handle = await w.client.workflow.start('batchInference', { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-external-bad'), args: [input()] });
    const failure = await permanentFailureOf(handle);
    expect(failure.type).toBe('InvalidValue');
    expect(failure.message).toMatch(/external-API features gave no value the model could use \(\d+ rows(, first 10)?\): transaction_id=\S+: merchant_risk MALFORMED/);
  });
});
