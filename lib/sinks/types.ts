import type { ResolvedModel } from '../registry/manifest';

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
}

/** A prediction sink with stage-then-commit: readers see a whole run or nothing. */
export interface Sink {
  readonly type: string;
  commit(req: CommitRequest): Promise<CommitResult>;
}
