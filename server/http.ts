/**
 * The model server over HTTP: one or more deployments (server/deployment.ts), each under its
 * name, through two protocols and the operations routes.
 *
 *   /v2/…            Open Inference Protocol (KServe V2) REST, binary tensor data included (server/v2/routes.ts)
 *   /invocations     MLflow scoring protocol; /ping, /health (server/mlflow.ts)
 *   /metrics         Prometheus metrics (server/metrics.ts)
 *
 * Every route calls a Deployment, never a pipeline. Around them: optional bearer-token auth
 * (server/auth.ts), a body limit (413), a per-request deadline (504), a connection cap (503),
 * an online store that is down answered 503 with Retry-After, and a graceful drain on close.
 */
import type { ServedRanking } from './v2/ranking';
import type { DurableTarget } from './v2/durable';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { DEFAULT_SERVE_LIMITS, type ServeLimits } from '../lib/config/env';
import { InferflowError, errorMessage, httpStatusOf } from '../lib/errors';
import { bearerAuth } from './auth';
import type { ServerContext } from './context';
import type { Deployment } from './deployment';
import { ServerMetrics, METRICS_CONTENT_TYPE } from './metrics';
import { matchMlflow, mlflowErrorBody } from './mlflow';
import { HttpError, sendJson } from './respond';
import { matchV2 } from './v2/routes';

export { MAX_ROWS_PER_REQUEST } from './v2/tensors';

/** Seconds a client waits before retrying a 503 (store down, model not loaded, over the connection cap). */
export const RETRY_AFTER_SECONDS = 1;

export interface InferenceServer {
  url: string;
  metrics: ServerMetrics;
  /** Stop accepting, let the requests in flight finish (at most the deadline, then cut), then resolve. */
  close(): Promise<void>;
}

export interface InferenceServerOptions {
  port?: number;
  host?: string;
  limits?: Partial<ServeLimits>;
  /** Bearer tokens; none: no auth. */
  tokens?: readonly string[];
  /** The deployment /invocations answers with (default: the only one). */
  mlflowModel?: string;
  /** Deployments of ranking specs, by name: their V2 infer answers top-k items and scores. */
  rankings?: ReadonlyMap<string, ServedRanking>;
  /** Where `?durable=true` V2 requests go (server/v2/durable.ts); none: they are refused. */
  durable?: DurableTarget;
  log?: Logger;
}

interface Route {
  label: string;
  run(req: http.IncomingMessage, res: http.ServerResponse): void | Promise<void>;
  mlflow?: boolean;
}

function statusAndHeaders(err: unknown): { status: number; headers: http.OutgoingHttpHeaders } {
  if (err instanceof HttpError) return { status: err.status, headers: err.headers };
  const status = httpStatusOf(err);
  return { status, headers: status === 503 ? { 'retry-after': String(RETRY_AFTER_SECONDS) } : {} };
}

/** Serve deployments (each opened with its session and online store). Resolves once listening (port 0 picks a free one). */
export async function startInferenceServer(deployments: Deployment | readonly Deployment[], options: InferenceServerOptions = {}): Promise<InferenceServer> {
  const list = Array.isArray(deployments) ? (deployments as readonly Deployment[]) : [deployments as Deployment];
  const byName = new Map<string, Deployment>();
  for (const d of list) {
    if (byName.has(d.name)) throw new TypeError(`two deployments are named ${d.name}`);
    byName.set(d.name, d);
  }
  if (options.mlflowModel !== undefined && !byName.has(options.mlflowModel)) throw new TypeError(`mlflowModel ${options.mlflowModel} is not served (served: ${[...byName.keys()].join(', ')})`);
  const limits = { ...DEFAULT_SERVE_LIMITS, ...options.limits };
  const metrics = new ServerMetrics();
  for (const d of list) if (d.current) metrics.loaded(d.name, d.current.model);
  const ctx: ServerContext = { deployments: byName, limits, metrics, ...(options.mlflowModel !== undefined ? { mlflowModel: options.mlflowModel } : {}), ...(options.rankings ? { rankings: options.rankings } : {}), ...(options.durable ? { durable: options.durable } : {}) };
  const authorize = bearerAuth(options.tokens ?? []);
  const overCap = new WeakSet<Socket>();
  let draining = false;
  /** Responses not yet finished: told to close their connection when a drain starts. */
  const pending = new Set<http.ServerResponse>();
  let inFlight = 0;
  let idle: (() => void) | undefined;

  const route = (method: string, path: string): Route | undefined => {
    if (method === 'GET' && path === '/metrics')
      return {
        label: 'metrics',
        run: async (_req, res) => {
          const text = await metrics.text();
          res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
      };
    const mlflow = matchMlflow(ctx, method, path);
    if (mlflow) return { ...mlflow, mlflow: true };
    return matchV2(ctx, method, path.split('/').filter(Boolean));
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const r = route(method, url.pathname);
    if (draining) res.setHeader('connection', 'close');
    try {
      if (overCap.has(req.socket)) {
        req.resume();
        throw new HttpError(503, `too many connections (at most ${limits.maxConnections}); retry later`, { connection: 'close', 'retry-after': String(RETRY_AFTER_SECONDS) });
      }
      authorize(req, url.pathname);
      if (!r) throw new HttpError(404, `no route ${method} ${url.pathname}`);
      await r.run(req, res);
    } catch (err) {
      // The client went away (or the request timed out) while its body arrived: no one to answer.
      if (res.destroyed || req.socket.destroyed) return;
      const { status, headers } = statusAndHeaders(err);
      const message = errorMessage(err);
      if (status === 504) options.log?.warn({ route: r?.label, status, err: message }, 'deadline exceeded');
      else if (status >= 500 && status !== 503) options.log?.error({ route: r?.label, status, err: message }, 'request failed');
      if (res.headersSent) res.destroy();
      else sendJson(res, status, r?.mlflow ? mlflowErrorBody(status, message) : { error: message, ...(err instanceof InferflowError ? { type: err.type } : {}) }, headers);
      // A body too large is still arriving (and being discarded by readBody): close the
      // connection once it is all read. Closing earlier would reset it under a client that
      // sends its whole body before reading the answer.
      if (status === 413) {
        if (req.readableEnded) req.socket.end();
        else req.once('end', () => req.socket.end());
      }
    } finally {
      metrics.request(r?.label ?? 'unknown', res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

  const server = http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Node checks both timeouts at this interval (30 s by default, longer than the timeouts themselves).
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 2))),
    },
    (req, res) => {
      inFlight++;
      pending.add(res);
      res.once('close', () => {
        pending.delete(res);
        inFlight--;
        if (inFlight === 0) idle?.();
      });
      void handle(req, res);
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
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${addr.port}`,
    metrics,
    close: () =>
      (closing ??= (async () => {
        draining = true;
        for (const res of pending) if (!res.headersSent) res.setHeader('connection', 'close');
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // In flight: finish within the deadline (a request past it is answered 504 by then), then close what remains.
        await new Promise<void>((resolve) => {
          if (inFlight === 0) return resolve();
          const cut = setTimeout(resolve, limits.deadlineMs + limits.requestTimeoutMs);
          idle = () => {
            clearTimeout(cut);
            resolve();
          };
        });
        server.closeAllConnections();
        await closed;
      })()),
  };
}
