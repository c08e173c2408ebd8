/**
 * The gRPC service's deployment lookups: the deployment served under a name, the version asked
 * for, and the pipeline answering now (errors map to NOT_FOUND and UNAVAILABLE).
 */
import { NotFoundError, TransientError } from '../lib/errors';
import { valueText } from '../lib/pipeline/online';
import type { Pipeline } from '../lib/pipeline/pipeline';

/** The served version must be the one asked for (none asked: whichever answers). */
export function checkVersion(name: string, served: number, asked: string | undefined): void {
  if (asked !== undefined && asked !== '' && asked !== String(served)) throw new NotFoundError(`model ${name} version ${asked} is not served here (serving version ${served})`, { model: name, version: asked });
}

/** The deployment served under `name`; NotFoundError naming the names served when there is none. */
export function findDeployment<D extends { readonly name: string }>(deployments: readonly D[], name: string): D {
  const d = deployments.find((x) => x.name === name);
  if (!d) throw new NotFoundError(`model ${valueText(name)} is not served here (served: ${deployments.map((x) => x.name).join(', ')})`, { model: name });
  return d;
}

/** The pipeline answering for a deployment now; TransientError (503 / UNAVAILABLE) while no version is loaded. */
export function loadedPipeline(d: { readonly name: string; readonly current: Pipeline | undefined; readonly ready: boolean }): Pipeline {
  if (!d.ready || !d.current) throw new TransientError(`model ${d.name} is not ready: no version loaded yet; retry later`, { model: d.name });
  return d.current;
}
