/**
 * Every top-level command of the package's `bin` entry (bin/inferflow.js → the compiled CLI in
 * dist/), as a user runs it: no tsx, no TypeScript sources. The global setup builds dist/ when
 * the sources are newer.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXIT_CODES } from '../../cli/exit-codes';
import { FEATURES_PIPELINE } from '../../cli/examples';
import type { InferflowConfig } from '../../lib/config/env';
import { packageVersion } from '../../lib/util/package-root';
import { REPO_ROOT, tempConfig, uniqueName } from '../helpers/env';
import { startProcess, type StartedProcess } from '../helpers/processes';

const run = promisify(execFile);
const BIN = path.join(REPO_ROOT, 'bin', 'inferflow.js');
let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-cli-bin') }));
  env = { ...process.env, TEMPORAL_ADDRESS: config.temporal.address, INFERFLOW_TASK_QUEUE: config.temporal.taskQueue, INFERFLOW_DATA_DIR: dir, INFERFLOW_LOG_LEVEL: 'info', INFERFLOW_WORKER_WARM_UP: 'false' };
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await cleanup?.();
});

const cli = (...args: string[]) => run(process.execPath, [BIN, ...args], { env, cwd: REPO_ROOT });
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: { code: number; stdout: string; stderr: string }) => e);

/** Start a long-running command; resolves once its output matches `ready`. */
function startLong(argv: string[], ready: RegExp, command = process.execPath): Promise<StartedProcess> {
  return startProcess({ command, argv, env, cwd: REPO_ROOT, ready, children });
}

/** node_modules packages a CLI command must not load unless it needs them. */
const HEAVY_MODULE = /node_modules[\\/](@temporalio|@duckdb|onnxruntime-node|@aws-sdk|@nats-io)[\\/]/;

/** Every module file a command loaded (a preloaded module writes the require cache when the process exits). */
async function loadedModules(args: string[]): Promise<string[]> {
  const hook = path.join(dir, 'loaded-modules.cjs');
  await fs.writeFile(hook, `process.on('exit', () => require('fs').writeFileSync(process.env.LOADED_LIST, Object.keys(require.cache).join('\\n')));`);
  const list = path.join(dir, `loaded-${args.join('-').replace(/[^\w.-]/g, '_')}.txt`);
  await run(process.execPath, ['--require', hook, BIN, ...args], { env: { ...env, LOADED_LIST: list }, cwd: REPO_ROOT });
  return (await fs.readFile(list, 'utf8')).split('\n');
}

const exited = (child: ChildProcess) => (child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve())));

describe('bin/inferflow.js runs every command from the compiled JavaScript', () => {
  it('--version, --help and a usage error (exit code 2)', async () => {
    expect((await cli('--version')).stdout.trim()).toBe(packageVersion());
    expect((await cli('--help')).stdout).toContain('Exit codes: 0 ok, 2 bad input, 3 not found, 4 unavailable, 5 run failed');
    const bad = await failure(cli('bogus'));
    expect(bad?.code).toBe(EXIT_CODES.badInput);
    expect(bad?.stderr).toContain("unknown command 'bogus'");
    // A reader that closes the pipe before the help is written: exit 0, nothing on stderr (was: an unhandled EPIPE, exit 1).
    const piped = await run('bash', ['-c', `set -o pipefail; "${process.execPath}" "${BIN}" --help | true`], { env, cwd: REPO_ROOT });
    expect(piped.stderr).toBe('');
  });

  it('--help and models list start without the Temporal SDK, DuckDB, ONNX Runtime or the AWS SDK', async () => {
    for (const args of [['--help'], ['models', 'list']]) {
      const loaded = await loadedModules(args);
      expect(loaded.some((f) => f.includes(`${path.sep}dist${path.sep}cli${path.sep}index.js`))).toBe(true);
      expect(loaded.filter((f) => HEAVY_MODULE.test(f)), args.join(' ')).toEqual([]);
    }
  });

  it('temporal: finds the running server instead of starting another', async () => {
    expect((await cli('temporal')).stdout).toContain(`A Temporal server already answers at ${config.temporal.address}`);
  });

  it('demo: the feature pipeline end to end (TypeScript on-demand features from compiled code)', async () => {
    const { stdout } = await cli('demo');
    expect(stdout).toContain(`Temporal: using the server at ${config.temporal.address}`);
    expect(stdout).toMatch(/rows in \/ out\s+[\d,]+ \/ [\d,]+/);
    expect(stdout).toContain('Highest fraud scores:');
  });

  it('models list / show with --json, and a missing alias exits 3', async () => {
    const models = JSON.parse((await cli('models', 'list', '--json')).stdout) as { name: string; versions: number[]; aliases: Record<string, number> }[];
    expect(models.map((m) => m.name).sort()).toEqual(['fraud-detector', 'fraud-features']);
    expect(models.find((m) => m.name === 'fraud-features')?.aliases).toEqual({ production: 1 });
    const manifest = JSON.parse((await cli('models', 'show', 'fraud-features@production', '--json')).stdout) as { name: string; version: number };
    expect(manifest).toMatchObject({ name: 'fraud-features', version: 1 });
    expect((await cli('models', 'show', 'fraud-features@production')).stdout).toMatch(/model\s+fraud-features:1/);
    const missing = await failure(cli('models', 'show', 'fraud-features@nope'));
    expect(missing?.code).toBe(EXIT_CODES.notFound);
    expect(missing?.stderr).toContain('NotFound: model fraud-features has no alias nope');
  });

  it('models pull and features online go through Resources without loading ONNX Runtime, DuckDB, NATS, the Temporal SDK or the AWS SDK', async () => {
    for (const args of [['models', 'pull', 'fraud-features@production'], ['features', 'online', '--view', FEATURES_PIPELINE, '--key', '17']]) {
      const loaded = await loadedModules(args);
      expect(loaded.some((f) => f.includes(`${path.sep}dist${path.sep}lib${path.sep}pipeline${path.sep}resources.js`)), args.join(' ')).toBe(true);
      expect(loaded.filter((f) => HEAVY_MODULE.test(f)), args.join(' ')).toEqual([]);
    }
  });

  it('worker, batch run / status --json, predictions --json, schedule list --json; SIGTERM stops the worker', async () => {
    const worker = await startLong([BIN, 'worker'], /"msg":"worker started"/);
    try {
      const id = uniqueName('bin-run');
      const features = path.join(REPO_ROOT, 'examples', 'data', 'transactions.parquet');
      expect((await cli('batch', 'run', '-m', 'fraud-detector@production', '-f', features, '--workflow-id', id)).stdout).toMatch(/rows in \/ out\s+[\d,]+ \/ [\d,]+/);
      const status = JSON.parse((await cli('batch', 'status', id, '--json')).stdout) as { status: string; result: { rowsOut: number; output: { location: string } } };
      expect(status.status).toBe('COMPLETED');
      const rows = JSON.parse((await cli('predictions', status.result.output.location, '-n', '3', '--json')).stdout) as { score: number }[];
      expect(rows).toHaveLength(3);
      expect(rows[0]!.score).toBeGreaterThanOrEqual(rows[1]!.score);
      expect(Array.isArray(JSON.parse((await cli('schedule', 'list', '--json')).stdout))).toBe(true);
      const notCommitted = await failure(cli('predictions', dir));
      expect(notCommitted?.code).toBe(EXIT_CODES.notFound);
      const noRun = await failure(cli('batch', 'status', uniqueName('no-such-run')));
      expect(noRun?.code).toBe(EXIT_CODES.notFound);
    } finally {
      worker.child.kill('SIGTERM');
      await exited(worker.child);
    }
    expect(worker.child.exitCode).toBe(0);
    expect(worker.output()).toContain('"msg":"worker stopped"');
  });

  it('features online --json against the embedded store', async () => {
    const vectors = JSON.parse((await cli('features', 'online', '--view', FEATURES_PIPELINE, '--key', '17', '--json')).stdout) as { key: Record<string, string>; features: Record<string, { status: string }> }[];
    expect(vectors[0]!.key).toEqual({ customer_id: '17' });
    expect(Object.values(vectors[0]!.features).every((f) => f.status === 'NOT_FOUND')).toBe(true);
    expect((await cli('features', 'online', '--view', FEATURES_PIPELINE, '--key', '17')).stdout).toMatch(/customer_id=17\s+avg_amount_30d\s+NOT_FOUND/);
  });

  it('serve: a spec with a TypeScript on-demand module answers over HTTP', async () => {
    const server = await startLong([BIN, 'serve', FEATURES_PIPELINE, '--port', '0'], /"msg":"serving [^"]* at (http:\/\/[^/]+)\//);
    try {
      const url = /"msg":"serving [^"]* at (http:\/\/[^/]+)\//.exec(server.output())![1]!;
      const res = await fetch(`${url}/v2/models/fraud-features`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { name: string }).name).toBe('fraud-features');
    } finally {
      server.child.kill('SIGTERM');
      await exited(server.child);
    }
    expect(server.child.exitCode).toBe(0);
  });

  it('an unreachable Temporal server fails within seconds, naming the address (exit code 4)', async () => {
    const started = Date.now();
    const down = await failure(run(process.execPath, [BIN, 'schedule', 'list'], { env: { ...env, TEMPORAL_ADDRESS: '127.0.0.1:9' }, cwd: REPO_ROOT }));
    expect(down?.code).toBe(EXIT_CODES.unavailable);
    expect(down?.stderr).toContain('Temporal server at 127.0.0.1:9 is not reachable (ECONNREFUSED)');
    expect(Date.now() - started).toBeLessThan(5_000);
    // The worker too: it exits instead of hanging on the SDK runtime (which would also swallow SIGTERM).
    const worker = await failure(run(process.execPath, [BIN, 'worker'], { env: { ...env, TEMPORAL_ADDRESS: '127.0.0.1:9' }, cwd: REPO_ROOT, timeout: 15_000 }));
    expect(worker?.code).toBe(EXIT_CODES.unavailable);
    expect(worker?.stderr).toContain('Temporal server at 127.0.0.1:9 is not reachable');
    const bad = await failure(run(process.execPath, [BIN, 'schedule', 'list'], { env: { ...env, TEMPORAL_ADDRESS: 'nohostport' }, cwd: REPO_ROOT }));
    expect(bad?.code).toBe(EXIT_CODES.badInput);
    expect(bad?.stderr).toContain('TEMPORAL_ADDRESS: must be host:port');
  });

  it('npm run worker is the worker process itself: SIGTERM to it stops the worker, no orphan left', async () => {
    const npm = await startLong(['run', '--silent', 'worker'], /"msg":"worker started"/, 'npm');
    const pid = Number(/"pid":(\d+)[^\n]*"msg":"worker started"/.exec(npm.output())![1]);
    npm.child.kill('SIGTERM');
    await exited(npm.child);
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await expect.poll(alive, { timeout: 20_000, interval: 200 }).toBe(false);
    expect(npm.output()).toContain('"msg":"worker stopped"');
    await fs.rm(path.join(dir, 'runs'), { recursive: true, force: true });
  });
});
