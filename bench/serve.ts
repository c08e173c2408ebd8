/**
 * `npm run bench -- serve`: online serving latency at fixed request rates. Not a test.
 *
 * Each target is a separate process on this machine, fed by an open-loop generator in this
 * process (requests are sent on a fixed schedule over 10 keep-alive connections, whatever the
 * answers do; a response time is measured from the request's scheduled time, so a server that
 * falls behind is charged for the queue). Every request is 1 row with a Redis feature lookup:
 *
 *   floor         bench/serve-floor.ts: node:http, one HMGET, one session.run, no pipeline
 *   serve-off     `inferflow serve` (V2 REST), dynamic batching off
 *   serve-on-<us> `inferflow serve`, dynamic batching on (64 rows, max queue delay <us> µs)
 *   kserve        bench/serve_kserve.py: a Python KServe ModelServer, same model and lookup
 *
 * For each: p50/p90/p99/max, achieved rate and errors at the fixed rates, then a step search for
 * the highest rate held with p99 ≤ the limit, no errors and the rate achieved.
 * Writes bench/results/serve-<YYYY-MM-DD>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import { FEATURES_MODEL_DIR, FEATURES_PIPELINE, REPO_ROOT, registerFeaturesExampleModel } from '../cli/examples';
import { DEFAULT_REDIS_URL, DEFAULT_SERVE_MODEL_OPTIONS } from '../lib/config/env';
import { materializeView } from '../lib/features/materialize';
import { openOnlineStore } from '../lib/features/online';
import { lit, withDuckDB } from '../lib/io/duckdb';
import { loadPipelineSpec } from '../lib/pipeline/spec';
import { ModelRegistry } from '../lib/registry';
import { openStore } from '../lib/storage';
import { hostInfo, loadAverage, packageVersion, sourceState, writeDailyResults } from './machine';

const CONNECTIONS = 10;
const VIEW = 'customer_stats';
const KSERVE_PYTHON = path.join(REPO_ROOT, '.data', 'bench', 'kserve-venv', 'bin', 'python');

export interface ServeBenchFlags {
  rates: number[];
  steps: number[];
  durationS: number;
  stepDurationS: number;
  warmupS: number;
  p99LimitMs: number;
  delaysUs: number[];
  kserve: boolean;
  /** Suffix of the results file name (serve-<tag>-<date>.json). */
  tag?: string;
}

interface Latency {
  targetRps: number;
  achievedRps: number;
  sent: number;
  errors: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  firstError?: string;
}

interface Target {
  name: string;
  describe: string;
  start(port: number): ChildProcess;
}

const r3 = (x: number) => Number(x.toFixed(3));

/** Send `rate` requests/s for `seconds` on a fixed schedule; every response time from its scheduled send time. */
export async function openLoop(url: string, bodies: readonly Buffer[], rate: number, seconds: number): Promise<Latency> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const target = new URL(url);
  const total = Math.round(rate * seconds);
  const times: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let done = 0;
  let sent = 0;
  const fail = (why: string) => {
    errors++;
    firstError ??= why;
  };
  const t0 = performance.now() + 5;
  let lastEnd = t0;
  await new Promise<void>((resolve) => {
    const finish = () => {
      if (++done === total) resolve();
    };
    const send = (i: number) => {
      const scheduled = t0 + (i * 1000) / rate;
      const body = bodies[i % bodies.length]!;
      const req = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const end = performance.now();
          lastEnd = Math.max(lastEnd, end);
          times.push(end - scheduled);
          if (res.statusCode !== 200) fail(`${res.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`);
          finish();
        });
      });
      req.on('error', (err) => {
        fail(err.message);
        finish();
      });
      req.end(body);
    };
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      while (sent < due) send(sent++);
      if (sent < total) setTimeout(tick, 1);
    };
    setTimeout(tick, 5);
  });
  agent.destroy();
  const s = times.sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return { targetRps: rate, achievedRps: Math.round(total / ((lastEnd - t0) / 1000)), sent: total, errors, p50Ms: r3(q(0.5)), p90Ms: r3(q(0.9)), p99Ms: r3(q(0.99)), maxMs: r3(s.at(-1) ?? NaN), ...(firstError ? { firstError } : {}) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Post one request until the server answers 200 (or give up after `timeoutMs`). */
async function waitUp(url: string, body: Buffer, child: ChildProcess, log: () => string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${log()}`);
    const status = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } }).then((r) => r.status, () => 0);
    if (status === 200) return;
    if (Date.now() > end) throw new Error(`server at ${url} did not answer 200 within ${timeoutMs} ms (last status ${status}): ${log()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function runServeBench(f: ServeBenchFlags, command: string): Promise<void> {
  const dir = path.join(REPO_ROOT, '.data', 'bench', `serve-${randomUUID().slice(0, 8)}`);
  await fs.mkdir(dir, { recursive: true });
  const redisUrl = process.env.INFERFLOW_REDIS_URL ?? DEFAULT_REDIS_URL;
  const keyPrefix = `bench-serve-${randomUUID().slice(0, 8)}`;
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl, dataDir: dir });
  const children: ChildProcess[] = [];
  try {
    const registry = new ModelRegistry(openStore(`file://${path.join(dir, 'registry')}`));
    await registerFeaturesExampleModel(registry);
    const spec = await loadPipelineSpec(FEATURES_PIPELINE);
    const view = spec.featureViews![0]!;
    const viewPath = path.resolve((view.source as { path: string }).path);
    const { customers, asOf } = await withDuckDB(async (conn) => {
      const r = await conn.runAndReadAll(`SELECT DISTINCT customer_id FROM read_parquet(${lit(viewPath)}) ORDER BY 1 LIMIT 1000`);
      const t = await conn.runAndReadAll(`SELECT epoch_ms(max(event_timestamp)) FROM read_parquet(${lit(viewPath)})`);
      return { customers: r.getRowsJS().map((x) => Number(x[0])), asOf: new Date(Number(t.getRowsJS()[0]![0])) };
    });
    await materializeView({ view, store, end: asOf });
    const asOfText = asOf.toISOString();
    const bodies = customers.map((c, i) =>
      Buffer.from(
        JSON.stringify({
          inputs: [
            { name: 'customer_id', datatype: 'INT64', shape: [1], data: [c] },
            { name: 'event_timestamp', datatype: 'BYTES', shape: [1], data: [asOfText] },
            { name: 'amount', datatype: 'FP64', shape: [1], data: [20 + (i % 400)] },
            { name: 'merchant_category', datatype: 'BYTES', shape: [1], data: [['travel', 'grocery', 'fuel', 'restaurant'][i % 4]] },
            { name: 'lat', datatype: 'FP64', shape: [1], data: [52.5] },
            { name: 'lon', datatype: 'FP64', shape: [1], data: [13.4] },
          ],
          parameters: { as_of: asOfText },
        }),
      ),
    );
    const peerEnv = { BENCH_MODEL: path.join(FEATURES_MODEL_DIR, 'model.onnx'), BENCH_REDIS_URL: redisUrl, BENCH_KEY_PREFIX: `${keyPrefix}:${VIEW}:` };
    const serveEnv = { ...process.env, INFERFLOW_DATA_DIR: dir, INFERFLOW_REGISTRY: `file://${path.join(dir, 'registry')}`, INFERFLOW_REDIS_URL: redisUrl, INFERFLOW_LOG_LEVEL: 'warn' };
    const inferflow = (port: number, extra: string[]) => spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'inferflow.js'), 'serve', FEATURES_PIPELINE, '--port', String(port), '--store', `redis:${keyPrefix}`, ...extra], { env: serveEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const targets: Target[] = [
      { name: 'floor', describe: 'node:http, one HMGET, one session.run (bench/serve-floor.ts)', start: (port) => spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench', 'serve-floor.ts')], { env: { ...process.env, ...peerEnv, BENCH_PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] }) },
      { name: 'serve-off', describe: 'inferflow serve --no-batching', start: (port) => inferflow(port, ['--no-batching']) },
      ...f.delaysUs.map((us) => ({ name: `serve-on-${us}us`, describe: `inferflow serve --batching --max-batch-rows ${DEFAULT_SERVE_MODEL_OPTIONS.maxBatchRows} --max-queue-delay-us ${us}`, start: (port: number) => inferflow(port, ['--batching', '--max-batch-rows', String(DEFAULT_SERVE_MODEL_OPTIONS.maxBatchRows), '--max-queue-delay-us', String(us)]) })),
    ];
    let kserveNote: string | undefined;
    if (f.kserve) {
      const ok = await fs.access(KSERVE_PYTHON).then(() => true, () => false);
      if (ok) targets.push({ name: 'kserve', describe: 'Python KServe ModelServer (bench/serve_kserve.py)', start: (port) => spawn(KSERVE_PYTHON, [path.join(REPO_ROOT, 'bench', 'serve_kserve.py')], { env: { ...process.env, ...peerEnv, BENCH_PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] }) });
      else kserveNote = `no Python venv with kserve at ${path.relative(REPO_ROOT, KSERVE_PYTHON)} (python3 -m venv .data/bench/kserve-venv && .data/bench/kserve-venv/bin/pip install kserve onnxruntime redis numpy)`;
    }
    const loadBefore = loadAverage();
    const results: Record<string, { describe: string; rates: Latency[]; steps: Latency[]; highestRpsAtP99Limit: number }> = {};
    const failed: Record<string, string> = {};
    // Every target is started first and measured in turns (each rate: every target, one after
    // the other), so the contenders of one rate run seconds apart under the same machine load.
    const live: { t: Target; url: string; child: ChildProcess }[] = [];
    for (const t of targets) {
      const port = await freePort();
      const child = t.start(port);
      children.push(child);
      let output = '';
      child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-2000)));
      child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-2000)));
      const url = `http://127.0.0.1:${port}/v2/models/fraud-features/infer`;
      try {
        await waitUp(url, bodies[0]!, child, () => output);
        await openLoop(url, bodies, f.rates[0]!, f.warmupS); // warm-up, not recorded
        live.push({ t, url, child });
        results[t.name] = { describe: t.describe, rates: [], steps: [], highestRpsAtP99Limit: 0 };
      } catch (err) {
        failed[t.name] = err instanceof Error ? err.message : String(err);
        console.log(`${t.name}: failed: ${failed[t.name]}`);
        await stop(child);
      }
    }
    for (const rate of f.rates) {
      for (const { t, url } of live) {
        const m = await openLoop(url, bodies, rate, f.durationS);
        results[t.name]!.rates.push(m);
        console.log(`${t.name.padEnd(16)} ${String(rate).padStart(5)} rps: p50 ${m.p50Ms} p90 ${m.p90Ms} p99 ${m.p99Ms} max ${m.maxMs} ms, achieved ${m.achievedRps} rps, errors ${m.errors}${m.firstError ? ` (${m.firstError})` : ''}`);
      }
    }
    let searching = [...live];
    for (const rate of f.steps) {
      const next: typeof live = [];
      for (const l of searching) {
        const r = results[l.t.name]!;
        const m = await openLoop(l.url, bodies, rate, f.stepDurationS);
        r.steps.push(m);
        const held = m.p99Ms <= f.p99LimitMs && m.errors === 0 && m.achievedRps >= 0.95 * rate;
        console.log(`${l.t.name.padEnd(16)} step ${String(rate).padStart(5)} rps: p99 ${m.p99Ms} ms, achieved ${m.achievedRps}, errors ${m.errors} → ${held ? 'held' : 'not held'}`);
        if (held) {
          r.highestRpsAtP99Limit = rate;
          next.push(l);
        }
      }
      searching = next;
    }
    const floor = results.floor;
    const ratios = Object.fromEntries(
      Object.entries(results)
        .filter(([k]) => k !== 'floor' && floor)
        .map(([k, v]) => [
          k,
          v.rates.map((m, i) => ({ rate: m.targetRps, p50MinusFloorMs: r3(m.p50Ms - floor!.rates[i]!.p50Ms), p99OverFloor: r3(m.p99Ms / floor!.rates[i]!.p99Ms) })),
        ]),
    );
    const date = new Date();
    const out = {
      benchmark: 'serve',
      schema: 1,
      date: date.toISOString(),
      command,
      machine: { ...hostInfo(), node: process.version, onnxruntimeNode: packageVersion('onnxruntime-node'), ioredis: packageVersion('ioredis'), loadAverageBefore: loadBefore, loadAverageAfter: loadAverage() },
      source: sourceState(REPO_ROOT, ['server', 'lib/pipeline', 'cli/serve.ts', 'bench/serve.ts', 'bench/serve-floor.ts']),
      settings: { ...f, connections: CONNECTIONS, rowsPerRequest: 1, customers: customers.length, generator: 'open loop in the bench process, fixed schedule, 10 keep-alive connections, latency from the scheduled send time' },
      results,
      ratiosToFloor: ratios,
      ...(kserveNote ? { kserve: kserveNote } : {}),
      ...(Object.keys(failed).length > 0 ? { failed } : {}),
    };
    console.log(`wrote ${await writeDailyResults(f.tag ? `serve-${f.tag}` : 'serve', date, out)}`);
  } finally {
    await Promise.all(children.map(stop));
    await store.deleteView(VIEW).catch(() => undefined);
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

const intList = (v: string): number[] =>
  v.split(',').map((p) => {
    const n = Number(p.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${p} is not a non-negative integer`);
    return n;
  });

/** `npm run bench -- serve …` (registered by bench/index.ts). */
export function registerServeBench(program: Command): void {
  program
    .command('serve')
    .description('Online serving at fixed request rates (open loop, 10 connections, 1-row requests with a Redis lookup): the floor (node:http + HMGET + session.run), inferflow serve with batching off and on, and a Python KServe peer when its venv exists. Writes bench/results/serve-<date>.json.')
    .option('--rates <list>', 'fixed rates (requests/s)', intList, [200, 500, 1000])
    .option('--steps <list>', 'rates tried in order for the highest held at the p99 limit', intList, [300, 500, 750, 1000, 1500, 2000, 3000])
    .option('--duration <s>', 'seconds per fixed rate', Number, 10)
    .option('--step-duration <s>', 'seconds per step', Number, 5)
    .option('--warmup <s>', 'seconds of untimed load at the first rate', Number, 3)
    .option('--p99-limit <ms>', 'p99 a step must hold', Number, 10)
    .option('--delays-us <list>', 'max queue delays (µs) of the batching-on runs', intList, [0, DEFAULT_SERVE_MODEL_OPTIONS.maxQueueDelayUs])
    .option('--no-kserve', 'skip the Python KServe peer')
    .option('--tag <name>', 'write bench/results/serve-<tag>-<date>.json instead (letters, digits, -)', (v: string) => {
      if (!/^[A-Za-z0-9-]{1,40}$/.test(v)) throw new InvalidArgumentError('use 1-40 letters, digits or -');
      return v;
    })
    .addHelpText('after', '\nExamples:\n  npm run build && npm run bench -- serve\n  npm run bench -- serve --rates 500 --steps 1000,2000 --delays-us 500 --no-kserve\n')
    .action(async (f: { rates: number[]; steps: number[]; duration: number; stepDuration: number; warmup: number; p99Limit: number; delaysUs: number[]; kserve: boolean; tag?: string }) => {
      await runServeBench(
        { rates: f.rates, steps: f.steps, durationS: f.duration, stepDurationS: f.stepDuration, warmupS: f.warmup, p99LimitMs: f.p99Limit, delaysUs: f.delaysUs, kserve: f.kserve, ...(f.tag ? { tag: f.tag } : {}) },
        `npm run bench -- serve ${process.argv.slice(3).join(' ')}`.trim(),
      );
    });
}
