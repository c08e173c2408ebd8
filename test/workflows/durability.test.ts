/**
 * Durability: a worker killed mid-run (SIGKILL) and replaced; a cancelled run. Workers run as
 * separate processes (`workers/main.ts`), exactly as deployed.
 */
import { CancelledFailure, WorkflowFailedError } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectClient, queryProgress, startBatchInference, type BatchProgress } from '../../client';
import type { Client } from '@temporalio/client';
import type { InferflowConfig } from '../../lib/config/env';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { EXAMPLE_FEATURES, exampleRegistry, REPO_ROOT, tempConfig, uniqueName } from '../helpers/env';
import { referenceScores } from '../helpers/data';

let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let client: Client;
let bigInput: string;
const ROWS = 200_000;

function startWorkerProcess(name: string): ChildProcess {
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: config.temporal.address,
    INFERFLOW_TASK_QUEUE: config.temporal.taskQueue,
    INFERFLOW_DATA_DIR: config.dataDir,
    INFERFLOW_LOG_LEVEL: 'warn',
  };
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'workers/main.ts')], { env, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(path.join(dir, `${name}.log`));
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  return child;
}

async function waitFor(handle: Parameters<typeof queryProgress>[0], pred: (p: BatchProgress) => boolean, timeoutMs = 60_000): Promise<BatchProgress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = await queryProgress(handle);
    if (p && pred(p)) return p;
    if (Date.now() > deadline) throw new Error(`condition not reached; last progress ${JSON.stringify(p)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const killed = (c: ChildProcess) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-durability') }));
  await exampleRegistry(config);
  client = await connectClient(config.temporal);
  // 200,000 rows: the example file four times over, with unique ids.
  bigInput = path.join(dir, 'big.parquet');
  await withDuckDB((c) => c.run(`COPY (SELECT * REPLACE (transaction_id || '-' || k AS transaction_id) FROM read_parquet(${lit(EXAMPLE_FEATURES)}), range(4) t(k)) TO ${lit(bigInput)} (FORMAT parquet)`));
});

afterAll(async () => {
  await client?.connection.close();
  await cleanup?.();
});

describe('durability', () => {
  it('a worker SIGKILLed mid-run is replaced and the run completes: every row once, predictions exact', async () => {
    const first = startWorkerProcess('worker-1');
    let second: ChildProcess | undefined;
    try {
      const handle = await startBatchInference(client, { model: 'fraud-detector@production', features: bigInput, shardSize: 8_000, maxConcurrency: 2 }, { taskQueue: config.temporal.taskQueue });
      const atKill = await waitFor(handle, (p) => p.phase === 'predicting' && p.shardsDone >= 4);
      expect(atKill.shardsTotal).toBe(25);
      expect(atKill.shardsDone).toBeLessThan(atKill.shardsTotal);
      first.kill('SIGKILL');
      await killed(first);
      second = startWorkerProcess('worker-2');

      const result = await handle.result();
      expect(result.rowsIn).toBe(ROWS);
      expect(result.rowsOut).toBe(ROWS);

      const stats = await withDuckDB(async (c) => {
        const r = await c.runAndReadAll(`SELECT count(*)::INT, count(DISTINCT transaction_id)::INT FROM read_parquet(${lit(path.join(result.output.location, '*.parquet'))})`);
        return r.getRowsJS()[0]!;
      });
      expect(stats).toEqual([ROWS, ROWS]);

      const ref = await referenceScores(bigInput);
      const mismatches = await withDuckDB(async (c) => {
        const r = await c.runAndReadAll(`SELECT transaction_id, label, score FROM read_parquet(${lit(path.join(result.output.location, '*.parquet'))})`);
        return r.getRowsJS().filter(([id, label, score]) => ref.get(toText(id))?.score !== score || ref.get(toText(id))?.label !== Number(label)).length;
      });
      expect(mismatches).toBe(0);
      expect(await fs.readdir(path.join(config.dataDir, 'runs')).catch(() => [])).toEqual([]);
    } finally {
      first.kill('SIGKILL');
      second?.kill('SIGTERM');
      await Promise.all([killed(first), second ? killed(second) : null]);
    }
  });

  it('cancelling a run stops its shards, removes staged files and commits nothing', async () => {
    const worker = startWorkerProcess('worker-cancel');
    try {
      const handle = await startBatchInference(client, { model: 'fraud-detector@production', features: bigInput, shardSize: 4_000, maxConcurrency: 1, pipeline: 'cancelled' }, { taskQueue: config.temporal.taskQueue });
      await waitFor(handle, (p) => p.phase === 'predicting' && p.shardsDone >= 2);
      await handle.cancel();
      const err = await handle.result().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect((await handle.describe()).status.name).toBe('CANCELLED');
      expect(await fs.readdir(path.join(config.dataDir, 'runs')).catch(() => [])).toEqual([]);
      expect(await fs.readdir(path.join(config.outputDir, 'cancelled')).catch(() => [])).toEqual([]);
    } finally {
      worker.kill('SIGTERM');
      await killed(worker);
    }
  });
});
