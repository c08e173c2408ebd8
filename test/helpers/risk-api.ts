/**
 * A local merchant-risk HTTP API for the external-feature tests: answers
 * GET /merchants/<category> with {"risk": <value>} (404 for another category) after checking the
 * bearer token, and misbehaves per category on request (any category, known or not) (slow, failing, rate-limiting, malformed answers).
 * Counts calls and the most calls it had in flight at once.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { EXAMPLE_MODEL_DIR } from '../../cli/examples';
import type { ModelRegistry } from '../../lib/registry';

/** The merchant risk the fixture model `fraud-imputed` fills in where a lookup gave none. */
export const IMPUTED_RISK = 0.05;

/**
 * Register `fraud-imputed@production`: the example fraud model behind a fitted simple_imputer for
 * merchant_risk (in its manifest), so a row whose lookup failed is still predicted, on IMPUTED_RISK.
 */
export async function registerImputedFraud(registry: ModelRegistry): Promise<void> {
  const metadata = JSON.parse(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'metadata.json'), 'utf8')) as Record<string, unknown>;
  metadata.transforms = { format: 'inferflow.transforms/v1', steps: [{ type: 'simple_imputer', columns: ['merchant_risk'], strategy: 'constant', statistics: [IMPUTED_RISK], fill_value: IMPUTED_RISK }] };
  await registry.register(path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), { name: 'fraud-imputed', metadata, alias: 'production' });
}

/** The risk of each merchant category in examples/data/transactions.parquet. */
export const MERCHANT_RISK: Readonly<Record<string, number>> = {
  electronics: 0.12,
  fuel: 0.03,
  jewelry: 0.18,
  pharmacy: 0.02,
  restaurant: 0.03,
  grocery: 0.02,
  travel: 0.08,
  online_gaming: 0.2,
};

export type Behaviour =
  | { kind: 'ok'; delayMs?: number }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'fail'; status: number; times?: number }
  | { kind: 'rate-limit'; retryAfter: string; times?: number }
  | { kind: 'malformed'; body: string };

export interface RiskApi {
  url: string;
  token: string;
  /** Behaviour per category (default ok). */
  behaviour: Map<string, Behaviour>;
  calls: number;
  callsByKey: Map<string, number>;
  maxInFlight: number;
  /** Arrival times (ms) of each call per category. */
  arrivals: Map<string, number[]>;
  reset(): void;
  close(): Promise<void>;
}

export async function startRiskApi(token: string): Promise<RiskApi> {
  let inFlight = 0;
  const api: RiskApi = {
    url: '',
    token,
    behaviour: new Map(),
    calls: 0,
    callsByKey: new Map(),
    maxInFlight: 0,
    arrivals: new Map(),
    reset() {
      api.behaviour.clear();
      api.calls = 0;
      api.callsByKey.clear();
      api.maxInFlight = 0;
      api.arrivals.clear();
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server = http.createServer((req, res) => {
    const category = decodeURIComponent(/^\/merchants\/([^/?]+)/.exec(req.url ?? '')?.[1] ?? '');
    api.calls++;
    const n = (api.callsByKey.get(category) ?? 0) + 1;
    api.callsByKey.set(category, n);
    api.arrivals.set(category, [...(api.arrivals.get(category) ?? []), Date.now()]);
    inFlight++;
    api.maxInFlight = Math.max(api.maxInFlight, inFlight);
    let done = false;
    const finish = () => {
      if (!done) inFlight--;
      done = true;
    };
    const answer = (status: number, body: string, headers: http.OutgoingHttpHeaders = {}) => {
      finish();
      if (!res.destroyed) res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
    };
    res.on('close', finish);
    if (req.headers.authorization !== `Bearer ${token}`) return answer(401, '{"error":"bad token"}');
    const risk = MERCHANT_RISK[category];
    const b = api.behaviour.get(category) ?? { kind: 'ok' };
    const ok = () => (risk === undefined ? answer(404, '{"error":"unknown merchant category"}') : answer(200, JSON.stringify({ category, risk })));
    switch (b.kind) {
      case 'ok':
        return void setTimeout(ok, b.delayMs ?? 0);
      case 'slow':
        return void setTimeout(ok, b.delayMs);
      case 'fail':
        return n <= (b.times ?? Infinity) ? answer(b.status, '{"error":"down"}') : ok();
      case 'rate-limit':
        return n <= (b.times ?? Infinity) ? answer(429, '{"error":"slow down"}', { 'retry-after': b.retryAfter }) : ok();
      case 'malformed':
        return answer(200, b.body);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}
