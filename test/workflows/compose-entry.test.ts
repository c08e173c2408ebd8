/**
 * Docker cannot run here, so the compose file's Inferflow services are run the next best way:
 * their exact commands, from the package root (the image's WORKDIR), with the compose file's
 * environment where each compose service name is replaced by the local server the tests use
 * and /app by a throwaway directory.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { FEATURES_MODEL_DIR } from '../../cli/examples';
import { REPO_ROOT, uniqueName } from '../helpers/env';
import { TEST_POSTGRES, TEST_REDIS_DB } from '../helpers/services';
import { startProcess, type StartedProcess } from '../helpers/processes';

const run = promisify(execFile);
interface Service {
  command: string[];
  environment: Record<string, string>;
}
let services: Record<string, Service>;
let root: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  services = (parse(await fs.readFile(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> }).services;
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-compose-'));
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await fs.rm(root, { recursive: true, force: true });
});

/** The service's environment with compose hosts replaced by the local servers. */
function localEnv(service: Service, taskQueue: string): NodeJS.ProcessEnv {
  const s3 = inject('s3');
  const hosts: [RegExp, string][] = [
    [/\btemporal:7233\b/, inject('temporalAddress')],
    [/\bredis:6379\/\d+/, `127.0.0.1:6379/${TEST_REDIS_DB}`],
    [/@postgres:5432\/\w+/, `@${TEST_POSTGRES.host}:${TEST_POSTGRES.port}/${TEST_POSTGRES.database}`],
    [/^http:\/\/seaweedfs:8333$/, s3.endpoint],
    [/\/app\b/, root],
  ];
  const env = Object.fromEntries(Object.entries(service.environment).map(([k, v]) => [k, hosts.reduce((acc, [from, to]) => acc.replace(from, to), v)]));
  expect(Object.values(env).join(' ')).not.toMatch(/\b(temporal|redis|postgres|seaweedfs):\d/);
  // Only the compose file's settings: none inherited from the test process (its setup file sets Redis and PostgreSQL URLs).
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(INFERFLOW_|TEMPORAL_|AWS_|PG)/.test(k)));
  // SeaweedFS of the tests checks signatures, unlike the compose one; the queue keeps this test's runs to itself.
  return { ...inherited, ...env, AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, INFERFLOW_TASK_QUEUE: taskQueue, INFERFLOW_WORKER_WARM_UP: 'false' };
}

/** Start the service's command in the package root; resolves when its output matches `ready`. */
function start(command: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<StartedProcess> {
  return startProcess({ command: command[0] === 'node' ? process.execPath : command[0]!, argv: command.slice(1), env, cwd: REPO_ROOT, ready, children });
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await exited;
  }
  return child.exitCode;
}

describe('the compose file\'s worker and serve commands, with its environment pointed at local services', () => {
  it('worker: runs a batch into PostgreSQL (INFERFLOW_POSTGRES_URL) and stops on SIGTERM', async () => {
    const queue = uniqueName('compose-worker');
    const env = localEnv(services.worker!, queue);
    const cli = (...args: string[]) => run(process.execPath, [services.worker!.command[1]!, ...args], { cwd: REPO_ROOT, env });
    await cli('models', 'register', path.join(REPO_ROOT, 'examples/models/fraud-detector/model.onnx'), '--name', 'fraud-detector', '--metadata', path.join(REPO_ROOT, 'examples/models/fraud-detector/metadata.json'), '--alias', 'production');
    const worker = await start(services.worker!.command, env, /"msg":"worker started"/);
    const table = `compose_${randomUUID().slice(0, 8)}`;
    const db = new pg.Client({ connectionString: env.INFERFLOW_POSTGRES_URL });
    await db.connect();
    try {
      const { stdout } = await cli('batch', 'run', '-m', 'fraud-detector@production', '-f', path.join(REPO_ROOT, 'examples/data/transactions.parquet'), '--sink', `postgres:${table}`);
      const rowsOut = Number(/rows in \/ out\s+[\d,]+ \/ ([\d,]+)/.exec(stdout)![1]!.replace(/,/g, ''));
      expect(rowsOut).toBeGreaterThan(0);
      expect(Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${pg.escapeIdentifier(table)}`)).rows[0]!.n)).toBe(rowsOut);
    } finally {
      await db.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(table)}`).catch(() => undefined);
      await db.end();
      expect(await stop(worker.child)).toBe(0);
    }
  });

  it('serve: answers for the feature-store example, features from Redis (INFERFLOW_REDIS_URL)', async () => {
    const env = localEnv(services.serve!, uniqueName('compose-serve'));
    const bin = services.serve!.command[1]!;
    await run(process.execPath, [bin, 'models', 'register', path.join(FEATURES_MODEL_DIR, 'model.onnx'), '--name', 'fraud-features', '--metadata', path.join(FEATURES_MODEL_DIR, 'metadata.json'), '--alias', 'production'], { cwd: REPO_ROOT, env });
    // The compose port (8080) and interface (all) would collide here: a free loopback port instead.
    const server = await start([...services.serve!.command, '--port', '0', '--host', '127.0.0.1'], env, /"msg":"serving [^"]* at http:\/\/[^/]+\/.*features from redis:\/\/127\.0\.0\.1:6379/);
    try {
      const url = /"msg":"serving [^"]* at (http:\/\/[^/]+)\//.exec(server.output())![1]!;
      const res = await fetch(`${url}/v2/models/fraud-features`);
      expect(res.status).toBe(200);
    } finally {
      expect(await stop(server.child)).toBe(0);
    }
  });
});
