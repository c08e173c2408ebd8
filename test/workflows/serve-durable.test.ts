/**
 * `inferflow serve --durable-deployment`: a V2 REST request with `?durable=true` (or the
 * `Inferflow-Durable` header) goes through the online deployment's Update-with-Start on a real
 * Temporal dev server, with features from a real Redis: the answer equals the offline scores,
 * names the workflow and Update, the request `id` is the Update id (a retry gets the recorded
 * answer), and a rejected request is a 400 naming the field.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FEATURES_PIPELINE } from '../../cli/examples';
import { serve } from '../../cli/serve';
import { deploymentStatus, ensureDeployment, partitionOf, partitionWorkflowId, type OnlineDeployment } from '../../client/online';
import type { Scores } from '../helpers/data';
import { uniqueName } from '../helpers/env';
import { startOnlineFraudWorker, type OnlineFraudWorker } from '../helpers/online-fraud';
import { TEST_REDIS_URL } from '../helpers/services';
import type { RunningWorker } from '../helpers/worker';

const saved = { ...process.env };
let fraud: OnlineFraudWorker;
let w: RunningWorker;
let requests: Record<string, unknown>[];
let expected: Scores;
let deployment: OnlineDeployment;
let server: Awaited<ReturnType<typeof serve>>;

/** The server's request deadline: the durable Update's `timeoutMs` is what is left of it. */
const DEADLINE_MS = 6_000;

const FIELDS: [string, string][] = [
  ['transaction_id', 'BYTES'],
  ['customer_id', 'INT64'],
  ['event_timestamp', 'BYTES'],
  ['amount', 'FP64'],
  ['merchant_category', 'BYTES'],
  ['lat', 'FP64'],
  ['lon', 'FP64'],
];

function v2Body(rows: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  return JSON.stringify({ inputs: FIELDS.map(([name, datatype]) => ({ name, datatype, shape: [rows.length], data: rows.map((r) => r[name]) })), ...extra });
}

beforeAll(async () => {
  fraud = await startOnlineFraudWorker(inject('temporalAddress'), 'serve-durable', 4);
  ({ worker: w, requests, expected } = fraud);
  deployment = { name: uniqueName('serve-dep'), partitions: 2, taskQueue: fraud.config.temporal.taskQueue, spec: FEATURES_PIPELINE, input: fraud.input(100) };
  await ensureDeployment(w.client, deployment);
  Object.assign(process.env, { INFERFLOW_SERVE_DEADLINE_MS: String(DEADLINE_MS), INFERFLOW_DATA_DIR: fraud.dir, INFERFLOW_LOG_LEVEL: 'warn', INFERFLOW_REDIS_URL: TEST_REDIS_URL, TEMPORAL_ADDRESS: inject('temporalAddress') });
  server = await serve(FEATURES_PIPELINE, { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix: fraud.keyPrefix }, durableDeployment: deployment.name });
});

afterAll(async () => {
  await server?.shutdown();
  if (deployment) for (const p of await deploymentStatus(w.client, deployment)) if (p.state === 'RUNNING') await w.client.workflow.getHandle(p.workflowId).cancel();
  await fraud?.stop();
  process.env = saved;
});

type Answer = { id?: string; outputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[]; parameters: Record<string, unknown>; error?: string; type?: string };

async function infer(query: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Answer }> {
  const res = await fetch(`${server.url}/v2/models/${deployment.name}/infer${query}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.status, json: (await res.json()) as Answer };
}

describe('inferflow serve --durable-deployment (V2 REST through Update-with-Start)', () => {
  it('answers ?durable=true like the offline pipeline, naming the workflow and the Update (the request id), and a retry gets the recorded answer', async () => {
    const id = uniqueName('req');
    const asOf = { as_of: requests[0]!.event_timestamp };
    const { status, json } = await infer('?durable=true', v2Body(requests, { id, parameters: asOf }));
    expect(status, JSON.stringify(json)).toBe(200);
    expect(json.id).toBe(id);
    expect(json.parameters).toMatchObject({ workflow_id: partitionWorkflowId(deployment.name, partitionOf(id, deployment.partitions)), update_id: id });
    const out = Object.fromEntries(json.outputs.map((o) => [o.name, o]));
    expect(json.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['label', 'INT64', [requests.length]],
      ['score', 'FP32', [requests.length]],
    ]);
    requests.forEach((r, i) => {
      const want = expected.get(r.transaction_id as string)!;
      expect(out.label!.data[i]).toBe(want.label);
      expect(Math.abs((out.score!.data[i] as number) - want.score)).toBeLessThan(1e-6);
    });
    const events = (await w.client.workflow.getHandle(json.parameters.workflow_id as string).fetchHistory()).events ?? [];
    expect(JSON.stringify(events)).toContain(id);
    // The Update carries what was left of the request's deadline as its timeoutMs (below the deadline, by at least the margin).
    const accepted = events.map((e) => e.workflowExecutionUpdateAcceptedEventAttributes).find((a) => a?.acceptedRequest?.meta?.updateId === id);
    const sent = JSON.parse(Buffer.from(accepted!.acceptedRequest!.input!.args!.payloads![0]!.data!).toString('utf8')) as { timeoutMs?: number };
    expect(sent.timeoutMs).toBeGreaterThan(0);
    expect(sent.timeoutMs).toBeLessThan(DEADLINE_MS);

    // The same id again (another body): Temporal answers with the recorded outcome.
    const again = await infer('', v2Body(requests.slice(0, 1), { id, parameters: asOf }), { 'Inferflow-Durable': 'true' });
    expect(again.status).toBe(200);
    expect(again.json.outputs).toEqual(json.outputs);

    // Without an id, one is generated and named.
    const generated = await infer('?durable=true', v2Body(requests.slice(0, 1), { parameters: asOf, outputs: [{ name: 'score' }] }));
    expect(generated.status).toBe(200);
    expect(generated.json.parameters.update_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(generated.json.outputs.map((o) => o.name)).toEqual(['score']);
  });

  it('refuses a request the deployment rejects, a bad durable flag and an unknown model with the field or name at fault', async () => {
    const rejected = await infer('?durable=true', v2Body(requests.slice(0, 1), { id: uniqueName('bad'), parameters: { as_of: 'soon' } }));
    expect(rejected.status).toBe(400);
    expect(rejected.json.type).toBe('InvalidInput');
    expect(rejected.json.error).toContain('asOf');
    const flag = await infer('?durable=yes', v2Body(requests.slice(0, 1)));
    expect(flag).toMatchObject({ status: 400, json: { error: 'durable: true or false, got "yes"' } });
    const res = await fetch(`${server.url}/v2/models/no-such-model/infer?durable=true`, { method: 'POST', body: v2Body(requests.slice(0, 1)) });
    expect(res.status).toBe(404);
  });
});
