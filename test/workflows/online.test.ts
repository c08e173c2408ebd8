/**
 * onlineInference: a durable online deployment answering `predict` Updates on a real Temporal
 * server, with features from a real Redis. Answers equal the scores Python computed offline;
 * requests and answers are in the history; malformed requests are rejected before they enter
 * it; the deployment continues as new and keeps answering with the same pinned model.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FEATURES_EXPECTED, FEATURES_PIPELINE, registerFeaturesExampleModel } from '../../cli/examples';
import { deploymentStatusQuery, predictDurably, predictUpdate, startOnlineDeployment } from '../../client/online';
import type { InferflowConfig } from '../../lib/config/env';
import { materializeView } from '../../lib/features/materialize';
import { openOnlineStore } from '../../lib/features/online';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { scoresIn, type Scores } from '../helpers/data';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { tempConfig, uniqueName } from '../helpers/env';
import { recordHistory } from '../helpers/histories';
import { startWorker, type RunningWorker } from '../helpers/worker';
import { TEST_REDIS_URL } from '../helpers/services';

const DAY = 86_400_000;
const T = Date.parse('2026-10-13T00:00:00Z');
const keyPrefix = uniqueName('online-wf');
let config: InferflowConfig;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let spec: Awaited<ReturnType<typeof loadPipelineSpec>>;
let requests: Record<string, unknown>[];
let expected: Scores;

beforeAll(async () => {
  let dir: string;
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-online') }));
  await registerFeaturesExampleModel(new ModelRegistry(openStore(config.registry)));
  spec = await loadPipelineSpec(FEATURES_PIPELINE);
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: dir });
  await materializeView({ view: spec.featureViews![0], store, end: new Date(T + DAY - 1) });
  await store.close();
  expected = await scoresIn(FEATURES_EXPECTED);
  ({ requests } = await withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(
      `SELECT transaction_id, customer_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS event_timestamp, amount, merchant_category, lat, lon FROM read_parquet(${lit(path.resolve(spec.spine!))})
       WHERE event_timestamp >= ${lit(new Date(T).toISOString())}::TIMESTAMPTZ AND event_timestamp < ${lit(new Date(T + DAY).toISOString())}::TIMESTAMPTZ ORDER BY transaction_id LIMIT 8`,
    );
    return {
      requests: r.getRowObjectsJS().map((o) => ({ ...o, customer_id: Number(o.customer_id), amount: Number(o.amount), lat: Number(o.lat), lon: Number(o.lon), transaction_id: toText(o.transaction_id), merchant_category: toText(o.merchant_category), event_timestamp: toText(o.event_timestamp) })),
    };
  }));
  w = await startWorker(config);
});

afterAll(async () => {
  await w?.stop();
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: '/tmp' });
  await store.deleteView('customer_stats');
  await store.close();
  await cleanup?.();
});

describe('onlineInference (durable online predictions via Updates)', () => {
  it('answers like the offline pipeline, keeps requests and answers in history, rejects bad requests, continues as new', async () => {
    const handle = await startOnlineDeployment(
      w.client,
      { model: spec.model, featureViews: spec.featureViews!, onDemand: spec.onDemand!, store: { type: 'redis', keyPrefix }, idColumn: 'transaction_id', maxPredictionsPerRun: 3 },
      { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-online') },
    );
    try {
      const firstRun = handle.firstExecutionRunId;
      for (const [i, row] of requests.entries()) {
        const r = await predictDurably(handle, { rows: [row], asOf: row.event_timestamp as string, requestId: `req-${i}` });
        const want = expected.get(row.transaction_id as string)!;
        expect(r.requestId).toBe(`req-${i}`);
        expect(r.model).toMatchObject({ name: 'fraud-features', version: 1 });
        expect(r.label).toEqual([want.label]);
        expect(Math.abs(r.score![0]! - want.score)).toBeLessThan(1e-6);
        expect(r.featureStatus[0]!['customer_stats__avg_amount_30d']).toBe('PRESENT');
      }
      // 8 predictions at 3 per run: the deployment is in its third run, and counted every one.
      const status = await w.client.workflow.getHandle(handle.workflowId).query(deploymentStatusQuery);
      expect(status).toMatchObject({ served: 8, servedThisRun: 2, failed: 0 });
      expect((await w.client.workflow.getHandle(handle.workflowId).describe()).runId).not.toBe(firstRun);

      // Audit: the first run's history holds the requests (with their ids) and the answers.
      const history = JSON.stringify((await w.client.workflow.getHandle(handle.workflowId, firstRun).fetchHistory()).events);
      expect(history).toContain('workflowExecutionUpdateCompletedEventAttributes');
      await recordHistory(inject('temporalCli'), config.temporal.address, handle.workflowId, 'onlineInference.json');

      // A malformed request is rejected by the validator: not answered, not counted, not in history.
      const rejected = await w.client.workflow.getHandle(handle.workflowId).executeUpdate(predictUpdate, { args: [{ rows: [] }] }).catch((e: unknown) => e);
      expect(rejected).toBeInstanceOf(WorkflowUpdateFailedError);
      const rejectedCause = (rejected as WorkflowUpdateFailedError).cause;
      expect(rejectedCause).toBeInstanceOf(ApplicationFailure);
      expect((rejectedCause as ApplicationFailure).type).toBe('InvalidInput');
      expect((rejectedCause as ApplicationFailure).nonRetryable).toBe(true);
      expect(rejectedCause!.message).toContain('rows: at least one request row');
      // A request missing a field the pipeline needs fails with the field named; the deployment goes on.
      const { lat: _lat, ...noLat } = requests[0]!;
      const failed = await predictDurably(handle, { rows: [noLat] }).catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(WorkflowUpdateFailedError);
      const cause = (failed as WorkflowUpdateFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect((cause as ApplicationFailure).type).toBe('SchemaMismatch');
      expect(cause!.message).toContain('lat is missing from the requests');
      // Request values are checked as `serve` checks them: a wrong type is InvalidInput naming the field and the row.
      const wrongType = await predictDurably(handle, { rows: [{ ...requests[0]!, amount: true }] }).catch((e: unknown) => e);
      const wrongCause = (wrongType as WorkflowUpdateFailedError).cause as ApplicationFailure;
      expect(wrongCause.type).toBe('InvalidInput');
      expect(wrongCause.message).toContain('amount[0]: expected a number (FP64) or null, got true');
      // A null entity key finds no features (NOT_FOUND) and is scored on imputed values, as a spine row with a null key in batch.
      const nullKey = await predictDurably(handle, { rows: [{ ...requests[0]!, customer_id: null }] });
      expect(nullKey.featureStatus[0]!['customer_stats__avg_amount_30d']).toBe('NOT_FOUND');
      expect(nullKey.score).toHaveLength(1);
      expect(await w.client.workflow.getHandle(handle.workflowId).query(deploymentStatusQuery)).toMatchObject({ served: 9, failed: 2 });
    } finally {
      await w.client.workflow.getHandle(handle.workflowId).cancel();
    }
  });
});
