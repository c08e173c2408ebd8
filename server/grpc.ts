/**
 * Online serving over gRPC: `inference.GRPCInferenceService` of the KServe V2 (Open Inference
 * Protocol) proto (server/proto/grpc_predict_v2.proto; Triton's grpc_service.proto is a superset,
 * so tritonclient's gRPC client talks to it): ServerLive, ServerReady, ModelReady,
 * ServerMetadata, ModelMetadata, ModelInfer, for a list of deployments served by name.
 *
 * ModelInfer takes one input tensor per request field (shape [n] or [n, 1]), typed `contents` or
 * `raw_input_contents`, the optional `as_of` parameter (ISO 8601: judge feature freshness then),
 * and `outputs` to select among label/score (prediction for regression). It answers in the form
 * the inputs came (raw contents for raw), with the version that answered in `model_version`
 * and, in the `feature_status` parameter, a JSON list with each row's online store status per feature.
 * External-API features get the call's time left (its grpc-timeout, at most `requestTimeoutMs`)
 * less a margin, as over REST, so a lookup that runs out answers UNAVAILABLE naming the feature.
 * A ranking deployment answers one entity's top k instead (server/v2/ranking.ts).
 *
 * Errors are gRPC statuses (GRPC_STATUS below); the `inferflow-error-type` trailer names the
 * error's type (lib/errors.ts) as the REST body's `type` does.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { DEFAULT_SERVE_LIMITS } from '../lib/config/env';
import { InferflowError, errorMessage, type ErrorType } from '../lib/errors';
import type { Logger } from 'pino';
import { PACKAGE_ROOT, packageVersion } from '../lib/util/package-root';
import type { Deployment } from './deployment';
import { decodeInputs, encodeOutputs, type GrpcInputTensor } from './grpc-tensors';
import { pipelineDeadline, settleWithin } from './context';
import { findDeployment, loadedPipeline } from './lookup';
import { modelTensors } from './v2/metadata';
import { asOfParameter, rowsOfTensors } from './v2/tensors';
import { outputTensors, postProcessParameters, selectOutputs } from './v2/outputs';
import { answerTopK, type ServedRanking } from './v2/ranking';

export const GRPC_PROTO_FILE = path.join(PACKAGE_ROOT, 'server', 'proto', 'grpc_predict_v2.proto');
/** The trailer naming an error's type. */
export const ERROR_TYPE_TRAILER = 'inferflow-error-type';
/** The response parameter holding each row's feature statuses (JSON). */
export const FEATURE_STATUS_PARAMETER = 'feature_status';
/** How long a shutdown waits for calls in flight before cancelling them, in ms. */
const DRAIN_MS = 10_000;

/** The gRPC status of each error type (the REST statuses' counterparts). */
const GRPC_STATUS: Record<ErrorType, grpc.status> = {
  InvalidInput: grpc.status.INVALID_ARGUMENT,
  SchemaMismatch: grpc.status.INVALID_ARGUMENT,
  InvalidValue: grpc.status.INVALID_ARGUMENT,
  EmptyInput: grpc.status.INVALID_ARGUMENT,
  PermissionDenied: grpc.status.PERMISSION_DENIED,
  NotFound: grpc.status.NOT_FOUND,
  PreconditionFailed: grpc.status.FAILED_PRECONDITION,
  CorruptArtifact: grpc.status.INTERNAL,
  RowCountMismatch: grpc.status.INTERNAL,
  Transient: grpc.status.UNAVAILABLE,
};

/** An error answered with a status of its own (no lib error type): authentication, deadlines. */
class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export interface GrpcServerOptions {
  /** Port (0 picks a free one). */
  port?: number;
  host?: string;
  /** Bearer tokens accepted in `authorization` metadata; unset: no authentication. ServerLive and ServerReady never ask. */
  tokens?: ReadonlySet<string>;
  /** Longest a ModelInfer may take on the server (a client's own shorter deadline applies too). */
  requestTimeoutMs?: number;
  /** Largest request message in bytes (gRPC answers RESOURCE_EXHAUSTED beyond it). */
  maxMessageBytes?: number;
  logger?: Pick<Logger, 'warn' | 'error'>;
  /** Deployments of ranking specs, by name: their ModelInfer answers one entity's top-k items and scores. */
  rankings?: ReadonlyMap<string, ServedRanking>;
}

export interface GrpcInferenceServer {
  /** `host:port`, what gRPC clients dial. */
  address: string;
  port: number;
  /** Stop accepting calls, let the ones in flight finish (then cancel what is left), and close. */
  close(): Promise<void>;
}

interface InferParameter {
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  parameter_choice?: string;
}

interface ModelInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameter>;
  inputs: GrpcInputTensor[];
  outputs: { name: string }[];
  raw_input_contents: Buffer[];
}

function parameterValue(p: InferParameter | undefined): unknown {
  if (!p?.parameter_choice) return undefined;
  return p[p.parameter_choice as keyof InferParameter];
}

function loadService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(GRPC_PROTO_FILE, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { inference: { GRPCInferenceService: { service: grpc.ServiceDefinition } } };
  return pkg.inference.GRPCInferenceService.service;
}

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

/** Whether the call's `authorization: Bearer <token>` is one of the tokens (compared in constant time). */
function authorised(metadata: grpc.Metadata, tokens: readonly Buffer[]): boolean {
  const header = metadata.get('authorization')[0];
  const token = typeof header === 'string' ? /^Bearer (.+)$/i.exec(header)?.[1] : undefined;
  if (token === undefined) return false;
  const given = digest(token);
  return tokens.reduce((ok, t) => crypto.timingSafeEqual(t, given) || ok, false);
}

function statusOf(err: unknown): grpc.status {
  if (err instanceof StatusError) return err.code;
  return err instanceof InferflowError ? GRPC_STATUS[err.type] : grpc.status.INTERNAL;
}

/** DEADLINE_EXCEEDED for work that did not finish within `ms`. */
function lateCall(what: string, ms: number): StatusError {
  return new StatusError(grpc.status.DEADLINE_EXCEEDED, `${what} did not finish within ${Math.round(ms)} ms`);
}

/** Milliseconds left before the call's own deadline (Infinity when the client set none). */
function clientBudget(call: grpc.ServerUnaryCall<unknown, unknown>): number {
  const d = call.getDeadline();
  const at = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(at) ? at - Date.now() : Infinity;
}

/** Serve deployments over gRPC. Resolves once listening. */
export async function startGrpcServer(deployments: readonly Deployment[], options: GrpcServerOptions = {}): Promise<GrpcInferenceServer> {
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_SERVE_LIMITS.requestTimeoutMs;
  const tokens = options.tokens && options.tokens.size > 0 ? [...options.tokens].map(digest) : undefined;
  const version = packageVersion();
  const byName = new Map(deployments.map((d) => [d.name, d]));

  type Handler<Req, Res> = (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res;
  /** A unary handler with authentication and the error → status mapping. */
  const unary =
    <Req, Res>(method: string, handler: Handler<Req, Res>, open = false): grpc.handleUnaryCall<Req, Res> =>
    (call, callback) => {
      void (async () => {
        try {
          if (!open && tokens && !authorised(call.metadata, tokens)) throw new StatusError(grpc.status.UNAUTHENTICATED, `${method}: missing or unknown bearer token (send metadata authorization: Bearer <token>)`);
          callback(null, await handler(call.request, call));
        } catch (err) {
          const code = statusOf(err);
          if (code === grpc.status.INTERNAL) options.logger?.error({ err, method }, 'gRPC call failed');
          const trailer = new grpc.Metadata();
          if (err instanceof InferflowError) trailer.set(ERROR_TYPE_TRAILER, err.type);
          callback({ code, details: errorMessage(err), metadata: trailer });
        }
      })();
    };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes ?? DEFAULT_SERVE_LIMITS.maxBodyBytes,
  });
  server.addService(loadService(), {
    ServerLive: unary('ServerLive', () => ({ live: true }), true),
    ServerReady: unary('ServerReady', () => ({ ready: deployments.every((d) => d.ready) }), true),
    ModelReady: unary('ModelReady', (req: { name: string; version: string }) => {
      const d = findDeployment(byName, req.name, req.version);
      return { ready: d.ready };
    }),
    ServerMetadata: unary('ServerMetadata', () => ({ name: 'inferflow', version, extensions: [] })),
    ModelMetadata: unary('ModelMetadata', (req: { name: string; version: string }) => {
      const d = findDeployment(byName, req.name, req.version);
      const p = loadedPipeline(d);
      return { name: d.name, versions: [String(p.model.version)], platform: 'onnxruntime_onnx', ...modelTensors(p) };
    }),
    ModelInfer: unary('ModelInfer', async (req: ModelInferRequest, call) => {
      const d = findDeployment(byName, req.model_name, req.model_version);
      const p = loadedPipeline(d);
      const budget = Math.min(requestTimeoutMs, clientBudget(call));
      const raw = req.raw_input_contents.length > 0;
      const ranking = options.rankings?.get(d.name);
      if (ranking) {
        const requested = req.outputs.map((o) => o.name);
        const top = await answerTopK(d, ranking, decodeInputs(req.inputs, req.raw_input_contents), requested, budget, () => lateCall(`ModelInfer (top-k) for ${d.name}`, budget));
        return { model_name: d.name, model_version: String(top.model.version), id: req.id, parameters: stringParameters({ [ranking.spec.entity]: String(top.entity) }), ...encodeOutputs(top.outputs, raw) };
      }
      const { rows } = rowsOfTensors(decodeInputs(req.inputs, req.raw_input_contents));
      const asOf = asOfParameter(parameterValue(req.parameters.as_of));
      const selected = selectOutputs(p, req.outputs.map((o) => o.name));
      // External-API features get what is left of the call's time less a margin (as over REST), so a lookup that runs out answers UNAVAILABLE naming the feature.
      const work = d.infer({ requests: rows, ...(asOf ? { now: asOf } : {}), ...(Number.isFinite(budget) ? { deadline: pipelineDeadline(budget) } : {}) });
      const { predictions, statuses, model } = await settleWithin(work, budget, () => lateCall(`ModelInfer for ${d.name}`, budget));
      const tensors = encodeOutputs(outputTensors(predictions, selected), raw);
      return {
        model_name: d.name,
        model_version: String(model.version),
        id: req.id,
        parameters: { [FEATURE_STATUS_PARAMETER]: { string_param: JSON.stringify(statuses) }, model_sha256: { string_param: model.sha256 }, ...stringParameters(postProcessParameters(predictions)) },
        ...tensors,
      };
    }),
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host ?? '127.0.0.1'}:${options.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  const host = options.host ?? '127.0.0.1';
  return {
    address: `${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), DRAIN_MS);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

function stringParameters(values: Record<string, string>): Record<string, { string_param: string }> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { string_param: v }]));
}
