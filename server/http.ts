/**
 * Online serving over HTTP with the KServe V2 (Open Inference Protocol) REST shapes: one
 * pipeline of the runtime (lib/pipeline/pipeline.ts: model + feature views + on-demand features),
 * features looked up in the online store, then the same on-demand, transform, predict and
 * post-process steps as batch (`Pipeline.infer`).
 *
 *   GET  /v2/health/live · /v2/health/ready
 *   GET  /v2/models/{name}                      model metadata: the request fields it needs, its outputs
 *   POST /v2/models/{name}/infer                V2 inference request → response
 *
 * A request carries one named input per request field, each a column of equal length:
 *   {"id": "r1", "inputs": [
 *      {"name": "customer_id", "datatype": "INT64", "shape": [2], "data": [17, 42]},
 *      {"name": "merchant_category", "datatype": "BYTES", "shape": [2], "data": ["travel", "grocery"]}, …],
 *    "parameters": {"as_of": "2026-10-15T12:00:00Z"}}          (optional: judge feature freshness at that time)
 * The response has `label` (INT64) and `score` (FP32) outputs (`prediction` for regression) and,
 * per row, the status of each feature (`parameters.feature_status`): the online store's, and the
 * lookup's for external-API features, which get what is left of INFERFLOW_SERVE_DEADLINE_MS.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { DEFAULT_SERVE_LIMITS, type ServeLimits } from '../lib/config/env';
import { InferflowError, errorMessage, httpStatusOf } from '../lib/errors';
import { valueText, type OnlineRequest } from '../lib/pipeline/online';
import type { Deployment } from './deployment';
import { outputColumnName } from '../lib/features/spec';

/** Most rows one request may carry. */
export const MAX_ROWS_PER_REQUEST = 10_000;

interface V2Input {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, `request body larger than ${maxBytes} bytes`);
}

/**
 * The request body, at most `maxBytes`. A larger one (by its Content-Length, or as it arrives)
 * rejects at once, while the rest of the body is still read and discarded: the client, still
 * sending, then reads the 413 instead of a reset connection (the server's request timeout
 * bounds the discarding).
 */
function readBody(req: http.IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = Number(req.headers['content-length'] ?? 0) > maxBytes;
    if (over) reject(tooLarge(maxBytes));
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > maxBytes) {
        over = true;
        chunks.length = 0;
        reject(tooLarge(maxBytes));
      } else chunks.push(c);
    });
    req.on('end', () => over || resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function readJson(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  const body = await readBody(req, maxBytes);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `request body is not JSON: ${errorMessage(err)}`);
  }
}

/** V2 datatypes a request input may have, each with the JSON values its data may hold (null: a missing value). */
const DATATYPE_FITS: Record<string, (v: unknown) => boolean> = {
  BYTES: (v) => typeof v === 'string',
  INT64: (v) => typeof v === 'number' && Number.isSafeInteger(v),
  INT32: (v) => typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31,
  FP64: (v) => typeof v === 'number',
  FP32: (v) => typeof v === 'number',
  BOOL: (v) => typeof v === 'boolean',
};
/** Wrong values named per input at most. */
const MAX_DATA_PROBLEMS = 5;

/** V2 inputs (one column per request field) → request rows; every problem listed. */
export function rowsOf(body: unknown): { id?: string; rows: OnlineRequest[]; asOf?: Date } {
  const problems: string[] = [];
  const b = body as { id?: unknown; inputs?: unknown; parameters?: Record<string, unknown> } | null;
  if (typeof b !== 'object' || b === null || !Array.isArray(b.inputs) || b.inputs.length === 0) throw new HttpError(400, 'inputs: required, a list of {name, datatype, shape, data}');
  let n = -1;
  const columns = new Map<string, unknown[]>();
  (b.inputs as V2Input[]).forEach((input, i) => {
    const where = `inputs[${i}]${typeof input?.name === 'string' ? ` (${input.name})` : ''}`;
    if (typeof input?.name !== 'string' || input.name === '') return void problems.push(`${where}.name: required`);
    if (!Array.isArray(input.data)) return void problems.push(`${where}.data: required, a list of values`);
    if (!Array.isArray(input.shape) || input.shape.length !== 1 || input.shape[0] !== input.data.length) problems.push(`${where}.shape: must be [${input.data.length}] (one value per row)`);
    const fits = DATATYPE_FITS[input.datatype];
    if (!fits) problems.push(`${where}.datatype: one of ${Object.keys(DATATYPE_FITS).join(', ')}`);
    else {
      const bad = input.data.flatMap((v, k) => (v === null || fits(v) ? [] : [`${where}.data[${k}]: expected ${input.datatype}, got ${valueText(v)}`]));
      problems.push(...bad.slice(0, MAX_DATA_PROBLEMS), ...(bad.length > MAX_DATA_PROBLEMS ? [`${where}.data: ${bad.length - MAX_DATA_PROBLEMS} more values that are not ${input.datatype}`] : []));
    }
    if (n === -1) n = input.data.length;
    else if (input.data.length !== n) problems.push(`${where}: ${input.data.length} values, the first input has ${n}`);
    if (columns.has(input.name)) problems.push(`${where}: given twice`);
    columns.set(input.name, input.data);
    return undefined;
  });
  if (n > MAX_ROWS_PER_REQUEST) problems.push(`at most ${MAX_ROWS_PER_REQUEST} rows per request (got ${n})`);
  const asOfRaw = b.parameters?.as_of;
  const asOf = typeof asOfRaw === 'string' ? new Date(asOfRaw) : undefined;
  if (asOfRaw !== undefined && (!asOf || Number.isNaN(asOf.getTime()))) problems.push('parameters.as_of: an ISO 8601 time');
  if (problems.length > 0) throw new HttpError(400, problems.join('; '));
  const rows: OnlineRequest[] = Array.from({ length: n }, (_, r) => Object.fromEntries([...columns].map(([k, v]) => [k, v[r]])));
  return { ...(typeof b.id === 'string' ? { id: b.id } : {}), rows, ...(asOf ? { asOf } : {}) };
}

function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  return httpStatusOf(err);
}

export interface InferenceServer {
  url: string;
  close(): Promise<void>;
}

/** Serve one deployment (its pipeline opened with session and online store). Resolves once listening (port 0 picks a free one). */
export async function startInferenceServer(deployment: Deployment, options: { port?: number; host?: string; limits?: Partial<ServeLimits> } = {}): Promise<InferenceServer> {
  const limits = { ...DEFAULT_SERVE_LIMITS, ...options.limits };
  const overCap = new WeakSet<Socket>();
  const p = deployment.current;
  if (!p) throw new TypeError(`deployment ${deployment.name} has no loaded version`);
  const plan = p.plan;
  // Validated here, at start-up (an invalid view fails before the server listens); the pipeline keeps them parsed.
  const views = p.views;
  const fromViews = new Set(views.flatMap((v) => v.features.map((f) => outputColumnName(v.name, f.name))));
  const requestFields = plan.sourceColumns.filter((c) => !fromViews.has(c.name));
  const entityFields = [...new Set(views.flatMap((v) => v.entities))];
  const name = deployment.name;
  const regression = p.manifest.metadata.task === 'regression';

  const server = http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Node checks both timeouts at this interval (30 s by default, longer than the timeouts themselves).
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 2))),
    },
    (req, res) => {
      void (async () => {
        if (overCap.has(req.socket)) {
          req.resume();
          return send(res, 503, { error: `too many connections (at most ${limits.maxConnections}); retry later` }, { connection: 'close' });
        }
        const url = new URL(req.url ?? '/', 'http://localhost');
        const parts = url.pathname.split('/').filter(Boolean);
        try {
          if (req.method === 'GET' && url.pathname === '/v2/health/live') return send(res, 200, { live: true });
          if (req.method === 'GET' && url.pathname === '/v2/health/ready') return send(res, 200, { ready: true });
          if (parts[0] !== 'v2' || parts[1] !== 'models' || !parts[2]) throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
          if (parts[2] !== name) throw new HttpError(404, `model ${parts[2]} is not served here (this server serves ${name})`);
          if (req.method === 'GET' && parts.length === 3) {
            return send(res, 200, {
              name,
              versions: [String(p.model.version)],
              platform: 'onnxruntime',
              inputs: [...entityFields.map((f) => ({ name: f, datatype: 'BYTES|INT64', shape: [-1] })), ...requestFields.filter((c) => !entityFields.includes(c.name)).map((c) => ({ name: c.name, datatype: c.kind === 'string' ? 'BYTES' : c.kind === 'timestamp' ? 'BYTES (ISO 8601) or INT64 (epoch ms)' : 'FP64', shape: [-1] }))],
              outputs: regression ? [{ name: 'prediction', datatype: 'FP32', shape: [-1] }] : [{ name: 'label', datatype: 'INT64', shape: [-1] }, { name: 'score', datatype: 'FP32', shape: [-1] }],
              parameters: { sha256: p.model.sha256, feature_views: views.map((v) => v.name) },
            });
          }
          if (req.method === 'POST' && parts[3] === 'infer' && parts.length === 4) {
            const deadline = Date.now() + limits.deadlineMs;
            const { id, rows, asOf } = rowsOf(await readJson(req, limits.maxBodyBytes));
            const { predictions: preds, statuses, model } = await deployment.infer({ requests: rows, deadline, ...(asOf ? { now: asOf } : {}) });
            const outputs = regression
              ? [{ name: 'prediction', datatype: 'FP32', shape: [preds.rows], data: Array.from(preds.value!) }]
              : [
                  { name: 'label', datatype: 'INT64', shape: [preds.rows], data: Array.from(preds.label!) },
                  { name: 'score', datatype: 'FP32', shape: [preds.rows], data: Array.from(preds.score!) },
                ];
            return send(res, 200, { model_name: name, model_version: String(model.version), ...(id ? { id } : {}), outputs, parameters: { feature_status: statuses } });
          }
          throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
        } catch (err) {
          const status = statusOf(err);
          send(res, status, { error: errorMessage(err), ...(err instanceof InferflowError ? { type: err.type } : {}) });
          // A body too large is still arriving (and being discarded by readBody): close the
          // connection once it is all read. Closing earlier would reset it under a client that
          // sends its whole body before reading the answer.
          if (status === 413) {
            if (req.readableEnded) req.socket.end();
            else req.once('end', () => req.socket.end());
          }
        }
      })();
    },
  );
  // The connection cap: a connection beyond it gets 503 (V2 error body) for its request and is
  // closed; beyond twice the cap Node drops new connections unanswered.
  let open = 0;
  server.on('connection', (socket: Socket) => {
    if (open >= limits.maxConnections) overCap.add(socket);
    open++;
    socket.once('close', () => open--);
  });
  server.maxConnections = 2 * limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.address}:${addr.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
