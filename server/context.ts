/**
 * What every protocol route of one server shares: the deployments by served name, the limits,
 * the metrics, and THE inference call (readiness, deadline, metrics) every route goes through.
 */
import type { ServedRanking } from './v2/ranking';
import type { ServeLimits } from '../lib/config/env';
import { NotFoundError } from '../lib/errors';
import type { OnlineRetrieval, Pipeline } from '../lib/pipeline/pipeline';
import type { Deployment, DeploymentAnswer } from './deployment';
import type { ServerMetrics } from './metrics';
import { HttpError } from './respond';
import type { DurableTarget } from './v2/durable';

/** How much earlier than the server's deadline external-API lookups must give up. */
const DEADLINE_MARGIN_MS = 100;

export interface ServerContext {
  deployments: ReadonlyMap<string, Deployment>;
  limits: ServeLimits;
  metrics: ServerMetrics;
  /** The deployment `/invocations` (MLflow scoring) answers with: named, or the only one served. */
  mlflowModel?: string;
  /** Deployments served from a ranking spec, by name: their infer answers top-k (v2/ranking.ts). */
  rankings?: ReadonlyMap<string, ServedRanking>;
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
  // External-API features get what is left of the deadline less a margin, so that a lookup that
  // runs out of time answers its own 503 naming the feature and TIMEOUT before the 504 below.
  const call = d.infer({ ...input, deadline: input.deadline ?? Date.now() + ms - Math.min(DEADLINE_MARGIN_MS, ms / 10) });
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
