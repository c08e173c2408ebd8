/**
 * Operating `inferflow serve`: bearer-token auth (401), a model not loaded yet (503), the
 * per-request deadline (504), the online store going away and coming back (503 with
 * Retry-After, then 200), and a graceful drain on SIGTERM through the package's bin.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURES_PIPELINE, REPO_ROOT } from '../../cli/examples';
import { serve, type ServeHandle } from '../../cli/serve';
import { startInferenceServer } from '../../server/http';
import { serveFixture, v2Body, type ServeFixture } from '../helpers/serve-fixture';
import { startProcess } from '../helpers/processes';
import { TEST_REDIS_URL } from '../helpers/services';
import { startTcpProxy } from '../helpers/tcp-proxy';
import { loadingDeployment } from '../helpers/deployments';

const BIN = path.join(REPO_ROOT, 'bin', 'inferflow.js');
let fx: ServeFixture;
const children: ChildProcess[] = [];

beforeAll(async () => {
  fx = await serveFixture();
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await fx?.cleanup();
});

/** serve() with the online store's Redis at `redisUrl` (INFERFLOW_REDIS_URL is read at start-up). */
async function serveWith(redisUrl: string, opts: Partial<Parameters<typeof serve>[1]> = {}): Promise<ServeHandle> {
  const before = process.env.INFERFLOW_REDIS_URL;
  process.env.INFERFLOW_REDIS_URL = redisUrl;
  try {
    return await serve(FEATURES_PIPELINE, { port: 0, host: '127.0.0.1', store: { type: 'redis', keyPrefix: fx.keyPrefix }, ...opts });
  } finally {
    if (before === undefined) delete process.env.INFERFLOW_REDIS_URL;
    else process.env.INFERFLOW_REDIS_URL = before;
  }
}

const inferBody = () => JSON.stringify(v2Body(fx.requests.slice(0, 2), fx.requests[0]!.ts));

async function call(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; json: unknown }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text.startsWith('{') ? JSON.parse(text) : text };
}

describe('bearer-token auth', () => {
  it('answers 401 with WWW-Authenticate without a token or with a wrong one; health stays open; tokens from a file and the environment', async () => {
    const file = path.join(fx.dir, 'tokens');
    await fs.writeFile(file, '# serve tokens\nfile-token\n\n');
    process.env.INFERFLOW_SERVE_TOKENS = 'env-token-1,env-token-2';
    const s = await serveWith(TEST_REDIS_URL, { tokenFile: file }).finally(() => delete process.env.INFERFLOW_SERVE_TOKENS);
    try {
      const infer = `${s.url}/v2/models/fraud-features/infer`;
      const none = await call(infer, { method: 'POST', body: inferBody() });
      expect(none.status).toBe(401);
      expect(none.json).toEqual({ error: 'authorization required: send Authorization: Bearer <token>' });
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="inferflow"');
      const wrong = await call(infer, { method: 'POST', body: inferBody(), headers: { authorization: 'Bearer nope' } });
      expect(wrong.status).toBe(401);
      expect(wrong.json).toEqual({ error: 'invalid bearer token' });
      expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="inferflow", error="invalid_token"');
      const mlflow = await call(`${s.url}/invocations`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      expect(mlflow).toMatchObject({ status: 401, json: { error_code: 'UNAUTHENTICATED', message: 'authorization required: send Authorization: Bearer <token>' } });
      expect((await call(`${s.url}/metrics`)).status).toBe(401);
      expect((await call(`${s.url}/v2`)).status).toBe(401);
      for (const open of ['/v2/health/live', '/v2/health/ready', '/ping', '/health']) expect((await call(`${s.url}${open}`)).status, open).toBe(200);
      for (const token of ['file-token', 'env-token-2']) expect((await call(infer, { method: 'POST', body: inferBody(), headers: { authorization: `Bearer ${token}` } })).status, token).toBe(200);
      expect(s.auth).toContain('bearer-token auth on (3 tokens)');
    } finally {
      await s.shutdown();
    }
    const empty = path.join(fx.dir, 'empty-tokens');
    await fs.writeFile(empty, '# nothing\n');
    await expect(serveWith(TEST_REDIS_URL, { tokenFile: empty })).rejects.toThrow(`--token-file ${empty} holds no token (one a line; # starts a comment)`);
  });
});

describe('readiness', () => {
  it('a model not loaded yet: 503 on ready, metadata and infer; health ready false; live true', async () => {
    const loading = loadingDeployment('loading');
    const s = await startInferenceServer(loading, { port: 0 });
    try {
      expect(await call(`${s.url}/v2/health/live`)).toMatchObject({ status: 200, json: { live: true } });
      expect(await call(`${s.url}/v2/health/ready`)).toMatchObject({ status: 503, json: { ready: false } });
      expect(await call(`${s.url}/v2/models/loading/ready`)).toMatchObject({ status: 503, json: { name: 'loading', ready: false } });
      const infer = await call(`${s.url}/v2/models/loading/infer`, { method: 'POST', body: inferBody() });
      expect(infer.status).toBe(503);
      expect(infer.json).toEqual({ error: 'model loading is not ready: no version loaded yet; retry later', type: 'Transient' });
      expect(infer.headers.get('retry-after')).toBe('1');
      expect((await call(`${s.url}/v2/models/loading`)).status).toBe(503);
      expect((await call(`${s.url}/ping`)).status).toBe(503);
    } finally {
      await s.close();
    }
  });
});

describe('deadline and the online store', () => {
  it('answers 504 past the deadline (a store that accepts connections and never answers)', async () => {
    const held = new Set<net.Socket>();
    const blackHole = net.createServer((socket) => void held.add(socket.on('error', () => undefined)));
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    const s = await serveWith(`redis://127.0.0.1:${(blackHole.address() as net.AddressInfo).port}/0`, { limits: { deadlineMs: 300 } });
    try {
      const started = Date.now();
      const r = await call(`${s.url}/v2/models/fraud-features/infer`, { method: 'POST', body: inferBody() });
      expect(r).toMatchObject({ status: 504, json: { error: 'model fraud-features did not answer within the 300 ms deadline (INFERFLOW_SERVE_DEADLINE_MS)' } });
      expect(Date.now() - started).toBeLessThan(3_000);
      expect((await call(`${s.url}/v2/health/live`)).status).toBe(200);
    } finally {
      for (const h of held) h.destroy();
      await s.shutdown();
      await new Promise<void>((resolve) => blackHole.close(() => resolve()));
    }
  });

  it('answers 503 with Retry-After while the store is down, stays up, and recovers when it returns', async () => {
    const redis = new URL(TEST_REDIS_URL);
    const proxy = await startTcpProxy({ host: redis.hostname, port: Number(redis.port) });
    const s = await serveWith(`redis://127.0.0.1:${proxy.port}${redis.pathname}`);
    try {
      const infer = () => call(`${s.url}/v2/models/fraud-features/infer`, { method: 'POST', body: inferBody() });
      expect((await infer()).status).toBe(200);
      await proxy.stop();
      const down = await infer();
      expect(down.status).toBe(503);
      expect(down.headers.get('retry-after')).toBe('1');
      expect(down.json).toMatchObject({ type: 'Transient', error: expect.stringContaining(`online store redis://127.0.0.1:${proxy.port}`) as unknown });
      expect((await call(`${s.url}/v2/health/live`)).status).toBe(200);
      await proxy.start();
      expect((await infer()).status).toBe(200);
    } finally {
      await s.shutdown();
      await proxy.close();
    }
  });
});

describe('graceful drain', () => {
  it('on SIGTERM the bin stops accepting, answers the request in flight with 200, and exits 0', async () => {
    const env = { ...process.env, INFERFLOW_REDIS_URL: TEST_REDIS_URL, INFERFLOW_LOG_LEVEL: 'info' };
    const p = await startProcess({ command: process.execPath, argv: [BIN, 'serve', FEATURES_PIPELINE, '--port', '0', '--store', `redis:${fx.keyPrefix}`], env, cwd: REPO_ROOT, ready: /"msg":"serving [^"]* at http:\/\/[^/]+\//, children });
    const url = new URL(/"msg":"serving [^"]* at (http:\/\/[^/]+)\//.exec(p.output())![1]!);
    const body = Buffer.from(inferBody());
    // A request in flight: headers and half of the body sent before SIGTERM, the rest after.
    const socket = net.connect(Number(url.port), url.hostname);
    let response = '';
    socket.on('data', (d) => (response += d.toString()));
    socket.on('error', (e) => (response += `socket error: ${e.message}`));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`POST /v2/models/fraud-features/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.write(body.subarray(0, 100));
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise<number | null>((resolve) => p.child.once('exit', (code) => resolve(code)));
    p.child.kill('SIGTERM');
    await expect.poll(() => p.output(), { timeout: 10_000 }).toContain('SIGTERM: draining');
    // No new connections once draining.
    const refused = await new Promise<string>((resolve) => net.connect(Number(url.port), url.hostname).once('connect', () => resolve('connected')).once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message)));
    expect(refused).toBe('ECONNREFUSED');
    socket.write(body.subarray(100)); // not end(): a half-closed request is one whose client went away
    await closed;
    const code = await exited;
    expect(response, `exit ${code}: ${p.output()}`).toMatch(/^HTTP\/1\.1 200 /);
    expect(response).toMatch(/connection: close/i);
    expect(JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4))).toMatchObject({ model_name: 'fraud-features', outputs: [{ name: 'label' }, { name: 'score' }] });
    expect(code).toBe(0);
    expect(p.output()).toContain('"msg":"stopped"');
  });
});
