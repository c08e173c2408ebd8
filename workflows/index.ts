// Every workflow the Inferflow worker registers. Bundled into Temporal's deterministic sandbox.
export { batchInference, batchShardGroup } from './batch';
export { materializeFeatures } from './materialize';
export { onlineInference } from './online';
export { inferflowWarmUp } from './warm-up';
