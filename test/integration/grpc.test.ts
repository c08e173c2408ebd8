/**
 * `inferflow serve --grpc-port`: the KServe V2 gRPC service (inference.GRPCInferenceService)
 * over a real Redis online store, called by the real tritonclient[grpc] from PyPI
 * (test/fixtures/grpc/triton_client.py): health, metadata, numpy inference with scores equal to
 * the Python training code's, output selection, and every bad input with its status and message.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FEATURES_EXPECTED, FEATURES_PIPELINE, REPO_ROOT, registerFeaturesExampleModel } from '../../cli/examples';
import { serve } from '../../cli/serve';
import { loadConfig } from '../../lib/config/env';
import { materializeView } from '../../lib/features/materialize';
import { openOnlineStore } from '../../lib/features/online';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { createLogger } from '../../lib/log';
import { openPipeline, type Pipeline } from '../../lib/pipeline/pipeline';
import { createResources, type Resources } from '../../lib/pipeline/resources';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { fixedDeployment, type Deployment } from '../../server/deployment';
import { startGrpcServer, type GrpcInferenceServer } from '../../server/grpc';
import { scoresIn, type Scores } from '../helpers/data';
import { tempConfig, uniqueName, tritonClientEnv } from '../helpers/env';
import { TEST_REDIS_URL } from '../helpers/services';
import { packageVersion } from '../../lib/util/package-root';
import { loadingDeployment } from '../helpers/deployments';

const DAY = 86_400_000;
const T = Date.parse('2026-10-13T00:00:00Z');
const keyPrefix = uniqueName('grpc');
const CLIENT = path.join(REPO_ROOT, 'test/fixtures/grpc/triton_client.py');

type Row = { transaction_id: string; customer_id: number; ts: string; amount: number; merchant_category: string; lat: number; lon: number };
type Answer = { model_name: string; model_version: string; id: string; outputs: Record<string, number[]>; datatypes: Record<string, string>; shapes: Record<string, number[]>; feature_status: Record<string, string>[] };

let server: Awaited<ReturnType<typeof serve>>;
let ops: GrpcInferenceServer;
let resources: Resources;
let pipeline: Pipeline;
let cleanup: () => Promise<void>;
let requests: Row[];
let expected: Scores;
const saved = { ...process.env };

/** Run the tritonclient script against a server; its JSON answer. */
function tritonclient<T>(address: string, mode: 'main' | 'ops' | 'drain'): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = execFile('python3', [CLIENT, address, mode], { maxBuffer: 16 * 1024 * 1024, timeout: 120_000, env: tritonClientEnv(inject('tritonPythonPath')) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${CLIENT} ${mode} failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as T);
    });
    child.stdin!.end(JSON.stringify(requests));
  });
}


/** The real pipeline's deployment, answering only after `ms`. */
function slow(pipeline: Pipeline, name: string, ms: number): Deployment {
  const d = fixedDeployment(pipeline, name);
  return { ...d, infer: (input) => new Promise((resolve) => setTimeout(resolve, ms)).then(() => d.infer(input)) };
}

beforeAll(async () => {
  const env = await tempConfig();
  cleanup = env.cleanup;
  await registerFeaturesExampleModel(new ModelRegistry(openStore(env.config.registry)));
  const spec = await loadPipelineSpec(FEATURES_PIPELINE);
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: env.dir });
  await materializeView({ view: spec.featureViews![0], store, end: new Date(T + DAY - 1) });
  await store.close();
  process.env.INFERFLOW_DATA_DIR = env.dir; // serve() reads the registry and cache location from the environment
  process.env.INFERFLOW_LOG_LEVEL = 'warn';
  server = await serve(FEATURES_PIPELINE, { port: 0, host: '127.0.0.1', grpcPort: 0, store: { type: 'redis', keyPrefix } });
  resources = createResources(loadConfig(), { logger: createLogger('warn') });
  pipeline = await openPipeline({ model: await resources.resolveModel(spec.model), featureViews: spec.featureViews ?? [], store: { type: 'redis', keyPrefix }, onDemand: spec.onDemand ?? [], idColumn: spec.idColumn! }, resources);
  ops = await startGrpcServer([fixedDeployment(pipeline), loadingDeployment('warming'), slow(pipeline, 'slow', 2_000)], { port: 0, tokens: new Set(['s3cret']), requestTimeoutMs: 300, maxMessageBytes: 64 * 1024 });
  expected = await scoresIn(FEATURES_EXPECTED);
  requests = await withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(
      `SELECT transaction_id, customer_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), amount, merchant_category, lat, lon FROM read_parquet(${lit(path.resolve(spec.spine!))})
       WHERE event_timestamp >= ${lit(new Date(T).toISOString())}::TIMESTAMPTZ AND event_timestamp < ${lit(new Date(T + DAY).toISOString())}::TIMESTAMPTZ ORDER BY transaction_id LIMIT 60`,
    );
    return r.getRowsJS().map((x) => ({ transaction_id: toText(x[0]), customer_id: Number(x[1]), ts: toText(x[2]), amount: Number(x[3]), merchant_category: toText(x[4]), lat: Number(x[5]), lon: Number(x[6]) }));
  });
}, 120_000);

afterAll(async () => {
  await Promise.all([server?.shutdown(), ops?.close()]);
  await resources?.close();
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: '/tmp' });
  await store.deleteView('customer_stats');
  await store.close();
  process.env = saved;
  await cleanup?.();
});

describe('inferflow serve --grpc-port (KServe V2 gRPC, tritonclient)', () => {
  let r: Record<string, unknown>;
  beforeAll(async () => {
    r = await tritonclient<Record<string, unknown>>(server.grpc!.address, 'main');
  }, 120_000);

  it('answers health, server and model metadata with V2 datatypes', () => {
    expect(r).toMatchObject({ live: true, ready: true, model_ready: true, model_ready_v1: true });
    expect(r.model_ready_unknown).toEqual({ code: 'NOT_FOUND', message: 'model "nope" is not served here (served: fraud-features)' });
    expect(r.model_ready_unknown_version).toEqual({ code: 'NOT_FOUND', message: 'model fraud-features version "7" is not served here (serving version 1)' });
    expect(r.server_metadata).toMatchObject({ name: 'inferflow', version: packageVersion() });
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    const meta = r.model_metadata as { inputs: { name: string }[] };
    expect({ ...meta, inputs: [...meta.inputs].sort(byName) }).toEqual({
      name: 'fraud-features',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'customer_id', datatype: 'INT64', shape: ['-1'] },
        { name: 'event_timestamp', datatype: 'BYTES', shape: ['-1'] },
        { name: 'amount', datatype: 'FP64', shape: ['-1'] },
        { name: 'merchant_category', datatype: 'BYTES', shape: ['-1'] },
        { name: 'lat', datatype: 'FP64', shape: ['-1'] },
        { name: 'lon', datatype: 'FP64', shape: ['-1'] },
      ].sort(byName),
      outputs: [
        { name: 'label', datatype: 'INT64', shape: ['-1'] },
        { name: 'score', datatype: 'FP32', shape: ['-1'] },
      ],
    });
    expect(r.model_metadata_unknown_version).toEqual({ code: 'NOT_FOUND', message: 'model fraud-features version "7" is not served here (serving version 1)' });
  });

  it('scores numpy requests (raw contents) as the Python training code does, echoing id and version', () => {
    const scores = r.scores as Answer[];
    expect(scores).toHaveLength(60);
    scores.forEach((a, i) => {
      const want = expected.get(requests[i]!.transaction_id)!;
      expect(a).toMatchObject({ model_name: 'fraud-features', model_version: '1', id: requests[i]!.transaction_id, datatypes: { label: 'INT64', score: 'FP32' }, shapes: { label: [1], score: [1] } });
      expect(a.outputs.label).toEqual([want.label]);
      expect(Math.abs(a.outputs.score![0]! - want.score)).toBeLessThan(1e-6);
    });
  });

  it('scores many rows in one request, with each row\'s feature statuses', () => {
    const batch = r.batch as Answer;
    expect(batch.shapes).toEqual({ label: [20], score: [20] });
    expect(batch.feature_status).toHaveLength(20);
    expect(batch.feature_status[0]).toMatchObject({ customer_stats__avg_amount_30d: 'PRESENT' });
    requests.slice(0, 20).forEach((q, i) => expect(batch.outputs.label![i]).toBe(expected.get(q.transaction_id)!.label));
  });

  it('answers only the requested outputs, and typed contents with typed contents', () => {
    expect(Object.keys((r.score_only as Answer).outputs)).toEqual(['score']);
    const typed = (r.typed as { ok: { outputs: { name: string; contents: Record<string, unknown[]> }[]; rawOutputContents?: unknown } }).ok;
    expect(typed.rawOutputContents).toBeUndefined();
    expect(typed.outputs.map((o) => Object.keys(o.contents))).toEqual([['int64Contents'], ['fp32Contents']]);
    expect(typed.outputs[0]!.contents.int64Contents).toEqual([String(expected.get(requests[0]!.transaction_id)!.label)]);
  });

  it('refuses each bad input with its gRPC status and a message naming the input', () => {
    expect(r.unknown_model).toEqual({ code: 'NOT_FOUND', message: 'model "nope" is not served here (served: fraud-features)' });
    expect(r.unknown_version).toEqual({ code: 'NOT_FOUND', message: 'model fraud-features version "7" is not served here (serving version 1)' });
    expect(r.unknown_output).toEqual({ code: 'INVALID_ARGUMENT', message: 'inference request: outputs[0].name: model fraud-features has no output "proba" (outputs: label, score)' });
    expect(r.wrong_datatype).toEqual({ code: 'INVALID_ARGUMENT', message: 'request values do not fit the pipeline: amount[0]: expected a number (FP64) or null, got "abc"' });
    expect(r.unknown_datatype).toEqual({ code: 'INVALID_ARGUMENT', message: 'inference request: inputs[3] (amount).datatype: one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES, got "FLOAT"' });
    expect(r.wrong_contents).toEqual({ code: 'INVALID_ARGUMENT', message: "inference request: inputs[1] (customer_id).contents: a INT64 tensor's values go in int64_contents, got fp64_contents" });
    expect(r.shape_vs_data).toEqual({ code: 'INVALID_ARGUMENT', message: 'inference request: inputs[1] (customer_id): shape [2] holds 2 values, data has 1' });
    expect(r.missing_input).toEqual({ code: 'INVALID_ARGUMENT', message: 'requests do not fit the pipeline: lat is missing from the requests (on-demand feature distance_km needs it as numeric)' });
    expect(r.raw_short).toEqual({ code: 'INVALID_ARGUMENT', message: 'inference request: raw_input_contents[1] (customer_id): binary data is 8 bytes, the shape needs 2 INT64 elements (16 bytes)' });
    expect(r.nan_timestamp).toEqual({ code: 'INVALID_ARGUMENT', message: 'request values do not fit the pipeline: event_timestamp[0]: expected an ISO 8601 time (BYTES) or epoch milliseconds (INT64), or null, got NaN' });
    expect(r.nan_amount).toEqual({ code: 'INVALID_ARGUMENT', message: `features contain NaN values (1): transaction_id=${requests[0]!.transaction_id}: amount = NaN` });
    expect(r.bad_as_of).toEqual({ code: 'INVALID_ARGUMENT', message: 'inference request: parameters.as_of: an ISO 8601 time, got "yesterday"' });
  });
});

describe('gRPC operations: bearer tokens, a model not loaded yet, the server deadline', () => {
  it('asks for a token except on health; UNAVAILABLE while not ready; DEADLINE_EXCEEDED past the deadline; RESOURCE_EXHAUSTED over the message limit', async () => {
    const r = await tritonclient<Record<string, unknown>>(ops.address, 'ops');
    expect(r).toMatchObject({ live_without_token: true, ready_without_token: false, with_token: '1', warming_ready: false });
    expect(r.no_token).toEqual({ code: 'UNAUTHENTICATED', message: 'ModelMetadata: missing or unknown bearer token (send metadata authorization: Bearer <token>)' });
    expect(r.wrong_token).toEqual({ code: 'UNAUTHENTICATED', message: 'ModelInfer: missing or unknown bearer token (send metadata authorization: Bearer <token>)' });
    expect(r.warming_infer).toEqual({ code: 'UNAVAILABLE', message: 'model warming is not ready: no version loaded yet; retry later' });
    expect(r.slow_infer).toEqual({ code: 'DEADLINE_EXCEEDED', message: 'ModelInfer for slow did not finish within 300 ms' });
    expect(r.too_large).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect((r.too_large as { message: string }).message).toMatch(/^Received message larger than max \(\d+ vs 65536\)$/);
  }, 120_000);
});

describe('gRPC shutdown', () => {
  it('lets a call in flight finish, then refuses new calls', async () => {
    let arrived!: () => void;
    const called = new Promise<void>((resolve) => (arrived = resolve));
    const d = slow(pipeline, 'slow', 1_000);
    const draining = await startGrpcServer([{ ...d, infer: (input) => (arrived(), d.infer(input)) }], { port: 0 });
    const client = tritonclient<{ during: unknown; after: { code: string } }>(draining.address, 'drain');
    await called;
    await draining.close();
    const r = await client;
    expect(r.during).toEqual({ ok: '1' });
    expect(r.after.code).toBe('UNAVAILABLE');
  }, 120_000);
});
