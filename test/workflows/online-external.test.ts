/**
 * onlineInference (durable `predict` Updates on a real Temporal dev server) with an external-API
 * feature against a slow local API, and with a user post-processor that returns NaN: the lookup
 * gets the request's time budget (`timeoutMs`), so the answer carries a TIMEOUT status within it
 * (or, for a model that cannot impute the feature, an error naming the row and TIMEOUT) instead
 * of an activity timeout; a NaN output fails the Update naming the step, the output and the row
 * instead of answering null.
 */
import path from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { predictDurably, startOnlineDeployment } from '../../client/online';
import { REPO_ROOT } from '../../cli/examples';
import type { InferflowConfig } from '../../lib/config/env';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import type { OnlineInferenceInput } from '../../lib/messages/online';
import { FEATURE_COLUMNS, referenceScores, writeVariant } from '../helpers/data';
import { exampleRegistry, tempConfig, uniqueName } from '../helpers/env';
import { IMPUTED_RISK, registerImputedFraud, startRiskApi, type RiskApi } from '../helpers/risk-api';
import { startWorker, type RunningWorker } from '../helpers/worker';

const TOKEN = 'online-token-5c1d';
/** The category the slow API answers late for. */
const SLOW = 'travel';
let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let api: RiskApi;

beforeAll(async () => {
  api = await startRiskApi(TOKEN);
  ({ config, dir, cleanup } = await tempConfig({
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    INFERFLOW_TASK_QUEUE: uniqueName('test-online-external'),
    INFERFLOW_MODULES: `patient=${path.join(REPO_ROOT, 'test', 'fixtures', 'on-demand', 'patient-risk.ts')},bad=${path.join(REPO_ROOT, 'test', 'fixtures', 'post-process', 'bad.ts')}`,
    RISK_API_URL: api.url,
    RISK_API_TOKEN: TOKEN,
  }));
  await registerImputedFraud(await exampleRegistry(config));
  w = await startWorker(config);
});

afterAll(async () => {
  await w?.stop();
  await api?.close();
  await cleanup?.();
});

/** The first example row matching `where`, as a request (every model column but those in `without`) and as a one-row file. */
async function exampleRow(name: string, where: string, without: string[] = []): Promise<{ request: Record<string, unknown>; file: string }> {
  const file = await writeVariant(dir, `${name}.parquet`, '*', where, 1);
  const request = await withDuckDB(async (conn) => {
    const row = (await conn.runAndReadAll(`SELECT * FROM read_parquet(${lit(file)})`)).getRowObjectsJS()[0]!;
    const fields = ['transaction_id', 'merchant_category', ...FEATURE_COLUMNS.filter((c) => !without.includes(c))];
    return Object.fromEntries(fields.map((f) => [f, f === 'transaction_id' || f === 'merchant_category' ? toText(row[f]) : Number(row[f])]));
  });
  return { request, file };
}

function deploy(input: Omit<OnlineInferenceInput, 'idColumn'>) {
  return startOnlineDeployment(w.client, { ...input, idColumn: 'transaction_id' }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-online-external') });
}

function causeOf(err: unknown): ApplicationFailure {
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  const cause = (err as WorkflowUpdateFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

describe('onlineInference with an external-API feature and a user post-processor', () => {
  it("gives the lookups the request's time budget: a slow API answers TIMEOUT within it, imputed or named in the error", async () => {
    api.reset();
    // Later than the feature's own 8 s timeout: without the request's budget the lookup outlives the activity's 10 s.
    api.behaviour.set(SLOW, { kind: 'slow', delayMs: 9_000 });
    const { request } = await exampleRow('slow', `merchant_category = ${lit(SLOW)}`, ['merchant_risk']);
    const imputedFile = await writeVariant(dir, 'slow-imputed.parquet', `* REPLACE (${IMPUTED_RISK} AS merchant_risk)`, `transaction_id = ${lit(String(request.transaction_id))}`, 1);
    const want = (await referenceScores(imputedFile)).get(String(request.transaction_id))!;

    const imputing = await deploy({ model: 'fraud-imputed@production', onDemand: [{ name: 'patient.merchantRisk' }] });
    try {
      const r = await predictDurably(imputing, { rows: [request], timeoutMs: 1_000, requestId: 'slow-imputed' });
      expect(r.featureStatus[0]).toMatchObject({ merchant_risk: 'TIMEOUT' });
      expect(r.label).toEqual([want.label]);
      expect(r.score).toEqual([want.score]);
      expect(api.callsByKey.get(SLOW)).toBe(1);
    } finally {
      await imputing.terminate();
    }

    const plain = await deploy({ model: 'fraud-detector@production', onDemand: [{ name: 'patient.merchantRisk' }] });
    try {
      const cause = causeOf(await predictDurably(plain, { rows: [request], timeoutMs: 1_000, requestId: 'slow-plain' }).catch((e: unknown) => e));
      expect(cause.message).toContain(`transaction_id=${String(request.transaction_id)}: merchant_risk TIMEOUT`);
      expect(api.callsByKey.get(SLOW)).toBe(2);
    } finally {
      await plain.terminate();
    }
  }, 60_000);

  it('fails an Update whose post-processor returns NaN, naming the step, the output and the row, instead of answering null', async () => {
    const { request, file } = await exampleRow('low-score', `merchant_category = 'grocery' AND amount < customer_avg_amount_30d`);
    const score = (await referenceScores(file)).get(String(request.transaction_id))!.score;
    expect(score).toBeLessThan(0.5); // log(score - 0.5) is NaN
    const handle = await deploy({ model: 'fraud-detector@production', postProcess: [{ type: 'module', name: 'bad.notFinite' }] });
    try {
      const cause = causeOf(await predictDurably(handle, { rows: [request], requestId: 'nan' }).catch((e: unknown) => e));
      expect(cause.type).toBe('InvalidValue');
      expect(cause.message).toContain(`postProcess[0] (bad.notFinite) returned non-finite numbers (1 value): transaction_id=${String(request.transaction_id)}: log_margin = NaN`);
    } finally {
      await handle.terminate();
    }
  });
});
