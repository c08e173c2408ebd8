import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBatchInference } from '../../client';
import type { InferflowConfig } from '../../lib/config/env';
import { ModelRegistry } from '../../lib/registry';
import { exampleRegistry, EXAMPLE_FEATURES, REPO_ROOT, tempConfig, uniqueName } from '../helpers/env';
import { writeVariant } from '../helpers/data';
import { startWorker, type RunningWorker } from '../helpers/worker';

let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let registry: ModelRegistry;

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-faults') }));
  registry = await exampleRegistry(config);
  w = await startWorker(config);
});

afterAll(async () => {
  await w?.stop();
  await cleanup?.();
});

/** Attempts per activity type, read from the workflow's history with the Temporal CLI. */
function attemptsByActivity(workflowId: string): Record<string, number> {
  const shown = spawnSync(inject('temporalCli'), ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', config.temporal.address], { encoding: 'utf8' });
  expect(shown.status).toBe(0);
  const events = (JSON.parse(shown.stdout) as { events: Record<string, { activityType?: { name: string }; attempt?: number; scheduledEventId?: string } & Record<string, unknown>>[] }).events;
  const scheduled = new Map<string, string>();
  const attempts: Record<string, number> = {};
  for (const e of events as Record<string, unknown>[]) {
    const s = e.activityTaskScheduledEventAttributes as { activityType: { name: string } } | undefined;
    if (s) scheduled.set(String(e.eventId), s.activityType.name);
    const st = e.activityTaskStartedEventAttributes as { scheduledEventId: string; attempt: number } | undefined;
    if (st) {
      const name = scheduled.get(String(st.scheduledEventId))!;
      attempts[name] = Math.max(attempts[name] ?? 0, st.attempt);
    }
  }
  return attempts;
}

describe('faults', () => {
  it('a sink database locked by another process is retried with backoff, then the run completes', async () => {
    const dbPath = path.join(dir, 'locked.duckdb');
    // Another process opens the database (DuckDB takes an exclusive file lock) for 4 seconds.
    const holder = spawn(process.execPath, [
      '-e',
      `const {DuckDBInstance}=require('@duckdb/node-api');
       DuckDBInstance.create(${JSON.stringify(dbPath)}).then(async (db)=>{const c=await db.connect(); await c.run('CREATE TABLE IF NOT EXISTS hold(x INT)'); console.log('locked'); setTimeout(()=>{c.closeSync(); db.closeSync(); process.exit(0)}, 4000);});`,
    ], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const holderExited = new Promise((r) => holder.once('exit', r));
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`lock holder exited early (${code})`)));
    });
    const small = await writeVariant(dir, 'lock-input.parquet', '*', 'true', 500);
    const handle = await startBatchInference(w.client, { model: 'fraud-detector', features: small, sink: { type: 'duckdb', path: dbPath, table: 'scores' } }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-lock') });
    const result = await handle.result();
    expect(result.rowsOut).toBe(500);
    expect(attemptsByActivity(handle.workflowId).commitPredictions).toBeGreaterThan(1);
    await holderExited;
  });

  it('a model artifact corrupted in the registry is detected by sha256, re-fetched once, then fails non-retryably', async () => {
    // Register a variant (same graph, different bytes: a renamed producer) under another name,
    // then damage the stored artifact. The cache is content-addressed, so it must download it.
    const metadata: unknown = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'examples/models/fraud-detector/metadata.json'), 'utf8'));
    const copy = path.join(dir, 'copy.onnx');
    const original = await fs.readFile(path.join(REPO_ROOT, 'examples/models/fraud-detector/model.onnx'));
    const at = original.indexOf('skl2onnx');
    expect(at).toBeGreaterThan(0);
    original.write('skl2onnY', at);
    await fs.writeFile(copy, original);
    const { manifest } = await registry.register(copy, { name: 'fraud-damaged', metadata });
    const stored = path.join(config.registry.replace('file://', ''), manifest.artifact.key);
    const bytes = await fs.readFile(stored);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
    await fs.writeFile(stored, bytes);

    const handle = await startBatchInference(w.client, { model: 'fraud-damaged', features: EXAMPLE_FEATURES }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-corrupt') });
    const err = await handle.result().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = (err as WorkflowFailedError).cause?.cause as ApplicationFailure;
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.type).toBe('CorruptArtifact');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain(manifest.artifact.sha256);
    // Fetched twice (the second try is the re-fetch), never counted as a download, never left in the cache.
    expect(w.resources.cache.events.filter((e) => e.sha256 === manifest.artifact.sha256 && e.kind === 'download')).toEqual([]);
    await expect(fs.access(w.resources.cache.pathFor(manifest.artifact.sha256))).rejects.toThrow();
  });
});
