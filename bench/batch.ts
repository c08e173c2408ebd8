/**
 * `npm run bench -- batch`: the batch pipeline end to end on a real Temporal dev server,
 * against a raw single-process baseline and a pandas baseline, for a tree ensemble and an MLP.
 *
 * Per row count: generate (or reuse) a seeded dataset; per model: the raw baseline and the
 * pandas baseline (best of N), then one pipeline run per (sink, shard size, concurrency), each
 * with a fresh worker process whose peak RSS is measured; per run the history is fetched with
 * the `temporal` CLI and measured. Results go to bench/results/; the report is printed.
 * The dev server, worker processes and temporary files are removed at the end, also on errors.
 */
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { connectClient } from '../client';
import { REPO_ROOT } from '../cli/examples';
import { ensureTemporalCli, freePort, startDevServer, type DevServer } from '../devservices/temporal';
import { errorMessage } from '../lib/errors';
import { ident, lit, withDuckDB } from '../lib/io/duckdb';
import { ModelRegistry } from '../lib/registry';
import type { ModelManifest } from '../lib/registry/manifest';
import type { SinkSpec } from '../lib/sinks/spec';
import { openStore } from '../lib/storage';
import { BATCH_DEFAULTS } from '../lib/messages/batch';
import { MAX_CONCURRENT_ACTIVITIES, WORKFLOWS_PATH } from '../workers/worker';
import { WORKFLOW_BUNDLER_OPTIONS } from '../workers/bundle-options';
import { ensureDataset, type Dataset } from './dataset';
import { machineInfo, nproc, sourceState } from './machine';
import { runPipeline } from './pipeline';
import { countPostgresRows, createPreviousRun, dropTable, ensurePsycopg, pgEnv, postgresSinkSpec, postgresSinkStatus, prefillFromPreviousRun } from './postgres';
import { ensurePythonPackages, joinPythonPath, trainingPins } from './python';
import { runRawBaseline } from './raw';
import { median } from './stats';
import { fmt, resultSection, summaryTable, writeResults } from './report';
import { pandasTotalMs, type BatchBenchResults, type ModelKey, type ModelResults, type OutputCheck, type PandasBaseline, type PipelineRun, type RawBaseline, type SinkKind, type StageTimes } from './types';

export const BENCH_DATA_DIR = path.join(REPO_ROOT, '.data', 'bench');
const TASK_QUEUE = 'inferflow-bench';
const ORT_THREADS = 1;

export const MODELS: Record<ModelKey, { name: string; dir: string }> = {
  tree: { name: 'fraud-detector', dir: path.join(REPO_ROOT, 'examples', 'models', 'fraud-detector') },
  mlp: { name: 'fraud-mlp', dir: path.join(REPO_ROOT, 'examples', 'models', 'fraud-mlp') },
};

export interface BatchBenchOptions {
  rows: number[];
  models: ModelKey[];
  shardSizes: number[];
  concurrencies: number[];
  rawBatchRows: number;
  baselineRepeats: number;
  /** Warm each fresh worker with a small untimed run first (see PipelineRunOptions.warmup). */
  warm: boolean;
  /** Runs of each pipeline configuration (the fastest counts, like the baselines'). */
  pipelineRepeats: number;
  /**
   * Time the raw baseline once more right before each pipeline repeat (same sink), so that each
   * repeat has a baseline that saw the same machine: PipelineRun.paired. On by default (`--no-paired`).
   */
  paired: boolean;
  /** Worker inference pool threads (INFERFLOW_INFERENCE_THREADS); the baselines get as many intra-op threads. */
  inferenceThreads: number;
  /** Pipeline runs into the Parquet sink (the baselines always write Parquet: the checks compare against it). */
  parquet: boolean;
  postgres: boolean;
  /**
   * Time later runs: every Postgres table (raw, pandas, pipeline) first holds an earlier run's
   * rows for every id (untimed), so each write is an upsert, the sink's path from a pipeline's
   * second run on. Default: each writes a new table (a first run).
   */
  pgExisting: boolean;
  pandas: boolean;
  /** Keep the temporary run directory (outputs, worker state, server log) for inspection. */
  keep: boolean;
  /** The normalized command line, recorded in the results. */
  command: string;
  /** Results file name suffix (see BatchBenchResults.tag). */
  tag?: string;
}

const say = (msg: string) => process.stdout.write(`${msg}\n`);

function stage(rows: number, readMs: number, predictMs: number, writeMs: number): StageTimes {
  const totalMs = readMs + predictMs + writeMs;
  return { readMs, predictMs, writeMs, totalMs, rowsPerSecond: rows / (totalMs / 1000) };
}

/** Bundle the workflow code once, here: each worker process then loads it instead of running webpack. */
async function prebuildWorkflowBundle(dir: string): Promise<string> {
  const quiet = { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} };
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, ...WORKFLOW_BUNDLER_OPTIONS, logger: quiet });
  const file = path.join(dir, 'workflow-bundle.js');
  await fs.writeFile(file, code);
  return file;
}

async function registerModel(registry: ModelRegistry, key: ModelKey): Promise<{ key: ModelKey; manifest: ModelManifest; modelPath: string; metadataPath: string }> {
  const { name, dir } = MODELS[key];
  const modelPath = path.join(dir, 'model.onnx');
  const metadataPath = path.join(dir, 'metadata.json');
  const metadata: unknown = JSON.parse(await fs.readFile(metadataPath, 'utf8'));
  const { manifest } = await registry.register(modelPath, { name, metadata, alias: 'bench', reuseIdentical: true });
  return { key, manifest, modelPath, metadataPath };
}

type Registered = Awaited<ReturnType<typeof registerModel>>;

// ---- baselines -----------------------------------------------------------------------------

/** Before each timed write into a Postgres table: nothing (a new table), or load the earlier run into it (`--pg-existing`). */
type Prefill = (table: string) => Promise<void>;

/** One raw baseline run (into `pgTable` too when given, after `prefill` loads it for `--pg-existing`). */
async function rawOnce(m: Registered, dataset: Dataset, o: BatchBenchOptions, outDir: string, pgTable: string | undefined, prefill: Prefill | undefined) {
  if (pgTable && prefill) await prefill(pgTable);
  return runRawBaseline({
    features: dataset.path,
    modelPath: m.modelPath,
    metadata: m.manifest.metadata,
    lineage: { modelName: m.manifest.name, modelVersion: m.manifest.version, modelSha256: m.manifest.artifact.sha256, asOf: new Date().toISOString(), runId: 'raw-baseline' },
    outDir,
    batchRows: o.rawBatchRows,
    duckdbThreads: nproc(),
    inferenceThreads: Math.max(1, o.inferenceThreads),
    ...(pgTable ? { postgres: { table: pgTable, ...(prefill ? { upsert: true } : {}) } } : {}),
  });
}

async function measureRaw(m: Registered, dataset: Dataset, o: BatchBenchOptions, outDir: string, pgTable: string | undefined, prefill: Prefill | undefined): Promise<{ raw: RawBaseline; parquetPath: string }> {
  let best: Awaited<ReturnType<typeof runRawBaseline>> | undefined;
  const totals: number[] = [];
  for (let i = 0; i < o.baselineRepeats; i++) {
    const r = await rawOnce(m, dataset, o, outDir, pgTable, prefill);
    const total = r.readMs + r.predictMs + r.writeParquetMs;
    totals.push(total);
    say(`  raw baseline ${i + 1}/${o.baselineRepeats}: read ${fmt.s(r.readMs)}, predict ${fmt.s(r.predictMs)}, write Parquet ${fmt.s(r.writeParquetMs)}${r.writePostgresMs !== undefined ? `, write Postgres ${fmt.s(r.writePostgresMs)}` : ''}`);
    if (!best || total < best.readMs + best.predictMs + best.writeParquetMs) best = r;
  }
  const b = best!;
  return {
    raw: {
      parquet: stage(b.rows, b.readMs, b.predictMs, b.writeParquetMs),
      ...(b.writePostgresMs !== undefined ? { postgres: stage(b.rows, b.readMs, b.predictMs, b.writePostgresMs) } : {}),
      repeats: o.baselineRepeats,
      allTotalsMs: totals,
      positives: b.positives,
      meanScore: b.meanScore,
      cpuMs: b.cpuMs,
    },
    parquetPath: b.parquetPath,
  };
}

interface PandasJson {
  rows: number;
  read_ms: number;
  predict_ms: number;
  write_ms: number;
  cpu_ms?: number;
  positives: number;
  mean_score: number;
  postgres: { skipped: string } | { write_ms: number };
  settings: Record<string, unknown>;
  versions: Record<string, string>;
}

async function measurePandas(m: Registered, dataset: Dataset, o: BatchBenchOptions, outDir: string, pgTable: string | undefined, prefill: Prefill | undefined): Promise<PandasBaseline> {
  let best: PandasJson | undefined;
  const totals: number[] = [];
  // The baseline's own stack (versions pinned with the training scripts'), installed when python3 lacks it.
  const stack = ensurePythonPackages({ dataDir: path.join(REPO_ROOT, '.data'), name: 'pandas-baseline', requirements: trainingPins(['numpy', 'pandas', 'pyarrow', 'onnxruntime']), modules: ['numpy', 'pandas', 'pyarrow', 'onnxruntime'], say });
  if ('unavailable' in stack) {
    say(`  pandas baseline: ${stack.unavailable}`);
    return { postgres: { skipped: 'pandas baseline unavailable' }, repeats: 0, allTotalsMs: [], error: stack.unavailable };
  }
  const psycopg = pgTable ? ensurePsycopg(path.join(REPO_ROOT, '.data'), say) : {};
  const pythonPath = joinPythonPath(stack.pythonPath, 'pythonPath' in psycopg ? psycopg.pythonPath : undefined);
  for (let i = 0; i < o.baselineRepeats; i++) {
    if (pgTable && prefill) await prefill(pgTable);
    const args = [
      path.join(REPO_ROOT, 'bench', 'pandas_baseline.py'),
      '--features', dataset.path,
      '--model', m.modelPath,
      '--metadata', m.metadataPath,
      '--out', path.join(outDir, 'pandas.parquet'),
      '--batch-rows', String(o.rawBatchRows),
      '--threads', String(baselineThreads(o)),
      '--model-version', String(m.manifest.version),
      '--model-sha256', m.manifest.artifact.sha256,
      '--as-of', new Date().toISOString(),
      ...(pgTable ? ['--pg-table', pgTable, ...(prefill ? ['--pg-upsert'] : [])] : []),
    ];
    const r = spawnSync('python3', args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, env: { ...process.env, ...pgEnv(), ...(pythonPath ? { PYTHONPATH: pythonPath } : {}) } });
    if (r.status !== 0) {
      const error = `python3 bench/pandas_baseline.py failed (exit ${r.status}): ${(r.stderr || r.error?.message || '').trim().slice(-800)}`;
      say(`  pandas baseline: ${error}`);
      return { postgres: { skipped: 'pandas baseline failed' }, repeats: o.baselineRepeats, allTotalsMs: totals, error };
    }
    const j = JSON.parse(r.stdout) as PandasJson;
    const total = j.read_ms + j.predict_ms + j.write_ms;
    totals.push(total);
    say(`  pandas baseline ${i + 1}/${o.baselineRepeats}: read ${fmt.s(j.read_ms)}, predict ${fmt.s(j.predict_ms)}, write Parquet ${fmt.s(j.write_ms)}${'skipped' in j.postgres ? `; Postgres skipped: ${j.postgres.skipped}` : `, write Postgres ${fmt.s(j.postgres.write_ms)}`}`);
    if (!best || total < best.read_ms + best.predict_ms + best.write_ms) best = j;
  }
  const b = best!;
  return {
    parquet: stage(b.rows, b.read_ms, b.predict_ms, b.write_ms),
    postgres: 'skipped' in b.postgres ? { skipped: b.postgres.skipped } : { writeMs: b.postgres.write_ms },
    repeats: o.baselineRepeats,
    allTotalsMs: totals,
    positives: b.positives,
    meanScore: b.mean_score,
    versions: b.versions,
    settings: b.settings,
    ...(b.cpu_ms !== undefined ? { cpuMs: b.cpu_ms } : {}),
  };
}

/**
 * Intra-op threads of the pandas baseline's session: as many threads as the worker has for
 * inference (its pool, or its one session without a pool), so both use the same number of
 * cores for the model. (A data scientist's script would take ONNX Runtime's default, all cores.)
 */
function baselineThreads(o: BatchBenchOptions): number {
  return Math.max(1, o.inferenceThreads) * ORT_THREADS;
}


// ---- checks --------------------------------------------------------------------------------

/** The pipeline's Parquet output must hold the same predictions as the raw baseline, row for row. */
async function checkParquetOutput(location: string, rawParquet: string, idColumn: string): Promise<OutputCheck> {
  return withDuckDB(
    async (conn) => {
      const id = `"${idColumn.replace(/"/g, '""')}"`;
      const r = await conn.runAndReadAll(
        `SELECT count(*)::BIGINT, count(r.${id})::BIGINT, coalesce(sum((p.label <> r.label)::INTEGER), 0)::BIGINT, coalesce(max(abs(p.score - r.score)), 0)::DOUBLE
         FROM read_parquet(${lit(path.join(location, '*.parquet'))}) p LEFT JOIN read_parquet(${lit(rawParquet)}) r ON p.${id} = r.${id}`,
      );
      const [rows, matched, mismatches, maxDiff] = r.getRowsJS()[0] ?? [];
      return { rows: Number(rows), matched: Number(matched), labelMismatches: Number(mismatches), maxScoreDiff: Number(maxDiff) };
    },
    { threads: 2 },
  );
}

// ---- one row count -------------------------------------------------------------------------

/** The first 20,000 rows of the dataset, for warm-up runs (one shard at the default shard size). */
async function warmupFile(dataset: Dataset, work: string): Promise<string> {
  const file = path.join(work, 'warmup.parquet');
  await withDuckDB((conn) => conn.run(`COPY (SELECT * FROM read_parquet(${lit(dataset.path)}) LIMIT 20000) TO ${lit(file)} (FORMAT parquet)`));
  return file;
}

/**
 * `--pg-existing`: a table holding what an earlier run left for every id of the dataset (label 0,
 * score 0, another model, as_of 2000-01-01, so every row of the timed run replaces one). Every
 * contender's table is loaded from it before each timed write.
 */
async function previousRun(m: Registered, dataset: Dataset, work: string): Promise<string> {
  const table = `bench_previous_${m.key}`;
  const csv = path.join(work, `previous-${m.key}.csv`);
  const id = m.manifest.metadata.id_column ?? 'transaction_id';
  await withDuckDB((conn) =>
    conn.run(
      `COPY (SELECT CAST(${ident(id)} AS VARCHAR), 0, 0.0, 'previous-model', 1, repeat('0', 64), '2000-01-01 00:00:00+00', 'previous-run' FROM read_parquet(${lit(dataset.path)}))
       TO ${lit(csv)} (FORMAT csv, HEADER false)`,
    ),
  );
  await createPreviousRun(table, csv);
  await fs.rm(csv, { force: true });
  say(`  postgres: every table starts each timed write holding an earlier run's ${fmt.int(dataset.rows)} rows (--pg-existing): writes are upserts`);
  return table;
}

interface Env {
  cli: string;
  serverPid?: number;
  address: string;
  client: Client;
  work: string;
  workerEnv: NodeJS.ProcessEnv;
  models: Registered[];
  postgres: { used: true; spec: (table: string) => SinkSpec } | { used: false; reason: string };
}

async function benchModel(env: Env, m: Registered, dataset: Dataset, o: BatchBenchOptions): Promise<ModelResults> {
  say(`\n== ${m.manifest.name} (${m.key}) on ${fmt.int(dataset.rows)} rows ==`);
  const outDir = path.join(env.work, 'baselines', m.key);
  const rawPg = env.postgres.used ? `bench_raw_${m.key}` : undefined;
  const pandasPg = env.postgres.used ? `bench_pandas_${m.key}` : undefined;
  const previous = env.postgres.used && o.pgExisting ? await previousRun(m, dataset, env.work) : undefined;
  const prefill: Prefill | undefined = previous ? (table) => prefillFromPreviousRun(table, previous) : undefined;
  const { raw, parquetPath } = await measureRaw(m, dataset, o, outDir, rawPg, prefill);
  const pandas: PandasBaseline = o.pandas
    ? await measurePandas(m, dataset, o, outDir, pandasPg, prefill)
    : { postgres: { skipped: 'pandas baseline disabled (--no-pandas)' }, repeats: 0, allTotalsMs: [], error: 'disabled with --no-pandas' };
  for (const t of [rawPg, pandasPg]) if (t) await dropTable(t).catch(() => undefined);

  const warmup = o.warm ? await warmupFile(dataset, env.work) : undefined;
  const sinks: SinkKind[] = [...(o.parquet ? (['parquet'] as const) : []), ...(env.postgres.used ? (['postgres'] as const) : [])];
  const runs: PipelineRun[] = [];
  for (const shardSize of o.shardSizes) {
    for (const concurrency of o.concurrencies) {
      for (const sinkKind of sinks) {
        const table = `bench_${m.key}_s${shardSize}_c${concurrency}`;
        const outputRoot = path.join(env.work, 'pipeline-out');
        const sink: SinkSpec = sinkKind === 'postgres' && env.postgres.used ? env.postgres.spec(table) : { type: 'parquet', path: outputRoot };
        let best: PipelineRun | undefined;
        const e2es: number[] = [];
        const problems: string[] = [];
        const paired = { rawMs: [] as number[], e2eMs: [] as number[] };
        for (let rep = 0; rep < o.pipelineRepeats; rep++) {
          const label = `${m.key} ${sinkKind} ${shardSize}x${concurrency}${o.pipelineRepeats > 1 ? ` #${rep + 1}` : ''}`;
          let pairedRawMs: number | undefined;
          if (o.paired) {
            // The raw baseline again, right before this repeat: the pair sees the same machine.
            const pgTable = sinkKind === 'postgres' ? rawPg : undefined;
            const r = await rawOnce(m, dataset, o, path.join(outDir, 'paired'), pgTable, prefill);
            pairedRawMs = r.readMs + r.predictMs + (sinkKind === 'postgres' ? (r.writePostgresMs ?? NaN) : r.writeParquetMs);
            if (pgTable) await dropTable(pgTable).catch(() => undefined);
            say(`  ${label}: paired raw baseline ${fmt.s(pairedRawMs)}`);
          }
          if (sinkKind === 'postgres' && prefill) await prefill(table);
          const { run, result } = await runPipeline({
            client: env.client,
            cli: env.cli,
            address: env.address,
            taskQueue: TASK_QUEUE,
            workerEnv: env.workerEnv,
            modelRef: `${m.manifest.name}@bench`,
            features: dataset.path,
            sinkKind,
            sink,
            shardSize,
            concurrency,
            timeoutMs: Math.max(10 * 60_000, dataset.rows * 0.5),
            label,
            say,
            ...(env.serverPid !== undefined ? { serverPid: env.serverPid } : {}),
            ...(warmup ? { warmup: { features: warmup, outputRoot: path.join(env.work, 'warmup-out') } } : {}),
          });
          if (result && run.e2eMs !== undefined) {
            const rawTime = sinkKind === 'postgres' ? raw.postgres?.totalMs : raw.parquet.totalMs;
            const pandasTime = pandasTotalMs(pandas, sinkKind);
            run.ratioToRaw = rawTime !== undefined ? run.e2eMs / rawTime : undefined;
            run.speedupVsPandas = pandasTime !== undefined ? pandasTime / run.e2eMs : null;
            try {
              run.check =
                sinkKind === 'parquet'
                  ? await checkParquetOutput(result.output.location, parquetPath, m.manifest.metadata.id_column ?? 'transaction_id')
                  : { rows: await countPostgresRows(table, result.runId) };
              const c = run.check;
              const ok = c.rows === dataset.rows && (c.matched === undefined || (c.matched === dataset.rows && c.labelMismatches === 0 && (c.maxScoreDiff ?? 0) < 1e-5));
              say(`  ${label}: output check ${ok ? 'ok' : 'MISMATCH'}: ${JSON.stringify(c)}`);
              if (!ok) run.error = `output check: MISMATCH ${JSON.stringify(c)}`;
            } catch (err) {
              run.check = { rows: -1 };
              run.error = `output check failed: ${errorMessage(err)}`;
              say(`  ${label}: ${run.error}`);
            }
            // Outputs are large and checked: free the disk before the next run.
            if (sinkKind === 'parquet') await fs.rm(result.output.location, { recursive: true, force: true });
            else await dropTable(table, [result.runId]).catch(() => undefined);
          } else if (sinkKind === 'postgres') await dropTable(table).catch(() => undefined);
          if (run.e2eMs !== undefined) e2es.push(run.e2eMs);
          if (run.e2eMs !== undefined && !run.error && pairedRawMs !== undefined && Number.isFinite(pairedRawMs)) {
            paired.rawMs.push(pairedRawMs);
            paired.e2eMs.push(run.e2eMs);
          }
          if (run.error) problems.push(`repeat ${rep + 1}: ${run.error}`);
          // The fastest successful repeat counts (like the baselines'); a failed one is kept only if all failed.
          if (!best || (run.e2eMs !== undefined && !run.error && (best.e2eMs === undefined || best.error || run.e2eMs < best.e2eMs))) best = run;
        }
        const run = best!;
        run.allE2eMs = e2es;
        if (paired.rawMs.length > 0) run.paired = { ...paired, ratioMedian: median(paired.e2eMs.map((e, i) => e / paired.rawMs[i]!)) };
        if (problems.length > 0) run.repeatProblems = problems;
        runs.push(run);
      }
    }
  }
  if (previous) await dropTable(previous).catch(() => undefined);
  const modelBytes = (await fs.stat(m.modelPath)).size;
  return { key: m.key, name: m.manifest.name, version: m.manifest.version, sha256: m.manifest.artifact.sha256, modelBytes, raw, pandas, runs };
}

// ---- entry point ---------------------------------------------------------------------------

export async function runBatchBench(o: BatchBenchOptions): Promise<void> {
  say(`Inferflow batch benchmark: rows ${o.rows.map(fmt.int).join(', ')}; models ${o.models.join(', ')}; shard sizes ${o.shardSizes.map(fmt.int).join(', ')}; concurrency ${o.concurrencies.join(', ')}`);
  const cli = ensureTemporalCli(process.env.INFERFLOW_TEMPORAL_CLI, say);
  const machine = machineInfo(cli);
  // Taken at the start: worker processes compile the working tree as it is when they start.
  const source = sourceState(REPO_ROOT);
  if (source.uncommitted.length > 0) say(`source: ${source.commit} with uncommitted changes in ${source.uncommitted.join(', ')}`);
  say(`machine: ${machine.nproc} × ${machine.cpuModel}, ${(machine.memoryBytes / 1024 ** 3).toFixed(1)} GB, Node ${machine.node}, onnxruntime-node ${machine.onnxruntimeNode}`);
  await fs.mkdir(BENCH_DATA_DIR, { recursive: true });
  const work = await fs.mkdtemp(path.join(BENCH_DATA_DIR, 'run-'));
  let server: DevServer | undefined;
  let client: Client | undefined;
  try {
    const address = `127.0.0.1:${await freePort()}`;
    say(`temporal: starting a headless in-memory dev server on ${address}…`);
    server = await startDevServer({ cli, address, uiPort: null, logFile: path.join(work, 'temporal-server.log') });
    say('temporal: up; bundling the workflow code once for all worker processes…');
    const bundlePath = await prebuildWorkflowBundle(work);

    const registryUrl = `file://${path.join(work, 'registry')}`;
    const registry = new ModelRegistry(openStore(registryUrl));
    const models: Registered[] = [];
    for (const key of o.models) models.push(await registerModel(registry, key));
    say(`registry: ${registryUrl}: ${models.map((m) => `${m.manifest.name}:${m.manifest.version}@bench`).join(', ')}`);

    let postgres: Env['postgres'] = { used: false, reason: 'disabled with --no-postgres' };
    if (o.postgres) {
      const status = await postgresSinkStatus('bench_probe');
      postgres = status.available ? { used: true, spec: pgSpec } : { used: false, reason: status.reason };
    }
    say(`postgres sink: ${postgres.used ? 'measured' : `not measured (${postgres.reason})`}`);

    const workerEnv: NodeJS.ProcessEnv = {
      ...withoutTemporalSecrets(process.env),
      ...pgEnv(),
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: 'default',
      INFERFLOW_TASK_QUEUE: TASK_QUEUE,
      INFERFLOW_DATA_DIR: path.join(work, 'worker'),
      INFERFLOW_REGISTRY: registryUrl,
      INFERFLOW_OUTPUT: path.join(work, 'pipeline-out'),
      // The seeded datasets live outside the worker's data dir: an allowed root like any input location.
      INFERFLOW_ALLOWED_ROOTS: BENCH_DATA_DIR,
      INFERFLOW_ORT_THREADS: String(ORT_THREADS),
      INFERFLOW_INFERENCE_THREADS: String(o.inferenceThreads),
      // With BENCH_WORKER_STDERR (worker-process.ts) the workers' info logs go to that file: per-shard timings among them.
      INFERFLOW_LOG_LEVEL: process.env.BENCH_WORKER_STDERR ? 'info' : 'warn',
      BENCH_WORKFLOW_BUNDLE: bundlePath,
    };
    client = await connectClient({ address, namespace: 'default', taskQueue: TASK_QUEUE });
    const env: Env = { cli, address, client, work, workerEnv, models, postgres, ...(server.process?.pid !== undefined ? { serverPid: server.process.pid } : {}) };

    for (const rows of o.rows) {
      const dataset = await ensureDataset(BENCH_DATA_DIR, rows, say);
      const modelResults: ModelResults[] = [];
      for (const m of models) modelResults.push(await benchModel(env, m, dataset, o));
      const results: BatchBenchResults = {
        benchmark: 'batch',
        schema: 1,
        date: new Date().toISOString(),
        command: o.command,
        ...(o.tag ? { tag: o.tag } : {}),
        rows,
        dataset: { file: path.relative(REPO_ROOT, dataset.path), bytes: dataset.bytes, generator: path.basename(dataset.path).split('-')[1] ?? '?' },
        machine,
        source,
        settings: {
          shardSizes: o.shardSizes,
          concurrencies: o.concurrencies,
          sinks: [...(o.parquet ? (['parquet'] as const) : []), ...(postgres.used ? (['postgres'] as const) : [])],
          workflowDefaults: { shardSize: BATCH_DEFAULTS.shardSize, maxConcurrency: BATCH_DEFAULTS.maxConcurrency },
          ortIntraOpThreads: ORT_THREADS,
          inferenceThreads: o.inferenceThreads,
          workerMaxActivities: MAX_CONCURRENT_ACTIVITIES,
          baselineIntraOpThreads: baselineThreads(o),
          rawBatchRows: o.rawBatchRows,
          rawDuckdbThreads: nproc(),
          baselineRepeats: o.baselineRepeats,
          pipelineRepeats: o.pipelineRepeats,
          ...(o.warm ? { warmWorker: true } : {}),
          ...(o.pgExisting && postgres.used ? { postgresTable: 'existing' as const } : {}),
        },
        postgres: postgres.used ? { used: true } : { used: false, reason: postgres.reason },
        models: modelResults,
      };
      const file = await writeResults(results);
      say(`\n${resultSection(path.relative(REPO_ROOT, file), results)}`);
      say(`${fmt.int(rows)} rows: results in ${path.relative(REPO_ROOT, file)}\n`);
      say(summaryTable(results));
    }
  } finally {
    await client?.connection.close().catch(() => undefined);
    if (server) {
      await server.stop();
      say('\ntemporal: dev server stopped');
    }
    if (o.keep) say(`kept ${work}`);
    else await fs.rm(work, { recursive: true, force: true });
  }
}

function pgSpec(table: string): SinkSpec {
  const spec = postgresSinkSpec(table);
  if ('error' in spec) throw new Error(spec.error);
  return spec;
}

/** The worker talks to the local dev server only: never hand it cloud credentials from this shell. */
export function withoutTemporalSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('TEMPORAL_')));
}
