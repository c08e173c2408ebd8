/**
 * Durable predictions over V2 REST: `POST /v2/models/{m}/infer?durable=true` (or the header
 * `Inferflow-Durable: true`) sends the request's rows as one Update-with-Start to the online
 * deployment the server was started with (`inferflow serve --durable-deployment NAME`,
 * client/online.ts `predictOnDeployment`): the request and its answer are in that deployment's
 * workflow history, and the V2 request `id` is the Update id (a retry with the same id gets the
 * recorded answer). The answer carries `parameters.workflow_id` and `parameters.update_id`.
 */
import type http from 'node:http';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { PREDICT_TIMEOUT_MS, predictOnDeployment, type OnlineDeployment } from '../../client/online';
import { InvalidInputError, NotFoundError } from '../../lib/errors';
import { parseModelRef } from '../../lib/registry/ref';
import { HttpError } from '../respond';
import { listTensors } from './outputs';
import type { V2Request } from './rest-codec';
import { REQUEST, rowsOfTensors } from './tensors';

export const DURABLE_HEADER = 'inferflow-durable';
export const DURABLE_QUERY = 'durable';

/** Where durable requests go: a Temporal client and the online deployment found at start-up. */
export interface DurableTarget {
  client: Client;
  deployment: OnlineDeployment;
}

/** Whether a request asks to be durable (`?durable=true` or `Inferflow-Durable: true`); another value is a 400 naming it. */
export function wantsDurable(req: http.IncomingMessage): boolean {
  const query = new URL(req.url ?? '/', 'http://x').searchParams.get(DURABLE_QUERY);
  const header = req.headers[DURABLE_HEADER];
  const given = [query === null ? undefined : ['durable', query], header === undefined ? undefined : ['Inferflow-Durable', String(header)]].filter((g): g is string[] => g !== undefined);
  for (const [what, v] of given) if (v !== 'true' && v !== 'false') throw new HttpError(400, `${what}: true or false, got ${JSON.stringify(v)}`);
  return given.some(([, v]) => v === 'true');
}

/** The names a durable deployment answers to in the URL: its own, and its model's. */
function answersTo(d: OnlineDeployment, name: string): boolean {
  return name === d.name || name === parseModelRef(d.input.model).name;
}

/**
 * One durable prediction of a decoded V2 request, with what is left of the request's deadline
 * (`deadline`, epoch ms: server/context.ts `pipelineDeadline`, the margin every route leaves) as the prediction's `timeoutMs`: external-API
 * features in the workflow give up within it.
 *
 * @throws HttpError 400 the server has no durable deployment, or the request wants binary outputs; 504 the deadline passed before the Update was sent
 * @throws NotFoundError the URL names a model the durable deployment does not serve
 * @throws InvalidInputError the request (or the deployment, rejecting the Update) names the field at fault
 */
export async function inferDurably(target: DurableTarget | undefined, name: string, request: V2Request, deadline: number): Promise<Record<string, unknown>> {
  if (!target) throw new HttpError(400, `durable=true: this server has no durable deployment (start it with --durable-deployment NAME)`);
  if (!answersTo(target.deployment, name)) throw new NotFoundError(`model ${name} is not the durable deployment's (deployment ${target.deployment.name} serves ${target.deployment.input.model})`, { model: name });
  if (request.binaryOutputs.size > 0 || request.binaryByDefault) throw new InvalidInputError(REQUEST, ['outputs: a durable answer is JSON (binary_data outputs are not sent)']);
  const { rows } = rowsOfTensors(request.inputs);
  const asOf = request.parameters.as_of;
  const left = Math.floor(deadline - Date.now());
  if (left < 1) throw new HttpError(504, `model ${name}: the request's deadline passed before the durable prediction was sent (INFERFLOW_SERVE_DEADLINE_MS)`);
  const timeoutMs = Math.min(left, PREDICT_TIMEOUT_MS);
  try {
    const { answer, workflowId, updateId } = await predictOnDeployment(target.client, target.deployment, { rows, timeoutMs, ...(asOf !== undefined ? { asOf: asOf as string } : {}), ...(request.id !== undefined ? { requestId: request.id } : {}) });
    const outputs = listTensors(answer, request.outputs, name);
    return {
      model_name: name,
      model_version: String(answer.model.version),
      ...(request.id !== undefined ? { id: request.id } : {}),
      parameters: { feature_status: answer.featureStatus, workflow_id: workflowId, update_id: updateId },
      outputs,
    };
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure && err.cause.nonRetryable) throw new InvalidInputError(`${err.cause.type ?? 'rejected'}: ${err.cause.message}`);
    throw err;
  }
}
