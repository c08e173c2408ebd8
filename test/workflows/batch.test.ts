import { ApplicationFailure } from '@temporalio/common';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import { SEARCH_ATTRIBUTES, progressQuery, startBatchInference, type BatchInferenceInput } from '../../client';
import { readRedisPrediction } from '../../lib/sinks';
import { deleteByPrefix } from '../helpers/redis';
import type { InferflowConfig } from '../../lib/config/env';
import { EXAMPLE_FEATURES, REPO_ROOT, exampleRegistry, tempConfig, uniqueName } from '../helpers/env';
import { readOutput, referenceScores, writeVariant } from '../helpers/data';
import { startWorker, type RunningWorker } from '../helpers/worker';
import { permanentFailureOf } from '../helpers/failures';
import { recordHistory as saveHistory } from '../helpers/histories';
import { TEST_REDIS_URL } from '../helpers/services';

let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-batch') }));
  await exampleRegistry(config);
  w = await startWorker(config);
});

afterAll(async () => {
  await w?.stop();
  await cleanup?.();
});

async function run(input: BatchInferenceInput) {
  const handle = await startBatchInference(w.client, input, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-batch') });
  return { handle, result: await handle.result() };
}

/** Run a workflow that must fail; return its ApplicationFailure cause. */
let lastWorkflowId = '';
async function runFailing(input: unknown): Promise<ApplicationFailure> {
  const handle = await w.client.workflow.start('batchInference', { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-bad'), args: [input] });
  lastWorkflowId = handle.workflowId;
  return permanentFailureOf(handle);
}

/** `npm run record-histories` refreshes the histories the replay test checks. */
const recordHistory = (workflowId: string, file: string) => saveHistory(inject('temporalCli'), config.temporal.address, workflowId, file);

async function stagedRuns(): Promise<string[]> {
  return fs.readdir(path.join(dir, 'runs')).catch(() => []);
}

describe('batchInference on a real Temporal server', () => {
  it('predicts every row exactly as ONNX Runtime does when called directly, and commits the output', async () => {
    const { handle, result } = await run({ model: 'fraud-detector@production', features: EXAMPLE_FEATURES, shardSize: 7_000, maxConcurrency: 3, asOf: '2026-11-24T03:00:00Z' });

    expect(result.rowsIn).toBe(50_000);
    expect(result.rowsOut).toBe(50_000);
    expect(result.shards).toBe(8);
    expect(result.model).toMatchObject({ name: 'fraud-detector', version: 1, ref: 'fraud-detector@production' });
    expect(result.model.sha256).toMatch(/^[0-9a-f]{64}$/);

    const rows = await readOutput(result.output.location);
    const ref = await referenceScores(EXAMPLE_FEATURES);
    expect(rows.length).toBe(ref.size);
    let mismatches = 0;
    for (const r of rows) {
      const e = ref.get(r.transaction_id);
      if (!e || e.score !== r.score || e.label !== r.label) mismatches++;
    }
    expect(mismatches).toBe(0);
    expect(new Set(rows.map((r) => r.transaction_id)).size).toBe(rows.length);
    expect(result.asOf).toBe('2026-11-24T03:00:00.000Z');
    expect(rows.every((r) => r.run_id === result.runId && r.model_sha256 === result.model.sha256 && r.model_version === 1 && r.as_of === '2026-11-24T03:00:00Z')).toBe(true);

    await expect(fs.access(path.join(result.output.location, '_SUCCESS'))).resolves.toBeUndefined();
    expect(await stagedRuns()).toEqual([]);
    // Two steps around the shards: planBatch resolves the model, commitPredictions removes the staging.
    const steps = ((await handle.fetchHistory()).events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(steps).toEqual(['planBatch', ...Array<string>(8).fill('predictShard'), 'commitPredictions']);

    await recordHistory(handle.workflowId, 'batchInference-success.json');

    const desc = await handle.describe();
    expect(desc.typedSearchAttributes.get(SEARCH_ATTRIBUTES.pipeline)).toBe('fraud-detector');
    expect(desc.typedSearchAttributes.get(SEARCH_ATTRIBUTES.model)).toBe('fraud-detector');
    expect(desc.typedSearchAttributes.get(SEARCH_ATTRIBUTES.modelVersion)).toBe('1');
    expect(desc.typedSearchAttributes.get(SEARCH_ATTRIBUTES.asOf)?.toISOString()).toBe('2026-11-24T03:00:00.000Z');
  });

  it('fans large runs out through child workflows, keeping every history small', async () => {
    const { handle, result } = await run({ model: 'fraud-detector', features: EXAMPLE_FEATURES, shardSize: 2_000, shardsPerChild: 10, maxConcurrency: 2 });
    expect(result.shards).toBe(25);
    expect(result.rowsOut).toBe(50_000);
    const children = [0, 10, 20].map((first) => w.client.workflow.getHandle(`${handle.workflowId}/shards-${first}`));
    const descs = await Promise.all(children.map((c) => c.describe()));
    expect(descs.map((d) => [d.type, d.status.name])).toEqual(Array(3).fill(['batchShardGroup', 'COMPLETED']));
    expect(await Promise.all(children.map((c) => c.result()))).toEqual([20_000, 20_000, 10_000]);
    await recordHistory(handle.workflowId, 'batchInference-children.json');
    await recordHistory(children[0]!.workflowId, 'batchShardGroup.json');
    // The parent's history holds three child executions and a few progress signals, not 25 shards.
    const parentEvents = (await handle.fetchHistory()).events ?? [];
    expect(parentEvents.filter((e) => e.activityTaskScheduledEventAttributes).length).toBe(2); // plan (which resolves the model), commit (which cleans up)
    expect(parentEvents.length).toBeLessThan(100);
    const progress = await handle.query(progressQuery);
    expect(progress).toMatchObject({ phase: 'done', shardsDone: 25, shardsTotal: 25, rowsDone: 50_000 });
    const rows = await readOutput(result.output.location);
    const ref = await referenceScores(EXAMPLE_FEATURES);
    expect(rows.filter((r) => ref.get(r.transaction_id)?.score !== r.score).length).toBe(0);
    expect(new Set(rows.map((r) => r.transaction_id)).size).toBe(50_000);
  });

  it('publishes to Redis for online reading: the pointer moves to the run once it is whole', async () => {
    const keyPrefix = uniqueName('t');
    const { result } = await run({ model: 'fraud-detector', features: EXAMPLE_FEATURES, shardSize: 20_000, sink: { type: 'redis', keyPrefix } });
    const redis = new Redis(TEST_REDIS_URL);
    try {
      expect(await redis.get(`${keyPrefix}:fraud-detector:current`)).toBe(result.runId);
      const ref = await referenceScores(EXAMPLE_FEATURES);
      for (const id of ['tx-8-0000000', 'tx-8-0004614', 'tx-8-0049999']) {
        const got = await readRedisPrediction(redis, keyPrefix, 'fraud-detector', id);
        expect(Math.fround(got!.score as number)).toBe(ref.get(id)!.score);
        expect(got).toMatchObject({ label: ref.get(id)!.label, model_version: 1 });
      }
      expect((await redis.keys(`${keyPrefix}:run:${result.runId}:tx-*`)).length).toBe(50_000);
    } finally {
      await deleteByPrefix(redis, keyPrefix);
      await redis.quit();
    }
  });

  it('reads CSV input too and reuses the cached model', async () => {
    const csv = await writeVariant(dir, 'small.csv', '*', 'true', 1234);
    await w.resources.cache.ensure((await w.resources.registry.resolve('fraud-detector')).resolved, w.resources.registry); // cached (also when this test runs alone)
    const downloadsBefore = w.resources.cache.events.filter((e) => e.kind === 'download').length;
    const { result } = await run({ model: 'fraud-detector', features: csv, sink: { type: 'duckdb', table: 'fraud_scores' } });
    expect(result.rowsOut).toBe(1234);
    expect(result.output.location).toContain('#fraud_scores');
    expect(w.resources.cache.events.filter((e) => e.kind === 'download').length).toBe(downloadsBefore);
  });

  it('starts from the Temporal CLI with the documented JSON input', async () => {
    const workflowId = uniqueName('wf-cli');
    const input = JSON.stringify({ model: 'fraud-detector@production', features: EXAMPLE_FEATURES, shardSize: 25000 });
    const started = spawnSync(
      inject('temporalCli'),
      ['workflow', 'start', '--type', 'batchInference', '--task-queue', config.temporal.taskQueue, '--workflow-id', workflowId, '--input', input, '--address', config.temporal.address],
      { encoding: 'utf8' },
    );
    expect(started.stderr).toBe('');
    expect(started.status).toBe(0);
    const result = (await w.client.workflow.getHandle(workflowId).result()) as { rowsOut: number; shards: number; model: { version: number } };
    expect(result).toMatchObject({ rowsOut: 50_000, shards: 2, model: { version: 1 } });
  });

  describe('bad input fails fast with a typed, non-retryable error and leaves nothing behind', () => {
    const outputDirs = async () => fs.readdir(path.join(dir, 'predictions', 'bad')).catch(() => []);

    it('unknown model', async () => {
      const f = await runFailing({ model: 'no-such-model', features: EXAMPLE_FEATURES, pipeline: 'bad' });
      expect(f.type).toBe('NotFound');
      expect(f.message).toContain('no-such-model');
    });

    it('unknown alias', async () => {
      const f = await runFailing({ model: 'fraud-detector@nope', features: EXAMPLE_FEATURES, pipeline: 'bad' });
      expect(f.type).toBe('NotFound');
      expect(f.message).toContain('alias nope');
    });

    it('missing feature file', async () => {
      const f = await runFailing({ model: 'fraud-detector', features: path.join(dir, 'missing.parquet'), pipeline: 'bad' });
      expect(f.type).toBe('NotFound');
      expect(f.message).toContain('missing.parquet');
    });

    it('feature file missing columns: every one is named', async () => {
      const file = await writeVariant(dir, 'no-amount.parquet', '* EXCLUDE (amount, merchant_risk)');
      const f = await runFailing({ model: 'fraud-detector', features: file, pipeline: 'bad' });
      expect(f.type).toBe('SchemaMismatch');
      expect(f.message).toContain('column amount is missing');
      expect(f.message).toContain('column merchant_risk is missing');
    });

    it('wrong dtype', async () => {
      const file = await writeVariant(dir, 'str-amount.parquet', "* REPLACE (CAST(amount AS VARCHAR) || ' EUR' AS amount)");
      const f = await runFailing({ model: 'fraud-detector', features: file, pipeline: 'bad' });
      expect(f.type).toBe('SchemaMismatch');
      expect(f.message).toContain('column amount is VARCHAR');
    });

    it('empty input', async () => {
      const file = await writeVariant(dir, 'empty.parquet', '*', 'false');
      const f = await runFailing({ model: 'fraud-detector', features: file, pipeline: 'bad' });
      expect(f.type).toBe('EmptyInput');
    });

    it('NaN and null feature values name the row (and shards in flight are cancelled)', async () => {
      const file = await writeVariant(
        dir,
        'nan.parquet',
        "* REPLACE (CASE WHEN transaction_id = 'tx-8-0000042' THEN 'NaN'::DOUBLE WHEN transaction_id = 'tx-8-0000043' THEN NULL ELSE amount END AS amount)",
      );
      const f = await runFailing({ model: 'fraud-detector', features: file, pipeline: 'bad', shardSize: 5000 });
      expect(f.type).toBe('InvalidValue');
      expect(f.message).toContain('transaction_id=tx-8-0000042: amount = NaN');
      expect(f.message).toContain('transaction_id=tx-8-0000043');
      expect(await stagedRuns()).toEqual([]);
      expect((await w.client.workflow.getHandle(lastWorkflowId).query(progressQuery)).shardsFailed).toBe(1);
    });

    it('invalid input object: every problem listed before any work', async () => {
      const f = await runFailing({ features: 42, shardSize: -1, colour: 'red' });
      expect(f.type).toBe('InvalidInput');
      expect(f.message).toContain('model: required');
      expect(f.message).toContain('features: required');
      expect(f.message).toContain('shardSize');
      expect(f.message).toContain('colour: unknown field');
    });

    it('batchShardGroup checks its input like the other workflows: a malformed group fails before any shard, naming every field', async () => {
      const handle = await w.client.workflow.start('batchShardGroup', {
        taskQueue: config.temporal.taskQueue,
        workflowId: uniqueName('wf-bad-group'),
        args: [{ ctx: { runId: 'r', snapshotPath: '/nowhere.parquet', idColumn: null, sink: { type: 'parquet' }, rowsIn: 10, shardSize: 0 }, first: -1, count: 1, maxConcurrency: 1, parentWorkflowId: 'p', extra: true }],
      });
      const f = await permanentFailureOf(handle);
      expect(f.type).toBe('InvalidInput');
      expect(f.nonRetryable).toBe(true);
      for (const field of ['ctx.model', 'ctx.asOf', 'ctx.shardSize', 'first', 'extra: unknown field']) expect(f.message).toContain(field);
      const events = (await handle.fetchHistory()).events ?? [];
      expect(events.filter((e) => e.activityTaskScheduledEventAttributes)).toEqual([]);
    });

    it('invalid sink', async () => {
      const f = await runFailing({ model: 'fraud-detector', features: EXAMPLE_FEATURES, pipeline: 'bad', sink: { type: 'duckdb', table: 'x; drop table y' } });
      expect(f.type).toBe('InvalidInput');
      expect(f.message).toContain('sink.table');
    });

    it('a features file, a symlink or a sink outside the allowed roots: PermissionDenied naming the path and the roots', async () => {
      const elsewhere = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-outside-'));
      try {
        const file = await writeVariant(elsewhere, 'outside.parquet', '*', 'true', 100);
        const f = await runFailing({ model: 'fraud-detector', features: file, pipeline: 'bad' });
        expect(f.type).toBe('PermissionDenied');
        expect(f.message).toContain(`features: ${file} is outside the locations this worker may read and write (allowed: ${config.allowedRoots.join(', ')}`);
        const link = path.join(dir, 'link-out.parquet');
        await fs.symlink(file, link);
        expect((await runFailing({ model: 'fraud-detector', features: link, pipeline: 'bad' })).type).toBe('PermissionDenied');
        expect((await runFailing({ model: 'fraud-detector', features: path.join(dir, '..', path.basename(elsewhere), 'outside.parquet'), pipeline: 'bad' })).type).toBe('PermissionDenied');
        // Output into the worker's source tree.
        const target = path.join(REPO_ROOT, 'lib', uniqueName('written-by-input'));
        const sink = await runFailing({ model: 'fraud-detector', features: EXAMPLE_FEATURES, pipeline: 'bad', sink: { type: 'parquet', path: target } });
        expect(sink.type).toBe('PermissionDenied');
        expect(sink.message).toContain(`sink.path: ${target} is outside`);
        await expect(fs.access(target)).rejects.toThrow();
      } finally {
        await fs.rm(elsewhere, { recursive: true, force: true });
      }
    });

    it('left no committed output and no staged files', async () => {
      expect(await outputDirs()).toEqual([]);
      expect(await stagedRuns()).toEqual([]);
    });
  });
});
