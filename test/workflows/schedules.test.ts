import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BatchInferenceResult } from '../../client';
import { createBatchSchedule } from '../../client/schedules';
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
let features: string;

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-schedules') }));
  await exampleRegistry(config);
  w = await startWorker(config);
  features = await writeVariant(dir, 'small.parquet', '*', 'true', 2_000);
});
afterAll(async () => {
  await w?.stop();
  await cleanup?.();
});

describe('schedules', () => {
  it('a backfill runs once per scheduled time, each with that time as its as-of time', async () => {
    const scheduleId = uniqueName('sched-daily');
    const handle = await createBatchSchedule(w.client, { scheduleId, input: { model: 'fraud-detector@production', features }, taskQueue: config.temporal.taskQueue, every: ['1d'], overlap: 'allow-all' });
    try {
      await handle.backfill({ start: new Date('2026-11-20T00:00:00Z'), end: new Date('2026-11-22T12:00:00Z') });
      let actions: { scheduledAt: Date; workflowId: string }[] = [];
      for (let i = 0; i < 100 && actions.length < 3; i++) {
        const d = await handle.describe();
        actions = d.info.recentActions.map((a) => ({ scheduledAt: a.scheduledAt, workflowId: a.action.type === 'startWorkflow' ? a.action.workflow.workflowId : '' }));
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(actions.map((a) => a.scheduledAt.toISOString()).sort()).toEqual(['2026-11-20T00:00:00.000Z', '2026-11-21T00:00:00.000Z', '2026-11-22T00:00:00.000Z']);
      for (const a of actions) {
        expect(a.workflowId.startsWith(scheduleId)).toBe(true);
        const result = (await w.client.workflow.getHandle(a.workflowId).result()) as BatchInferenceResult;
        expect(result.asOf).toBe(a.scheduledAt.toISOString());
        expect(result.rowsOut).toBe(2_000);
      }
    } finally {
      await handle.delete();
    }
  });

  it('is created with the Temporal CLI as docs/operations.md shows, and its runs take the scheduled time as as-of time', async () => {
    const id = uniqueName('tcli-nightly');
    const temporal = (...args: string[]) => run(inject('temporalCli'), [...args, '--address', config.temporal.address]);
    await temporal('schedule', 'create', '--schedule-id', id, '--cron', '0 3 * * *', '--time-zone', 'UTC', '--overlap-policy', 'Skip', '--workflow-id', id,
      '--task-queue', config.temporal.taskQueue, '--type', 'batchInference', '--input', JSON.stringify({ model: 'fraud-detector@production', features }),
      '--search-attribute', 'InferflowPipeline="fraud-detector"');
    try {
      await temporal('schedule', 'backfill', '--schedule-id', id, '--start-time', '2026-11-24T00:00:00Z', '--end-time', '2026-11-24T12:00:00Z', '--overlap-policy', 'AllowAll');
      const handle = w.client.schedule.getHandle(id);
      let workflowId = '';
      for (let i = 0; i < 100 && !workflowId; i++) {
        const a = (await handle.describe()).info.recentActions[0];
        workflowId = a?.action.type === 'startWorkflow' ? a.action.workflow.workflowId : '';
        if (!workflowId) await new Promise((r) => setTimeout(r, 200));
      }
      const result = (await w.client.workflow.getHandle(workflowId).result()) as BatchInferenceResult;
      expect(result.asOf).toBe('2026-11-24T03:00:00.000Z');
    } finally {
      await temporal('schedule', 'delete', '--schedule-id', id);
    }
  });

  it('is managed from the inferflow CLI', async () => {
    const spec = path.join(dir, 'nightly.json');
    await fs.writeFile(spec, JSON.stringify({ model: 'fraud-detector@production', features: 'small.parquet', shardSize: 1000 }));
    const id = uniqueName('cli-nightly');
    const env = { ...process.env, TEMPORAL_ADDRESS: config.temporal.address, INFERFLOW_TASK_QUEUE: config.temporal.taskQueue };
    const cli = (...args: string[]) => run(process.execPath, [path.join(REPO_ROOT, 'bin/inferflow.js'), 'schedule', ...args], { env, cwd: REPO_ROOT });

    expect((await cli('create', spec, '--id', id, '--cron', '0 3 * * *', '--timezone', 'Europe/Berlin', '--catchup', '1h', '--paused')).stdout).toContain(`created schedule ${id}`);
    const described = (await cli('describe', id)).stdout;
    expect(described).toContain('paused');
    expect(described).toMatch(/spec\s+cron 0 3 \* \* \* \(Europe\/Berlin\)/);
    expect(described).toMatch(/catch-up window\s+1h\n/);
    expect(described).toMatch(/overlap\s+skip\n/);
    const json = JSON.parse((await cli('describe', id, '--json')).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ scheduleId: id, state: 'paused', cron: ['0 3 * * *'], every: [], timezone: 'Europe/Berlin', overlap: 'skip', catchupWindow: '1h', workflowType: 'batchInference' });
    const listed = JSON.parse((await cli('list', '--json')).stdout) as { scheduleId: string; cron: string[] }[];
    expect(listed.find((s) => s.scheduleId === id)?.cron).toEqual(['0 3 * * *']);
    const nope = await cli('describe', `${id}-nope`).then(() => undefined, (e: { stderr: string; code: number }) => e);
    expect(nope?.code).toBe(EXIT_CODES.notFound);
    expect(nope?.stderr.trim()).toBe(`no such schedule: ${id}-nope`);
    expect(described).toContain(path.join(dir, 'small.parquet'));
    expect((await cli('list')).stdout).toContain(id);
    await cli('unpause', id, '--note', 'go');
    expect((await cli('describe', id)).stdout).toMatch(/state\s+active \(go\)/);
    const bad = await cli('create', spec, '--id', `${id}-x`).then(() => undefined, (e: { stderr: string; code: number }) => e);
    expect(bad?.code).toBe(EXIT_CODES.badInput);
    expect(bad?.stderr).toContain('give --cron or --every');
    await cli('delete', id);
    expect((await cli('list')).stdout).not.toContain(id);
  });
});
