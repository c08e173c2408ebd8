import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { workflowMetadataQuery } from '@temporalio/workflow';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXIT_CODES } from '../../cli/exit-codes';
import type { InferflowConfig } from '../../lib/config/env';
import { exampleRegistry, REPO_ROOT, tempConfig, uniqueName } from '../helpers/env';
import { writeVariant } from '../helpers/data';
import { startWorker, type RunningWorker } from '../helpers/worker';

const run = promisify(execFile);
let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-cli-batch') }));
  await exampleRegistry(config);
  w = await startWorker(config);
});
afterAll(async () => {
  await w?.stop();
  await cleanup?.();
});

describe('inferflow batch (CLI)', () => {
  const cli = (...args: string[]) =>
    run(process.execPath, [path.join(REPO_ROOT, 'bin/inferflow.js'), 'batch', ...args], {
      env: { ...process.env, TEMPORAL_ADDRESS: config.temporal.address, INFERFLOW_TASK_QUEUE: config.temporal.taskQueue },
      cwd: REPO_ROOT,
    });

  it('runs, waits with progress, prints a summary; status shows the finished run', async () => {
    const features = await writeVariant(dir, 'cli.parquet', '*', 'true', 3_000);
    const id = uniqueName('cli-run');
    const { stdout } = await cli('run', '-m', 'fraud-detector@production', '-f', features, '--shard-size', '1000', '--as-of', '2026-11-24T03:00:00Z', '--workflow-id', id, '--wait');
    expect(stdout).toContain(`started ${id}`);
    expect(stdout).toMatch(/done\s+\[#+\] 100% 3,000\/3,000 rows, shards 3\/3/);
    expect(stdout).toMatch(/rows in \/ out\s+3,000 \/ 3,000/);
    const status = await cli('status', id);
    expect(status.stdout).toContain(`${id}: COMPLETED`);
    expect(status.stdout).toMatch(/model\s+fraud-detector version 1/);
    // What the Web UI shows on the run page: the static summary and details, and the progress as current details.
    const handle = w.client.workflow.getHandle(id);
    const desc = await handle.describe();
    expect(await desc.staticSummary()).toBe('batch fraud-detector · model fraud-detector@production');
    expect(await desc.staticDetails()).toContain(`**features** ${features}`);
    const metadata = await handle.query(workflowMetadataQuery);
    expect(metadata.currentDetails).toBe('**done** · model fraud-detector version 1\n\nshards 3/3 · rows 3,000/3,000\n\n' + metadata.currentDetails!.split('\n\n')[2]);
    expect(metadata.currentDetails).toMatch(/rows\/s · ETA 0s$/);
  });

  it('--no-wait prints only the workflow id and returns without waiting for the run', async () => {
    const features = await writeVariant(dir, 'cli-nowait.parquet', '*', 'true', 2_000);
    const id = uniqueName('cli-nowait');
    const { stdout } = await cli('run', '-m', 'fraud-detector@production', '-f', features, '--workflow-id', id, '--no-wait');
    expect(stdout.trim()).toBe(`started ${id} on task queue ${config.temporal.taskQueue}`);
    expect((await cli('status', id)).stdout).toMatch(new RegExp(`${id}: (RUNNING|COMPLETED)`));
  });

  it('exits with code 5 and the failure message when the run fails; status says the same', async () => {
    const features = await writeVariant(dir, 'cli-bad.parquet', '* EXCLUDE (amount)', 'true', 10);
    const err = await cli('run', '-m', 'fraud-detector', '-f', features).then(() => undefined, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(EXIT_CODES.runFailed);
    expect(err?.stderr).toContain('run failed:');
    expect(err?.stderr).toContain('column amount is missing');
    const id = /started (\S+)/.exec((err as unknown as { stdout: string }).stdout)![1]!;
    const status = await cli('status', id, '--json').then(() => undefined, (e: { code: number; stdout: string }) => e);
    expect(status?.code).toBe(EXIT_CODES.runFailed);
    const json = JSON.parse(status!.stdout) as { workflowId: string; status: string; failure: string };
    expect([json.workflowId, json.status]).toEqual([id, 'FAILED']);
    expect(json.failure).toContain('column amount is missing');
  });

  it('a run started from the Temporal CLI with a relative features path fails at once, naming the field (non-retryable)', async () => {
    const id = uniqueName('tcli-relative');
    await run(inject('temporalCli'), ['workflow', 'start', '--address', config.temporal.address, '--task-queue', config.temporal.taskQueue, '--type', 'batchInference', '--workflow-id', id,
      '--input', JSON.stringify({ model: 'fraud-detector@production', features: 'examples/data/transactions.parquet' })]);
    const err = await w.client.workflow.getHandle(id).result().then(() => undefined, (e: { cause?: { message: string; nonRetryable?: boolean } }) => e);
    expect(err?.cause?.nonRetryable).toBe(true);
    expect(err?.cause?.message).toContain('features: "examples/data/transactions.parquet" is a relative path, which each worker would resolve against its own directory');
  });

  it('says when no worker polls the task queue, instead of waiting silently', async () => {
    const features = await writeVariant(dir, 'cli-nobody.parquet', '*', 'true', 10);
    const queue = uniqueName('nobody-polls');
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/inferflow.js'), 'batch', 'run', '-m', 'fraud-detector', '-f', features], {
      env: { ...process.env, TEMPORAL_ADDRESS: config.temporal.address, INFERFLOW_TASK_QUEUE: queue },
      cwd: REPO_ROOT,
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    try {
      await expect.poll(() => output, { timeout: 30_000, interval: 250 }).toContain(`waiting: no worker polls task queue "${queue}"`);
    } finally {
      child.kill('SIGKILL');
    }
    const id = /started (\S+)/.exec(output)![1]!;
    await w.client.workflow.getHandle(id).terminate('test cleanup');
  });
});
