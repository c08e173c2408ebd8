/**
 * `npm run bench -- top-k`: one user's top-k online (the weekly-playlist example: recommender
 * model, 300 users × 40 candidate songs), in-process, requests one at a time after warm-up:
 *
 *   - per request: the candidate file read for the user (`rankCandidates` with `entity`: scan,
 *     schema and duplicate-pair checks, then scoring) — what `serve` did before it kept candidates;
 *   - loaded once: the candidates read once per served version (`loadCandidates`, timed apart),
 *     then each request scores the user's rows (`rankLoaded`) — what `serve` does now.
 *
 * Both answer every request with the same list (checked). Reports p50/p99 of each and their
 * ratio, measured in the same run; writes bench/results/top-k-<YYYY-MM-DD>.json.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { PLAYLIST_CANDIDATES, REPO_ROOT, registerRecommenderModel } from '../cli/examples';
import { positiveInt } from '../cli/options';
import { loadConfig } from '../lib/config/env';
import { openPipeline } from '../lib/pipeline/pipeline';
import { loadCandidates, rankCandidates, rankLoaded, type RankedList } from '../lib/pipeline/rank';
import { createResources } from '../lib/pipeline/resources';
import { createLogger } from '../lib/log';
import { mulberry32 } from '../lib/util/random';
import { hostInfo, loadAverage, packageVersion, sourceState, writeDailyResults } from './machine';
import { median, quantile } from './stats';

interface TopKFlags {
  requests: number;
  warmup: number;
  seed: number;
}

const COLUMNS = { entityColumn: 'user_id', itemColumn: 'song_id' } as const;
const K = 10;

const ms = (x: number) => Number(x.toFixed(3));

export async function runTopKBench(f: TopKFlags, command: string): Promise<void> {
  const loadBefore = loadAverage();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-bench-top-k-'));
  const resources = createResources(loadConfig({ ...process.env, INFERFLOW_DATA_DIR: dir, INFERFLOW_REGISTRY: `file://${path.join(dir, 'registry')}`, INFERFLOW_MODULES: 'none' }), { logger: createLogger('warn') });
  try {
    await registerRecommenderModel(resources.registry);
    const pipeline = await openPipeline({ model: await resources.resolveModel('recommender@production') }, resources);
    const t0 = performance.now();
    const set = await loadCandidates(pipeline, { path: PLAYLIST_CANDIDATES, object: PLAYLIST_CANDIDATES }, COLUMNS);
    const loadMs = performance.now() - t0;
    const users = [...set.ranges.keys()].map(Number);
    const rand = mulberry32(f.seed);
    const keys = Array.from({ length: f.warmup + f.requests }, () => users[Math.floor(rand() * users.length)]!);
    const variants: [string, (user: number) => Promise<RankedList>][] = [
      ['per request: candidate file read for the user', async (user) => (await rankCandidates(pipeline, { candidates: PLAYLIST_CANDIDATES, ...COLUMNS, k: K, entity: user }))[0]!],
      ['loaded once: the user\'s rows scored', (user) => rankLoaded(pipeline, set, K, user)],
    ];
    const samples = new Map<string, number[]>();
    const answers = new Map<string, string[]>();
    for (const [label, rank] of variants) {
      for (let i = 0; i < f.warmup; i++) await rank(keys[i]!);
      const times: number[] = [];
      const lists: string[] = [];
      for (let i = f.warmup; i < keys.length; i++) {
        const t = performance.now();
        const list = await rank(keys[i]!);
        times.push(performance.now() - t);
        lists.push(JSON.stringify(list));
      }
      samples.set(label, times);
      answers.set(label, lists);
    }
    const [before, after] = variants.map(([label]) => label) as [string, string];
    const same = answers.get(before)!.every((l, i) => l === answers.get(after)![i]);
    if (!same) throw new Error('the two ways answer different lists: the benchmark compares nothing');
    const results = variants.map(([label]) => {
      const s = samples.get(label)!;
      return { variant: label, requests: s.length, p50Ms: ms(median(s)), p99Ms: ms(quantile(s, 0.99)), meanMs: ms(s.reduce((a, b) => a + b, 0) / s.length) };
    });
    const ratio = { p50: Number((results[0]!.p50Ms / results[1]!.p50Ms).toFixed(1)), p99: Number((results[0]!.p99Ms / results[1]!.p99Ms).toFixed(1)) };
    console.log(`\ntop-${K} for one user, ${set.ranges.size} users × ${set.rows / set.ranges.size} candidates, ${f.requests} requests one at a time after ${f.warmup} warm-up:\n`);
    console.log('| variant | p50 | p99 | mean |\n|---|---|---|---|');
    for (const r of results) console.log(`| ${r.variant} | ${r.p50Ms} ms | ${r.p99Ms} ms | ${r.meanMs} ms |`);
    console.log(`\nper request ÷ loaded once: p50 ${ratio.p50}×, p99 ${ratio.p99}×; loading the candidates once: ${ms(loadMs)} ms; same lists: ${same}`);
    const date = new Date();
    const written = await writeDailyResults('top-k', date, {
      benchmark: 'top-k',
      schema: 1,
      date: date.toISOString(),
      command,
      machine: { ...hostInfo(), onnxruntimeNode: packageVersion('onnxruntime-node'), duckdbNodeApi: packageVersion('@duckdb/node-api'), loadAverageBefore: loadBefore, loadAverageAfter: loadAverage() },
      source: sourceState(REPO_ROOT, ['lib/pipeline/rank.ts', 'server/v2/ranking.ts', 'bench/top-k.ts']),
      settings: { ...f, k: K, users: set.ranges.size, pairs: set.rows, candidates: path.relative(REPO_ROOT, PLAYLIST_CANDIDATES) },
      results,
      loadOnceMs: ms(loadMs),
      ratio,
      note: 'In-process, one request at a time (no HTTP): the ranking step of a top-k request. Both variants answer the same lists.',
    });
    console.log(`wrote ${written}`);
  } finally {
    await resources.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** `npm run bench -- top-k …` (registered by bench/index.ts). */
export function registerTopKBench(program: Command): void {
  program
    .command('top-k')
    .description("One user's top-k online: the candidate file read per request (before) vs. candidates loaded once per served version (now), p50/p99 and their ratio. Writes bench/results/top-k-<date>.json.")
    .option('--requests <n>', 'timed requests per variant', positiveInt, 300)
    .option('--warmup <n>', 'untimed requests before each variant', positiveInt, 30)
    .option('--seed <n>', 'user sequence seed', positiveInt, 42)
    .action(async (f: TopKFlags) => {
      await runTopKBench(f, `npm run bench -- top-k ${process.argv.slice(3).join(' ')}`.trim());
    });
}
