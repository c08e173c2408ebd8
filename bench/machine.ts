/** The machine a benchmark ran on, for the results file and the docs. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryBytes: number;
  os: string;
  node: string;
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

function nproc(): number {
  const r = spawnSync('nproc', [], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : os.availableParallelism();
}

export function machineInfo(temporalCli: string): MachineInfo {
  const cli = spawnSync(temporalCli, ['--version'], { encoding: 'utf8' });
  return {
    nproc: nproc(),
    cpuModel: cpuModel(),
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    onnxruntimeNode: packageVersion('onnxruntime-node'),
    duckdbNodeApi: packageVersion('@duckdb/node-api'),
    temporalSdk: packageVersion('@temporalio/worker'),
    temporalCli: cli.status === 0 ? cli.stdout.trim() : 'unknown',
  };
}

/** HEAD and the uncommitted files among the ones a pipeline run executes (the working tree is shared). */
export function sourceState(repoRoot: string): { commit: string; uncommitted: string[] } {
  const git = (args: string[]) => spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' });
  const head = git(['rev-parse', '--short=12', 'HEAD']);
  const status = git(['status', '--porcelain', '--', 'workflows', 'activities', 'lib', 'workers', 'client']);
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
