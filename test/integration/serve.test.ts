/**
 * `inferflow serve`: the KServe V2 REST endpoint over a real Redis online store. Scores equal
 * the ones the Python training code computed offline for the same requests.
 */
import net from 'node:net';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURES_PIPELINE } from '../../cli/examples';
import { serve, type ServeHandle } from '../../cli/serve';
import { InvalidInputError } from '../../lib/errors';
import { DAY, T, serveFixture, v2Body, type ServeFixture, type ServeRequest } from '../helpers/serve-fixture';

let server: ServeHandle;
let fx: ServeFixture;
let requests: ServeRequest[];
let keyPrefix: string;

beforeAll(async () => {
  fx = await serveFixture();
  ({ requests, keyPrefix } = fx);
  server = await serve(FEATURES_PIPELINE, { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix } });
});

afterAll(async () => {
  await server?.shutdown();
  await fx?.cleanup();
});

const v2 = v2Body;

async function post(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${server.url}/v2/models/fraud-features/infer`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('inferflow serve (KServe V2 REST, Redis online store)', () => {
  it('answers health and metadata, naming the request fields the pipeline needs', async () => {
    expect(await (await fetch(`${server.url}/v2/health/ready`)).json()).toEqual({ ready: true });
    const meta = (await (await fetch(`${server.url}/v2/models/fraud-features`)).json()) as { name: string; inputs: { name: string }[]; outputs: { name: string }[] };
    expect(meta.name).toBe('fraud-features');
    expect(meta.inputs.map((i) => i.name).sort()).toEqual(['amount', 'customer_id', 'event_timestamp', 'lat', 'lon', 'merchant_category']);
    expect(meta.outputs.map((o) => o.name)).toEqual(['label', 'score']);
  });

  it('scores requests as the offline pipeline and the Python training code do', async () => {
    expect(requests.length).toBe(60);
    for (const r of requests) {
      const { status, json } = await post(v2([r], r.ts));
      expect(status, JSON.stringify(json)).toBe(200);
      const outputs = json.outputs as { name: string; data: number[] }[];
      const want = fx.expected.get(r.transaction_id)!;
      expect(outputs.find((o) => o.name === 'label')!.data[0]).toBe(want.label);
      expect(Math.abs(outputs.find((o) => o.name === 'score')!.data[0]! - want.score)).toBeLessThan(1e-6);
    }
  });

  it('scores many rows in one request, with feature statuses per row', async () => {
    const { status, json } = await post(v2(requests.slice(0, 20), new Date(T + DAY).toISOString()));
    expect(status).toBe(200);
    expect(json.id).toBe('req-1');
    expect((json.outputs as { shape: number[] }[])[0]!.shape).toEqual([20]);
    const statuses = (json.parameters as { feature_status: Record<string, string>[] }).feature_status;
    expect(statuses).toHaveLength(20);
    expect(statuses[0]!['customer_stats__avg_amount_30d']).toBe('PRESENT');
    // Without as_of, freshness is judged now: the October snapshots are older than the 2-day TTL.
    const now = await post(v2(requests.slice(0, 1)));
    expect((now.json.parameters as { feature_status: Record<string, string>[] }).feature_status[0]!['customer_stats__avg_amount_30d']).toBe('STALE');
  });

  it('loads the registered feature modules only: a spec naming another feature does not start', async () => {
    const spec = JSON.parse(await fs.readFile(FEATURES_PIPELINE, 'utf8')) as Record<string, unknown>;
    const file = path.join(process.env.INFERFLOW_DATA_DIR!, 'unregistered.json');
    await fs.writeFile(file, JSON.stringify({ ...spec, $schema: undefined, spine: path.resolve(path.dirname(FEATURES_PIPELINE), spec.spine as string), onDemand: [{ name: 'fraud.amountRatio' }, { name: 'fraud.nope' }] }));
    const err = (await serve(file, { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix } }).catch((e: unknown) => e)) as InvalidInputError;
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.message).toContain('onDemand[1].name: "fraud.nope" is not a registered on-demand feature (registered: fraud.amountRatio, fraud.homeDistance, fraud.hourOfDay)');
  });

  it('rejects bad requests with 400 and every problem named; unknown models with 404', async () => {
    const body = v2(requests.slice(0, 2));
    body.inputs = body.inputs.filter((i) => i.name !== 'lat');
    body.inputs[1]!.shape = [3];
    const bad = await post(body);
    expect(bad.status).toBe(400);
    expect(bad.json.error).toContain('inputs[1] (customer_id): shape [3] holds 3 values, data has 2');
    const missing = await post({ inputs: v2(requests.slice(0, 2)).inputs.filter((i) => i.name !== 'lat') });
    expect(missing.status).toBe(400);
    expect(missing.json).toMatchObject({ type: 'SchemaMismatch' });
    expect(missing.json.error).toContain('lat is missing from the requests');
    expect((await post({ inputs: 'nope' })).status).toBe(400);
    expect((await fetch(`${server.url}/v2/models/other/infer`, { method: 'POST', body: '{}' })).status).toBe(404);
  });

  it('rejects values of the wrong type with 400 naming the input, the index and the expected type; a null number is reported as null', async () => {
    const withData = (name: string, data: unknown[]) => {
      const body = v2(requests.slice(0, data.length), requests[0]!.ts);
      body.inputs.find((i) => i.name === name)!.data = data;
      return body;
    };
    const int64 = await post(withData('customer_id', [requests[0]!.customer_id, 'abc']));
    expect(int64.status).toBe(400);
    expect(int64.json.error).toContain('inputs[1] (customer_id).data[1]: expected INT64, got "abc"');
    const fp64 = await post(withData('amount', [true]));
    expect(fp64.status).toBe(400);
    expect(fp64.json.error).toContain('inputs[3] (amount).data[0]: expected FP64, got true');
    const time = await post(withData('event_timestamp', ['not a time']));
    expect(time.status).toBe(400);
    expect(time.json).toMatchObject({ type: 'InvalidInput' });
    expect(time.json.error).toContain('event_timestamp[0]: expected an ISO 8601 time (BYTES) or epoch milliseconds (INT64), or null, got "not a time"');
    expect(time.json.error).not.toContain('hour_of_day');
    // amount has no imputer in this model: a null amount cannot be scored, and is named as null.
    const nullAmount = await post(withData('amount', [null]));
    expect(nullAmount.status).toBe(400);
    expect(nullAmount.json.error).toContain('transaction_id=' + requests[0]!.transaction_id + ': amount = null');
    expect(nullAmount.json.error).not.toContain('NaN');
  });

  it('a null entity key finds no features (NOT_FOUND) and is scored on imputed values, like a spine row with a null key in batch', async () => {
    const unknown = await post(v2([{ ...requests[0]!, customer_id: 987_654_321 }], requests[0]!.ts));
    const body = v2([requests[0]!], requests[0]!.ts);
    body.inputs.find((i) => i.name === 'customer_id')!.data = [null];
    const nullKey = await post(body);
    expect(nullKey.status, JSON.stringify(nullKey.json)).toBe(200);
    expect((nullKey.json.parameters as { feature_status: Record<string, string>[] }).feature_status[0]).toMatchObject({ customer_stats__avg_amount_30d: 'NOT_FOUND' });
    expect(nullKey.json.outputs).toEqual(unknown.json.outputs);
  });
});

/** Raw HTTP over a socket: what the server sends back, and whether it closed the connection, within `waitMs`. */
function rawExchange(url: string, write: (socket: net.Socket) => void, waitMs: number): Promise<{ response: string; closed: boolean; error?: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let response = '';
    let error: string | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response, closed: false, ...(error ? { error } : {}) });
    }, waitMs);
    socket.on('data', (d) => (response += d.toString('latin1')));
    socket.on('error', (e) => (error = e.message));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ response, closed: true, ...(error ? { error } : {}) });
    });
    socket.on('connect', () => write(socket));
  });
}

/**
 * POST a body of `bytes` bytes over a raw socket the way simple clients do: send all of it (in
 * 1 MB chunks; chunked transfer encoding when `chunked`), and only then read the answer.
 */
function postLarge(url: string, bytes: number, chunked: boolean): Promise<{ response: string; error?: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
    let response = '';
    let error: string | undefined;
    socket.on('data', (d) => (response += d.toString('latin1')));
    socket.on('error', (e) => (error = e.message));
    socket.on('close', () => resolve({ response, ...(error ? { error } : {}) }));
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const frame = (b: Buffer) => (chunked ? Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]) : b);
    let sent = 0;
    const more = () => {
      while (sent < bytes && !socket.destroyed) {
        sent += chunk.length;
        if (!socket.write(frame(chunk))) return void socket.once('drain', more);
      }
      if (chunked && !socket.destroyed) socket.write('0\r\n\r\n');
    };
    socket.on('connect', () => {
      socket.write(`POST /v2/models/fraud-features/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${bytes}`}\r\n\r\n`);
      more();
    });
  });
}

describe('inferflow serve under abuse', () => {
  it('answers a 50 MB body with a readable 413 and the V2 error body, with and without Content-Length, and keeps serving', async () => {
    for (const chunked of [false, true]) {
      const r = await postLarge(server.url, 50 * 1024 * 1024, chunked);
      expect(r.error, `chunked: ${chunked}`).toBeUndefined();
      expect(r.response).toMatch(/^HTTP\/1\.1 413/);
      expect(JSON.parse(r.response.slice(r.response.indexOf('\r\n\r\n') + 4))).toEqual({ error: `request body larger than ${16 * 1024 * 1024} bytes` });
    }
    expect((await post(v2([requests[0]!], requests[0]!.ts))).status).toBe(200);
  });

  it('closes connections whose headers or body are too slow, and answers a connection over the cap with 503', async () => {
    const limited = await serve(FEATURES_PIPELINE, { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix }, limits: { headersTimeoutMs: 500, requestTimeoutMs: 1_000, maxConnections: 3 } });
    try {
      const started = Date.now();
      // Headers that never end, and a body that never comes: both connections are answered 408 and closed.
      const [slowHeaders, slowBody] = await Promise.all([
        rawExchange(limited.url, (s) => s.write('POST /v2/models/fraud-features/infer HTTP/1.1\r\nHost: x\r\n'), 10_000),
        rawExchange(limited.url, (s) => s.write('POST /v2/models/fraud-features/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"inputs"'), 10_000),
      ]);
      expect(slowHeaders.closed).toBe(true);
      expect(slowBody.closed).toBe(true);
      expect(slowHeaders.response).toMatch(/^HTTP\/1\.1 408/);
      expect(slowBody.response).toMatch(/^HTTP\/1\.1 408/);
      expect(Date.now() - started).toBeLessThan(5_000);

      // Three idle connections fill the cap; a request on a fourth is answered 503 (V2 error body) and closed.
      const idle = await Promise.all([0, 1, 2].map(() => new Promise<net.Socket>((resolve) => {
        const s: net.Socket = net.connect(Number(new URL(limited.url).port), '127.0.0.1', () => resolve(s));
        s.on('error', () => undefined);
      })));
      const over = await rawExchange(limited.url, (s) => s.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n'), 5_000);
      expect(over.response).toMatch(/^HTTP\/1\.1 503/);
      expect(JSON.parse(over.response.slice(over.response.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'too many connections (at most 3); retry later' });
      expect(over.closed).toBe(true);
      // Once the idle connections are gone, requests are served again.
      for (const s of idle) s.destroy();
      await new Promise((r) => setTimeout(r, 100));
      expect((await fetch(`${limited.url}/v2/health/live`)).status).toBe(200);
    } finally {
      await limited.shutdown();
    }
  });
});
