/**
 * What every protocol route of one server shares: the deployments by served name, the limits,
 * the metrics, and THE inference call (readiness, deadline, metrics) every route goes through.
 */
import type { ServeLimits } from '../lib/config/env';
import { NotFoundError } from '../lib/errors';
import type { OnlineRetrieval, Pipeline } from '../lib/pipeline/pipeline';
import type { Deployment, DeploymentAnswer } from './deployment';
import type { ServerMetrics } from './metrics';
import { HttpError } from './respond';
import type { DurableTarget } from './v2/durable';

export interface ServerContext {
  deployments: ReadonlyMap<string, Deployment>;
  limits: ServeLimits;
  metrics: ServerMetrics;
  /** The deployment `/invocations` (MLflow scoring) answers with: named, or the only one served. */
  mlflowModel?: string;
  /** Where `?durable=true` requests go (`--durable-deployment`); none: they are refused. */
  durable?: DurableTarget;
}

/** The deployment served as `name`; `version`, when given, must be the version loaded. */
export function deploymentOf(ctx: ServerContext, name: string, version?: string): Deployment {
  const d = ctx.deployments.get(name);
  if (!d) throw new NotFoundError(`model ${name} is not served here (served: ${[...ctx.deployments.keys()].join(', ')})`, { model: name });
  if (version !== undefined) {
    const loaded = d.current?.model.version;
    if (String(loaded) !== version) throw new NotFoundError(`model ${name} version ${version} is not served here (${loaded === undefined ? 'no version is loaded yet' : `version ${loaded} is`})`, { model: name, version });
  }
  return d;
}

/** The loaded pipeline of a deployment, or 503 while none is. */
export function loadedPipeline(d: Deployment): Pipeline {
  const p = d.current;
  if (!d.ready || !p) throw new HttpError(503, `model ${d.name} is not ready (no version loaded yet)`, { 'retry-after': '1' });
  return p;
}

/**
 * Run an inference on a ready deployment within the deadline (504 past it: the answer is not
 * waited for), and count it.
 */
export async function inferWithin(ctx: ServerContext, d: Deployment, input: OnlineRetrieval): Promise<DeploymentAnswer> {
  loadedPipeline(d);
  const ms = ctx.limits.deadlineMs;
  let timer: NodeJS.Timeout | undefined;
  const call = d.infer(input);
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HttpError(504, `model ${d.name} did not answer within the ${ms} ms deadline (INFERFLOW_SERVE_DEADLINE_MS)`)), ms);
  });
  try {
    const answer = await Promise.race([call, deadline]);
    ctx.metrics.answered(d.name, answer.model, answer.statuses);
    return answer;
  } finally {
    clearTimeout(timer);
    call.catch(() => undefined); // abandoned past the deadline: its outcome has no one to answer
  }
}
