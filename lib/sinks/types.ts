import type { ResolvedModel } from '../registry/manifest';

/** The lineage columns every staged part and every output row carries, in output order (one value per run). */
export const LINEAGE_COLUMNS = ['model_name', 'model_version', 'model_sha256', 'as_of', 'run_id'] as const;
export type LineageColumn = (typeof LINEAGE_COLUMNS)[number];

export interface CommitRequest {
  runId: string;
  workflowId: string;
  pipeline: string;
  model: ResolvedModel;
  /** Staged Parquet parts, one per shard, in shard order. */
  parts: string[];
  rows: number;
}

export interface CommitResult {
  /** Where readers find the committed predictions. */
  location: string;
  rows: number;
  /** False when the run had been committed before (an activity retry). */
  created: boolean;
  /** Upserting sinks: rows not written because the stored row for the key has a later as_of. */
  keptNewer?: number;
}

export interface StageRequest {
  runId: string;
  shardIndex: number;
  /** The shard's staged Parquet part (written by predictShard). */
  partPath: string;
  /** Rows in the part. */
  rows: number;
  /** The run's id column, or null when rows have none. */
  idColumn: string | null;
  /** Called now and then while staging (the activity heartbeats). */
  onProgress?: () => void;
}

/**
 * A prediction sink with stage-then-commit: readers see a whole run or nothing.
 * `stage` and `discard` are optional: sinks that read the staged Parquet parts at commit
 * (Parquet, DuckDB) need neither; a remote database stages each shard as it is predicted.
 */
export interface Sink {
  readonly type: string;
  /** Load one shard's part into the sink's invisible staging area. Idempotent per (run, shard). */
  stage?(req: StageRequest): Promise<void>;
  commit(req: CommitRequest): Promise<CommitResult>;
  /** Drop whatever the run staged (never committed output). Idempotent. */
  discard?(runId: string): Promise<void>;
}
