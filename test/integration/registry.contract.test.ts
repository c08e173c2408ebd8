/**
 * One contract, every backend: the object store and the model registry behave the same on
 * file:// and on S3 (a real SeaweedFS server).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptArtifactError, InvalidInputError, NotFoundError } from '../../lib/errors';
import { ModelCache, ModelRegistry } from '../../lib/registry';
import { PreconditionFailedError } from '../../lib/errors';
import type { ObjectStore } from '../../lib/storage';
import { EXAMPLE_MODEL_DIR, tempConfig } from '../helpers/env';
import { backends, type BackendName } from '../helpers/stores';

const MODEL = path.join(EXAMPLE_MODEL_DIR, 'model.onnx');

describe.each(Object.keys(backends) as BackendName[])('%s backend', (backend) => {
  let store: ObjectStore;
  let cleanupStore: () => Promise<void>;
  let dir: string;
  let cleanupDir: () => Promise<void>;
  let registry: ModelRegistry;
  let metadata: unknown;

  beforeEach(async () => {
    ({ store, cleanup: cleanupStore } = await backends[backend]());
    ({ dir, cleanup: cleanupDir } = await tempConfig());
    registry = new ModelRegistry(store);
    metadata = JSON.parse(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'metadata.json'), 'utf8'));
  });
  afterEach(async () => {
    await cleanupStore();
    await cleanupDir();
  });

  describe('object store', () => {
    it('writes, reads, lists, deletes', async () => {
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

    it('compare-and-swap: of concurrent swaps from one version, exactly one wins', async () => {
      const first = await store.put('alias', '1');
      const results = await Promise.allSettled(['2', '3', '4', '5'].map((v) => store.put('alias', v, { ifMatch: first.etag })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof PreconditionFailedError)).toHaveLength(3);
    });

    it('streams large files up and down intact (multipart on S3)', async () => {
      const big = path.join(dir, 'big.bin');
      const data = Buffer.alloc(12 * 1024 * 1024 + 123);
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
      await fs.writeFile(big, data);
      const info = await store.putFile('big/blob.bin', big, { ifNoneMatch: true });
      expect(info.size).toBe(data.length);
      const chunks: Buffer[] = [];
      for await (const c of await store.getStream('big/blob.bin')) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      await expect(store.putFile('big/blob.bin', big, { ifNoneMatch: true })).rejects.toBeInstanceOf(PreconditionFailedError);
    });

    it('rejects keys that could escape the prefix', async () => {
      for (const key of ['../x', 'a/../../b', '/abs', 'a/%2e%2e/b']) await expect(store.put(key, 'x')).rejects.toBeInstanceOf(InvalidInputError);
    });
  });

  describe('model registry', () => {
    it('registers immutable versions with a manifest read from the model, and resolves references', async () => {
      const { manifest: v1 } = await registry.register(MODEL, { name: 'fraud', metadata, alias: 'production' });
      const { manifest: v2 } = await registry.register(MODEL, { name: 'fraud', metadata });
      expect([v1.version, v2.version]).toEqual([1, 2]);
      expect(v1.signature.inputs).toEqual([{ name: 'features', elementType: 'float32', shape: [null, 7] }]);
      expect(v1.signature.outputs.map((o) => o.name)).toEqual(['label', 'probabilities']);
      expect(v1.artifact.size).toBe((await fs.stat(MODEL)).size);

      expect((await registry.resolve('fraud')).resolved.version).toBe(2);
      expect((await registry.resolve('fraud:1')).resolved.version).toBe(1);
      expect((await registry.resolve('fraud@production')).resolved).toMatchObject({ version: 1, ref: 'fraud@production', uri: `${store.url}/models/fraud/1/model.onnx` });
      await registry.setAlias('fraud', 'production', 2);
      expect((await registry.resolve('fraud@production')).resolved.version).toBe(2);
      expect(await registry.aliases('fraud')).toEqual({ production: 2 });
      expect(await registry.models()).toEqual(['fraud']);
      // A version, once written, cannot be overwritten.
      await expect(store.put('models/fraud/1/manifest.json', '{}', { ifNoneMatch: true })).rejects.toBeInstanceOf(PreconditionFailedError);
    });

    it('concurrent registrations get distinct versions', async () => {
      const results = await Promise.all([1, 2, 3].map(() => registry.register(MODEL, { name: 'race', metadata })));
      expect(results.map((r) => r.manifest.version).sort()).toEqual([1, 2, 3]);
    });

    it('names what is missing', async () => {
      await registry.register(MODEL, { name: 'fraud', metadata });
      await expect(registry.resolve('nope')).rejects.toThrow(/model nope is not in registry/);
      await expect(registry.resolve('fraud:9')).rejects.toThrow(/fraud has no version 9/);
      await expect(registry.resolve('fraud@staging')).rejects.toThrow(/fraud has no alias staging/);
      await expect(registry.setAlias('fraud', 'staging', 9)).rejects.toThrow(NotFoundError);
    });

    it('rejects a file that is not a loadable ONNX model, and registers nothing', async () => {
      const bogus = path.join(dir, 'bogus.onnx');
      await fs.writeFile(bogus, 'this is not a model');
      await expect(registry.register(bogus, { name: 'fraud', metadata })).rejects.toThrow(CorruptArtifactError);
      expect(await registry.versions('fraud')).toEqual([]);
    });

    it('rejects metadata that does not fit the model, listing each problem', async () => {
      const bad = { inputs: [{ name: 'features', columns: ['a', 'b'] }, { name: 'extra', columns: ['c'] }] };
      const err = await registry.register(MODEL, { name: 'fraud', metadata: bad }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as InvalidInputError).problems).toEqual([
        'input features takes 7 features, the pipeline assembles 2 (the model expects 5 more after b)',
        'input extra is not a model input (the model has features)',
      ]);
    });

    it('rejects names and aliases with path tricks', async () => {
      for (const name of ['../x', 'a/b', 'A', '..', 'x%2f..']) await expect(registry.register(MODEL, { name, metadata })).rejects.toThrow(InvalidInputError);
      await registry.register(MODEL, { name: 'fraud', metadata });
      await expect(registry.setAlias('fraud', '../../x', 1)).rejects.toThrow(InvalidInputError);
    });

    it('the cache downloads once, verifies, and catches a truncated artifact (retried once, then a permanent error)', async () => {
      const { manifest } = await registry.register(MODEL, { name: 'fraud', metadata });
      const { resolved } = await registry.resolve('fraud');
      const cache = new ModelCache(path.join(dir, 'cache'));
      expect((await cache.ensure(resolved, registry)).downloaded).toBe(true);
      expect((await cache.ensure(resolved, registry)).downloaded).toBe(false);

      const original = await store.getBytes(manifest.artifact.key);
      await store.put(manifest.artifact.key, original.subarray(0, original.length - 1000));
      const fresh = new ModelCache(path.join(dir, 'cache2'));
      const err = await fresh.ensure(resolved, registry).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CorruptArtifactError);
      expect((err as Error).message).toContain(`expected ${manifest.artifact.size} bytes`);
      expect(await fs.readdir(path.join(dir, 'cache2'))).toEqual([]);
    });
  });
});
