/**
 * `inferflow serve` beyond V2 JSON: MLflow's scoring protocol (/invocations with each of its
 * payload formats and CSV, /ping, /health, MLflow's error body), several pipelines per server,
 * Prometheus /metrics, and every bad request over REST with its exact status and body.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURES_MODEL_DIR, FEATURES_PIPELINE } from '../../cli/examples';
import { serve, type ServeHandle } from '../../cli/serve';
import { loadConfig } from '../../lib/config/env';
import { InvalidInputError } from '../../lib/errors';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { serveFixture, v2Body, type ServeFixture, type ServeRequest } from '../helpers/serve-fixture';

let fx: ServeFixture;
let server: ServeHandle;
let specDir: string;

/** The features pipeline spec serving `model` instead (a file in `dir`). */
async function specFor(dir: string, file: string, model: string): Promise<string> {
  const spec = JSON.parse(await fs.readFile(FEATURES_PIPELINE, 'utf8')) as Record<string, unknown>;
  await fs.mkdir(dir, { recursive: true });
  const out = path.join(dir, file);
  await fs.writeFile(out, JSON.stringify({ ...spec, $schema: undefined, model, spine: path.resolve(path.dirname(FEATURES_PIPELINE), spec.spine as string) }));
  return out;
}

beforeAll(async () => {
  fx = await serveFixture();
  const registry = new ModelRegistry(openStore(loadConfig().registry));
  const metadata: unknown = JSON.parse(await fs.readFile(path.join(FEATURES_MODEL_DIR, 'metadata.json'), 'utf8'));
  await registry.register(path.join(FEATURES_MODEL_DIR, 'model.onnx'), { name: 'fraud-features-b', metadata, alias: 'production', reuseIdentical: true });
  specDir = path.join(fx.dir, 'specs');
  await specFor(specDir, 'b.json', 'fraud-features-b@production');
  server = await serve([FEATURES_PIPELINE, specDir], { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix: fx.keyPrefix }, mlflowModel: 'fraud-features' });
});

afterAll(async () => {
  await server?.shutdown();
  await fx?.cleanup();
});

const record = (r: ServeRequest) => ({ transaction_id: r.transaction_id, customer_id: r.customer_id, event_timestamp: r.ts, amount: r.amount, merchant_category: r.merchant_category, lat: r.lat, lon: r.lon });

async function invocations(body: string, contentType = 'application/json'): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${server.url}/invocations`, { method: 'POST', body, headers: { 'content-type': contentType } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function infer(body: string | Uint8Array, headers: Record<string, string> = {}, model = 'fraud-features'): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${server.url}/v2/models/${model}/infer`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.status, json: await res.json() };
}

describe('MLflow scoring protocol', () => {
  it('scores dataframe_split, dataframe_records, instances, inputs and CSV the same, as mlflow models serve answers', async () => {
    // Old rows judged as of now would be STALE: these rows are scored on imputed features, the same for every format.
    const rows = fx.requests.slice(0, 5).map(record);
    const columns = Object.keys(rows[0]!);
    const payloads: [string, string, string?][] = [
      ['dataframe_split', JSON.stringify({ dataframe_split: { columns, data: rows.map((r) => columns.map((c) => r[c as keyof typeof r])) } })],
      ['dataframe_records', JSON.stringify({ dataframe_records: rows })],
      ['instances', JSON.stringify({ instances: rows })],
      ['inputs', JSON.stringify({ inputs: Object.fromEntries(columns.map((c) => [c, rows.map((r) => r[c as keyof typeof r])])) })],
      ['csv', [columns.join(','), ...rows.map((r) => columns.map((c) => r[c as keyof typeof r]).join(','))].join('\n') + '\n', 'text/csv'],
    ];
    const answers = [];
    for (const [format, body, type] of payloads) {
      const r = await invocations(body, type);
      expect(r.status, `${format}: ${JSON.stringify(r.json)}`).toBe(200);
      answers.push(r.json);
    }
    const v2 = await infer(JSON.stringify(v2Body(fx.requests.slice(0, 5))));
    const outputs = (v2.json as { outputs: { name: string; data: number[] }[] }).outputs;
    const want = { predictions: outputs[0]!.data.map((label, i) => ({ label, score: outputs[1]!.data[i] })) };
    for (const a of answers) expect(a).toEqual(want);
  });

  it('answers /ping and /health, and bad payloads with MLflow\'s error body', async () => {
    for (const p of ['/ping', '/health']) expect((await fetch(`${server.url}${p}`)).status).toBe(200);
    expect(await invocations(JSON.stringify({ records: [] }))).toEqual({ status: 400, json: { error_code: 'BAD_REQUEST', message: 'the body must have exactly one of dataframe_split, dataframe_records, instances, inputs (got records)' } });
    expect(await invocations(JSON.stringify({ dataframe_split: { columns: ['a', 'b'], data: [[1]] } }))).toEqual({ status: 400, json: { error_code: 'BAD_REQUEST', message: 'dataframe_split does not fit its columns: dataframe_split.data[0]: a list of 2 values (one per column)' } });
    expect(await invocations('{"inputs": {"amount": [NaN]}}')).toMatchObject({ status: 400, json: { error_code: 'BAD_REQUEST' } });
    expect(((await invocations('{"inputs": {"amount": [NaN]}}')).json.message as string)).toContain('JSON has no NaN or Infinity: send a missing value as null');
    expect(await invocations('a=1', 'application/x-www-form-urlencoded')).toEqual({ status: 415, json: { error_code: 'BAD_REQUEST', message: 'content type application/x-www-form-urlencoded is not supported: send application/json or text/csv' } });
  });
});

describe('several pipelines per server', () => {
  it('serves each spec under its model name (a file and a directory of specs)', async () => {
    const body = JSON.stringify(v2Body(fx.requests.slice(0, 3), fx.requests[0]!.ts));
    const a = await infer(body);
    const b = await infer(body, {}, 'fraud-features-b');
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect((b.json as { model_name: string }).model_name).toBe('fraud-features-b');
    expect((b.json as { outputs: unknown }).outputs).toEqual((a.json as { outputs: unknown }).outputs);
    expect(server.describe).toHaveLength(2);
    expect(server.describe[0]).toContain('/invocations');
  });

  it('refuses two specs serving one model, naming both files, and an --mlflow-model that is not served', async () => {
    const dup = await specFor(path.join(fx.dir, 'dup'), 'again.json', 'fraud-features@production');
    const err = (await serve([FEATURES_PIPELINE, dup], { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix: fx.keyPrefix } }).catch((e: unknown) => e)) as InvalidInputError;
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.message).toBe(`model fraud-features is served by two specs, ${FEATURES_PIPELINE} and ${dup}: serve each model once`);
    const none = (await serve([FEATURES_PIPELINE], { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix: fx.keyPrefix }, mlflowModel: 'nope' }).catch((e: unknown) => e)) as InvalidInputError;
    expect(none.message).toBe('--mlflow-model nope is not served (served: fraud-features)');
  });
});

describe('bad requests over V2 REST: exact status and body', () => {
  const rows = () => fx.requests.slice(0, 2);
  it('malformed JSON, and NaN or Infinity that JSON cannot carry → 400', async () => {
    const bad = await infer('{"inputs": [');
    expect(bad.status).toBe(400);
    expect(bad.json).toEqual({ error: expect.stringMatching(/^request body is not JSON: /) as unknown });
    for (const v of ['NaN', 'Infinity', '-Infinity']) {
      const text = JSON.stringify(v2Body(rows())).replace(/("name":"amount","datatype":"FP64","shape":\[2\],"data":\[)[^,]*/, `$1${v}`);
      const r = await infer(text);
      expect(r.status, v).toBe(400);
      expect((r.json as { error: string }).error).toMatch(/^request body is not JSON: .*\(JSON has no NaN or Infinity: send a missing value as null\)$/);
    }
  });

  it('wrong datatype, unknown datatype, shape and data length disagreeing, missing input, unknown output', async () => {
    const body = () => v2Body(rows(), fx.requests[0]!.ts);
    const wrong = body();
    wrong.inputs[3]!.datatype = 'INT32';
    expect(await infer(JSON.stringify(wrong))).toEqual({ status: 400, json: { error: 'inference request: inputs[3] (amount).data[0]: expected INT32, got ' + JSON.stringify(rows()[0]!.amount) + '; inputs[3] (amount).data[1]: expected INT32, got ' + JSON.stringify(rows()[1]!.amount), type: 'InvalidInput' } });
    const unknownType = body();
    unknownType.inputs[3]!.datatype = 'FLOAT';
    expect(await infer(JSON.stringify(unknownType))).toEqual({ status: 400, json: { error: 'inference request: inputs[3] (amount).datatype: one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES, got "FLOAT"', type: 'InvalidInput' } });
    const shape = body();
    shape.inputs[5]!.shape = [2, 2];
    expect(await infer(JSON.stringify(shape))).toEqual({ status: 400, json: { error: 'inference request: inputs[5] (lat).shape: [2, 2] is not a column (one value per row: [N] or [N, 1])', type: 'InvalidInput' } });
    const missing = body();
    missing.inputs.splice(5, 1);
    const m = await infer(JSON.stringify(missing));
    expect(m.status).toBe(400);
    expect(m.json).toEqual({ error: 'requests do not fit the pipeline: lat is missing from the requests (on-demand feature distance_km needs it as numeric)', type: 'SchemaMismatch' });
    const outputs = { ...body(), outputs: [{ name: 'score' }, { name: 'probabilities' }] };
    expect(await infer(JSON.stringify(outputs))).toEqual({ status: 400, json: { error: 'inference request: outputs[1].name: model fraud-features has no output "probabilities" (outputs: label, score)', type: 'InvalidInput' } });
  });

  it('binary data shorter than its shape, or a header length past the body', async () => {
    const json = Buffer.from(JSON.stringify({ inputs: [{ name: 'amount', datatype: 'FP64', shape: [2], parameters: { binary_data_size: 8 } }] }));
    const body = Buffer.concat([json, Buffer.from(new Float64Array([1.5]).buffer)]);
    expect(await infer(body, { 'inference-header-content-length': String(json.length), 'content-type': 'application/octet-stream' })).toEqual({
      status: 400,
      json: { error: 'inference request: inputs[0] (amount): binary data is 8 bytes, the shape needs 2 FP64 elements (16 bytes)', type: 'InvalidInput' },
    });
    const short = Buffer.concat([Buffer.from(JSON.stringify({ inputs: [{ name: 'amount', datatype: 'FP64', shape: [2], parameters: { binary_data_size: 16 } }] })), Buffer.alloc(8)]);
    expect(await infer(short, { 'inference-header-content-length': String(short.length - 8) })).toEqual({
      status: 400,
      json: { error: 'inference request: inputs[0] (amount): binary_data_size 16 bytes, only 8 bytes of binary data remain in the body', type: 'InvalidInput' },
    });
    expect(await infer(short, { 'inference-header-content-length': '9999' })).toEqual({ status: 400, json: { error: `Inference-Header-Content-Length: "9999" is not a length within the ${short.length}-byte body` } });
  });

  it('unknown model, unknown version, unknown route → 404', async () => {
    const body = JSON.stringify(v2Body(rows()));
    expect(await infer(body, {}, 'nope')).toEqual({ status: 404, json: { error: 'model "nope" is not served here (served: fraud-features, fraud-features-b)', type: 'NotFound' } });
    const v = await fetch(`${server.url}/v2/models/fraud-features/versions/7/infer`, { method: 'POST', body });
    expect({ status: v.status, json: await v.json() }).toEqual({ status: 404, json: { error: 'model fraud-features version "7" is not served here (serving version 1)', type: 'NotFound' } });
    const ok = await fetch(`${server.url}/v2/models/fraud-features/versions/1/infer`, { method: 'POST', body: JSON.stringify(v2Body(rows(), fx.requests[0]!.ts)) });
    expect(ok.status).toBe(200);
    const r = await fetch(`${server.url}/v3/x`);
    expect({ status: r.status, json: await r.json() }).toEqual({ status: 404, json: { error: 'no route GET /v3/x' } });
  });
});

describe('Prometheus /metrics', () => {
  it('counts requests by route and status, latency, rows per request, feature statuses and the model version loaded', async () => {
    await infer(JSON.stringify(v2Body(fx.requests.slice(0, 4), fx.requests[0]!.ts)));
    await infer('{');
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/^inferflow_serve_requests_total\{route="v2_infer",status="200"\} [1-9]\d*$/m);
    expect(text).toMatch(/^inferflow_serve_requests_total\{route="v2_infer",status="400"\} [1-9]\d*$/m);
    expect(text).toMatch(/^inferflow_serve_request_duration_seconds_bucket\{le="\+Inf",route="v2_infer"\} [1-9]\d*$/m);
    expect(text).toMatch(/^inferflow_serve_rows_per_request_bucket\{le="5",model="fraud-features"\} [1-9]\d*$/m);
    expect(text).toMatch(/^inferflow_serve_feature_status_total\{model="fraud-features",feature="customer_stats__avg_amount_30d",status="PRESENT"\} [1-9]\d*$/m);
    expect(text).toMatch(/^inferflow_serve_model_info\{model="fraud-features",version="1",sha256="[0-9a-f]{64}"\} 1$/m);
    expect(text).toMatch(/^inferflow_serve_model_info\{model="fraud-features-b",version="1",sha256="[0-9a-f]{64}"\} 1$/m);
  });
});
