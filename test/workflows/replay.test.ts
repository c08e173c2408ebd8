import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as workflows from '../../workflows';
import { workflowBundle } from '../helpers/worker';

const HISTORIES = path.join(__dirname, 'histories');

/**
 * Every recorded history must replay against the current workflow code without
 * nondeterminism, and every workflow the worker registers has one. Until 1.0 an incompatible
 * workflow change re-records them with `npm run record-histories` (docs/architecture.md,
 * "Workflow versioning").
 */
describe('replay of recorded histories', async () => {
  const files = (await fs.readdir(HISTORIES)).filter((f) => f.endsWith('.json') && f !== 'workflow-ids.json').sort();
  const ids = JSON.parse(await fs.readFile(path.join(HISTORIES, 'workflow-ids.json'), 'utf8').catch(() => '{}')) as Record<string, string>;

  it('has a recording of every registered workflow type', async () => {
    const recorded = new Set<string>();
    for (const file of files) {
      const raw = JSON.parse(await fs.readFile(path.join(HISTORIES, file), 'utf8')) as { events: { workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }[] };
      const type = raw.events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
      if (type) recorded.add(type);
    }
    expect([...recorded].sort()).toEqual(Object.keys(workflows).sort());
  });

  for (const file of files) {
    it(`replays ${file}`, async () => {
      const history = historyFromJSON(JSON.parse(await fs.readFile(path.join(HISTORIES, file), 'utf8')));
      await expect(Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, ids[file] ?? file)).resolves.toBeUndefined();
    });
  }

  it('detects nondeterminism (the check can fail)', async () => {
    // Replaying a batch history against a workflow that schedules a different first activity must fail.
    const file = files.find((f) => f.startsWith('batchInference'))!;
    const raw = JSON.parse(await fs.readFile(path.join(HISTORIES, file), 'utf8')) as { events: { activityTaskScheduledEventAttributes?: { activityType?: { name?: string } } }[] };
    const first = raw.events.find((e) => e.activityTaskScheduledEventAttributes)!;
    first.activityTaskScheduledEventAttributes!.activityType!.name = 'somethingElse';
    await expect(Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, historyFromJSON(raw), 'tampered')).rejects.toThrow(/[Nn]ondetermin/);
  });
});
