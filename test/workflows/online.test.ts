/**
 * onlineInference: a durable online deployment answering `predict` Updates on a real Temporal
 * server, with features from a real Redis. Answers equal the scores Python computed offline;
 * requests and answers are in the history; malformed requests are rejected before they enter
 * it; the deployment continues as new and keeps answering with the same pinned model.
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  deploymentStatus,
  deploymentStatusQuery,
  ensureDeployment,
  findDeployment,
  partitionOf,
  partitionWorkflowId,
  predictDurably,
  predictOnDeployment,
  predictUpdate,
  startOnlineDeployment,
  type OnlineDeployment,
  type PredictResponse,
} from '../../client/online';
import type { InferflowConfig } from '../../lib/config/env';
import type { Scores } from '../helpers/data';
import { uniqueName } from '../helpers/env';
import { startOnlineFraudWorker, type OnlineFraudWorker } from '../helpers/online-fraud';
import { recordHistory } from '../helpers/histories';
import type { RunningWorker } from '../helpers/worker';

let fraud: OnlineFraudWorker;
let config: InferflowConfig;
let w: RunningWorker;
let requests: Record<string, unknown>[];
let expected: Scores;

beforeAll(async () => {
  fraud = await startOnlineFraudWorker(inject('temporalAddress'), 'online', 8);
  ({ config, worker: w, requests, expected } = fraud);
});

afterAll(async () => {
  await fraud?.stop();
});

describe('onlineInference (durable online predictions via Updates)', () => {
  it('answers like the offline pipeline, keeps requests and answers in history, rejects bad requests, continues as new', async () => {
    const handle = await startOnlineDeployment(
      w.client,
      fraud.input(3),
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

  const deploymentOf = (partitions: number, maxPredictionsPerRun: number): OnlineDeployment => ({
    name: uniqueName('dep'),
    partitions,
    taskQueue: config.temporal.taskQueue,
    spec: 'examples/pipelines/fraud-features.json',
    input: fraud.input(maxPredictionsPerRun),
  });
  const expectRight = (row: Record<string, unknown>, r: PredictResponse) => {
    const want = expected.get(row.transaction_id as string)!;
    expect(r.label).toEqual([want.label]);
    expect(Math.abs(r.score![0]! - want.score)).toBeLessThan(1e-6);
  };
  const cancelAll = async (d: OnlineDeployment) => {
    for (const p of await deploymentStatus(w.client, d)) if (p.state === 'RUNNING') await w.client.workflow.getHandle(p.workflowId).cancel();
  };
  /** `n` request ids (prefixed) whose partition is `partition` of `partitions`. */
  const idsFor = (prefix: string, partition: number, partitions: number, n: number) => {
    const out: string[] = [];
    for (let i = 0; out.length < n; i++) if (partitionOf(`${prefix}-${i}`, partitions) === partition) out.push(`${prefix}-${i}`);
    return out;
  };

  it('Update-with-Start starts the request\'s partition; the request id is the Update id: a retry is answered from the record, within a run and across continue-as-new', async () => {
    const d = deploymentOf(3, 2);
    try {
      const prefix = uniqueName('req');
      const [first, ...later] = idsFor(prefix, 1, 3, 4);
      const row = requests[0]!;
      const a = await predictOnDeployment(w.client, d, { rows: [row], asOf: row.event_timestamp as string, requestId: first });
      expect(a).toMatchObject({ workflowId: partitionWorkflowId(d.name, 1), updateId: first, partition: 1 });
      expect(a.answer.requestId).toBe(first);
      expectRight(row, a.answer);
      // Only the partition the request hashed to was started.
      expect((await deploymentStatus(w.client, d)).map((p) => p.state)).toEqual(['NOT_STARTED', 'RUNNING', 'NOT_STARTED']);

      // Same request id, same run: Temporal answers with the recorded outcome (even if the retry's body differs).
      const again = await predictOnDeployment(w.client, d, { rows: [requests[1]!], asOf: row.event_timestamp as string, requestId: first });
      expect(again.answer).toEqual(a.answer);
      const handle = w.client.workflow.getHandle(a.workflowId);
      expect(await handle.query(deploymentStatusQuery)).toMatchObject({ served: 1, continuedAsNew: 0 });

      // Three more requests on that partition at 2 Updates per run: it continues as new.
      for (const [i, id] of later.entries()) expectRight(requests[i + 1]!, (await predictOnDeployment(w.client, d, { rows: [requests[i + 1]!], asOf: requests[i + 1]!.event_timestamp as string, requestId: id })).answer);
      const before = await handle.query(deploymentStatusQuery);
      expect(before.served).toBe(4);
      expect(before.continuedAsNew).toBeGreaterThanOrEqual(1);

      // Same request id in a later run: the carried record answers; nothing is predicted again.
      const afterCan = await predictOnDeployment(w.client, d, { rows: [row], asOf: row.event_timestamp as string, requestId: first });
      expect(afterCan.answer).toEqual(a.answer);
      const after = await handle.query(deploymentStatusQuery);
      expect(after).toMatchObject({ served: 4, failed: 0, deduplicatedThisRun: 1 });
      // One prediction activity per distinct request over all runs.
      let markers = 0;
      for (let runId: string | undefined = (await handle.describe()).runId; runId; ) {
        const history: Awaited<ReturnType<WorkflowHandle['fetchHistory']>> = await w.client.workflow.getHandle(a.workflowId, runId).fetchHistory();
        const events = history.events ?? [];
        markers += events.filter((e) => e.markerRecordedEventAttributes).length;
        runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
      }
      expect(markers).toBe(4);
    } finally {
      await cancelAll(d);
    }
  });

  it('answers every one of many concurrent Updates across partitions through several continue-as-new', async () => {
    const d = deploymentOf(2, 5);
    try {
      const prefix = uniqueName('load');
      const total = 60;
      const callers = 10;
      const answers = new Map<number, PredictResponse>();
      await Promise.all(
        Array.from({ length: callers }, async (_, c) => {
          for (let i = c; i < total; i += callers) {
            const row = requests[i % requests.length]!;
            answers.set(i, (await predictOnDeployment(w.client, d, { rows: [row], asOf: row.event_timestamp as string, requestId: `${prefix}-${i}` })).answer);
          }
        }),
      );
      expect(answers.size).toBe(total);
      for (const [i, r] of answers) expectRight(requests[i % requests.length]!, r);
      const partitions = await deploymentStatus(w.client, d);
      expect(partitions.map((p) => p.state)).toEqual(['RUNNING', 'RUNNING']);
      expect(partitions.reduce((n, p) => n + p.status!.served, 0)).toBe(total);
      expect(partitions.reduce((n, p) => n + p.status!.failed, 0)).toBe(0);
      expect(partitions.reduce((n, p) => n + p.status!.continuedAsNew, 0)).toBeGreaterThanOrEqual(8);
    } finally {
      await cancelAll(d);
    }
  });

  it('deploys idempotently, records the spec, and reports each partition', async () => {
    const d = deploymentOf(2, 100);
    try {
      const started = await ensureDeployment(w.client, d);
      expect(started.map((p) => p.workflowId)).toEqual([partitionWorkflowId(d.name, 0), partitionWorkflowId(d.name, 1)]);
      expect((await ensureDeployment(w.client, d)).map((p) => p.runId)).toEqual(started.map((p) => p.runId));
      const found = await findDeployment(w.client, d.name);
      expect(found).toMatchObject({ name: d.name, partitions: 2, spec: d.spec, taskQueue: d.taskQueue });
      expect(found.input.model).toBe(fraud.spec.model);
      await predictOnDeployment(w.client, found, { rows: [requests[0]!], asOf: requests[0]!.event_timestamp as string });
      const partitions = await deploymentStatus(w.client, found);
      expect(partitions.every((p) => p.state === 'RUNNING' && p.status!.model?.version === 1 && p.status!.inFlight === 0 && p.status!.deployment?.name === d.name)).toBe(true);
      expect(partitions.reduce((n, p) => n + p.status!.served, 0)).toBe(1);
      await expect(findDeployment(w.client, uniqueName('missing'))).rejects.toMatchObject({ type: 'NotFound' });
    } finally {
      await cancelAll(d);
    }
  });

  it('rejects a malformed request with InvalidInput naming the field, before it enters history', async () => {
    const d = deploymentOf(1, 100);
    try {
      await ensureDeployment(w.client, d);
      const handle = w.client.workflow.getHandle(partitionWorkflowId(d.name, 0));
      const updateId = uniqueName('bad');
      const rejected = await handle.executeUpdate(predictUpdate, { args: [{ rows: [requests[0]!], asOf: 'soon' }], updateId }).catch((e: unknown) => e);
      const cause = (rejected as WorkflowUpdateFailedError).cause as ApplicationFailure;
      expect(cause.type).toBe('InvalidInput');
      expect(cause.nonRetryable).toBe(true);
      expect(cause.message).toContain('asOf');
      expect(JSON.stringify((await handle.fetchHistory()).events)).not.toContain(updateId);
      const clientSide = await predictOnDeployment(w.client, d, { rows: [requests[0]!], requestId: '' }).catch((e: unknown) => e);
      expect(clientSide).toMatchObject({ type: 'InvalidInput' });
      expect((clientSide as Error).message).toContain('requestId: a non-empty string');
    } finally {
      await cancelAll(d);
    }
  });
});
