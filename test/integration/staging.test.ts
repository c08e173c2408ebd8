import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RunStaging, sweepStaleRuns } from '../../lib/pipeline/staging';
import { openStore } from '../../lib/storage';
import { uniqueName } from '../helpers/env';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-staging-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe.each([
  ['file://', () => `file://${path.join(dir, 'shared')}`],
  ['s3://', () => `s3://${inject('s3').bucket}/${uniqueName('staging')}`],
])('RunStaging on %s', (_name, url) => {
  it('publishes, lists, fetches (whole or absent, also with two concurrent callers) and discards a run', async () => {
    const staging = new RunStaging(openStore(url()));
    const src = path.join(dir, 'src.bin');
    await fs.writeFile(src, Buffer.alloc(300_000, 7));
    await staging.publish('run-1', 'snapshot.parquet', src);
    await staging.publish('run-1', 'parts/part-00000.parquet', src);
    await staging.publish('run-2', 'parts/part-00000.parquet', src);
    expect(await staging.list('run-1')).toEqual(['parts/part-00000.parquet', 'snapshot.parquet']);
    expect(await staging.list('run-1', 'parts/')).toEqual(['parts/part-00000.parquet']);

    const local = path.join(dir, uniqueName('m'), 'runs', 'run-1', 'snapshot.parquet');
    await Promise.all([staging.fetch('run-1', 'snapshot.parquet', local), staging.fetch('run-1', 'snapshot.parquet', local)]);
    expect(await fs.readFile(local)).toEqual(await fs.readFile(src));
    expect((await fs.readdir(path.dirname(local))).filter((f) => f.includes('.fetch-'))).toEqual([]);
    await expect(staging.fetch('run-1', 'nope.parquet', `${local}.2`)).rejects.toThrow();
    await expect(fs.stat(`${local}.2`)).rejects.toThrow();

    expect(await staging.discard('run-1')).toBe(2);
    expect(await staging.list('run-1')).toEqual([]);
    expect(await staging.list('run-2')).toEqual(['parts/part-00000.parquet']);
    expect(() => staging.key('../x', 'a')).toThrow(/invalid run id/);
  });
});

describe('sweepStaleRuns', () => {
  it('removes only run directories untouched for longer than the limit', async () => {
    const runs = path.join(dir, 'runs');
    await fs.mkdir(path.join(runs, 'old', 'parts'), { recursive: true });
    await fs.mkdir(path.join(runs, 'new'), { recursive: true });
    const old = new Date(Date.now() - 3 * 86_400_000);
    await fs.utimes(path.join(runs, 'old'), old, old);
    expect(await sweepStaleRuns(runs, 86_400_000)).toEqual([path.join(runs, 'old')]);
    expect(await fs.readdir(runs)).toEqual(['new']);
    expect(await sweepStaleRuns(path.join(dir, 'missing'), 1)).toEqual([]);
  });
});
