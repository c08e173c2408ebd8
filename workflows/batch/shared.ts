/**
 * batchInference's messages, shared by the workflow and its clients (CLI, tests, user code):
 * the input schema (lib/messages/batch.ts), the progress query, the shard groups' signal.
 * Free of Node APIs: bundled into the workflow sandbox.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { ResolvedModel } from '../../lib/registry/manifest';
import type { BatchInferenceInput, ShardGroupProgress } from '../../lib/messages/batch';

export {
  BATCH_DEFAULTS,
  BATCH_LIMITS,
  BatchInferenceInputSchema,
  BatchPipelineSpecSchema,
  ShardGroupInputSchema,
  ShardGroupProgressSchema,
  batchLimitMessage,
  type BatchInferenceInput,
  type ShardGroupInput,
  type ShardGroupProgress,
} from '../../lib/messages/batch';

export const BATCH_WORKFLOW_TYPE = 'batchInference';
export const SHARD_GROUP_WORKFLOW_TYPE = 'batchShardGroup';

export interface BatchInferenceResult {
  workflowId: string;
  runId: string;
  pipeline: string;
  model: ResolvedModel;
  /** ISO 8601 as-of time of the run. */
  asOf: string;
  rowsIn: number;
  rowsOut: number;
  shards: number;
  output: { type: string; location: string };
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  rowsPerSecond: number;
}

export type BatchPhase = 'resolving' | 'planning' | 'predicting' | 'committing' | 'done' | 'failed';

export interface BatchProgress {
  phase: BatchPhase;
  model?: { name: string; version: number };
  shardsTotal: number;
  shardsDone: number;
  /** Shards that failed for good (after retries); any makes the run fail. */
  shardsFailed: number;
  rowsTotal: number;
  rowsDone: number;
  rowsPerSecond: number;
  /** Seconds until done at the current rate; null until it can be estimated. */
  etaSeconds: number | null;
}

export const progressQuery = defineQuery<BatchProgress>('progress');

/** `95` → `1m 35s`, for ETAs people read. */
function etaText(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

/**
 * A run's progress as the Web UI shows it on the workflow page (the workflow's current details,
 * Markdown): phase, model, shards, rows, rate and ETA. The same numbers as `progressQuery`.
 */
export function progressDetails(p: BatchProgress): string {
  const n = (x: number) => x.toLocaleString('en-US');
  return [
    `**${p.phase}**${p.model ? ` · model ${p.model.name} version ${p.model.version}` : ''}`,
    `shards ${n(p.shardsDone)}/${n(p.shardsTotal)}${p.shardsFailed ? ` (${n(p.shardsFailed)} failed)` : ''} · rows ${n(p.rowsDone)}/${n(p.rowsTotal)}`,
    `${n(p.rowsPerSecond)} rows/s · ETA ${p.etaSeconds === null ? 'unknown' : etaText(p.etaSeconds)}`,
  ].join('\n\n');
}

/** The one-line summary a batch run starts with (Web UI list and run page): pipeline and model reference. */
export function batchSummary(input: Pick<BatchInferenceInput, 'pipeline' | 'model'>): string {
  return `batch ${input.pipeline ?? input.model.split(/[:@]/)[0]} · model ${input.model}`;
}

/** Child shard groups tell the parent how many shards and rows they finished since the last report (lib/messages/batch.ts ShardGroupProgressSchema). */
export const shardGroupProgressSignal = defineSignal<[ShardGroupProgress]>('shardGroupProgress');
