/**
 * lib/sinks loads record sink backends (and the NATS client) on a sink's first write, not on
 * import: a batch worker or the CLI never loads them. Checked in a fresh Node process (tsx's
 * CommonJS loader), whose require cache lists every module it loaded.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/env';

const loadedBackends = (script: string): string[] =>
  JSON.parse(
    execFileSync(process.execPath, ['-r', 'tsx/cjs', '-e', `${script}.then(() => console.log(JSON.stringify(Object.keys(require.cache).filter((f) => /@nats-io|redis-records|record-sink/.test(f)))))`], { cwd: REPO_ROOT, encoding: 'utf8' }),
  ) as string[];

describe('record sink backends load lazily', () => {
  it('importing lib/sinks, creating a NATS record sink and closing NATS connections load no backend', () => {
    const loaded = loadedBackends(`const s = require('./lib/sinks/index.ts');
      s.createRecordSink({ type: 'nats', subject: 'lazy.check' }, { outputDir: '/tmp', dataDir: '/tmp', allowedRoots: [] });
      s.closeNatsConnections()`);
    expect(loaded).toEqual([]);
  });

});
