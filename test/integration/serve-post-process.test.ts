/**
 * `inferflow serve` with models that answer with more than one score and a post-processed
 * pipeline: the V2 response carries every class probability, the post-processing steps' columns
 * (lists as [rows, width] tensors) and which post-processing produced them; the values equal
 * scikit-learn's for the same rows (examples/data/*_expected.parquet).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  EMBEDDING_EXPECTED,
  EMBEDDING_PIPELINE,
  EXAMPLE_FEATURES,
  REPO_ROOT,
  RISK_MODULE,
  RISK_TIER_EXPECTED,
  RISK_TIER_PIPELINE,
  SPEND_FORECAST_EXPECTED,
  registerEmbeddingModel,
  registerExampleModel,
  registerMultiOutputExampleModels,
} from '../../cli/examples';
import { serve } from '../../cli/serve';
import { InvalidInputError } from '../../lib/errors';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { tempConfig, tritonClientEnv } from '../helpers/env';

type Row = Record<string, unknown>;
type Output = { name: string; datatype: string; shape: number[]; data: unknown[] };
const TIER_NAMES: Record<string, string> = { '0': 'low', '1': 'medium', '2': 'high' };
const ROWS = 40;
const RISK_FIELDS = ['transaction_id', 'amount', 'customer_avg_amount_30d', 'distance_from_home_km', 'merchant_risk', 'is_foreign'];
const RISK_TIER_OUTPUTS = [
  { name: 'label', datatype: 'BYTES', shape: [-1] },
  { name: 'score', datatype: 'FP32', shape: [-1] },
  { name: 'prob_low', datatype: 'FP32', shape: [-1] },
  { name: 'prob_medium', datatype: 'FP32', shape: [-1] },
  { name: 'prob_high', datatype: 'FP32', shape: [-1] },
  { name: 'top_classes', datatype: 'BYTES', shape: [-1, 2] },
  { name: 'top_probabilities', datatype: 'FP32', shape: [-1, 2] },
  { name: 'action', datatype: 'BYTES', shape: [-1] },
];
const RISK_TIER_STEPS = 'classNames > topK(2) > rule(amount > 2000 → review) > risk.action';
/** The columns of examples/data/transaction_embedding_expected.parquet (aliased e), one per vector element. */
const EMBEDDING_ELEMENTS = Array.from({ length: 8 }, (_, j) => `e.e${j}`).join(', ');
const GRPC_CLIENT = path.join(REPO_ROOT, 'test/fixtures/grpc/post_process_client.py');
const saved = { ...process.env };
let cleanup: () => Promise<void>;
let dir: string;
const servers: Awaited<ReturnType<typeof serve>>[] = [];
let rows: Row[];

beforeAll(async () => {
  const env = await tempConfig();
  ({ dir, cleanup } = env);
  const registry = new ModelRegistry(openStore(env.config.registry));
  await registerMultiOutputExampleModels(registry);
  await registerEmbeddingModel(registry);
  await registerExampleModel(registry);
  process.env.INFERFLOW_DATA_DIR = env.dir;
  process.env.INFERFLOW_LOG_LEVEL = 'warn';
  process.env.INFERFLOW_MODULES = `risk=${RISK_MODULE},bad=${path.join(REPO_ROOT, 'test', 'fixtures', 'post-process', 'bad.ts')}`;
  rows = await withDuckDB(async (conn) =>
    (
      await conn.runAndReadAll(
        `SELECT t.transaction_id, t.amount, t.customer_avg_amount_30d, t.customer_txn_count_24h, t.distance_from_home_km, t.merchant_risk, t.is_foreign,
                t.hour_of_day, r.label, r.prob_0, r.prob_1, r.prob_2, s.spend_7d, s.spend_30d, [${EMBEDDING_ELEMENTS}] AS embedding
         FROM read_parquet(${lit(RISK_TIER_EXPECTED)}) r JOIN read_parquet(${lit(SPEND_FORECAST_EXPECTED)}) s USING (transaction_id)
           JOIN read_parquet(${lit(EMBEDDING_EXPECTED)}) e USING (transaction_id) JOIN read_parquet(${lit(EXAMPLE_FEATURES)}) t USING (transaction_id)
         ORDER BY t.amount DESC LIMIT ${ROWS}`,
      )
    ).getRowObjectsJS() as Row[],
  );
});

afterAll(async () => {
  for (const s of servers) await s.shutdown();
  process.env = saved;
  await cleanup?.();
});

async function start(spec: string, grpc = false) {
  const s = await serve(spec, { port: 0, host: '127.0.0.1', ...(grpc ? { grpcPort: 0 } : {}) });
  servers.push(s);
  return s;
}

function inputsOf(fields: string[]) {
  return fields.map((f) => ({ name: f, datatype: f === 'transaction_id' ? 'BYTES' : 'FP64', shape: [rows.length], data: rows.map((r) => (f === 'transaction_id' ? r[f] : Number(r[f]))) }));
}

async function infer(url: string, model: string, fields: string[]): Promise<{ outputs: Output[]; parameters: Record<string, unknown> }> {
  const inputs = inputsOf(fields);
  const res = await fetch(`${url}/v2/models/${model}/infer`, { method: 'POST', body: JSON.stringify({ inputs }), headers: { 'content-type': 'application/json' } });
  const json = (await res.json()) as { outputs: Output[]; parameters: Record<string, unknown> };
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json;
}

const close = (a: number, b: number, rel = 2e-6, abs = 1e-6) => Math.abs(a - b) <= abs + rel * Math.abs(b);

interface GrpcAnswer {
  error?: { code: string; message: string };
  metadata: { name: string; datatype: string; shape: number[] }[];
  outputs: Record<string, Omit<Output, 'name'>>;
  parameters: Record<string, string>;
  selected: string[];
}

/** The tritonclient gRPC script against a server: metadata, every output, and a selection of `select` (or the refusal's status). */
function tritonclient(address: string, model: string, fields: string[], select: string[], inputs = inputsOf(fields)): Promise<GrpcAnswer> {
  return new Promise((resolve, reject) => {
    const child = execFile('python3', [GRPC_CLIENT, address, model], { maxBuffer: 16 * 1024 * 1024, timeout: 120_000, env: tritonClientEnv(inject('tritonPythonPath')) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${GRPC_CLIENT} failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as GrpcAnswer);
    });
    child.stdin!.end(JSON.stringify({ inputs, select }));
  });
}

/** The risk-tier outputs of the rows by column: labels (review above 2000), probabilities and top classes equal to scikit-learn's. */
function expectRiskTier(column: (name: string, row: number) => unknown, topClasses: (row: number) => unknown[]): void {
  let reviewed = 0;
  rows.forEach((r, i) => {
    const label = Number(r.amount) > 2000 ? 'review' : TIER_NAMES[String(r.label)];
    if (label === 'review') reviewed++;
    expect(column('label', i)).toBe(label);
    for (const [c, name] of Object.entries(TIER_NAMES)) expect(close(column(`prob_${name}`, i) as number, Number(r[`prob_${c}`]))).toBe(true);
    const top = Object.entries(TIER_NAMES).sort(([a], [b]) => Number(r[`prob_${b}`]) - Number(r[`prob_${a}`]));
    expect(topClasses(i)).toEqual(top.slice(0, 2).map(([, n]) => n));
  });
  expect(reviewed).toBeGreaterThan(0);
}

describe('inferflow serve: multi-class, multi-output and post-processed pipelines', () => {
  it('answers the risk-tier spec\'s post-processed outputs, equal to scikit-learn\'s probabilities', async () => {
    const s = await start(RISK_TIER_PIPELINE);
    const meta = (await (await fetch(`${s.url}/v2/models/risk-tier`)).json()) as { outputs: { name: string; datatype: string; shape: number[] }[] };
    expect(meta.outputs).toEqual(RISK_TIER_OUTPUTS);
    const { outputs, parameters } = await infer(s.url, 'risk-tier', RISK_FIELDS);
    const out = Object.fromEntries(outputs.map((o) => [o.name, o]));
    expect(out.top_classes!.shape).toEqual([ROWS, 2]);
    expect(parameters.post_process).toBe(RISK_TIER_STEPS);
    expect(parameters.post_process_sha256).toMatch(/^[0-9a-f]{64}$/);
    expectRiskTier((name, i) => out[name]!.data[i], (i) => out.top_classes!.data.slice(i * 2, i * 2 + 2));

    const selected = { inputs: inputsOf(RISK_FIELDS), outputs: [{ name: 'top_classes' }, { name: 'prob_high', parameters: { binary_data: true } }] };
    const res = await fetch(`${s.url}/v2/models/risk-tier/infer`, { method: 'POST', body: JSON.stringify(selected), headers: { 'content-type': 'application/json' } });
    const length = Number(res.headers.get('inference-header-content-length'));
    const body = Buffer.from(await res.arrayBuffer());
    const head = JSON.parse(body.subarray(0, length).toString()) as { outputs: Output[] };
    expect(head.outputs.map((o) => [o.name, o.shape])).toEqual([['top_classes', [ROWS, 2]], ['prob_high', [ROWS]]]);
    expect(Array.from(new Float32Array(body.buffer.slice(body.byteOffset + length)))).toEqual(Array.from(Float32Array.from(out.prob_high!.data as number[])));
  });

  it('answers the same outputs, metadata and post-processing over gRPC (tritonclient) and MLflow /invocations', async () => {
    const s = await start(RISK_TIER_PIPELINE, true);
    const grpc = await tritonclient(s.grpc!.address, 'risk-tier', RISK_FIELDS, ['action', 'top_probabilities']);
    expect(grpc.metadata).toEqual(RISK_TIER_OUTPUTS);
    expect(Object.entries(grpc.outputs).map(([name, o]) => [name, o.datatype, o.shape])).toEqual(RISK_TIER_OUTPUTS.map((o) => [o.name, o.datatype, o.shape.length === 2 ? [ROWS, 2] : [ROWS]]));
    expect(grpc.parameters.post_process).toBe(RISK_TIER_STEPS);
    expect(grpc.parameters.post_process_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(grpc.selected).toEqual(['action', 'top_probabilities']);
    expectRiskTier((name, i) => grpc.outputs[name]!.data[i], (i) => grpc.outputs.top_classes!.data.slice(i * 2, i * 2 + 2));

    const records = rows.map((r) => Object.fromEntries(RISK_FIELDS.map((f) => [f, f === 'transaction_id' ? r[f] : Number(r[f])])));
    const res = await fetch(`${s.url}/invocations`, { method: 'POST', body: JSON.stringify({ dataframe_records: records }), headers: { 'content-type': 'application/json' } });
    const { predictions } = (await res.json()) as { predictions: Record<string, unknown>[] };
    expect(res.status).toBe(200);
    expect(predictions).toHaveLength(ROWS);
    for (const p of predictions) expect(Object.keys(p)).toEqual(RISK_TIER_OUTPUTS.map((o) => o.name));
    expectRiskTier((name, i) => predictions[i]![name], (i) => predictions[i]!.top_classes as unknown[]);
  });

  it('answers a multi-output regressor\'s targets as a [rows, 2] tensor, equal to scikit-learn\'s', async () => {
    const spec = path.join(dir, 'spend.json');
    await fs.writeFile(spec, JSON.stringify({ model: 'spend-forecast@production', features: EXAMPLE_FEATURES }));
    const s = await start(spec);
    const { outputs } = await infer(s.url, 'spend-forecast', ['amount', 'customer_avg_amount_30d', 'customer_txn_count_24h']);
    expect(outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([['prediction', 'FP32', [ROWS, 2]]]);
    const data = outputs[0]!.data as number[];
    rows.forEach((r, i) => {
      expect(close(data[2 * i]!, Number(r.spend_7d), 1e-5, 1e-3)).toBe(true);
      expect(close(data[2 * i + 1]!, Number(r.spend_30d), 1e-5, 1e-3)).toBe(true);
    });
  });

  it('answers an embedding model\'s vectors as a [rows, 8] FP32 tensor over REST and gRPC (tritonclient) and as MLflow lists, equal to scikit-learn\'s', async () => {
    const s = await start(EMBEDDING_PIPELINE, true);
    const meta = (await (await fetch(`${s.url}/v2/models/transaction-embedding`)).json()) as { outputs: unknown[] };
    expect(meta.outputs).toEqual([{ name: 'embedding', datatype: 'FP32', shape: [-1, 8] }]);
    const fields = ['transaction_id', 'amount', 'customer_avg_amount_30d', 'customer_txn_count_24h', 'distance_from_home_km', 'hour_of_day', 'is_foreign', 'merchant_risk'];
    const { outputs } = await infer(s.url, 'transaction-embedding', fields);
    expect(outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([['embedding', 'FP32', [ROWS, 8]]]);
    const data = outputs[0]!.data as number[];
    const records = rows.map((r) => Object.fromEntries(fields.map((f) => [f, f === 'transaction_id' ? r[f] : Number(r[f])])));
    const res = await fetch(`${s.url}/invocations`, { method: 'POST', body: JSON.stringify({ dataframe_records: records }), headers: { 'content-type': 'application/json' } });
    const { predictions } = (await res.json()) as { predictions: { embedding: number[] }[] };
    expect(res.status).toBe(200);
    const grpc = await tritonclient(s.grpc!.address, 'transaction-embedding', fields, ['embedding']);
    expect(grpc.metadata).toEqual([{ name: 'embedding', datatype: 'FP32', shape: [-1, 8] }]);
    expect(Object.entries(grpc.outputs).map(([name, o]) => [name, o.datatype, o.shape])).toEqual([['embedding', 'FP32', [ROWS, 8]]]);
    expect(grpc.selected).toEqual(['embedding']);
    const viaGrpc = grpc.outputs.embedding!.data as number[];
    const bad: string[] = [];
    rows.forEach((r, i) => {
      const want = (r.embedding as number[]).map(Number);
      expect(want).toHaveLength(8);
      want.forEach((x, j) => {
        if (!close(data[8 * i + j]!, x, 2e-4, 1e-5)) bad.push(`v2 row ${i}[${j}]: ${data[8 * i + j]} vs ${x}`);
        if (!close(viaGrpc[8 * i + j]!, x, 2e-4, 1e-5)) bad.push(`grpc row ${i}[${j}]: ${viaGrpc[8 * i + j]} vs ${x}`);
        if (!close(predictions[i]!.embedding[j]!, x, 2e-4, 1e-5)) bad.push(`mlflow row ${i}[${j}]: ${predictions[i]!.embedding[j]} vs ${x}`);
      });
    });
    expect(bad).toEqual([]);
  });

  it('answers 400 over REST and MLflow, INVALID_ARGUMENT over gRPC, naming the model, the output and the row when the model itself outputs ±Infinity, never null', async () => {
    const s = await start(EMBEDDING_PIPELINE, true);
    const fields = ['transaction_id', 'amount', 'customer_avg_amount_30d', 'customer_txn_count_24h', 'distance_from_home_km', 'hour_of_day', 'is_foreign', 'merchant_risk'];
    // amount 3e38 is a finite float32 the embedding's linear layers take past float32's range.
    const record = { ...Object.fromEntries(fields.map((f) => [f, f === 'transaction_id' ? rows[0]![f] : Number(rows[0]![f])])), amount: 3e38 };
    const inputs = fields.map((f) => ({ name: f, datatype: f === 'transaction_id' ? 'BYTES' : 'FP64', shape: [1], data: [record[f as keyof typeof record]] }));
    const want = new RegExp(`model transaction-embedding:\\d+ output non-finite numbers in embedding \\(8 values\\): .*embedding\\[0\\] = -?Infinity`);
    const v2 = await fetch(`${s.url}/v2/models/transaction-embedding/infer`, { method: 'POST', body: JSON.stringify({ inputs }), headers: { 'content-type': 'application/json' } });
    const v2Body = (await v2.json()) as { error: string; type: string };
    expect(v2.status, JSON.stringify(v2Body)).toBe(400);
    expect(v2Body.type).toBe('InvalidValue');
    expect(v2Body.error).toMatch(want);
    const mlflow = await fetch(`${s.url}/invocations`, { method: 'POST', body: JSON.stringify({ dataframe_records: [record] }), headers: { 'content-type': 'application/json' } });
    const mlflowBody = (await mlflow.json()) as { message: string };
    expect(mlflow.status, JSON.stringify(mlflowBody)).toBe(400);
    expect(mlflowBody.message).toMatch(want);
    const grpc = await tritonclient(s.grpc!.address, 'transaction-embedding', fields, [], inputs);
    expect(grpc.error?.code).toBe('INVALID_ARGUMENT');
    expect(grpc.error?.message).toMatch(want);
  });

  it('answers 400 naming the step, the output and the rows when a user post-processor returns NaN, never null', async () => {
    const spec = path.join(dir, 'not-finite.json');
    await fs.writeFile(spec, JSON.stringify({ model: 'fraud-detector@production', features: EXAMPLE_FEATURES, idColumn: 'transaction_id', postProcess: [{ type: 'module', name: 'bad.notFinite' }] }));
    const s = await start(spec);
    const fields = ['transaction_id', 'amount', 'customer_avg_amount_30d', 'customer_txn_count_24h', 'distance_from_home_km', 'hour_of_day', 'is_foreign', 'merchant_risk'];
    const res = await fetch(`${s.url}/v2/models/fraud-detector/infer`, { method: 'POST', body: JSON.stringify({ inputs: inputsOf(fields) }), headers: { 'content-type': 'application/json' } });
    const body = (await res.json()) as { error: string };
    expect(res.status, JSON.stringify(body)).toBe(400);
    expect(body.error).toMatch(/postProcess\[0\] \(bad\.notFinite\) returned non-finite numbers \(\d+ values?(, first 10)?\): transaction_id=\S+: log_margin = NaN/);
  });

  it('does not start with a step that cannot fit the model (top-k larger than the class count)', async () => {
    const spec = path.join(dir, 'bad-topk.json');
    await fs.writeFile(spec, JSON.stringify({ model: 'risk-tier@production', features: EXAMPLE_FEATURES, postProcess: [{ type: 'topK', k: 5 }] }));
    const err = (await serve(spec, { port: 0, host: '127.0.0.1' }).catch((e: unknown) => e)) as InvalidInputError;
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.problems).toEqual(["postProcess[0] (topK).k: 5 is larger than the model's 3 classes"]);
  });
});
