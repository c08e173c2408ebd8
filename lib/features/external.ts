/**
 * External-API features: on-demand features whose values come from an HTTP API (a credit
 * bureau, a geo service, a merchant-risk service) keyed by columns of the row. Declared in a
 * feature module like the synchronous ones (registered through INFERFLOW_MODULES, named by a
 * pipeline as `<module>.<export>`), and computed by the asynchronous on-demand step
 * (`computeOnDemandAsync` in on-demand.ts) in batch shards and online requests alike.
 *
 * Per call: a timeout, retries with exponential backoff (a 429's Retry-After honoured), at most
 * `concurrency` calls in flight across the process (the limiter lives in Resources, so every
 * shard a worker runs shares it), and a per-key cache with a TTL (answers, not failures, are
 * cached). Online, what is left of the request's deadline bounds every attempt and wait.
 *
 * A failed lookup never becomes a value: the row's outputs are missing (NaN / null) and its status
 * says why (`ExternalStatus`), next to the online store's statuses. The model's imputers fill
 * missing values where it was trained to; otherwise predict rejects the row, naming it.
 *
 * The API's location and credentials come from the worker's environment, by the variable names
 * the definition declares (`env`), through lib/config/env.ts: never from a pipeline spec, never
 * in a log line (lines name the feature, the key and the status, never the URL or headers).
 */
import type { Logger } from 'pino';
import { FEATURE_ENV_NAME } from '../config/env';
import { InvalidInputError } from '../errors';
import type { OnDemandColumn, OnDemandOutputDtype } from './on-demand';

export const EXTERNAL_KIND = 'inferflow.external/v1';

/**
 * Per row and output, what the lookup gave: PRESENT (a value), NULL (the API answered null, or a
 * key column was missing so nothing was asked), NOT_FOUND (404), TIMEOUT (no answer in time),
 * RATE_LIMITED (429 after every retry), UNAVAILABLE (5xx or network failure after every retry),
 * REJECTED (another 4xx, e.g. 401: credentials), MALFORMED (not JSON, or a field missing or of the
 * wrong type).
 */
export const EXTERNAL_STATUSES = ['PRESENT', 'NULL', 'NOT_FOUND', 'TIMEOUT', 'RATE_LIMITED', 'UNAVAILABLE', 'REJECTED', 'MALFORMED'] as const;
export type ExternalStatus = (typeof EXTERNAL_STATUSES)[number];

/**
 * The batch output column holding an external-API feature's lookup status per row
 * (`<feature name>_status`: PRESENT, or why the row has no value; the online answers carry the
 * same statuses in their feature statuses).
 */
export function lookupStatusColumn(feature: Pick<ExternalFeature, 'name'>): string {
  return `${feature.name}_status`;
}

export type ExternalKeyDtype = 'float64' | 'string';
export type ExternalKey = Record<string, number | string>;

/** What to send for one key. */
export interface ExternalRequest {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** Sent as JSON (POST). */
  body?: unknown;
}

export interface ExternalCallOptions {
  /** Per attempt, ms. Default 2,000. */
  timeoutMs?: number;
  /** Attempts after the first (timeouts, 429, 5xx, network errors). Default 2. */
  retries?: number;
  /** First backoff, ms, doubled per retry (with jitter). Default 100. */
  backoffMs?: number;
  /** Longest wait between attempts (a Retry-After above it is cut to it), ms. Default 5,000. */
  maxBackoffMs?: number;
  /** Calls in flight at most, across the process. Default 8. */
  concurrency?: number;
  /** How long an answer (PRESENT, NULL, NOT_FOUND) is reused for its key, ms; 0: no cache. Default 60,000. */
  cacheTtlMs?: number;
  /** Keys kept in the cache at most (oldest dropped first). Default 100,000. */
  cacheMaxEntries?: number;
}

export interface ExternalFeature extends Required<ExternalCallOptions> {
  readonly kind: typeof EXTERNAL_KIND;
  readonly name: string;
  /** The key columns, sent to `request`. */
  readonly inputs: Readonly<Record<string, ExternalKeyDtype>>;
  readonly outputs: Readonly<Record<string, OnDemandOutputDtype>>;
  /** Output → dotted path of its value in the JSON answer (`risk`, `result.score`). */
  readonly fields: Readonly<Record<string, string>>;
  /** Alias → environment variable name: the values `request` receives (API URL, token). */
  readonly env: Readonly<Record<string, string>>;
  readonly request: (key: ExternalKey, env: Readonly<Record<string, string>>) => ExternalRequest;
}

export const EXTERNAL_DEFAULTS: Required<ExternalCallOptions> = {
  timeoutMs: 2_000,
  retries: 2,
  backoffMs: 100,
  maxBackoffMs: 5_000,
  concurrency: 8,
  cacheTtlMs: 60_000,
  cacheMaxEntries: 100_000,
};

type DtypeValue<D> = D extends 'string' ? string : number;

/**
 * Declare an external-API feature.
 *
 *   export const merchantRisk = defineExternalFeature({
 *     name: 'merchant_risk',
 *     inputs: { merchant_category: 'string' },
 *     outputs: { merchant_risk: 'float64' },
 *     fields: { merchant_risk: 'risk' },
 *     env: { url: 'RISK_API_URL', token: 'RISK_API_TOKEN' },
 *     request: ({ merchant_category }, env) => ({
 *       url: `${env.url}/merchants/${encodeURIComponent(merchant_category)}`,
 *       headers: { authorization: `Bearer ${env.token}` },
 *     }),
 *     timeoutMs: 500, retries: 2, concurrency: 16, cacheTtlMs: 600_000,
 *   });
 *
 * @throws InvalidInputError a field of the definition out of range (naming the feature and the field)
 */
export function defineExternalFeature<const I extends Record<string, ExternalKeyDtype>, const O extends Record<string, OnDemandOutputDtype>>(
  def: {
    name: string;
    inputs: I;
    outputs: O;
    fields: { [K in keyof O]: string };
    env?: Record<string, string>;
    request: (key: { [K in keyof I]: DtypeValue<I[K]> }, env: Readonly<Record<string, string>>) => ExternalRequest;
  } & ExternalCallOptions,
): ExternalFeature {
  const options = { ...EXTERNAL_DEFAULTS, ...Object.fromEntries(Object.entries(def).filter(([k, v]) => k in EXTERNAL_DEFAULTS && v !== undefined)) } as Required<ExternalCallOptions>;
  const problems: string[] = [];
  if (Object.keys(def.inputs).length === 0) problems.push('inputs: at least one key column');
  if (Object.keys(def.outputs).length === 0) problems.push('outputs: at least one');
  for (const o of Object.keys(def.outputs)) if (typeof def.fields[o] !== 'string' || def.fields[o] === '') problems.push(`fields.${o}: the JSON path of output ${o} is missing`);
  for (const f of Object.keys(def.fields)) if (!(f in def.outputs)) problems.push(`fields.${f}: not a declared output`);
  for (const [alias, name] of Object.entries(def.env ?? {})) if (!FEATURE_ENV_NAME.test(name)) problems.push(`env.${alias}: ${JSON.stringify(name)} is not an environment variable name`);
  const positive = ['timeoutMs', 'concurrency', 'cacheMaxEntries'] as const;
  for (const k of positive) if (!Number.isInteger(options[k]) || options[k] <= 0) problems.push(`${k}: a positive integer, got ${options[k]}`);
  for (const k of ['retries', 'backoffMs', 'maxBackoffMs', 'cacheTtlMs'] as const) if (!Number.isInteger(options[k]) || options[k] < 0) problems.push(`${k}: an integer ≥ 0, got ${options[k]}`);
  if (problems.length > 0) throw new InvalidInputError(`external feature ${def.name} is invalid`, problems, { feature: def.name });
  return Object.freeze({
    kind: EXTERNAL_KIND,
    name: def.name,
    inputs: Object.freeze({ ...def.inputs }),
    outputs: Object.freeze({ ...def.outputs }),
    fields: Object.freeze({ ...def.fields }),
    env: Object.freeze({ ...(def.env ?? {}) }),
    request: def.request as unknown as ExternalFeature['request'],
    ...options,
  });
}

export function isExternalFeature(f: { kind: string }): f is ExternalFeature {
  return f.kind === EXTERNAL_KIND;
}

/** One key's answer: the outputs' values (null: missing) and a status. */
interface Answer {
  status: ExternalStatus;
  values: Record<string, number | string | null>;
  /** Why it failed (for logs: names the feature's field, never the URL). */
  reason?: string;
}

/** Statuses worth caching: answers of the API, not failures to get one. */
const CACHED: ReadonlySet<ExternalStatus> = new Set(['PRESENT', 'NULL', 'NOT_FOUND']);

class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Retry-After: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function valueAt(json: unknown, path: string): unknown {
  let v = json;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** The per-process state of one registered external feature: its limiter, its cache and the calls in flight per key. */
class ExternalClient {
  private readonly limiter: Limiter;
  private readonly cache = new Map<string, { expires: number; answer: Answer }>();
  private readonly inflight = new Map<string, Promise<Answer>>();
  /** HTTP calls made (attempts included): for tests and logs. */
  calls = 0;

  constructor(
    readonly feature: ExternalFeature,
    readonly registeredAs: string,
    private readonly env: Readonly<Record<string, string>>,
  ) {
    this.limiter = new Limiter(feature.concurrency);
  }

  lookup(keyText: string, key: ExternalKey, deadline: number | undefined): Promise<Answer> {
    const hit = this.cache.get(keyText);
    if (hit && hit.expires > Date.now()) return Promise.resolve(hit.answer);
    if (hit) this.cache.delete(keyText);
    let p = this.inflight.get(keyText);
    if (!p) {
      p = this.limiter.run(() => this.call(key, deadline)).finally(() => this.inflight.delete(keyText));
      this.inflight.set(keyText, p);
      void p.then((answer) => this.remember(keyText, answer));
    }
    return p;
  }

  private remember(keyText: string, answer: Answer): void {
    const ttl = this.feature.cacheTtlMs;
    if (ttl === 0 || !CACHED.has(answer.status)) return;
    if (this.cache.size >= this.feature.cacheMaxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(keyText, { expires: Date.now() + ttl, answer });
  }

  private missing(status: ExternalStatus, reason?: string): Answer {
    return { status, values: Object.fromEntries(Object.keys(this.feature.outputs).map((o) => [o, null])), ...(reason ? { reason } : {}) };
  }

  /** One key: attempts until an answer, a permanent failure, the retries or the deadline run out. */
  private async call(key: ExternalKey, deadline: number | undefined): Promise<Answer> {
    const f = this.feature;
    let req: ExternalRequest;
    try {
      req = f.request(key, this.env);
    } catch (err) {
      return this.missing('REJECTED', `request() threw: ${err instanceof Error ? err.message : String(err)}`);
    }
    let last: Answer = this.missing('TIMEOUT', 'no attempt fit in the deadline');
    for (let attempt = 0; attempt <= f.retries; attempt++) {
      const left = deadline === undefined ? Infinity : deadline - Date.now();
      if (left <= 0) return last.status === 'TIMEOUT' ? last : { ...last, reason: `${last.reason ?? last.status}; deadline reached` };
      let wait: number | undefined;
      this.calls++;
      try {
        const res = await fetch(req.url, {
          method: req.method ?? (req.body === undefined ? 'GET' : 'POST'),
          headers: { accept: 'application/json', ...(req.body === undefined ? {} : { 'content-type': 'application/json' }), ...req.headers },
          ...(req.body === undefined ? {} : { body: JSON.stringify(req.body) }),
          signal: AbortSignal.timeout(Math.max(1, Math.min(f.timeoutMs, left))),
        });
        if (res.ok) return this.parse(await res.text());
        await res.body?.cancel();
        if (res.status === 404) return this.missing('NOT_FOUND');
        if (res.status === 429) {
          last = this.missing('RATE_LIMITED', 'HTTP 429');
          wait = retryAfterMs(res.headers.get('retry-after'));
        } else if (res.status === 408 || res.status >= 500) last = this.missing('UNAVAILABLE', `HTTP ${res.status}`);
        else return this.missing('REJECTED', `HTTP ${res.status}`);
      } catch (err) {
        const name = (err as { name?: string } | null)?.name;
        last = name === 'TimeoutError' || name === 'AbortError' ? this.missing('TIMEOUT', `no answer within ${Math.min(f.timeoutMs, left)} ms`) : this.missing('UNAVAILABLE', err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}` : String(err));
      }
      if (attempt === f.retries) break;
      const backoff = f.backoffMs * 2 ** attempt * (0.5 + Math.random() / 2);
      const pause = Math.min(f.maxBackoffMs, wait ?? backoff);
      if (deadline !== undefined && Date.now() + pause >= deadline) break;
      await sleep(pause);
    }
    return last;
  }

  private parse(text: string): Answer {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return this.missing('MALFORMED', `the answer is not JSON (${text.length} bytes)`);
    }
    const values: Record<string, number | string | null> = {};
    let nulls = 0;
    for (const [output, dtype] of Object.entries(this.feature.outputs)) {
      const path = this.feature.fields[output]!;
      const v = valueAt(json, path);
      if (v === undefined) return this.missing('MALFORMED', `field ${path} (output ${output}) is missing from the answer`);
      if (v === null) {
        values[output] = null;
        nulls++;
      } else if (dtype === 'float64' && typeof v === 'number' && Number.isFinite(v)) values[output] = v;
      else if (dtype === 'string' && typeof v === 'string') values[output] = v;
      else return this.missing('MALFORMED', `field ${path} (output ${output}) is ${JSON.stringify(v)?.slice(0, 40)}, expected ${dtype === 'string' ? 'a string' : 'a number'}`);
    }
    return { status: nulls > 0 ? 'NULL' : 'PRESENT', values };
  }
}

export interface ExternalLookup {
  /** Every output, one value per row (NaN / null where the lookup did not give one). */
  columns: Record<string, OnDemandColumn>;
  /** Per row, the lookup's status. */
  statuses: ExternalStatus[];
}

/**
 * The external features of a process (one per Resources): the clients of the registered
 * features, created on first use with the environment values their definitions name.
 */
export class ExternalFeatures {
  private readonly clients = new Map<string, ExternalClient>();

  constructor(
    private readonly readEnv: (name: string) => string | undefined,
    private readonly logger?: Logger,
  ) {}

  /**
   * The client of a registered feature.
   * @throws InvalidInputError a variable the definition names is unset on this process (named, its value never shown)
   */
  client(feature: ExternalFeature, registeredAs: string): ExternalClient {
    let c = this.clients.get(registeredAs);
    if (c?.feature !== feature) {
      const unset = Object.values(feature.env).filter((name) => this.readEnv(name) === undefined);
      if (unset.length > 0) throw new InvalidInputError(`external feature ${registeredAs} cannot run on this process`, unset.map((name) => `environment variable ${name} is unset`), { feature: registeredAs });
      const env = Object.fromEntries(Object.entries(feature.env).map(([alias, name]) => [alias, this.readEnv(name)!]));
      c = new ExternalClient(feature, registeredAs, env);
      this.clients.set(registeredAs, c);
    }
    return c;
  }

  /** HTTP calls made so far for a registered feature (attempts included). */
  calls(registeredAs: string): number {
    return this.clients.get(registeredAs)?.calls ?? 0;
  }

  /**
   * Look up every row's key (each distinct key once; cached answers reused), bounded by the
   * feature's concurrency limit and, online, by `deadline` (epoch ms).
   */
  async lookup(
    feature: ExternalFeature,
    registeredAs: string,
    inputs: Record<string, OnDemandColumn>,
    rows: number,
    options: { deadline?: number; rowLabel?: (row: number) => string } = {},
  ): Promise<ExternalLookup> {
    const client = this.client(feature, registeredAs);
    const keyColumns = Object.keys(feature.inputs);
    const byKey = new Map<string, { key: ExternalKey; rows: number[] }>();
    const statuses: ExternalStatus[] = new Array<ExternalStatus>(rows).fill('NULL');
    for (let i = 0; i < rows; i++) {
      const key: ExternalKey = {};
      let complete = true;
      for (const k of keyColumns) {
        const v = inputs[k]![i];
        if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) complete = false;
        else key[k] = v;
      }
      if (!complete) continue;
      const text = JSON.stringify(keyColumns.map((k) => key[k]));
      const entry = byKey.get(text);
      if (entry) entry.rows.push(i);
      else byKey.set(text, { key, rows: [i] });
    }
    const columns: Record<string, OnDemandColumn> = Object.fromEntries(
      Object.entries(feature.outputs).map(([o, dtype]) => [o, dtype === 'string' ? new Array<string | null>(rows).fill(null) : new Float64Array(rows).fill(NaN)]),
    );
    const failures = new Map<ExternalStatus, { count: number; example: string; reason?: string }>();
    await Promise.all(
      [...byKey.entries()].map(async ([text, { key, rows: at }]) => {
        const answer = await client.lookup(text, key, options.deadline);
        for (const i of at) {
          statuses[i] = answer.status;
          for (const [o, v] of Object.entries(answer.values)) if (v !== null) columns[o]![i] = v;
        }
        if (answer.status !== 'PRESENT') {
          const seen = failures.get(answer.status);
          if (seen) seen.count += at.length;
          else failures.set(answer.status, { count: at.length, example: options.rowLabel?.(at[0]!) ?? `row ${at[0]}`, ...(answer.reason ? { reason: answer.reason } : {}) });
        }
      }),
    );
    for (const [status, f] of failures) {
      if (status === 'NOT_FOUND' || status === 'NULL') continue;
      this.logger?.warn({ feature: registeredAs, status, rows: f.count, example: f.example, reason: f.reason }, `external feature ${registeredAs}: ${f.count} rows ${status}${f.reason ? ` (${f.reason})` : ''}`);
    }
    return { columns, statuses };
  }
}
