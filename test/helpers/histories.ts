import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';

const HISTORIES_DIR = path.resolve(__dirname, '..', 'workflows', 'histories');

/**
 * With RECORD_HISTORIES=1 (`npm run record-histories`), save a finished workflow's history for
 * test/workflows/replay.test.ts, and its workflow id (child ids derive from it, so replay needs
 * the original). Without it, nothing happens.
 */
export async function recordHistory(cli: string, address: string, workflowId: string, file: string): Promise<void> {
  if (!process.env.RECORD_HISTORIES) return;
  const shown = spawnSync(cli, ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', address], { encoding: 'utf8' });
  expect(shown.status).toBe(0);
  await fs.writeFile(path.join(HISTORIES_DIR, file), shown.stdout);
  const idsFile = path.join(HISTORIES_DIR, 'workflow-ids.json');
  const ids = JSON.parse(await fs.readFile(idsFile, 'utf8').catch(() => '{}')) as Record<string, string>;
  await fs.writeFile(idsFile, JSON.stringify({ ...ids, [file]: workflowId }, null, 2) + '\n');
}
