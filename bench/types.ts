/** The shape of bench/results/batch-*.json (written by bench/batch.ts, read by bench/report.ts). */
import type { HistoryStats } from './history';
import type { MachineInfo } from './machine';

export type ModelKey = 'tree' | 'mlp';
export type SinkKind = 'parquet' | 'postgres';

export interface StageTimes {
  readMs: number;
  predictMs: number;
  writeMs: number;
  totalMs: number;
  rowsPerSecond: number;
}

export interface RawBaseline {
  /** Best of `repeats` runs, by total time. */
  parquet: StageTimes;
  /** Same read and predict, the write going to Postgres (COPY); absent without the Postgres sink. */
  postgres?: StageTimes;
  repeats: number;
  /** Total times of every repeat (ms), to show the noise. */
  allTotalsMs: number[];
  positives: number;
  meanScore: number;
  /** CPU time (user + system, all threads) of the best repeat's read + predict + Parquet write, ms. */
  cpuMs?: number;
}

export interface PandasBaseline {
  parquet?: StageTimes;
  /** Why Postgres was not measured, or its write time. */
  postgres: { skipped: string } | { writeMs: number };
  repeats: number;
  allTotalsMs: number[];
  positives?: number;
  meanScore?: number;
  versions?: Record<string, string>;
  settings?: Record<string, unknown>;
  /** CPU time (user + system) of the best repeat's read + predict + Parquet write, ms. */
  cpuMs?: number;
  error?: string;
}

/** pandas' total time for a sink: read + predict + that sink's write (undefined when not measured). */
export function pandasTotalMs(p: PandasBaseline, sink: SinkKind): number | undefined {
  if (!p.parquet) return undefined;
  if (sink === 'parquet') return p.parquet.totalMs;
  return 'writeMs' in p.postgres ? p.parquet.readMs + p.parquet.predictMs + p.postgres.writeMs : undefined;
}

export interface OutputCheck {
  rows: number;
  /** Rows whose id is also in the raw baseline's output. */
  matched?: number;
  labelMismatches?: number;
  maxScoreDiff?: number;
}

export interface PipelineRun {
  sink: SinkKind;
  shardSize: number;
  concurrency: number;
  workflowId: string;
  shards?: number;
  /** Client side: start request → result received. */
  e2eMs?: number;
  rowsPerSecond?: number;
  /** As the workflow reports it (first to last workflow code timestamp). */
  workflowDurationMs?: number;
  /** The worker had run a small untimed warm-up run first (`--warm`). */
  warm?: boolean;
  /** End-to-end times of every repeat of this configuration (ms); this run is the fastest. */
  allE2eMs?: number[];
  /** Failures and output mismatches of any repeat (a failed repeat never counts as the fastest). */
  repeatProblems?: string[];
  /** e2e time / raw baseline time for the same sink (1.0 = no overhead). */
  ratioToRaw?: number;
  /**
   * The raw baseline timed again right before each successful repeat (same sink), aligned with
   * `e2eMs`, and the median of the repeats' e2e / raw: each pair saw the same machine, so the
   * ratio moves less with the shared machine's load than best / best does. Absent in older files.
   */
  paired?: { rawMs: number[]; e2eMs: number[]; ratioMedian: number };
  /** pandas time / e2e time (> 1 = faster than pandas). Null when pandas has no number for this sink. */
  speedupVsPandas?: number | null;
  worker?: { idleRssBytes: number; peakRssBytes: number };
  /** CPU time (user + system, ms) used from start request to result by the worker process and by the Temporal dev server (/proc). */
  cpuMs?: { worker?: number; server?: number };
  /** 1-minute load average when the run started and ended: the box is shared, this shows how busy it was. */
  loadAvg1m?: { start: number; end: number };
  history?: HistoryStats;
  check?: OutputCheck;
  error?: string;
}

export interface ModelResults {
  key: ModelKey;
  name: string;
  version: number;
  sha256: string;
  modelBytes: number;
  raw: RawBaseline;
  pandas: PandasBaseline;
  runs: PipelineRun[];
}

export interface BatchBenchResults {
  benchmark: 'batch';
  schema: 1;
  /** ISO time the run finished. */
  date: string;
  /** The command that reproduces it. */
  command: string;
  /** `--tag`: names the results file (`batch-<day>-<rows>[-…]-<tag>.json`) so a run does not replace another of the same day. */
  tag?: string;
  rows: number;
  dataset: { file: string; bytes: number; generator: string };
  machine: MachineInfo;
  /** The code measured: HEAD plus uncommitted changes to the pipeline's own files, if any. */
  source: { commit: string; uncommitted: string[] };
  settings: {
    shardSizes: number[];
    concurrencies: number[];
    /** Sinks the pipeline runs wrote to. */
    sinks: SinkKind[];
    /** The workflow defaults at the time of the run (lib/messages/batch.ts). */
    workflowDefaults: { shardSize: number; maxConcurrency: number };
    /** 'existing': every Postgres write upserted into a table holding an earlier run's rows (`--pg-existing`); absent: a new table. */
    postgresTable?: 'existing';
    /** Intra-op threads of each worker session (INFERFLOW_ORT_THREADS). */
    ortIntraOpThreads: number;
    /** Worker inference pool threads (INFERFLOW_INFERENCE_THREADS; absent in results from before the pool: 0). */
    inferenceThreads?: number;
    /** maxConcurrentActivityTaskExecutions of the worker (absent in older results: 4). */
    workerMaxActivities?: number;
    /** Intra-op threads of the pandas baseline's session (absent in older results: = ortIntraOpThreads). */
    baselineIntraOpThreads?: number;
    rawBatchRows: number;
    rawDuckdbThreads: number;
    baselineRepeats: number;
    /** Each worker ran a small untimed warm-up run before the timed one (`--warm`). */
    warmWorker?: boolean;
    /** Runs of each pipeline configuration, the fastest kept (absent in older results: 1). */
    pipelineRepeats?: number;
  };
  postgres: { used: boolean; reason?: string };
  models: ModelResults[];
}
