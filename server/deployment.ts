/**
 * A model deployment: what a server route or RPC answers with. It owns the pipeline that answers
 * now (the model version behind a served name), whether it is ready, and the `infer` entry every
 * protocol (V2 REST, V2 gRPC, MLflow scoring) calls. The protocol front ends never hold a
 * Pipeline themselves, so a deployment may change what answers (a new version, a batched call)
 * without them knowing.
 */
import type { ResolvedModel } from '../lib/registry/manifest';
import type { OnlineRetrieval, Pipeline } from '../lib/pipeline/pipeline';
import type { OnlineRetrieved } from '../lib/pipeline/online';
import type { Predictions } from '../lib/pipeline/post-process';

export interface DeploymentAnswer {
  predictions: Predictions;
  /** Per row, the online store status of each feature. */
  statuses: OnlineRetrieved['statuses'];
  /** The model version that answered. */
  model: ResolvedModel;
}

export interface Deployment {
  /** The name the deployment is served under (the V2 model name in URLs and RPCs). */
  readonly name: string;
  /** The pipeline answering now; undefined until a version is loaded. */
  readonly current: Pipeline | undefined;
  /** True once a version is loaded and can answer. */
  readonly ready: boolean;
  infer(input: OnlineRetrieval): Promise<DeploymentAnswer>;
  close(): Promise<void>;
}

/** A deployment of one opened pipeline that never changes. */
export function fixedDeployment(pipeline: Pipeline, name: string = pipeline.model.name): Deployment {
  return {
    name,
    current: pipeline,
    ready: true,
    async infer(input) {
      const { predictions, statuses } = await pipeline.infer(input);
      return { predictions, statuses, model: pipeline.model };
    },
    close: () => Promise.resolve(),
  };
}
