import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/env';

const run = promisify(execFile);

async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await testFiles(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('the Redis and PostgreSQL databases of the tests come from the environment', () => {
  it('INFERFLOW_TEST_REDIS_DB and INFERFLOW_TEST_PGDATABASE reach the helper, tempConfig and the setup file (defaults 0 and test)', async () => {
    const probe = `
      const s = require('./test/helpers/services.ts');
      require('./test/helpers/services-env.ts');
      const { tempConfig } = require('./test/helpers/env.ts');
      tempConfig().then(async ({ config, cleanup }) => {
        console.log(JSON.stringify({ url: s.TEST_REDIS_URL, db: s.TEST_POSTGRES.database, redis: config.redisUrl, pg: config.postgresUrl, envRedis: process.env.INFERFLOW_REDIS_URL, envPg: process.env.INFERFLOW_POSTGRES_URL }));
        await cleanup();
      });`;
    const env = { ...process.env };
    delete env.INFERFLOW_REDIS_URL;
    delete env.INFERFLOW_POSTGRES_URL;
    // The defaults are asked for without the session's own isolation variables.
    delete env.INFERFLOW_TEST_REDIS_DB;
    delete env.INFERFLOW_TEST_PGDATABASE;
    const ask = async (extra: Record<string, string>) => JSON.parse((await run(process.execPath, ['--require', 'tsx/cjs', '-e', probe], { cwd: REPO_ROOT, env: { ...env, ...extra } })).stdout) as Record<string, string>;
    const other = await ask({ INFERFLOW_TEST_REDIS_DB: '7', INFERFLOW_TEST_PGDATABASE: 'test_b' });
    expect(other).toEqual({
      url: 'redis://127.0.0.1:6379/7',
      db: 'test_b',
      redis: 'redis://127.0.0.1:6379/7',
      pg: 'postgres://postgres@127.0.0.1:5432/test_b',
      envRedis: 'redis://127.0.0.1:6379/7',
      envPg: 'postgres://postgres@127.0.0.1:5432/test_b',
    });
    const defaults = await ask({});
    expect([defaults.url, defaults.db]).toEqual(['redis://127.0.0.1:6379/0', 'test']);
  });

  it('no test names a Redis database or PostgreSQL database of its own', async () => {
    const allowed = new Set(['helpers/services.ts', 'unit/test-services.test.ts', 'unit/compose.test.ts', 'integration/online-store.contract.test.ts']);
    const offenders: string[] = [];
    for (const file of await testFiles(path.join(REPO_ROOT, 'test'))) {
      const rel = path.relative(path.join(REPO_ROOT, 'test'), file);
      if (allowed.has(rel)) continue;
      const text = await fs.readFile(file, 'utf8');
      if (/redis:\/\/127\.0\.0\.1:6379|database: 'test'|:5432\/test\b|\/test['`]/.test(text)) offenders.push(rel);
    }
    expect(offenders).toEqual([]);
  });
});
