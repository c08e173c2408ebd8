/**
 * The one module that reads environment variables. Everything else receives a typed
 * `InferflowConfig` (or a piece of it), so defaults and names live in exactly one place.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defaultPoolSize } from '../runtime/threads';
import { PACKAGE_ROOT } from '../util/package-root';
import { DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, DEFAULT_TEMPORAL_ADDRESS } from './defaults';

export { DEFAULT_NAMESPACE, DEFAULT_NATS_URL, DEFAULT_REDIS_URL, DEFAULT_TASK_QUEUE, DEFAULT_TEMPORAL_ADDRESS, TEMPORAL_CLI_VERSION } from './defaults';

/** `host:port`, `[IPv6]:port`: what Temporal's clients dial (no scheme, no path). */
const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

function isHostPort(value: string): boolean {
  const port = Number(HOST_PORT.exec(value)?.[1] ?? 0);
  return port >= 1 && port <= 65535;
}

/** The package's own directory (its examples are readable and registered by default). */
export { PACKAGE_ROOT };
/** Example data of the README and the demo: readable by workers unless INFERFLOW_ALLOWED_ROOTS says otherwise. */
export const EXAMPLES_DATA_DIR = path.join(PACKAGE_ROOT, 'examples', 'data');
/** Feature modules registered when INFERFLOW_MODULES is unset: the examples' on-demand features. */
export const DEFAULT_FEATURE_MODULES: readonly FeatureModuleConfig[] = [{ name: 'fraud', path: path.join(PACKAGE_ROOT, 'examples', 'features', 'fraud.ts') }];

/** A feature module the operator registers: pipelines name its features `<name>.<export>`. */
export interface FeatureModuleConfig {
  name: string;
  /** Absolute path of the module file. */
  path: string;
}

/** How much one client may take of `inferflow serve` (INFERFLOW_SERVE_*; docs/configuration.md). */
export interface ServeLimits {
  /** Largest request body: a larger one is answered 413 (read and discarded, so the client sees the answer). */
  maxBodyBytes: number;
  /** Time to receive a request's headers, in ms; then 408 and the connection closes. */
  headersTimeoutMs: number;
  /** Time to receive a whole request (headers and body), in ms; then 408 and the connection closes. */
  requestTimeoutMs: number;
  /** Open connections at most: a request on one more is answered 503 and its connection closed. */
  maxConnections: number;
  /** Time from a request's arrival to its answer, in ms; past it the server answers 504 (the prediction is abandoned). External-API features get what is left of it. */
  deadlineMs: number;
}

/** How `inferflow serve` follows a model alias and coalesces requests (INFERFLOW_SERVE_*; docs/online.md). */
export interface ServeModelOptions {
  /** How often a model served by alias (or latest version) is re-resolved, in ms; 0: never (the version loaded at start stays). */
  pollMs: number;
  /** Dynamic batching: concurrent requests coalesced into one pipeline call. */
  batching: boolean;
  /** Most rows in one coalesced call. */
  maxBatchRows: number;
  /** Longest a request waits in the queue for a busy deployment, in µs (below 1 ms: one event-loop turn). */
  maxQueueDelayUs: number;
}

export const DEFAULT_SERVE_MODEL_OPTIONS: ServeModelOptions = {
  pollMs: 5_000,
  batching: true,
  maxBatchRows: 64,
  maxQueueDelayUs: 500,
};

export const DEFAULT_SERVE_LIMITS: ServeLimits = {
  maxBodyBytes: 16 * 1024 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxConnections: 256,
  deadlineMs: 10_000,
};

const boolish = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', ''])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');

const EnvSchema = z.object({
  TEMPORAL_ADDRESS: z
    .string()
    .refine(isHostPort, { error: (issue) => `must be host:port (e.g. ${DEFAULT_TEMPORAL_ADDRESS}), got ${JSON.stringify(issue.input)}` })
    .default(DEFAULT_TEMPORAL_ADDRESS),
  TEMPORAL_NAMESPACE: z.string().min(1).default(DEFAULT_NAMESPACE),
  TEMPORAL_API_KEY: z.string().optional(),
  TEMPORAL_TLS: boolish.optional(),
  TEMPORAL_TLS_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().optional(),
  TEMPORAL_TLS_CA_PATH: z.string().optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional(),
  INFERFLOW_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  INFERFLOW_DATA_DIR: z.string().min(1).default('.data'),
  INFERFLOW_REGISTRY: z.string().optional(),
  INFERFLOW_MODEL_CACHE: z.string().optional(),
  INFERFLOW_MODEL_CACHE_MAX_BYTES: z.coerce.number().int().positive().optional(),
  INFERFLOW_OUTPUT: z.string().optional(),
  INFERFLOW_STAGING: z.string().regex(/^(s3|file):\/\//, 'must be an s3:// or file:// URL').optional(),
  INFERFLOW_TEMPORAL_CLI: z.string().optional(),
  INFERFLOW_ORT_THREADS: z.coerce.number().int().min(0).max(64).default(1),
  INFERFLOW_INFERENCE_THREADS: z.coerce.number().int().min(0).max(64).optional(),
  INFERFLOW_WORKER_WARM_UP: boolish.optional(),
  AWS_ENDPOINT_URL_S3: z.string().url().optional(),
  AWS_ENDPOINT_URL: z.string().url().optional(),
  AWS_REGION: z.string().optional(),
  AWS_DEFAULT_REGION: z.string().optional(),
  INFERFLOW_S3_FORCE_PATH_STYLE: boolish.optional(),
  INFERFLOW_REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
  INFERFLOW_POSTGRES_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL').optional(),
  INFERFLOW_NATS_URL: z.string().regex(/^(nats|tls):\/\//, 'must be a nats:// or tls:// URL').optional(),
  INFERFLOW_SERVE_MAX_BODY_BYTES: z.coerce.number().int().positive().default(DEFAULT_SERVE_LIMITS.maxBodyBytes),
  INFERFLOW_SERVE_HEADERS_TIMEOUT_MS: z.coerce.number().int().positive().default(DEFAULT_SERVE_LIMITS.headersTimeoutMs),
  INFERFLOW_SERVE_REQUEST_TIMEOUT_MS: z.coerce.number().int().positive().default(DEFAULT_SERVE_LIMITS.requestTimeoutMs),
  INFERFLOW_SERVE_MAX_CONNECTIONS: z.coerce.number().int().positive().default(DEFAULT_SERVE_LIMITS.maxConnections),
  INFERFLOW_SERVE_DEADLINE_MS: z.coerce.number().int().positive().default(DEFAULT_SERVE_LIMITS.deadlineMs),
  INFERFLOW_SERVE_TOKENS: z.string().optional(),
  INFERFLOW_SERVE_POLL_MS: z.coerce.number().int().min(0).default(DEFAULT_SERVE_MODEL_OPTIONS.pollMs),
  INFERFLOW_SERVE_BATCHING: boolish.optional(),
  INFERFLOW_SERVE_MAX_BATCH_ROWS: z.coerce.number().int().positive().default(DEFAULT_SERVE_MODEL_OPTIONS.maxBatchRows),
  INFERFLOW_SERVE_MAX_QUEUE_DELAY_US: z.coerce.number().int().min(0).default(DEFAULT_SERVE_MODEL_OPTIONS.maxQueueDelayUs),
  INFERFLOW_MODULES: z.string().optional(),
  INFERFLOW_ALLOWED_ROOTS: z.string().optional(),
  INFERFLOW_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  /** Temporal Cloud API key; never logged, never put in a payload. */
  apiKey?: string;
  tls?: { certPath?: string; keyPath?: string; caPath?: string; serverName?: string } | undefined;
}

export interface InferflowConfig {
  temporal: TemporalConfig;
  /** Working directory for local state: dev server database, staging, default outputs. */
  dataDir: string;
  /** Model registry location: `file://…` (default `<dataDir>/registry`) or `s3://bucket/prefix`. */
  registry: string;
  /** Content-addressed local model cache directory. */
  modelCacheDir: string;
  modelCacheMaxBytes: number;
  /** Default Parquet output location: a directory, or `s3://bucket/prefix`. */
  outputDir: string;
  /**
   * Shared staging for runs whose shards run on several machines (`s3://bucket/prefix` or a
   * `file://` directory every worker mounts): the feature snapshot and every shard's part go
   * there, so any worker can predict any shard and commit any run. Unset: staging stays on the
   * local disk under `<dataDir>/runs` (one machine, or a shared INFERFLOW_DATA_DIR).
   */
  stagingUrl?: string;
  temporalCli?: string;
  ortThreads: number;
  /** Worker threads that run large predict() chunks off the event loop (0: on the calling thread). Default: cores, at most 4. */
  inferenceThreads: number;
  /**
   * A worker runs the no-op `inferflowWarmUp` workflow on itself when it starts (workers/warm.ts),
   * so the first real run does not pay the SDK's workflow-thread start-up. Default true;
   * INFERFLOW_WORKER_WARM_UP=false leaves no warm-up execution in the namespace.
   */
  workerWarmUp: boolean;
  /** PostgreSQL connection URL of the sink and of PostgreSQL feature sources (may hold a password: never logged, never put in a payload). Unset: `pg` reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE. */
  postgresUrl?: string;
  /** Redis connection of the sink and of the Redis online feature store (worker / CLI environment only; never in workflow input). Unset: redis://127.0.0.1:6379/0. */
  redisUrl?: string;
  /** NATS server of the NATS record sink (worker environment only). Unset: nats://127.0.0.1:4222. */
  natsUrl?: string;
  /** Limits of `inferflow serve` (request size, timeouts, connections, deadline). */
  serveLimits: ServeLimits;
  /** Bearer tokens `inferflow serve` accepts (INFERFLOW_SERVE_TOKENS, comma-separated); empty: no auth from the environment. */
  serveTokens: string[];
  /** Alias polling and dynamic batching of `inferflow serve`. */
  serveModel: ServeModelOptions;
  /**
   * Feature modules (INFERFLOW_MODULES=name=path,…): the only code a pipeline can run, by name.
   * Unset: DEFAULT_FEATURE_MODULES; set to `none`: no modules.
   */
  modules: FeatureModuleConfig[];
  /**
   * Where file sources may be read and file sinks written: absolute directories and
   * `s3://bucket[/prefix]` URIs. The data directory, the output location and the examples'
   * data always; more from INFERFLOW_ALLOWED_ROOTS (comma-separated).
   */
  allowedRoots: string[];
  logLevel: z.infer<typeof EnvSchema>['INFERFLOW_LOG_LEVEL'];
  /**
   * A variable of the process environment an external-API feature names in its definition
   * (its API's URL or credentials): read only for the names feature modules declare, never
   * logged, never put in a payload. A function, so the values stay out of serialised configs.
   */
  featureEnv: (name: string) => string | undefined;
}

/** S3 client settings. Credentials are not here: the AWS SDK's default chain reads them. */
export interface S3Settings {
  /** Custom endpoint (SeaweedFS, MinIO, …); unset for AWS S3. */
  endpoint?: string;
  region: string;
  /** Path-style addressing: on by default when an endpoint is set. */
  forcePathStyle: boolean;
}

export function s3Settings(env: NodeJS.ProcessEnv = process.env): S3Settings {
  const e = parseEnv(env);
  const endpoint = e.AWS_ENDPOINT_URL_S3 ?? e.AWS_ENDPOINT_URL;
  return {
    ...(endpoint ? { endpoint } : {}),
    region: e.AWS_REGION ?? e.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: e.INFERFLOW_S3_FORCE_PATH_STYLE ?? endpoint !== undefined,
  };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** INFERFLOW_OUTPUT: `s3://…` kept as is; `file://…` and paths made absolute. */
function outputLocation(value: string | undefined, dataDir: string, cwd: string): string {
  if (!value) return path.join(dataDir, 'predictions');
  if (value.startsWith('file://')) return value.startsWith('file:///') ? fileURLToPath(value) : path.resolve(cwd, value.slice('file://'.length));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  return path.resolve(cwd, value);
}

const MODULE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** INFERFLOW_MODULES: `name=path[,name=path…]`, paths relative to `cwd`; `none` registers nothing. */
/** Bearer tokens from a comma- or newline-separated list (a token file's lines; `#` starts a comment line). */
export function parseTokens(value: string | undefined): string[] {
  if (value === undefined) return [];
  return [...new Set(value.split(/[,\r\n]/).map((t) => t.trim()).filter((t) => t !== '' && !t.startsWith('#')))];
}

export function parseModules(value: string | undefined, cwd: string): FeatureModuleConfig[] {
  if (value === undefined) return DEFAULT_FEATURE_MODULES.map((m) => ({ ...m }));
  if (value.trim() === 'none') return [];
  const problems: string[] = [];
  const modules: FeatureModuleConfig[] = [];
  for (const entry of value.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
    const eq = entry.indexOf('=');
    const name = eq > 0 ? entry.slice(0, eq).trim() : '';
    const file = eq > 0 ? entry.slice(eq + 1).trim() : '';
    if (!MODULE_NAME.test(name) || file === '') problems.push(`${JSON.stringify(entry)} is not NAME=PATH (NAME: letters, digits, _ and -)`);
    else if (modules.some((m) => m.name === name)) problems.push(`module name ${name} is given twice`);
    else modules.push({ name, path: path.resolve(cwd, file) });
  }
  if (problems.length > 0) throw new ConfigError(`invalid environment: INFERFLOW_MODULES: ${problems.join('; ')}`);
  return modules;
}

/** Default allowed roots plus INFERFLOW_ALLOWED_ROOTS (comma-separated directories and s3:// URIs). */
function allowedRoots(value: string | undefined, defaults: string[], cwd: string): string[] {
  const extra = (value ?? '').split(',').map((e) => e.trim()).filter((e) => e !== '');
  const roots: string[] = [];
  for (const r of [...defaults, ...extra]) {
    let root: string;
    if (r.startsWith('file://')) root = r.startsWith('file:///') ? fileURLToPath(r) : path.resolve(cwd, r.slice('file://'.length));
    else if (/^s3:\/\/[^/]+/.test(r)) root = r;
    else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(r)) throw new ConfigError(`invalid environment: INFERFLOW_ALLOWED_ROOTS: ${r} is neither a directory nor an s3://bucket[/prefix] URI`);
    else root = path.resolve(cwd, r);
    if (!roots.includes(root)) roots.push(root);
  }
  return roots;
}

function parseEnv(env: NodeJS.ProcessEnv) {
  // Empty variables count as unset.
  const parsed = EnvSchema.safeParse(Object.fromEntries(Object.entries(env).filter(([k, v]) => k in EnvSchema.shape && v !== '')));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid environment: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/** Parse configuration from an environment (default: `process.env`). Errors name the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): InferflowConfig {
  const e = parseEnv(env);
  const dataDir = path.resolve(cwd, e.INFERFLOW_DATA_DIR);
  const outputDir = outputLocation(e.INFERFLOW_OUTPUT, dataDir, cwd);
  const tlsWanted = e.TEMPORAL_TLS ?? Boolean(e.TEMPORAL_TLS_CERT_PATH || e.TEMPORAL_API_KEY);
  return {
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.INFERFLOW_TASK_QUEUE,
      ...(e.TEMPORAL_API_KEY ? { apiKey: e.TEMPORAL_API_KEY } : {}),
      tls: tlsWanted
        ? {
            certPath: e.TEMPORAL_TLS_CERT_PATH,
            keyPath: e.TEMPORAL_TLS_KEY_PATH,
            caPath: e.TEMPORAL_TLS_CA_PATH,
            serverName: e.TEMPORAL_TLS_SERVER_NAME,
          }
        : undefined,
    },
    dataDir,
    registry: e.INFERFLOW_REGISTRY ?? `file://${path.join(dataDir, 'registry')}`,
    modelCacheDir: path.resolve(cwd, e.INFERFLOW_MODEL_CACHE ?? path.join(dataDir, 'cache', 'models')),
    modelCacheMaxBytes: e.INFERFLOW_MODEL_CACHE_MAX_BYTES ?? 2 * 1024 ** 3,
    // A URL (s3://…) is kept as is; a path is made absolute.
    outputDir,
    ...(e.INFERFLOW_STAGING ? { stagingUrl: e.INFERFLOW_STAGING } : {}),
    ...(e.INFERFLOW_TEMPORAL_CLI ? { temporalCli: e.INFERFLOW_TEMPORAL_CLI } : {}),
    ortThreads: e.INFERFLOW_ORT_THREADS,
    inferenceThreads: e.INFERFLOW_INFERENCE_THREADS ?? defaultPoolSize(),
    workerWarmUp: e.INFERFLOW_WORKER_WARM_UP ?? true,
    ...(e.INFERFLOW_POSTGRES_URL ? { postgresUrl: e.INFERFLOW_POSTGRES_URL } : {}),
    ...(e.INFERFLOW_REDIS_URL ? { redisUrl: e.INFERFLOW_REDIS_URL } : {}),
    ...(e.INFERFLOW_NATS_URL ? { natsUrl: e.INFERFLOW_NATS_URL } : {}),
    serveLimits: {
      maxBodyBytes: e.INFERFLOW_SERVE_MAX_BODY_BYTES,
      headersTimeoutMs: e.INFERFLOW_SERVE_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.INFERFLOW_SERVE_REQUEST_TIMEOUT_MS,
      maxConnections: e.INFERFLOW_SERVE_MAX_CONNECTIONS,
      deadlineMs: e.INFERFLOW_SERVE_DEADLINE_MS,
    },
    serveTokens: parseTokens(e.INFERFLOW_SERVE_TOKENS),
    serveModel: {
      pollMs: e.INFERFLOW_SERVE_POLL_MS,
      batching: e.INFERFLOW_SERVE_BATCHING ?? DEFAULT_SERVE_MODEL_OPTIONS.batching,
      maxBatchRows: e.INFERFLOW_SERVE_MAX_BATCH_ROWS,
      maxQueueDelayUs: e.INFERFLOW_SERVE_MAX_QUEUE_DELAY_US,
    },
    modules: parseModules(e.INFERFLOW_MODULES, cwd),
    allowedRoots: allowedRoots(e.INFERFLOW_ALLOWED_ROOTS, [dataDir, outputDir, EXAMPLES_DATA_DIR], cwd),
    logLevel: e.INFERFLOW_LOG_LEVEL,
    featureEnv: (name) => featureEnvValue(env, name),
  };
}

/** What a feature definition may name as an environment variable. */
export const FEATURE_ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** The value of a variable a feature definition names (empty counts as unset, like every variable here). */
function featureEnvValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  if (!FEATURE_ENV_NAME.test(name)) throw new ConfigError(`${JSON.stringify(name)} is not an environment variable name (${FEATURE_ENV_NAME.source})`);
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}
