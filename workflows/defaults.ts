/**
 * batchInference's defaults, in a module without imports so the CLI's help can show them
 * without loading the workflow SDK (workflows/definitions.ts says how they were chosen).
 */
export const BATCH_DEFAULTS = { shardSize: 250_000, maxConcurrency: 4, shardsPerChild: 200 } as const;
