import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptArtifactError, InvalidInputError, NotFoundError } from '../../lib/errors';
import { ModelRegistry } from '../../lib/registry';
import { FileObjectStore } from '../../lib/storage';
import { EXAMPLE_MODEL_DIR, tempConfig } from '../helpers/env';

const MODEL = path.join(EXAMPLE_MODEL_DIR, 'model.onnx');
let dir: string;
let cleanup: () => Promise<void>;
let registry: ModelRegistry;
let metadata: unknown;

beforeEach(async () => {
  ({ dir, cleanup } = await tempConfig());
  registry = new ModelRegistry(new FileObjectStore(path.join(dir, 'registry')));
  metadata = JSON.parse(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'metadata.json'), 'utf8'));
});
afterEach(() => cleanup());

describe('model registry (file://)', () => {
  it('registers versions with a manifest read from the model, and resolves references', async () => {
    const { manifest: v1 } = await registry.register(MODEL, { name: 'fraud', metadata, alias: 'production' });
    const { manifest: v2 } = await registry.register(MODEL, { name: 'fraud', metadata });
    expect([v1.version, v2.version]).toEqual([1, 2]);
    expect(v1.signature.inputs).toEqual([{ name: 'features', elementType: 'float32', shape: [null, 7] }]);
    expect(v1.signature.outputs.map((o) => o.name)).toEqual(['label', 'probabilities']);
    expect(v1.artifact.sha256).toMatch(/^[0-9a-f]{64}$/);

    expect((await registry.resolve('fraud')).resolved.version).toBe(2);
    expect((await registry.resolve('fraud:1')).resolved.version).toBe(1);
    expect((await registry.resolve('fraud@production')).resolved).toMatchObject({ version: 1, ref: 'fraud@production' });
    await registry.setAlias('fraud', 'production', 2);
    expect((await registry.resolve('fraud@production')).resolved.version).toBe(2);
    expect(await registry.aliases('fraud')).toEqual({ production: 2 });
    expect(await registry.models()).toEqual(['fraud']);
  });

  it('reuses an identical artifact when asked', async () => {
    await registry.register(MODEL, { name: 'fraud', metadata });
    const again = await registry.register(MODEL, { name: 'fraud', metadata, reuseIdentical: true });
    expect(again.created).toBe(false);
    expect(await registry.versions('fraud')).toEqual([1]);
  });

  it('names what is missing', async () => {
    await registry.register(MODEL, { name: 'fraud', metadata });
    await expect(registry.resolve('nope')).rejects.toThrow(NotFoundError);
    await expect(registry.resolve('fraud:9')).rejects.toThrow(/fraud has no version 9/);
    await expect(registry.resolve('fraud@staging')).rejects.toThrow(/fraud has no alias staging/);
    await expect(registry.setAlias('fraud', 'staging', 9)).rejects.toThrow(NotFoundError);
  });

  it('rejects a file that is not a loadable ONNX model, and registers nothing', async () => {
    const bogus = path.join(dir, 'bogus.onnx');
    await fs.writeFile(bogus, 'this is not a model');
    await expect(registry.register(bogus, { name: 'fraud', metadata })).rejects.toThrow(CorruptArtifactError);
    await expect(registry.register(path.join(dir, 'absent.onnx'), { name: 'fraud', metadata })).rejects.toThrow(NotFoundError);
    expect(await registry.versions('fraud')).toEqual([]);
  });

  it('rejects metadata that does not fit the model, listing each problem', async () => {
    const bad = { inputs: [{ name: 'features', columns: ['a', 'b'] }, { name: 'extra', columns: ['c'] }] };
    const err = await registry.register(MODEL, { name: 'fraud', metadata: bad }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).problems).toEqual([
      'input features takes 7 features, metadata lists 2 columns',
      'metadata names input extra, the model has features',
    ]);
  });

  it('rejects names that could escape the registry', async () => {
    for (const name of ['../x', 'a/b', 'A', '..']) {
      await expect(registry.register(MODEL, { name, metadata })).rejects.toThrow(InvalidInputError);
    }
  });
});
