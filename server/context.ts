/**
 * What every protocol route of one server shares: the deployments by served name, the limits,
 * the metrics, and THE inference call (readiness, deadline, metrics) every route goes through.
 */
import type { ServedRanking } from './v2/ranking';
import type { ServeLimits } from '../lib/config/env';
import type { OnlineRetrieval } from '../lib/pipeline/pipeline';
import type { Deployment, DeploymentAnswer } from './deployment';
import { findDeployment, loadedPipeline } from './lookup';
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

/** The pipeline's own deadline for a call with `ms` left: a margin earlier, so that external-API lookups that run out of time answer their own error naming the feature before the protocol's deadline answers. */
export function pipelineDeadline(ms: number): number {
  return Date.now() + ms - Math.min(DEADLINE_MARGIN_MS, ms / 10);
}

/** The deployment served as `name` on this server (server/lookup.ts). */
export function deploymentOf(ctx: ServerContext, name: string, version?: string): Deployment {
  return findDeployment(ctx.deployments, name, version);
}

/** `work`, or `late()` rejected once `ms` have passed (the work runs on; its outcome has no one to answer). An infinite `ms` waits for the work. */
export async function settleWithin<T>(work: Promise<T>, ms: number, late: () => Error): Promise<T> {
  if (!Number.isFinite(ms)) return work;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), Math.max(0, ms));
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
    work.catch(() => undefined);
  }
}

/**
 * Run an inference on a ready deployment within the deadline (504 past it: the answer is not
 * waited for), and count it.
 */
export async function inferWithin(ctx: ServerContext, d: Deployment, input: OnlineRetrieval): Promise<DeploymentAnswer> {
  loadedPipeline(d);
  const ms = ctx.limits.deadlineMs;
  const call = d.infer({ ...input, deadline: input.deadline ?? pipelineDeadline(ms) });
  const answer = await settleWithin(call, ms, () => new HttpError(504, `model ${d.name} did not answer within the ${ms} ms deadline (INFERFLOW_SERVE_DEADLINE_MS)`));
  ctx.metrics.answered(d.name, answer.model, answer.statuses);
  return answer;
}
