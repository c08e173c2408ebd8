/**
 * THE deployment lookup of every protocol (V2 REST, V2 gRPC, MLflow scoring): the deployment
 * served under a name, the version asked for, and the pipeline answering now. Errors are typed
 * (lib/errors.ts), so each protocol maps them the same way: NotFound → 404 / NOT_FOUND,
 * Transient → 503 with retry-after / UNAVAILABLE.
 */
import { NotFoundError, TransientError } from '../lib/errors';
import { valueText } from '../lib/pipeline/online';
import type { Pipeline } from '../lib/pipeline/pipeline';

/** What a lookup reads of a deployment (server/deployment.ts `Deployment`). */
export interface Served {
  readonly name: string;
  readonly current: Pipeline | undefined;
  readonly ready: boolean;
}

/**
 * The deployment served as `name`. A `version` (not empty) must be the version loaded; while none
 * is loaded any version is accepted here and `loadedPipeline` answers that it is not ready.
 *
 * @throws NotFoundError naming the model and the ones served, or the version asked and the one serving
 */
export function findDeployment<D extends Served>(deployments: ReadonlyMap<string, D>, name: string, version?: string): D {
  const d = deployments.get(name);
  if (!d) throw new NotFoundError(`model ${valueText(name)} is not served here (served: ${[...deployments.keys()].join(', ')})`, { model: name });
  const serving = d.current?.model.version;
  if (version !== undefined && version !== '' && serving !== undefined && version !== String(serving)) {
    throw new NotFoundError(`model ${d.name} version ${valueText(version)} is not served here (serving version ${serving})`, { model: name, version });
  }
  return d;
}

/**
 * The pipeline answering for a deployment now.
 *
 * @throws TransientError while no version is loaded
 */
export function loadedPipeline(d: Served): Pipeline {
  if (!d.ready || !d.current) throw new TransientError(`model ${d.name} is not ready: no version loaded yet; retry later`, { model: d.name });
  return d.current;
}
