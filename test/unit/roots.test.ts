import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermissionDeniedError } from '../../lib/errors';
import { resolveFiles } from '../../lib/features/source';
import { checkFilesAllowed, checkLocationAllowed } from '../../lib/storage/roots';

let base: string;
let root: string;
let outside: string;

beforeAll(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-roots-'));
  root = path.join(base, 'data');
  outside = path.join(base, 'secret');
  await fs.mkdir(path.join(root, 'in'), { recursive: true });
  await fs.mkdir(outside, { recursive: true });
  await fs.writeFile(path.join(root, 'in', 'ok.csv'), 'a\n1\n');
  await fs.writeFile(path.join(outside, 'leak.csv'), 'a\n2\n');
  // Symlinks inside the root that lead out of it: to a file, and to a directory.
  await fs.symlink(path.join(outside, 'leak.csv'), path.join(root, 'in', 'link.csv'));
  await fs.symlink(outside, path.join(root, 'escape'));
});

afterAll(async () => {
  await fs.rm(base, { recursive: true, force: true });
});

const denied = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e as PermissionDeniedError;
  }
  throw new Error('expected PermissionDenied');
};

describe('allowed roots', () => {
  it('accepts paths inside a root, existing or not yet created', () => {
    expect(() => checkLocationAllowed(path.join(root, 'in', 'ok.csv'), [root], 'features')).not.toThrow();
    expect(() => checkLocationAllowed(`file://${path.join(root, 'out', 'new', 'run')}`, [root], 'sink.path')).not.toThrow();
    expect(() => checkLocationAllowed(path.join(root, 'in', '*.csv'), [root], 'spine')).not.toThrow();
    expect(() => checkLocationAllowed(root, [root], 'sink.path')).not.toThrow();
  });

  it('rejects `..`, sibling prefixes and symlinks that lead out, naming the path, the field and the roots', () => {
    const e = denied(() => checkLocationAllowed(path.join(root, '..', 'secret', 'leak.csv'), [root], 'views[0].source.path'));
    expect(e).toBeInstanceOf(PermissionDeniedError);
    expect(e.type).toBe('PermissionDenied');
    expect(e.permanent).toBe(true);
    expect(e.message).toBe(`views[0].source.path: ${path.join(root, '..', 'secret', 'leak.csv')} is outside the locations this worker may read and write (allowed: ${root}; add more with INFERFLOW_ALLOWED_ROOTS)`);
    expect(() => checkLocationAllowed(`${root}-other/x.csv`, [root], 'features')).toThrow(PermissionDeniedError);
    expect(() => checkLocationAllowed(path.join(root, 'in', 'link.csv'), [root], 'features')).toThrow(PermissionDeniedError);
    expect(() => checkLocationAllowed(path.join(root, 'escape', 'leak.csv'), [root], 'features')).toThrow(PermissionDeniedError);
    expect(() => checkLocationAllowed(path.join(root, 'escape', 'new-dir', 'part.parquet'), [root], 'sink.path')).toThrow(PermissionDeniedError);
    expect(() => checkLocationAllowed(path.join(root, 'escape', '*.csv'), [root], 'spine')).toThrow(PermissionDeniedError);
    expect(() => checkFilesAllowed([path.join(root, 'in', 'ok.csv'), path.join(root, 'in', 'link.csv')], [root], 'spine')).toThrow(/in\/link\.csv is outside/);
    expect(() => checkLocationAllowed('http://example.com/x.csv', [root], 'features')).toThrow(PermissionDeniedError);
  });

  it('confines s3:// locations by bucket and prefix', () => {
    const roots = [root, 's3://lake/features', 's3://scratch'];
    for (const ok of ['s3://lake/features/a.parquet', 's3://lake/features', 's3://lake/features/**/*.parquet', 's3://scratch/any/key.csv']) {
      expect(() => checkLocationAllowed(ok, roots, 'features'), ok).not.toThrow();
    }
    for (const bad of ['s3://lake/features-private/a.parquet', 's3://lake/other/a.parquet', 's3://lake', 's3://other/features/a.parquet']) {
      expect(() => checkLocationAllowed(bad, roots, 'features'), bad).toThrow(PermissionDeniedError);
    }
  });

  it('resolveFiles checks every file a glob expands to, through symlinks', async () => {
    const expand = async (pattern: string) => (await fs.readdir(path.dirname(pattern))).map((f) => path.join(path.dirname(pattern), f));
    await expect(resolveFiles({ location: path.join(root, 'in', '*.csv'), downloadDir: base, field: 'spine', expand, allowedRoots: [root] })).rejects.toThrow(/spine: .*link\.csv is outside/);
    await expect(resolveFiles({ location: path.join(root, 'in', 'ok.csv'), downloadDir: base, field: 'spine', expand, allowedRoots: [root] })).resolves.toMatchObject({ files: [path.join(root, 'in', 'ok.csv')] });
  });
});
