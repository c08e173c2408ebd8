/**
 * `npm run bench -- <command>`: benchmarks (not tests; `npm test` never runs them).
 *
 *   npm run bench -- batch [--rows 1000000] [--models tree,mlp] [--shard-size N] [--concurrency N]
 *   npm run bench -- report        print the report of the newest bench/results/batch-*.json of each benchmark
 *   npm run bench -- ort-threads   ONNX Runtime on the calling thread (intra-op 1 or 2) vs. the inference pool
 *   npm run bench -- workflow-start   a new workflow execution's cost by workflow bundle (shipped vs. plain)
 *   npm run bench -- serve         online serving at fixed rates: floor, inferflow serve (batching off/on), Python KServe
 *   npm run bench -- top-k         one user's top-k: candidate file read per request vs. candidates loaded once
 */
import { Command, InvalidArgumentError } from 'commander';
import { defaultPoolSize } from '../lib/runtime/pool';
import { BATCH_DEFAULTS, BATCH_LIMITS } from '../lib/messages/batch';
import { runBatchBench } from './batch';
import { runOrtThreadsBench } from './ort-threads';
import { runWorkflowStartBench } from './workflow-start';
import { latestReport } from './report';
import { registerOnlineBench } from './online';
import { registerServeBench } from './serve';
import { registerOnlineDurableBench } from './online-durable';
import { registerStreamBench } from './stream';
import { registerTopKBench } from './top-k';
import type { ModelKey, SinkKind } from './types';

/** Repeatable, comma-separated positive integers: `--rows 1000000 --rows 10000000` or `--rows 1000000,10000000`. */
function intList(min: number, max: number) {
  return (value: string, previous: number[] | undefined): number[] => {
    const out = [...(previous ?? [])];
    for (const part of value.split(',')) {
      const n = Number(part.replace(/_/g, ''));
      if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${part} is not an integer between ${min.toLocaleString('en-US')} and ${max.toLocaleString('en-US')}`);
      out.push(n);
    }
    return out;
  };
}

function modelList(value: string, previous: ModelKey[] | undefined): ModelKey[] {
  const out = [...(previous ?? [])];
  for (const part of value.split(',')) {
    if (part !== 'tree' && part !== 'mlp') throw new InvalidArgumentError(`unknown model ${JSON.stringify(part)} (known: tree = examples/models/fraud-detector, mlp = examples/models/fraud-mlp)`);
    if (!out.includes(part)) out.push(part);
  }
  return out;
}

function sinkList(value: string, previous: SinkKind[] | undefined): SinkKind[] {
  const out = [...(previous ?? [])];
  for (const part of value.split(',')) {
    if (part !== 'parquet' && part !== 'postgres') throw new InvalidArgumentError(`unknown sink ${JSON.stringify(part)} (known: parquet, postgres)`);
    if (!out.includes(part)) out.push(part);
  }
  return out;
}

interface BatchFlags {
  rows?: number[];
  models?: ModelKey[];
  shardSize?: number[];
  concurrency?: number[];
  sinks?: SinkKind[];
  rawBatchRows: number;
  repeats: number;
  pipelineRepeats: number;
  warm: boolean;
  inferenceThreads?: number;
  tag?: string;
  postgres: boolean;
  pgExisting: boolean;
  pandas: boolean;
  paired: boolean;
  keep: boolean;
}

function normalizedCommand(f: BatchFlags, rows: number[], models: ModelKey[], shardSizes: number[], concurrencies: number[]): string {
  const parts = ['npm run bench -- batch', ...rows.map((r) => `--rows ${r}`), `--models ${models.join(',')}`, `--shard-size ${shardSizes.join(',')}`, `--concurrency ${concurrencies.join(',')}`];
  if (f.rawBatchRows !== 65536) parts.push(`--raw-batch-rows ${f.rawBatchRows}`);
  if (f.repeats !== 2) parts.push(`--repeats ${f.repeats}`);
  if (f.pipelineRepeats !== 2) parts.push(`--pipeline-repeats ${f.pipelineRepeats}`);
  if (f.warm) parts.push('--warm');
  if (f.inferenceThreads !== undefined) parts.push(`--inference-threads ${f.inferenceThreads}`);
  if (f.sinks) parts.push(`--sinks ${f.sinks.join(',')}`);
  if (!f.postgres) parts.push('--no-postgres');
  if (f.pgExisting) parts.push('--pg-existing');
  if (!f.pandas) parts.push('--no-pandas');
  if (!f.paired) parts.push('--no-paired');
  return parts.join(' ');
}

const program = new Command('bench')
  .description('Inferflow benchmarks. Each prints its report and writes its results as JSON to bench/results/. Not part of npm test.')
  .showHelpAfterError();

program
  .command('batch')
  .description(
    [
      'Batch inference end to end on a real Temporal dev server (started on a free port, stopped at the end),',
      'against a raw single-process baseline (DuckDB → ONNX Runtime → DuckDB, no Temporal) and a pandas baseline',
      '(bench/pandas_baseline.py), for the tree model (fraud-detector) and the MLP (fraud-mlp).',
      'Measures end-to-end rows/s, the ratios to both baselines, the worker process peak RSS, history events and',
      'the largest payload. The seeded dataset is generated once per row count under .data/bench/.',
      'Postgres is measured too when lib/postgres/run-sink.ts exists (PGHOST/PGUSER/PGDATABASE, default 127.0.0.1/postgres/test).',
    ].join('\n'),
  )
  .option('--rows <n>', 'rows in the dataset; repeat or comma-separate for several (default 1000000)', intList(1, 100_000_000))
  .option('--models <list>', 'tree, mlp or tree,mlp (default tree,mlp)', modelList)
  .option('--shard-size <n>', `rows per shard; repeat or comma-separate to compare (default ${BATCH_DEFAULTS.shardSize}, the workflow default)`, intList(BATCH_LIMITS.shardSize.min, BATCH_LIMITS.shardSize.max))
  .option('--concurrency <n>', `shards in flight; repeat or comma-separate to compare (default ${BATCH_DEFAULTS.maxConcurrency}, the workflow default)`, intList(BATCH_LIMITS.maxConcurrency.min, BATCH_LIMITS.maxConcurrency.max))
  .option('--sinks <list>', 'parquet, postgres or parquet,postgres (default: both when the Postgres sink exists)', sinkList)
  .option('--raw-batch-rows <n>', 'rows per session.run in the raw and pandas baselines', (v) => intList(1, 10_000_000)(v, [])[0]!, 65536)
  .option('--inference-threads <n>', 'worker inference pool threads (INFERFLOW_INFERENCE_THREADS; 0 = session.run on the main thread); the baselines get as many ONNX Runtime intra-op threads (default: cores, at most 4)', (v) => intList(0, 64)(v, [])[0]!)
  .option('--tag <name>', 'suffix of the results file name, so this run does not replace another of the same day and row count (letters, digits, -)', (v) => {
    if (!/^[A-Za-z0-9-]{1,40}$/.test(v)) throw new InvalidArgumentError('use 1-40 letters, digits or -');
    return v;
  })
  .option('--repeats <n>', 'runs of each baseline (the best counts)', (v) => intList(1, 10)(v, [])[0]!, 2)
  .option('--warm', 'warm each fresh worker with a small untimed run (20,000 rows) before the timed one, like a long-lived worker', false)
  .option('--pipeline-repeats <n>', 'runs of each pipeline configuration, each with a fresh worker (the best counts)', (v) => intList(1, 10)(v, [])[0]!, 2)
  .option('--no-postgres', 'skip Postgres even when the sink exists')
  .option('--pg-existing', "time a later run: every Postgres table (raw, pandas, pipeline) first holds an earlier run's rows for every id (loaded untimed), so each write is an upsert, the sink's path from a pipeline's second run on (default: a new table, a first run)", false)
  .option('--no-pandas', 'skip the pandas baseline')
  .option('--no-paired', 'skip the raw baseline run right before each pipeline repeat (the paired ratio: median of each repeat\'s e2e / its own raw run)')
  .option('--keep', 'keep the temporary run directory under .data/bench/ (outputs, worker state, server log)', false)
  .addHelpText(
    'after',
    `
Examples:
  npm run bench -- batch                                   1M rows, both models, workflow defaults
  npm run bench -- batch --rows 10000000 --models tree     10M rows, tree model only
  npm run bench -- batch --shard-size 50000,100000 --concurrency 2,4   compare settings in one run`,
  )
  .action(async (f: BatchFlags) => {
    const rows = f.rows ?? [1_000_000];
    const models = f.models ?? ['tree', 'mlp'];
    const shardSizes = f.shardSize ?? [BATCH_DEFAULTS.shardSize];
    const concurrencies = f.concurrency ?? [BATCH_DEFAULTS.maxConcurrency];
    await runBatchBench({
      rows,
      models,
      shardSizes,
      concurrencies,
      rawBatchRows: f.rawBatchRows,
      baselineRepeats: f.repeats,
      pipelineRepeats: f.pipelineRepeats,
      warm: f.warm,
      inferenceThreads: f.inferenceThreads ?? defaultPoolSize(),
      ...(f.tag ? { tag: f.tag } : {}),
      postgres: f.postgres && (f.sinks?.includes('postgres') ?? true),
      pgExisting: f.pgExisting,
      parquet: f.sinks?.includes('parquet') ?? true,
      pandas: f.pandas,
      paired: f.paired,
      keep: f.keep,
      command: normalizedCommand(f, rows, models, shardSizes, concurrencies),
    });
  });

program
  .command('ort-threads')
  .description('ONNX Runtime on the calling thread with 1 or 2 intra-op threads vs. the inference pool (N threads × 1 intra-op thread), both models; prints a table and writes bench/results/ort-threads-<day>.json')
  .option('--rows <n>', 'rows (from the 1M-row benchmark dataset)', (v) => intList(1, 1_000_000)(v, [])[0]!, 1_000_000)
  .option('--repeats <n>', 'repeats of each placement', (v) => intList(1, 10)(v, [])[0]!, 3)
  .option('--pool-threads <n>', 'inference pool threads (default: cores, at most 4)', (v) => intList(1, 64)(v, [])[0]!)
  .action(async (f: { rows: number; repeats: number; poolThreads?: number }) => {
    await runOrtThreadsBench({ rows: f.rows, repeats: f.repeats, poolThreads: f.poolThreads ?? Math.max(1, defaultPoolSize()), say: (m) => process.stdout.write(`${m}\n`) });
  });

program
  .command('workflow-start')
  .description('Replay the recorded batchInference history with the shipped workflow bundle and with the plain one (every module of every dependency), alternating; prints ms per execution and writes bench/results/workflow-start-<day>.json')
  .option('--rounds <n>', 'alternating rounds per bundle', (v) => intList(1, 100)(v, [])[0]!, 10)
  .option('--executions <n>', 'executions replayed per round', (v) => intList(1, 1000)(v, [])[0]!, 20)
  .action(async (f: { rounds: number; executions: number }) => {
    await runWorkflowStartBench({ rounds: f.rounds, executions: f.executions, say: (m) => process.stdout.write(`${m}\n`) });
  });

program
  .command('report')
  .description('Print the report of the newest bench/results/batch-*.json of each benchmark (rows, models, sinks; Markdown)')
  .action(async () => {
    process.stdout.write(`${await latestReport()}\n`);
  });

registerOnlineBench(program);
registerTopKBench(program);
registerServeBench(program);
registerOnlineDurableBench(program);
registerStreamBench(program);

program.parseAsync(process.argv).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
