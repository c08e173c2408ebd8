import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../lib/errors';
import { FileObjectStore, openStore } from '../../lib/storage';

let root: string;
let store: FileObjectStore;

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-store-'));
  store = new FileObjectStore(root);
});
afterEach(() => fs.rm(root, { recursive: true, force: true }));

describe('file object store: file-specific behaviour', () => {
  // Behaviour shared with S3 (CRUD, conditional writes, multipart) is in test/integration/registry.contract.test.ts.
  it('never leaves the root', async () => {
    await expect(store.put('../escape', 'x')).rejects.toThrow(/invalid object key/);
    await fs.symlink('/etc', path.join(root, 'link'));
    expect(await store.head('link')).toBeUndefined();
    await expect(store.getBytes('link/hostname')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('opens locations by scheme and rejects unknown ones', () => {
    expect(openStore(`file://${root}`).url).toBe(`file://${root}`);
    expect(openStore(root).url).toBe(`file://${root}`);
    expect(() => openStore('ftp://host/x')).toThrow(/unsupported storage location/);
  });
});
