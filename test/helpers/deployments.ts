import type { Deployment } from '../../server/deployment';

/** A deployment whose first version is still loading: not ready, and `loaded` never settles. */
export function loadingDeployment(name: string): Deployment {
  return {
    name,
    current: undefined,
    ready: false,
    loaded: new Promise<void>(() => {}),
    counters: { version: undefined, swaps: 0, refusedSwaps: 0, batching: { calls: 0, requests: 0, coalesced: 0, fallbacks: 0, maxRows: 0 } },
    infer: () => Promise.reject(new Error('not loaded')),
    withPipeline: () => Promise.reject(new Error('not loaded')),
    close: () => Promise.resolve(),
  };
}
