/**
 * Parent side of bench/worker-child.ts: start a worker process, wait until it polls, stop it
 * and collect its peak RSS. `kill()` is safe to call in any state (used in finally blocks).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../cli/examples';

export type ChildMessage = { type: 'ready'; rssBytes: number; maxRssBytes: number } | { type: 'stopped'; rssBytes: number; maxRssBytes: number };

export interface WorkerChild {
  pid: number;
  /** RSS right after the worker started polling (runtime, modules, bundle loaded). */
  idleRssBytes: number;
  /** Graceful stop; resolves with the process's peak RSS over its whole life. */
  stop(timeoutMs?: number): Promise<{ peakRssBytes: number }>;
  /** SIGKILL if still running. */
  kill(): void;
  /** The last few KB the worker wrote to stderr (for failure reports). */
  stderrTail(): string;
  /** Rejects when the process exits before `stop()` was asked for (a crashed worker). */
  crashed: Promise<never>;
}

function isChildMessage(m: unknown): m is ChildMessage {
  return typeof m === 'object' && m !== null && ((m as { type?: unknown }).type === 'ready' || (m as { type?: unknown }).type === 'stopped');
}

export async function startWorkerChild(env: NodeJS.ProcessEnv, readyTimeoutMs = 120_000): Promise<WorkerChild> {
  // BENCH_WORKER_NODE_ARGS: extra node flags for worker processes, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' to profile one.
  const extra = (env.BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child: ChildProcess = spawn(process.execPath, [...extra, '--import', 'tsx', path.join(REPO_ROOT, 'bench', 'worker-child.ts')], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  // BENCH_WORKER_STDERR: also append everything worker processes write to stderr (their logs, at INFERFLOW_LOG_LEVEL) to this file.
  const log = env.BENCH_WORKER_STDERR ? createWriteStream(env.BENCH_WORKER_STDERR, { flags: 'a' }) : undefined;
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
    log?.write(b);
  });
  child.once('exit', () => log?.end());
  let exitCode: number | null = null;
  const exited = new Promise<void>((resolve) => child.once('exit', (code, signal) => ((exitCode = code ?? (signal ? 128 : -1)), resolve())));
  const kill = () => {
    if (exitCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill);
  const nextMessage = (type: ChildMessage['type'], timeoutMs: number) =>
    new Promise<ChildMessage>((resolve, reject) => {
      const onMessage = (m: unknown) => {
        if (isChildMessage(m) && m.type === type) done(() => resolve(m));
      };
      const onExit = () => done(() => reject(new Error(`bench worker (pid ${child.pid}) exited with code ${exitCode} before '${type}': ${stderr.trim() || '(no output)'}`)));
      const timer = setTimeout(() => done(() => reject(new Error(`bench worker (pid ${child.pid}) sent no '${type}' within ${timeoutMs / 1000} s: ${stderr.trim()}`))), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        f();
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });

  let stopRequested = false;
  const crashed = exited.then(() => {
    throw new Error(`bench worker (pid ${child.pid}) exited with code ${exitCode}${stopRequested ? ' while stopping' : ''}: ${stderr.trim() || '(no output)'}`);
  });
  // Nobody may be listening when the worker exits normally at stop(): don't report that as unhandled.
  crashed.catch(() => undefined);

  let ready: ChildMessage;
  try {
    ready = await nextMessage('ready', readyTimeoutMs);
  } catch (err) {
    kill();
    throw err;
  }
  return {
    pid: child.pid!,
    idleRssBytes: ready.rssBytes,
    crashed,
    stderrTail: () => stderr.trim(),
    async stop(timeoutMs = 60_000) {
      stopRequested = true;
      const stopped = nextMessage('stopped', timeoutMs);
      child.send({ type: 'stop' });
      try {
        const m = await stopped;
        await exited;
        return { peakRssBytes: m.maxRssBytes };
      } finally {
        kill();
        process.removeListener('exit', kill);
      }
    },
    kill() {
      kill();
      process.removeListener('exit', kill);
    },
  };
}
