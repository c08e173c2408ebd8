/**
 * Results files and the batch benchmark's report: `npm run bench -- batch` writes one JSON file
 * per row count into bench/results/ and prints its report; `npm run bench -- report` prints the
 * report of the newest results file of each benchmark. Nothing here writes to docs/.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../cli/examples';
import { table } from '../lib/util/format';
import { pandasTotalMs, type BatchBenchResults, type ModelResults, type PipelineRun } from './types';

export const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');

export const TARGETS = { e2eOverRaw: 1.2, payloadBytes: 64 * 1024 } as const;

// ---- formatting ----------------------------------------------------------------------------

export const fmt = {
  int: (n: number | undefined) => (n === undefined ? '–' : Math.round(n).toLocaleString('en-US')),
  s: (ms: number | undefined) => (ms === undefined ? '–' : `${(ms / 1000).toFixed(2)} s`),
  mb: (b: number | undefined) => (b === undefined ? '–' : `${Math.round(b / 1024 / 1024)} MB`),
  kb: (b: number | undefined) => (b === undefined ? '–' : b < 10 * 1024 ? `${(b / 1024).toFixed(1)} KB` : `${Math.round(b / 1024)} KB`),
  x: (r: number | null | undefined) => (r === undefined || r === null ? '–' : `${r.toFixed(2)}×`),
};

function isDefaultSetting(r: BatchBenchResults, run: PipelineRun): boolean {
  return run.shardSize === r.settings.workflowDefaults.shardSize && run.concurrency === r.settings.workflowDefaults.maxConcurrency;
}

// ---- results files -------------------------------------------------------------------------

export function resultsFileName(r: BatchBenchResults): string {
  const day = r.date.slice(0, 10);
  const d = r.settings.workflowDefaults;
  const defaults = r.settings.shardSizes.join() === String(d.shardSize) && r.settings.concurrencies.join() === String(d.maxConcurrency);
  const suffix = defaults ? '' : `-shard${r.settings.shardSizes.join('_')}-conc${r.settings.concurrencies.join('_')}`;
  // A run without the Parquet sink is a partial one: never let it replace a full results file.
  const sinks = r.settings.sinks.includes('parquet') ? '' : `-${r.settings.sinks.join('_') || 'nosink'}`;
  const tag = r.tag ? `-${r.tag}` : '';
  return `batch-${day}-${r.rows}${suffix}${sinks}${tag}.json`;
}

export async function writeResults(r: BatchBenchResults): Promise<string> {
  await fs.mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, resultsFileName(r));
  await fs.writeFile(file, JSON.stringify(r, null, 2) + '\n');
  return file;
}

export async function readAllResults(): Promise<{ file: string; results: BatchBenchResults }[]> {
  let names: string[] = [];
  try {
    names = (await fs.readdir(RESULTS_DIR)).filter((n) => /^batch-.*\.json$/.test(n));
  } catch {
    return [];
  }
  const all = await Promise.all(
    names.map(async (n) => ({ file: path.join('bench', 'results', n), results: JSON.parse(await fs.readFile(path.join(RESULTS_DIR, n), 'utf8')) as BatchBenchResults })),
  );
  return all.filter((a) => a.results.benchmark === 'batch').sort((a, b) => a.results.date.localeCompare(b.results.date));
}

// ---- tables --------------------------------------------------------------------------------

/** The sink column: Postgres runs into an existing table (`--pg-existing`) are upserts, say so. */
function sinkLabel(r: BatchBenchResults, run: PipelineRun): string {
  return run.sink === 'postgres' && r.settings.postgresTable === 'existing' ? 'postgres (upsert into existing table)' : run.sink;
}

function runRow(r: BatchBenchResults, m: ModelResults, run: PipelineRun): string[] {
  const raw = run.sink === 'postgres' ? m.raw.postgres : m.raw.parquet;
  const pandasPg = pandasTotalMs(m.pandas, 'postgres');
  const rows = m.raw.parquet.rowsPerSecond * (m.raw.parquet.totalMs / 1000);
  const pandas = run.sink === 'postgres' ? (pandasPg !== undefined ? { rowsPerSecond: rows / (pandasPg / 1000) } : undefined) : m.pandas.parquet;
  const sink = sinkLabel(r, run);
  if (run.error) return [m.name, sink, `${fmt.int(run.shardSize)} × ${run.concurrency}`, `FAILED: ${run.error.slice(0, 80)}`, fmt.int(raw?.rowsPerSecond), '–', fmt.int(pandas?.rowsPerSecond), '–', '–', '–', '–'];
  return [
    m.name,
    run.repeatProblems ? `${sink} (⚠ ${run.repeatProblems.join('; ').slice(0, 120)})` : sink,
    `${fmt.int(run.shardSize)} × ${run.concurrency} (${run.shards ?? '?'} shards)`,
    fmt.int(run.rowsPerSecond),
    fmt.int(raw?.rowsPerSecond),
    run.paired ? `${fmt.x(run.ratioToRaw)} (paired median ${fmt.x(run.paired.ratioMedian)})` : fmt.x(run.ratioToRaw),
    fmt.int(pandas?.rowsPerSecond),
    fmt.x(run.speedupVsPandas),
    `${fmt.mb(run.worker?.idleRssBytes)} → ${fmt.mb(run.worker?.peakRssBytes)}`,
    eventsCell(run),
    fmt.kb(run.history?.largestPayloadBytes),
  ];
}

/** Events of the run's own history; with child workflows, also how many and the total. */
function eventsCell(run: PipelineRun): string {
  const h = run.history;
  if (!h) return '–';
  if (h.workflows <= 1) return fmt.int(h.events);
  return `${fmt.int(h.events)} (+${h.workflows - 1} child workflows, ${fmt.int(h.eventsAllWorkflows)} in all, longest ${fmt.int(h.largestHistoryEvents)})`;
}

const RUN_HEADER = [
  'model',
  'sink',
  'shard size × concurrency',
  'end-to-end rows/s',
  'raw rows/s',
  'e2e / raw (time)',
  'pandas rows/s',
  'vs pandas (speed-up)',
  'worker RSS idle → peak',
  'history events',
  'largest payload',
];

function markdownTable(header: string[], rows: string[][]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  return [`| ${header.map(esc).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

export function runsTable(r: BatchBenchResults, onlyDefault = false): string[][] {
  return r.models.flatMap((m) => m.runs.filter((run) => !onlyDefault || isDefaultSetting(r, run)).map((run) => runRow(r, m, run)));
}

const cpu = (ms: number | undefined) => (ms === undefined ? '–' : fmt.s(ms));

function stagesTable(r: BatchBenchResults): string {
  const rows = r.models.flatMap((m) => {
    const out: string[][] = [];
    const rp = m.raw.parquet;
    out.push([m.name, 'raw baseline → Parquet', fmt.s(rp.readMs), fmt.s(rp.predictMs), fmt.s(rp.writeMs), fmt.s(rp.totalMs), cpu(m.raw.cpuMs), '']);
    if (m.raw.postgres) out.push([m.name, 'raw baseline → Postgres', fmt.s(m.raw.postgres.readMs), fmt.s(m.raw.postgres.predictMs), fmt.s(m.raw.postgres.writeMs), fmt.s(m.raw.postgres.totalMs), '–', '']);
    if (m.pandas.parquet) {
      const p = m.pandas.parquet;
      out.push([m.name, 'pandas → Parquet', fmt.s(p.readMs), fmt.s(p.predictMs), fmt.s(p.writeMs), fmt.s(p.totalMs), cpu(m.pandas.cpuMs), '']);
      if ('writeMs' in m.pandas.postgres) {
        const w = m.pandas.postgres.writeMs;
        out.push([m.name, 'pandas → Postgres', fmt.s(p.readMs), fmt.s(p.predictMs), fmt.s(w), fmt.s(pandasTotalMs(m.pandas, 'postgres')), '–', '']);
      }
    }
    for (const run of m.runs.filter((x) => !x.error && x.history)) {
      const ph = run.history!.phases;
      const c = run.cpuMs;
      out.push([
        m.name,
        `pipeline → ${run.sink}, ${fmt.int(run.shardSize)} × ${run.concurrency}`,
        `${ph.firstTaskMs !== undefined ? `first task ${fmt.s(ph.firstTaskMs)}, ` : ''}plan ${fmt.s(ph.planMs)}${ph.outsideShardsMs !== undefined ? `; every step outside the shards ${fmt.s(ph.outsideShardsMs)}` : ''}`,
        `shards ${fmt.s(ph.predictSpanMs)}`,
        `commit ${fmt.s(ph.commitMs)}`,
        fmt.s(run.e2eMs),
        c?.worker !== undefined ? `worker ${fmt.s(c.worker)}${c.server !== undefined ? ` + server ${fmt.s(c.server)}` : ''}` : '–',
        run.loadAvg1m ? `${run.loadAvg1m.start.toFixed(1)} → ${run.loadAvg1m.end.toFixed(1)}` : '–',
      ]);
    }
    return out;
  });
  return markdownTable(
    ['model', 'path', 'read (pipeline: resolve+plan/snapshot)', 'predict (pipeline: all shards, read+predict+write)', 'write (pipeline: commit)', 'total', 'CPU time (all threads; pipeline: worker + Temporal server)', 'load avg (1 min) start → end'],
    rows,
  );
}

/** Verdicts against the targets for the default-setting runs: computed, never hand-written. */
function targetsTable(r: BatchBenchResults): string {
  const rows: string[][] = [];
  for (const m of r.models) {
    for (const run of m.runs.filter((x) => isDefaultSetting(r, x) && !x.error)) {
      const where = `${m.name} → ${run.sink}`;
      const ratio = run.ratioToRaw ?? Infinity;
      rows.push([where, `end-to-end ≤ ${TARGETS.e2eOverRaw}× raw`, fmt.x(run.ratioToRaw), ratio <= TARGETS.e2eOverRaw ? 'met' : 'MISSED']);
      if (run.paired) {
        const p = run.paired;
        rows.push([
          where,
          `end-to-end ≤ ${TARGETS.e2eOverRaw}× raw, paired (each repeat against a raw run just before it; median)`,
          `${fmt.x(p.ratioMedian)} (${p.e2eMs.map((e, i) => fmt.x(e / p.rawMs[i]!)).join(', ')})`,
          p.ratioMedian <= TARGETS.e2eOverRaw ? 'met' : 'MISSED',
        ]);
      }
      const payload = run.history?.largestPayloadBytes ?? Infinity;
      rows.push([where, 'largest payload < 64 KB', `${fmt.kb(run.history?.largestPayloadBytes)} (${run.history?.largestPayloadAt ?? '?'})`, payload < TARGETS.payloadBytes ? 'met' : 'MISSED']);
    }
  }
  return markdownTable(['run', 'target', 'measured', 'verdict'], rows);
}

function machineLines(r: BatchBenchResults): string {
  const m = r.machine;
  return [
    `- CPU: ${m.nproc} × ${m.cpuModel} (\`nproc\` = ${m.nproc}), memory ${(m.memoryBytes / 1024 ** 3).toFixed(1)} GB, ${m.os}`,
    `- Node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, @duckdb/node-api ${m.duckdbNodeApi}, Temporal SDK ${m.temporalSdk}, ${m.temporalCli.split('\n')[0]}`,
    r.models[0]?.pandas.versions
      ? `- pandas baseline: ${Object.entries(r.models[0].pandas.versions)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`
      : '- pandas baseline: not run',
  ].join('\n');
}

function settingsLines(r: BatchBenchResults): string {
  const s = r.settings;
  return [
    s.inferenceThreads === undefined
      ? `- ONNX Runtime everywhere: intra-op threads ${s.ortIntraOpThreads}, inter-op 1, sequential, graph optimizations all, no spinning (worker, raw baseline and pandas alike).`
      : `- ONNX Runtime everywhere: inter-op 1, sequential, graph optimizations all, no spinning. Worker: ${s.inferenceThreads > 0 ? `inference pool of ${s.inferenceThreads} thread(s), each session with ${s.ortIntraOpThreads} intra-op thread(s)` : `no inference pool (session.run on the main thread), ${s.ortIntraOpThreads} intra-op thread(s)`}; raw baseline: the worker's session options, its batches spread over ${s.inferenceThreads > 1 ? `${s.inferenceThreads} threads (the same pool code)` : 'its one thread'}; pandas: one session with ${s.baselineIntraOpThreads ?? s.ortIntraOpThreads} intra-op thread(s). Same number of cores for inference everywhere.`,
    `- Raw baseline: one process, DuckDB with ${s.rawDuckdbThreads} threads, \`session.run\` on ${fmt.int(s.rawBatchRows)}-row batches; pandas: same batch size, pyarrow's default threads for reading.`,
    `- Baselines: best of ${s.baselineRepeats} run(s); pipeline: ${(s.pipelineRepeats ?? 1) > 1 ? `best of ${s.pipelineRepeats} runs of each configuration` : 'each configuration run once'}, each in a fresh worker process${s.warmWorker ? ' warmed by a small untimed run first (`--warm`)' : ' (cold: the first shard loads the model and starts the inference threads)'} (the times of every repeat are in the results file).`,
    `- Workflow defaults at the time (lib/messages/batch.ts): shardSize ${fmt.int(s.workflowDefaults.shardSize)}, maxConcurrency ${s.workflowDefaults.maxConcurrency}; the worker runs at most ${s.workerMaxActivities ?? 4} activities at once.`,
    `- Postgres sink: ${r.postgres.used ? (s.postgresTable === 'existing' ? "measured on later runs (`--pg-existing`): every table (raw, pandas, pipeline) held an earlier run's rows for every id, so each write is an upsert (INSERT … ON CONFLICT DO UPDATE with the as-of guard)" : 'measured on first runs: each contender writes a new table') : `not measured (${r.postgres.reason ?? 'unavailable'})`}.`,
  ].join('\n');
}

export function resultSection(file: string, r: BatchBenchResults): string {
  return [
    `### ${fmt.int(r.rows)} rows, ${r.date.slice(0, 16).replace('T', ' ')} UTC (\`${file}\`)`,
    '',
    `Reproduce: \`${r.command}\``,
    '',
    `Dataset: \`${r.dataset.file}\` (${fmt.mb(r.dataset.bytes)}, generator ${r.dataset.generator}). Code: commit ${r.source.commit}${r.source.uncommitted.length ? ` plus uncommitted changes to ${r.source.uncommitted.map((f) => `\`${f}\``).join(', ')}` : ''}.`,
    '',
    machineLines(r),
    settingsLines(r),
    '',
    markdownTable(RUN_HEADER, runsTable(r)),
    '',
    'Where the time goes (raw and pandas: per stage; pipeline: phases from the workflow history, scheduled → completed):',
    '',
    stagesTable(r),
    '',
    ...(r.models.some((m) => m.runs.some((x) => isDefaultSetting(r, x) && !x.error)) ? ['Targets (default settings):', '', targetsTable(r), ''] : []),
  ].join('\n');
}

/** Which benchmark a results file is a run of: row count, models, sinks, first or later PostgreSQL run. */
function benchmarkKey(r: BatchBenchResults): string {
  return [r.rows, r.models.map((m) => m.name).join(), r.settings.sinks.join(), r.settings.postgresTable ?? 'new'].join('|');
}

/** The report of the newest results file of each benchmark, as Markdown (what `npm run bench -- report` prints). */
export async function latestReport(): Promise<string> {
  const newest = new Map<string, { file: string; results: BatchBenchResults }>();
  for (const a of await readAllResults()) newest.set(benchmarkKey(a.results), a); // sorted oldest first: the last one wins
  if (newest.size === 0) return 'No results yet: run `npm run bench -- batch`.';
  return [...newest.values()].map((a) => resultSection(a.file, a.results)).join('\n');
}

/** The terminal summary at the end of a run. */
export function summaryTable(r: BatchBenchResults): string {
  const short = ['model', 'sink', 'shards', 'e2e rows/s', 'raw rows/s', 'e2e/raw', 'pandas rows/s', 'vs pandas', 'RSS idle→peak', 'events', 'max payload'];
  return table(runsTable(r), short);
}
