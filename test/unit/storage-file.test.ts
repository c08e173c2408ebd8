import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../lib/errors';
import { FileObjectStore, PreconditionFailedError, openStore } from '../../lib/storage';

let root: string;
let store: FileObjectStore;

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-store-'));
  store = new FileObjectStore(root);
});
afterEach(() => fs.rm(root, { recursive: true, force: true }));

describe('file object store', () => {
  it('writes, reads, lists and deletes', async () => {
    await store.put('a/b/c.txt', 'hello');
    await store.put('a/d.txt', Buffer.from('x'));
    expect((await store.getBytes('a/b/c.txt')).toString()).toBe('hello');
    expect(await store.list('a')).toEqual(['a/b/c.txt', 'a/d.txt']);
    expect((await store.head('a/d.txt'))?.size).toBe(1);
    await store.delete('a/d.txt');
    expect(await store.head('a/d.txt')).toBeUndefined();
    await expect(store.getBytes('a/d.txt')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('create-only writes: the second writer loses', async () => {
    await store.put('v/1', 'first', { ifNoneMatch: true });
    await expect(store.put('v/1', 'second', { ifNoneMatch: true })).rejects.toBeInstanceOf(PreconditionFailedError);
    expect((await store.getBytes('v/1')).toString()).toBe('first');
  });

  it('compare-and-swap: a stale etag loses, and concurrent swaps have exactly one winner', async () => {
    const first = await store.put('alias', '1');
    const results = await Promise.allSettled(['2', '3', '4', '5'].map((v) => store.put('alias', v, { ifMatch: first.etag })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof PreconditionFailedError)).toHaveLength(3);
  });

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
