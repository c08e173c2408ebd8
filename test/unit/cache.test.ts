import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModelCache, ModelRegistry, type ResolvedModel } from '../../lib/registry';
import { SessionCache } from '../../lib/runtime/sessions';
import { FileObjectStore } from '../../lib/storage';
import { EXAMPLE_MODEL_DIR, tempConfig } from '../helpers/env';

let dir: string;
let cleanup: () => Promise<void>;
let registry: ModelRegistry;
let model: ResolvedModel;

beforeEach(async () => {
  ({ dir, cleanup } = await tempConfig());
  registry = new ModelRegistry(new FileObjectStore(path.join(dir, 'registry')));
  const metadata: unknown = JSON.parse(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'metadata.json'), 'utf8'));
  await registry.register(path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), { name: 'fraud', metadata });
  model = (await registry.resolve('fraud')).resolved;
});
afterEach(() => cleanup());

describe('model cache', () => {
  it('downloads once for 16 concurrent loads in a process, and one session serves them all', async () => {
    const cache = new ModelCache(path.join(dir, 'cache'));
    const sessions = new SessionCache();
    const results = await Promise.all(Array.from({ length: 16 }, () => cache.ensure(model, registry)));
    expect(cache.events.filter((e) => e.kind === 'download')).toHaveLength(1);
    expect(new Set(results.map((r) => r.path)).size).toBe(1);
    const loaded = await Promise.all(results.map((r) => sessions.get(model.sha256, r.path)));
    expect(new Set(loaded).size).toBe(1);
    expect(sessions.loads).toBe(1);
    await sessions.close();
  });

  it('a second cache instance (another process) finds the verified file and does not download', async () => {
    await new ModelCache(path.join(dir, 'cache')).ensure(model, registry);
    const other = new ModelCache(path.join(dir, 'cache'));
    expect((await other.ensure(model, registry)).downloaded).toBe(false);
    expect(other.events.map((e) => e.kind)).toEqual(['hit']);
  });

  it('detects a corrupted cached file and fetches it again', async () => {
    const cacheDir = path.join(dir, 'cache');
    const first = await new ModelCache(cacheDir).ensure(model, registry);
    const bytes = await fs.readFile(first.path);
    bytes[100] = bytes[100]! ^ 0xff;
    await fs.writeFile(first.path, bytes);
    const cache = new ModelCache(cacheDir);
    const again = await cache.ensure(model, registry);
    expect(again.downloaded).toBe(true);
    expect(cache.events.map((e) => e.kind)).toEqual(['corrupt', 'download']);
    expect((await fs.readFile(again.path)).equals(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'model.onnx')))).toBe(true);
  });

  it('loads a cached model with the registry gone', async () => {
    const cacheDir = path.join(dir, 'cache');
    await new ModelCache(cacheDir).ensure(model, registry);
    await fs.rm(path.join(dir, 'registry'), { recursive: true });
    expect((await new ModelCache(cacheDir).ensure(model, registry)).downloaded).toBe(false);
  });

  it('evicts least-recently-used models beyond the size bound, never the one just used', async () => {
    const cacheDir = path.join(dir, 'cache');
    await fs.mkdir(cacheDir, { recursive: true });
    const old = path.join(cacheDir, `${'a'.repeat(64)}.onnx`);
    await fs.writeFile(old, Buffer.alloc(model.size));
    await fs.utimes(old, new Date(0), new Date(0));
    const cache = new ModelCache(cacheDir, model.size + 10);
    await cache.ensure(model, registry);
    expect(cache.events.map((e) => e.kind)).toEqual(['download', 'evict']);
    await expect(fs.access(old)).rejects.toThrow();
  });
});
