/**
 * Open Inference Protocol (KServe V2) REST routes:
 *
 *   GET  /v2                                          server metadata (name, version, extensions)
 *   GET  /v2/health/live · /v2/health/ready           200 {"live"|"ready": true}; ready is 503 until every model is loaded
 *   GET  /v2/models/{m}[/versions/{v}]                model metadata: inputs (request fields), outputs, V2 datatypes
 *   GET  /v2/models/{m}[/versions/{v}]/ready          200 / 503 {"name", "ready"}
 *   POST /v2/models/{m}[/versions/{v}]/infer          inference, JSON or binary tensor data
 *
 * Errors answer `{"error": "…"}` (plus `type`, the error type) with the status of their type.
 */
import type http from 'node:http';
import { packageVersion } from '../../lib/util/package-root';
import { deploymentOf, inferWithin, pipelineDeadline, type ServerContext } from '../context';
import { loadedPipeline } from '../lookup';
import { readBody, sendJson } from '../respond';
import { inferDurably, wantsDurable } from './durable';
import { modelTensors } from './metadata';
import { HEADER_LENGTH, decodeInferRequest, encodeInferResponse } from './rest-codec';
import { inferTopK } from './ranking';
import { outputTensors, postProcessParameters, selectOutputs } from './outputs';
import { asOfParameter, rowsOfTensors } from './tensors';

/** Protocol extensions this server implements (GET /v2). */
export const V2_EXTENSIONS = ['binary_tensor_data'] as const;
export const SERVER_NAME = 'inferflow';

export interface V2Route {
  /** Metrics label. */
  label: string;
  run(req: http.IncomingMessage, res: http.ServerResponse): void | Promise<void>;
}

/** The V2 route for a method and path (split on '/'), or undefined. */
export function matchV2(ctx: ServerContext, method: string, parts: readonly string[]): V2Route | undefined {
  if (parts[0] !== 'v2') return undefined;
  if (method === 'GET' && parts.length === 1) return { label: 'v2_server_metadata', run: (_req, res) => sendJson(res, 200, { name: SERVER_NAME, version: packageVersion(), extensions: V2_EXTENSIONS }) };
  if (method === 'GET' && parts[1] === 'health' && parts.length === 3) {
    if (parts[2] === 'live') return { label: 'v2_health', run: (_req, res) => sendJson(res, 200, { live: true }) };
    if (parts[2] === 'ready')
      return {
        label: 'v2_health',
        run: (_req, res) => {
          const ready = [...ctx.deployments.values()].every((d) => d.ready);
          sendJson(res, ready ? 200 : 503, { ready });
        },
      };
  }
  if (parts[1] !== 'models' || !parts[2]) return undefined;
  const name = decodeURIComponent(parts[2]);
  let rest = parts.slice(3);
  let version: string | undefined;
  if (rest[0] === 'versions') {
    if (!rest[1]) return undefined;
    version = decodeURIComponent(rest[1]);
    rest = rest.slice(2);
  }
  if (method === 'GET' && rest.length === 0) return { label: 'v2_model_metadata', run: (_req, res) => modelMetadata(ctx, res, name, version) };
  if (method === 'GET' && rest.length === 1 && rest[0] === 'ready')
    return {
      label: 'v2_model_ready',
      run: (_req, res) => {
        const d = deploymentOf(ctx, name, version);
        sendJson(res, d.ready ? 200 : 503, { name, ready: d.ready });
      },
    };
  if (method === 'POST' && rest.length === 1 && rest[0] === 'infer') {
    const ranking = ctx.rankings?.get(name);
    return { label: 'v2_infer', run: (req, res) => (ranking ? inferTopK(ctx, req, res, name, version, ranking) : infer(ctx, req, res, name, version)) };
  }
  return undefined;
}

function modelMetadata(ctx: ServerContext, res: http.ServerResponse, name: string, version: string | undefined): void {
  const d = deploymentOf(ctx, name, version);
  const p = loadedPipeline(d);
  const sig = modelTensors(p);
  sendJson(res, 200, {
    name,
    versions: [String(p.model.version)],
    platform: 'onnxruntime_onnx',
    inputs: sig.inputs,
    outputs: sig.outputs,
    parameters: { sha256: p.model.sha256, feature_views: p.views.map((v) => v.name) },
  });
}

async function infer(ctx: ServerContext, req: http.IncomingMessage, res: http.ServerResponse, name: string, version: string | undefined): Promise<void> {
  if (wantsDurable(req)) {
    const deadline = pipelineDeadline(ctx.limits.deadlineMs);
    const headerLength = req.headers[HEADER_LENGTH];
    const request = decodeInferRequest(await readBody(req, ctx.limits.maxBodyBytes), Array.isArray(headerLength) ? headerLength[0] : headerLength);
    return sendJson(res, 200, await inferDurably(ctx.durable, name, request, deadline));
  }
  const d = deploymentOf(ctx, name, version);
  const p = loadedPipeline(d);
  const headerLength = req.headers[HEADER_LENGTH];
  const request = decodeInferRequest(await readBody(req, ctx.limits.maxBodyBytes), Array.isArray(headerLength) ? headerLength[0] : headerLength);
  const { rows, rank } = rowsOfTensors(request.inputs);
  const selected = selectOutputs(p, request.outputs); // unknown outputs are refused before predicting
  const asOf = asOfParameter(request.parameters.as_of);
  const answer = await inferWithin(ctx, d, { requests: rows, ...(asOf ? { now: asOf } : {}) });
  const outputs = outputTensors(answer.predictions, selected, rank);
  const head = { model_name: name, model_version: String(answer.model.version), ...(request.id !== undefined ? { id: request.id } : {}), parameters: { feature_status: answer.statuses, ...postProcessParameters(answer.predictions) } };
  const { body, headers } = encodeInferResponse(head, outputs, (o) => request.binaryOutputs.has(o) || (request.binaryByDefault && !request.outputs));
  res.writeHead(200, headers);
  res.end(body);
}
