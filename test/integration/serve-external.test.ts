/**
 * `inferflow serve` with an external-API feature (examples/features/risk.ts) against a local
 * merchant-risk API: scores equal ONNX Runtime's on the file's own merchant_risk, statuses per
 * row, the request deadline bounding the lookups, and a lookup failure answered as a typed error
 * naming the row, the output and the status (never a score computed on a made-up value). Over
 * gRPC the call's own deadline (grpc-timeout) bounds the lookups the same way.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_FEATURES, REPO_ROOT } from '../../cli/examples';
import { serve } from '../../cli/serve';
import { GRPC_PROTO_FILE } from '../../server/grpc';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { referenceScores, type Scores } from '../helpers/data';
import { registerExample, tempConfig } from '../helpers/env';
import { startRiskApi, type RiskApi } from '../helpers/risk-api';

const TOKEN = 'serve-token-52c1';
const SPEC = path.join(REPO_ROOT, 'examples', 'pipelines', 'fraud-risk-api.json');
const DEADLINE_MS = 1_500;
const FIELDS = ['transaction_id', 'amount', 'customer_avg_amount_30d', 'customer_txn_count_24h', 'distance_from_home_km', 'hour_of_day', 'is_foreign', 'merchant_category'] as const;

let api: RiskApi;
let server: Awaited<ReturnType<typeof serve>>;
let cleanup: () => Promise<void>;
let rows: Record<string, string | number>[];
let expected: Scores;
const saved = { ...process.env };

beforeAll(async () => {
  api = await startRiskApi(TOKEN);
  const env = await tempConfig();
  cleanup = env.cleanup;
  await registerExample(new ModelRegistry(openStore(env.config.registry)));
  Object.assign(process.env, {
    INFERFLOW_DATA_DIR: env.dir,
    INFERFLOW_LOG_LEVEL: 'silent',
    INFERFLOW_MODULES: `risk=${path.join(REPO_ROOT, 'examples', 'features', 'risk.ts')}`,
    RISK_API_URL: api.url,
    RISK_API_TOKEN: TOKEN,
  });
  server = await serve(SPEC, { port: 0, host: '127.0.0.1', grpcPort: 0, limits: { deadlineMs: DEADLINE_MS } });
  expected = await referenceScores(EXAMPLE_FEATURES);
  rows = await withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(`SELECT ${FIELDS.join(', ')} FROM read_parquet(${lit(EXAMPLE_FEATURES)}) ORDER BY transaction_id LIMIT 200`);
    return r.getRowsJS().map((x) => Object.fromEntries(FIELDS.map((f, i) => [f, f === 'transaction_id' || f === 'merchant_category' ? toText(x[i]) : Number(x[i])])));
  });
});

afterAll(async () => {
  await server?.shutdown();
  await api?.close();
  process.env = saved;
  await cleanup?.();
});

const isText = (f: string) => f === 'transaction_id' || f === 'merchant_category';
const isInt = (f: string) => f === 'customer_txn_count_24h' || f === 'hour_of_day' || f === 'is_foreign';

function v2(batch: typeof rows) {
  return {
    inputs: FIELDS.map((f) => ({
      name: f,
      datatype: isText(f) ? 'BYTES' : isInt(f) ? 'INT64' : 'FP64',
      shape: [batch.length],
      data: batch.map((r) => r[f]),
    })),
  };
}

async function post(body: unknown): Promise<{ status: number; json: Record<string, unknown>; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${server.url}/v2/models/fraud-detector/infer`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown>, ms: Date.now() - started };
}

/** ModelInfer with a raw @grpc/grpc-js client and a call deadline `deadlineMs` from now: the status it ends with. */
function grpcInfer(row: Record<string, string | number>, deadlineMs: number): Promise<{ code: grpc.status; details: string; ms: number }> {
  const def = protoLoader.loadSync(GRPC_PROTO_FILE, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const Service = (grpc.loadPackageDefinition(def) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } }).inference.GRPCInferenceService;
  const client = new Service(server.grpc!.address, grpc.credentials.createInsecure());
  const inputs = FIELDS.map((f) => ({
    name: f,
    datatype: isText(f) ? 'BYTES' : isInt(f) ? 'INT64' : 'FP64',
    shape: ['1'],
    contents: isText(f) ? { bytes_contents: [Buffer.from(String(row[f]))] } : isInt(f) ? { int64_contents: [String(row[f])] } : { fp64_contents: [Number(row[f])] },
  }));
  const started = Date.now();
  return new Promise((resolve) => {
    (client as unknown as { ModelInfer: (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void }).ModelInfer(
      { model_name: 'fraud-detector', inputs },
      { deadline: Date.now() + deadlineMs },
      (err) => {
        client.close();
        resolve({ code: err ? err.code : grpc.status.OK, details: err?.details ?? '', ms: Date.now() - started });
      },
    );
  });
}

describe('inferflow serve with an external-API feature', () => {
  it('scores as ONNX Runtime does on the same rows, the risk looked up once per category, statuses per row', async () => {
    api.reset();
    const { status, json } = await post(v2(rows));
    expect(status, JSON.stringify(json)).toBe(200);
    const outputs = json.outputs as { name: string; data: number[] }[];
    const labels = outputs.find((o) => o.name === 'label')!.data;
    const scores = outputs.find((o) => o.name === 'score')!.data;
    rows.forEach((r, i) => {
      const want = expected.get(r.transaction_id as string)!;
      expect(labels[i]).toBe(want.label);
      expect(Math.abs(scores[i]! - want.score)).toBeLessThan(1e-6);
    });
    const statuses = (json.parameters as { feature_status: Record<string, string>[] }).feature_status;
    expect(statuses.every((s) => s.merchant_risk === 'PRESENT')).toBe(true);
    expect(api.calls).toBe(new Set(rows.map((r) => r.merchant_category)).size);
    // Cached: the same categories again cost no call.
    await post(v2(rows.slice(0, 10)));
    expect(api.calls).toBe(new Set(rows.map((r) => r.merchant_category)).size);
  });

  it('a slow API counts against the request deadline: 503 naming the row, the output and TIMEOUT', async () => {
    api.reset();
    // A category no earlier request cached.
    api.behaviour.set('late_night', { kind: 'slow', delayMs: 5_000 });
    const row = { ...rows[0]!, transaction_id: 'late-1', merchant_category: 'late_night' };
    const { status, json, ms } = await post(v2([row]));
    expect(status, JSON.stringify(json)).toBe(503);
    expect(json.type).toBe('Transient');
    expect(json.error).toContain('transaction_id=late-1: merchant_risk TIMEOUT');
    // The lookups give up 100 ms (at most a tenth) before the server's deadline, so their 503 comes before its 504.
    expect(ms).toBeGreaterThanOrEqual(DEADLINE_MS - 150);
    expect(ms).toBeLessThan(DEADLINE_MS + 1_000);
  });

  it('over gRPC a slow API counts against the call\'s deadline: UNAVAILABLE naming the row, the output and TIMEOUT, before the deadline', async () => {
    api.reset();
    // Not a category any other test asks for: nothing cached, and no late answer of another test lands in the cache.
    api.behaviour.set('red_eye', { kind: 'slow', delayMs: 5_000 });
    const { code, details, ms } = await grpcInfer({ ...rows[0]!, transaction_id: 'late-grpc', merchant_category: 'red_eye' }, DEADLINE_MS);
    expect(code, details).toBe(grpc.status.UNAVAILABLE);
    expect(details).toContain('transaction_id=late-grpc: merchant_risk TIMEOUT');
    expect(ms).toBeGreaterThanOrEqual(DEADLINE_MS - 150);
  });

  it('a malformed answer is a 400 naming the row, the output and MALFORMED; an unknown category NOT_FOUND', async () => {
    api.reset();
    api.behaviour.set('casino', { kind: 'malformed', body: '{"risk": "very"}' });
    const bad = { ...rows[0]!, transaction_id: 'odd-1', merchant_category: 'casino' };
    const unknown = { ...rows[0]!, transaction_id: 'odd-2', merchant_category: 'bowling' };
    const { status, json } = await post(v2([bad, unknown]));
    expect(status, JSON.stringify(json)).toBe(400);
    expect(json.type).toBe('InvalidValue');
    expect(json.error).toContain('transaction_id=odd-1: merchant_risk MALFORMED');
    expect(json.error).toContain('transaction_id=odd-2: merchant_risk NOT_FOUND');
  });
});
