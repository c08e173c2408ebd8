import type { DuckDBConnection } from '@duckdb/node-api';
import type { ResolvedModel } from '../registry/manifest';

/** The lineage columns every staged part and every output row carries, in output order (one value per run). */
export const LINEAGE_COLUMNS = ['model_name', 'model_version', 'model_sha256', 'as_of', 'run_id'] as const;
export type LineageColumn = (typeof LINEAGE_COLUMNS)[number];

/** Lineage columns of pipelines with post-processing steps, after LINEAGE_COLUMNS: which steps, and their content hash. */
export const POST_PROCESS_LINEAGE_COLUMNS = ['post_process', 'post_process_sha256'] as const;

export interface CommitRequest {
  runId: string;
  workflowId: string;
  pipeline: string;
  model: ResolvedModel;
  /** Staged parts, one per shard, in shard order (Parquet, or the sink's own `partFormat`). */
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
  /** The shard's staged part (written by predictShard: Parquet, or the sink's own `partFormat`). */
  partPath: string;
  /** Rows in the part. */
  rows: number;
  /** The run's id column, or null when rows have none. */
  idColumn: string | null;
  /** Called now and then while staging (the activity heartbeats). */
  onProgress?: () => void;
}

/** One shard's output, for a sink's own part writer (see PartFormat). */
export interface PartWriteRequest {
  /** A SELECT of the shard's output rows, in order: the id column (if any), the predictions, then the lineage columns. */
  select: string;
  /** The lineage as SELECT items without FROM (`<value> AS <column>, …`): the run's constant columns, one row. */
  lineage: string;
  /** Where to write the part (a temporary name, renamed to `finalPath` by the caller afterwards). */
  path: string;
  /** The part's name once in place: files beside it are named after this one. */
  finalPath: string;
  shardIndex: number;
  rows: number;
}

/**
 * Parts in a sink's own format, written straight from a shard's predictions: a sink that loads
 * each shard as it is predicted (PostgreSQL: CSV for COPY) then reads its own format instead of
 * a Parquet part written and read back. A part is whole once renamed into place.
 */
export interface PartFormat {
  /** File name extension of the parts, with the dot (`.csv`). */
  readonly extension: string;
  /** Write one shard's part (or one segment of a large shard) with the worker's DuckDB connection. */
  write(conn: DuckDBConnection, req: PartWriteRequest): Promise<void>;
  /** Join a large shard's segment parts, in order, into one part at `path` (renamed to `finalPath` afterwards). */
  merge(segments: readonly string[], path: string, finalPath: string): Promise<void>;
}

/** Which run: its id, and the workflow id and pipeline that file sinks name their run directory after. */
export type RunRef = Pick<CommitRequest, 'runId' | 'workflowId' | 'pipeline'>;

/**
 * A run sink (batch): stage, then commit, all-or-nothing per run; readers see a whole run or
 * nothing. `stage` and `discard` are optional: sinks that read the staged Parquet parts at commit
 * (Parquet, DuckDB) need neither; a remote database stages each shard as it is predicted.
 * Connections are shared per process and closed by the module-level close functions
 * (closePostgresPools, closeRedisClients); the file and DuckDB sinks hold nothing open.
 */
export interface RunSink {
  readonly type: string;
  /** The sink's own part format; absent: shards write Parquet parts. */
  readonly partFormat?: PartFormat;
  /** True when the sink keys rows by the run's id column, so that every row needs an id (checked when the run is planned). */
  needsIds?(idColumn: string): boolean;
  /** Load one shard's part into the sink's invisible staging area. Idempotent per (run, shard). */
  stage?(req: StageRequest): Promise<void>;
  /** Publish the run. A run committed before is a no-op answering `created: false`. */
  commit(req: CommitRequest): Promise<CommitResult>;
  /**
   * The run's commit (`created: false`) when it has been published, else undefined. Needs no
   * staged parts: a commit retried after the run's files were removed asks this first.
   */
  committed(run: RunRef): Promise<CommitResult | undefined>;
  /** Drop whatever the run staged (never committed output). Idempotent. */
  discard?(runId: string): Promise<void>;
}
