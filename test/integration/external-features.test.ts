/**
 * External-API features against a real local HTTP API (test/helpers/risk-api.ts): values,
 * one call per distinct key, the cache and its TTL, timeouts, retries with backoff, 429 with
 * Retry-After, the concurrency limit, the deadline, malformed answers and credentials — each
 * failure a missing value with a status, never a value.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../lib/errors';
import { defineExternalFeature, ExternalFeatures, retryAfterMs, type ExternalCallOptions } from '../../lib/features/external';
import { computeOnDemand, computeOnDemandAsync, type LoadedOnDemand } from '../../lib/features/on-demand';
import { MERCHANT_RISK, startRiskApi, type RiskApi } from '../helpers/risk-api';

const TOKEN = 'test-token-7f3a91';
let api: RiskApi;

beforeAll(async () => {
  api = await startRiskApi(TOKEN);
});
afterAll(async () => {
  await api?.close();
});
beforeEach(() => api.reset());

function riskFeature(options: ExternalCallOptions = {}) {
  return defineExternalFeature({
    name: 'merchant_risk',
    inputs: { merchant_category: 'string' },
    outputs: { merchant_risk: 'float64' },
    fields: { merchant_risk: 'risk' },
    env: { url: 'TEST_RISK_URL', token: 'TEST_RISK_TOKEN' },
    request: ({ merchant_category }, env) => ({ url: `${env.url}/merchants/${encodeURIComponent(merchant_category)}`, headers: { authorization: `Bearer ${env.token}` } }),
    timeoutMs: 300,
    retries: 2,
    backoffMs: 20,
    ...options,
  });
}

/** Clients reading the test API's URL and token, with a logger whose lines the test can read. */
function clients(env: Record<string, string> = { TEST_RISK_URL: api.url, TEST_RISK_TOKEN: TOKEN }) {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _enc, cb) => { lines.push(chunk.toString()); cb(); } }));
  return { external: new ExternalFeatures((name) => env[name], logger), lines };
}

const categories = (...c: (string | null)[]) => ({ merchant_category: c });

describe('external-API features', () => {
  it('looks every distinct key up once and fills the values, the statuses PRESENT', async () => {
    const { external } = clients();
    const f = riskFeature();
    const rows = ['travel', 'grocery', 'travel', 'jewelry', 'grocery'];
    const r = await external.lookup(f, 't.risk', categories(...rows), rows.length);
    expect(Array.from(r.columns.merchant_risk as Float64Array)).toEqual(rows.map((c) => MERCHANT_RISK[c]));
    expect(r.statuses).toEqual(rows.map(() => 'PRESENT'));
    expect(api.calls).toBe(3);
  });

  it('reuses cached answers within the TTL and asks again after it', async () => {
    const { external } = clients();
    const f = riskFeature({ cacheTtlMs: 200 });
    await external.lookup(f, 't.risk', categories('travel'), 1);
    await external.lookup(f, 't.risk', categories('travel'), 1);
    expect(api.calls).toBe(1);
    await new Promise((r) => setTimeout(r, 250));
    await external.lookup(f, 't.risk', categories('travel'), 1);
    expect(api.calls).toBe(2);
  });

  it('a missing key asks nothing and is NULL; an unknown key is NOT_FOUND; neither becomes a value', async () => {
    const { external } = clients();
    const r = await external.lookup(riskFeature(), 't.risk', categories(null, 'bowling'), 2);
    expect(r.statuses).toEqual(['NULL', 'NOT_FOUND']);
    expect(Array.from(r.columns.merchant_risk as Float64Array)).toEqual([NaN, NaN]);
    expect(api.callsByKey.get('bowling')).toBe(1);
    expect(api.calls).toBe(1);
  });

  it('a slow API times out after every retry: TIMEOUT, NaN, and the failure is not cached', async () => {
    const { external, lines } = clients();
    api.behaviour.set('travel', { kind: 'slow', delayMs: 1_000 });
    const f = riskFeature({ timeoutMs: 100, retries: 1 });
    const started = Date.now();
    const r = await external.lookup(f, 't.risk', categories('travel', 'fuel'), 2, { rowLabel: (i) => `transaction_id=t${i}` });
    expect(Date.now() - started).toBeLessThan(800);
    expect(r.statuses).toEqual(['TIMEOUT', 'PRESENT']);
    expect(Number.isNaN((r.columns.merchant_risk as Float64Array)[0])).toBe(true);
    expect(api.callsByKey.get('travel')).toBe(2);
    expect(lines.join('')).toContain('external feature t.risk: 1 rows TIMEOUT');
    expect(lines.join('')).toContain('transaction_id=t0');
    await external.lookup(f, 't.risk', categories('travel'), 1);
    expect(api.callsByKey.get('travel')).toBe(4);
  });

  it('retries 5xx answers with backoff and gets the value; gives UNAVAILABLE when they go on', async () => {
    const { external } = clients();
    api.behaviour.set('travel', { kind: 'fail', status: 503, times: 2 });
    api.behaviour.set('fuel', { kind: 'fail', status: 500 });
    const r = await external.lookup(riskFeature({ backoffMs: 50 }), 't.risk', categories('travel', 'fuel'), 2);
    expect(r.statuses).toEqual(['PRESENT', 'UNAVAILABLE']);
    expect((r.columns.merchant_risk as Float64Array)[0]).toBe(MERCHANT_RISK.travel);
    expect(api.callsByKey.get('travel')).toBe(3);
    expect(api.callsByKey.get('fuel')).toBe(3);
    const t = api.arrivals.get('travel')!;
    // Exponential backoff with jitter in [0.5, 1]: ≥ 25 ms, then ≥ 50 ms.
    expect(t[1]! - t[0]!).toBeGreaterThanOrEqual(20);
    expect(t[2]! - t[1]!).toBeGreaterThanOrEqual(45);
  });

  it('waits what a 429 Retry-After says, then gets the value; RATE_LIMITED when the limit persists', async () => {
    const { external } = clients();
    api.behaviour.set('travel', { kind: 'rate-limit', retryAfter: '1', times: 1 });
    api.behaviour.set('fuel', { kind: 'rate-limit', retryAfter: '0' });
    const r = await external.lookup(riskFeature(), 't.risk', categories('travel', 'fuel'), 2);
    expect(r.statuses).toEqual(['PRESENT', 'RATE_LIMITED']);
    const t = api.arrivals.get('travel')!;
    expect(t).toHaveLength(2);
    expect(t[1]! - t[0]!).toBeGreaterThanOrEqual(950);
    expect(api.callsByKey.get('fuel')).toBe(3);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:58 GMT'))).toBe(2000);
    expect(retryAfterMs(null)).toBeUndefined();
  });

  it('a malformed answer is MALFORMED (not retried), the log naming the feature and the field', async () => {
    const { external, lines } = clients();
    api.behaviour.set('travel', { kind: 'malformed', body: '{"risk": ' });
    api.behaviour.set('fuel', { kind: 'malformed', body: '{"risk": "high"}' });
    api.behaviour.set('grocery', { kind: 'malformed', body: '{"score": 0.1}' });
    const r = await external.lookup(riskFeature(), 't.risk', categories('travel', 'fuel', 'grocery'), 3);
    expect(r.statuses).toEqual(['MALFORMED', 'MALFORMED', 'MALFORMED']);
    expect(Array.from(r.columns.merchant_risk as Float64Array).every(Number.isNaN)).toBe(true);
    expect(api.calls).toBe(3);
    const log = lines.join('');
    expect(log).toContain('external feature t.risk: 3 rows MALFORMED');
    expect(log).toMatch(/the answer is not JSON|field risk \(output merchant_risk\) is "high", expected a number|field risk \(output merchant_risk\) is missing from the answer/);
  });

  it('keeps at most `concurrency` calls in flight, across concurrent lookups of the process', async () => {
    const { external } = clients();
    for (const c of Object.keys(MERCHANT_RISK)) api.behaviour.set(c, { kind: 'ok', delayMs: 60 });
    const f = riskFeature({ concurrency: 3 });
    const all = Object.keys(MERCHANT_RISK);
    const [a, b] = await Promise.all([external.lookup(f, 't.risk', categories(...all.slice(0, 4)), 4), external.lookup(f, 't.risk', categories(...all.slice(4)), 4)]);
    expect([...a.statuses, ...b.statuses].every((s) => s === 'PRESENT')).toBe(true);
    expect(api.calls).toBe(8);
    expect(api.maxInFlight).toBe(3);
  });

  it('online: what is left of the deadline bounds every attempt and backoff', async () => {
    const { external } = clients();
    api.behaviour.set('travel', { kind: 'slow', delayMs: 2_000 });
    const f = riskFeature({ timeoutMs: 1_500, retries: 3 });
    const started = Date.now();
    const r = await external.lookup(f, 't.risk', categories('travel'), 1, { deadline: started + 150 });
    const took = Date.now() - started;
    expect(r.statuses).toEqual(['TIMEOUT']);
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(600);
    expect(api.callsByKey.get('travel')).toBe(1);
  });

  it('credentials come from the environment by name; unset ones are named (never their values), a wrong one is REJECTED', async () => {
    const { external, lines } = clients({ TEST_RISK_URL: api.url });
    await expect(external.lookup(riskFeature(), 't.risk', categories('travel'), 1)).rejects.toThrow(InvalidInputError);
    await expect(external.lookup(riskFeature(), 't.risk', categories('travel'), 1)).rejects.toThrow('external feature t.risk cannot run on this process: environment variable TEST_RISK_TOKEN is unset');
    const wrong = clients({ TEST_RISK_URL: api.url, TEST_RISK_TOKEN: 'not-the-token' });
    const r = await wrong.external.lookup(riskFeature(), 't.risk', categories('travel'), 1);
    expect(r.statuses).toEqual(['REJECTED']);
    expect(api.calls).toBe(1);
    const good = clients();
    api.behaviour.set('travel', { kind: 'slow', delayMs: 1_000 });
    await good.external.lookup(riskFeature({ timeoutMs: 50, retries: 0 }), 't.risk', categories('travel'), 1);
    for (const log of [lines, wrong.lines, good.lines]) {
      expect(log.join('')).not.toContain(TOKEN);
      expect(log.join('')).not.toContain(api.url);
    }
  });

  it('a definition out of range is refused, naming the feature and the field', () => {
    expect(() => riskFeature({ timeoutMs: 0 })).toThrow('external feature merchant_risk is invalid: timeoutMs: a positive integer, got 0');
    expect(() =>
      defineExternalFeature({ name: 'x', inputs: { k: 'string' }, outputs: { a: 'float64' }, fields: { a: '' }, env: { token: 'lower-case' }, request: () => ({ url: 'http://x' }) }),
    ).toThrow(/fields\.a: the JSON path of output a is missing; env\.token: "lower-case" is not an environment variable name/);
  });

  it('runs in order with the synchronous on-demand features; the synchronous step alone refuses it', async () => {
    const { external } = clients();
    const risk = { ...riskFeature(), ref: { name: 't.risk' } } as LoadedOnDemand;
    const double = {
      kind: 'inferflow.on-demand/v1',
      name: 'double_risk',
      inputs: { merchant_risk: 'float64' },
      outputs: { risk2: 'float64' },
      compute: ({ merchant_risk }: Record<string, Float64Array>, rows: number) => ({ risk2: Float64Array.from({ length: rows }, (_, i) => merchant_risk![i]! * 2) }),
      ref: { name: 't.double' },
    } as unknown as LoadedOnDemand;
    api.behaviour.set('fuel', { kind: 'fail', status: 503 });
    const r = await computeOnDemandAsync([risk, double], categories('travel', 'fuel'), 2, { external });
    expect(Array.from(r.columns.risk2 as Float64Array)).toEqual([MERCHANT_RISK.travel! * 2, NaN]);
    expect(r.statuses).toEqual([{ merchant_risk: 'PRESENT' }, { merchant_risk: 'UNAVAILABLE' }]);
    expect(r.missing(1, 'merchant_risk')).toBe(true);
    expect(r.missing(0, 'merchant_risk')).toBe(false);
    expect(() => computeOnDemand([risk], categories('travel'), 1)).toThrow(/calls an HTTP API: run it with computeOnDemandAsync/);
  });
});
