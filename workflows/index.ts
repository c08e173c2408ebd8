// Every workflow the Inferflow worker registers, by mode. Bundled into Temporal's deterministic sandbox.
export { batchInference } from './batch/workflow';
export { batchShardGroup } from './batch/shard-group';
export { materializeFeatures } from './features/materialize';
export { onlineInference } from './online/workflow';
export { streamingInference } from './stream/workflow';
export { inferflowWarmUp } from './warm-up';
