/** The machine a benchmark ran on, for the results file and the docs. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../cli/examples';
import { RESULTS_DIR } from './report';

/** What every results file says about the host. */
export interface HostInfo {
  nproc: number;
  cpuModel: string;
  memoryBytes: number;
  os: string;
  node: string;
}

export interface MachineInfo extends HostInfo {
  onnxruntimeNode: string;
  duckdbNodeApi: string;
  temporalSdk: string;
  temporalCli: string;
}

export function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) return m[1].trim();
  } catch {
    // not Linux: fall through to os.cpus()
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** Cores available to this process (`nproc`, which honours CPU affinity). */
export function nproc(): number {
  const r = spawnSync('nproc', [], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : os.availableParallelism();
}

export function hostInfo(): HostInfo {
  return { nproc: nproc(), cpuModel: cpuModel(), memoryBytes: os.totalmem(), os: `${os.type()} ${os.release()} ${os.arch()}`, node: process.version };
}

/** 1/5/15-minute load averages, rounded (the machine may be shared). */
export function loadAverage(): number[] {
  return os.loadavg().map((x) => Number(x.toFixed(2)));
}

export function machineInfo(temporalCli: string): MachineInfo {
  const cli = spawnSync(temporalCli, ['--version'], { encoding: 'utf8' });
  return {
    ...hostInfo(),
    onnxruntimeNode: packageVersion('onnxruntime-node'),
    duckdbNodeApi: packageVersion('@duckdb/node-api'),
    temporalSdk: packageVersion('@temporalio/worker'),
    temporalCli: cli.status === 0 ? cli.stdout.trim() : 'unknown',
  };
}

/** HEAD and the uncommitted files among `paths` (default: what a pipeline run executes; the working tree may be shared). */
export function sourceState(repoRoot: string, paths: readonly string[] = ['workflows', 'activities', 'lib', 'workers', 'client']): { commit: string; uncommitted: string[] } {
  const git = (args: string[]) => spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' });
  const head = git(['rev-parse', '--short=12', 'HEAD']);
  const status = git(['status', '--porcelain', '--', ...paths]);
  return {
    commit: head.status === 0 ? head.stdout.trim() : 'unknown',
    uncommitted: status.status === 0 ? status.stdout.split('\n').map((l) => l.slice(3).trim()).filter(Boolean) : [],
  };
}

/** CPU time (user + system, ms) a process has used so far, from /proc (Linux); undefined elsewhere or once it is gone. */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS : undefined;
  } catch {
    return undefined;
  }
}

const CLOCK_TICKS = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  return Number(r.stdout?.trim()) || 100;
})();

/** Write `bench/results/<name>-<YYYY-MM-DD>.json` (replacing the same day's file); returns its path relative to the repository. */
export async function writeDailyResults(name: string, date: Date, body: unknown): Promise<string> {
  await fs.mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}-${date.toISOString().slice(0, 10)}.json`);
  await fs.writeFile(file, JSON.stringify(body, null, 2) + '\n');
  return path.relative(REPO_ROOT, file);
}
