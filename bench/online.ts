/**
 * `npm run bench -- online`: online feature lookup latency (getOnlineFeatures, end to end in
 * this process) against the real Redis and the embedded SQLite store, for single keys and
 * 100-key batches, plus materialisation throughput into each. Not a test.
 *
 * A seeded synthetic view (5 features: float64, float32, int64, string, bool; 3 rows per
 * entity) is written as Parquet, materialised into both stores, then looked up with random
 * keys (about 5% unknown). Calls run one at a time (latency, not throughput). Redis also gets a
 * raw pipelined HMGET with ioredis for the same keys, to show what the library adds.
 * Writes bench/results/online-<YYYY-MM-DD>.json.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, InvalidArgumentError } from 'commander';
import { Redis } from 'ioredis';
import { DEFAULT_REDIS_URL, loadConfig } from '../lib/config/env';
import { getOnlineFeatures, materializeView, openOnlineStore, type FeatureView, type OnlineStore } from '../lib/features';
import { encodeEntityKey } from '../lib/features/online';
import { lit, withDuckDB } from '../lib/io/duckdb';
import { hostInfo, loadAverage, packageVersion, sourceState, writeDailyResults } from './machine';
import { REPO_ROOT } from '../cli/examples';
import { positiveCount } from '../cli/options';
import { mulberry32 } from '../lib/util/random';


interface OnlineFlags {
  entities: number;
  single: number;
  batches: number;
  batchSize: number;
  warmup: number;
  seed: number;
  stores: string[];
}



interface Latency {
  calls: number;
  keysPerCall: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  keysPerSecond: number;
}

function summarize(samples: number[], keysPerCall: number): Latency {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  const total = s.reduce((a, b) => a + b, 0);
  const r = (x: number) => Number(x.toFixed(4));
  return { calls: s.length, keysPerCall, p50Ms: r(q(0.5)), p90Ms: r(q(0.9)), p99Ms: r(q(0.99)), maxMs: r(s.at(-1)!), meanMs: r(total / s.length), keysPerSecond: Math.round((s.length * keysPerCall) / (total / 1000)) };
}

/** Call `fn(0 … warmup-1)` untimed, then time `fn(warmup … warmup+calls-1)`: timed calls never repeat a warm-up key. */
async function time(calls: number, warmup: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const out: number[] = [];
  for (let i = warmup; i < warmup + calls; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

export async function runOnlineBench(f: OnlineFlags, command: string): Promise<void> {
  const config = loadConfig();
  const redisUrl = config.redisUrl ?? DEFAULT_REDIS_URL;
  const loadBefore = loadAverage();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-bench-online-'));
  const prefix = `inferflow-bench-${process.pid}`;
  const source = path.join(dir, 'stats.parquet');
  const view: FeatureView = {
    name: 'bench_customer',
    entities: ['customer_id'],
    timestampField: 'event_ts',
    source: { type: 'file', path: source },
    features: [
      { name: 'amount_30d', dtype: 'float64' },
      { name: 'risk', dtype: 'float32' },
      { name: 'txn_count_30d', dtype: 'int64' },
      { name: 'segment', dtype: 'string' },
      { name: 'active', dtype: 'bool' },
    ],
    ttl: '30d',
  };
  const end = new Date('2026-11-25T00:00:00Z');
  try {
    await withDuckDB((c) =>
      c.run(`COPY (
        SELECT (i // 3) + 1 AS customer_id,
               TIMESTAMPTZ '2026-11-20 00:00:00+00' + to_seconds(CAST(hash(i, ${f.seed}) % 400000 AS BIGINT)) AS event_ts,
               (hash(i, 1) % 1000000) / 100.0 AS amount_30d, CAST((hash(i, 2) % 1000) / 1000.0 AS FLOAT) AS risk,
               CAST(hash(i, 3) % 500 AS BIGINT) AS txn_count_30d, ['gold', 'silver', 'bronze'][1 + CAST(hash(i, 4) % 3 AS INTEGER)] AS segment,
               hash(i, 5) % 2 = 0 AS active
        FROM range(${f.entities * 3}) t(i)) TO ${lit(source)} (FORMAT parquet)`),
    );
    const rand = mulberry32(f.seed);
    const key = () => 1 + Math.floor(rand() * f.entities * 1.05); // ~5% unknown keys
    const singleKeys = Array.from({ length: f.single + f.warmup }, key);
    const batchKeys = Array.from({ length: f.batches + f.warmup }, () => Array.from({ length: f.batchSize }, key));

    const results: Record<string, unknown> = {};
    for (const name of f.stores) {
      const store: OnlineStore = name === 'redis' ? openOnlineStore({ type: 'redis', keyPrefix: prefix }, { redisUrl, dataDir: dir }) : openOnlineStore({ type: 'sqlite', path: path.join(dir, 'online.sqlite') }, { dataDir: dir });
      try {
        const t = performance.now();
        const m = await materializeView({ view, store, end });
        const seconds = (performance.now() - t) / 1000;
        console.log(`${name}: materialised ${m.entities.toLocaleString('en-US')} entities from ${m.rowsRead.toLocaleString('en-US')} rows in ${seconds.toFixed(2)} s (${Math.round(m.entities / seconds).toLocaleString('en-US')} entities/s)`);
        const now = new Date('2026-11-25T00:00:00Z');
        let present = 0;
        const single = summarize(
          await time(f.single, f.warmup, async (i) => {
            const [v] = await getOnlineFeatures(store, view, [singleKeys[i]!], { now });
            if (v!.features.segment!.status === 'PRESENT') present++;
          }),
          1,
        );
        const batch = summarize(await time(f.batches, f.warmup, (i) => getOnlineFeatures(store, view, batchKeys[i]!, { now })), f.batchSize);
        console.log(`${name}: single key p50 ${single.p50Ms.toFixed(3)} ms p99 ${single.p99Ms.toFixed(3)} ms; ${f.batchSize}-key batch p50 ${batch.p50Ms.toFixed(3)} ms p99 ${batch.p99Ms.toFixed(3)} ms (${batch.keysPerSecond.toLocaleString('en-US')} keys/s)`);
        const entry: Record<string, unknown> = {
          location: store.location.replace(dir, '<tmp>'),
          materialize: { entities: m.entities, rowsRead: m.rowsRead, seconds: Number(seconds.toFixed(3)), entitiesPerSecond: Math.round(m.entities / seconds) },
          single,
          batch,
          singleKeysFound: Number((present / (f.single + f.warmup)).toFixed(4)),
        };
        if (name === 'redis') {
          // The same lookups as bare pipelined HMGETs: the floor set by Redis and the network round trip.
          const raw = new Redis(redisUrl, { lazyConnect: true });
          await raw.connect();
          const fields = ['_ts', ...view.features.map((x) => x.name)];
          const hk = (k: number) => `${prefix}:${view.name}:${encodeEntityKey(view, k)}`;
          const rawSingle = summarize(await time(f.single, f.warmup, (i) => raw.hmget(hk(singleKeys[i]!), ...fields)), 1);
          const rawBatch = summarize(
            await time(f.batches, f.warmup, async (i) => {
              const p = raw.pipeline();
              for (const k of batchKeys[i]!) p.hmget(hk(k), ...fields);
              await p.exec();
            }),
            f.batchSize,
          );
          raw.disconnect();
          entry.rawHmget = { single: rawSingle, batch: rawBatch };
          console.log(`redis raw HMGET: single p50 ${rawSingle.p50Ms.toFixed(3)} ms p99 ${rawSingle.p99Ms.toFixed(3)} ms; ${f.batchSize}-key pipeline p50 ${rawBatch.p50Ms.toFixed(3)} ms p99 ${rawBatch.p99Ms.toFixed(3)} ms`);
        }
        results[name] = entry;
      } finally {
        await store.deleteView(view.name).catch(() => undefined);
        await store.close();
      }
    }

    const date = new Date();
    const out = {
      benchmark: 'online',
      schema: 1,
      date: date.toISOString(),
      command,
      machine: {
        ...hostInfo(),
        ioredis: packageVersion('ioredis'),
        betterSqlite3: packageVersion('better-sqlite3'),
        redisServer: spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout?.trim() || 'unknown',
        loadAverageBefore: loadBefore,
        loadAverageAfter: loadAverage(),
      },
      source: sourceState(REPO_ROOT, ['lib/features', 'bench/online.ts']),
      settings: { ...f, features: view.features.map((x) => x.dtype), unknownKeyFraction: 0.05, redis: redisUrl.replace(/\/\/[^@]*@/, '//') },
      results,
      note: 'Latency of getOnlineFeatures in-process, calls one at a time after warm-up: key encoding, store round trip, decoding, statuses. Redis on loopback (same machine).',
    };
    console.log(`wrote ${await writeDailyResults('online', date, out)}`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** `npm run bench -- online …` (registered by bench/index.ts). */
export function registerOnlineBench(program: Command): void {
  program
    .command('online')
    .description('Online feature lookup p50/p99 (single keys and 100-key batches) against the real Redis (INFERFLOW_REDIS_URL, default 127.0.0.1:6379) and the embedded SQLite store, and materialisation throughput. Writes bench/results/online-<date>.json.')
    .option('--entities <n>', 'entities in the synthetic view (3 rows each)', positiveCount, 100_000)
    .option('--single <n>', 'single-key calls', positiveCount, 5_000)
    .option('--batches <n>', 'batch calls', positiveCount, 1_000)
    .option('--batch-size <n>', 'keys per batch call', positiveCount, 100)
    .option('--warmup <n>', 'untimed calls before each series', positiveCount, 200)
    .option('--seed <n>', 'data and key seed', positiveCount, 42)
    .option('--stores <list>', 'redis,sqlite', (v: string) => v.split(','), ['redis', 'sqlite'])
    .addHelpText('after', '\nExamples:\n  npm run bench -- online\n  npm run bench -- online --entities 1000000 --stores redis\n')
    .action(async (f: OnlineFlags) => {
      for (const s of f.stores) if (s !== 'redis' && s !== 'sqlite') throw new InvalidArgumentError(`unknown store ${s} (known: redis, sqlite)`);
      await runOnlineBench(f, `npm run bench -- online ${process.argv.slice(3).join(' ')}`.trim());
    });
}
