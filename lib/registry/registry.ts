import fs from 'node:fs/promises';
import { CorruptArtifactError, InvalidInputError, NotFoundError } from '../errors';
import { outputProblems, signatureProblems } from '../runtime/signature';
import { PreconditionFailedError } from '../errors';
import { sha256File, type ObjectStore, joinKey } from '../storage';
import { ModelManifestSchema, ModelMetadataSchema, type ModelManifest, type ModelMetadata, type ModelSignature, type ResolvedModel } from './manifest';
import { checkAlias, checkModelName, formatModelRef, parseModelRef } from './ref';

const MODELS = 'models';

export interface RegisterOptions {
  name: string;
  metadata: unknown;
  alias?: string;
  /** Reuse an existing version whose artifact has the same sha256 instead of adding one. */
  reuseIdentical?: boolean;
}

/**
 * A model registry on an object store:
 *   models/<name>/<version>/model.onnx, models/<name>/<version>/manifest.json,
 *   models/<name>/aliases/<alias>.json  ({"version": n})
 * Versions are immutable (create-only writes); aliases move with compare-and-swap.
 */
export class ModelRegistry {
  constructor(readonly store: ObjectStore) {}

  get url(): string {
    return this.store.url;
  }

  async register(modelPath: string, options: RegisterOptions): Promise<{ manifest: ModelManifest; created: boolean }> {
    const name = checkModelName(options.name);
    const metadata = parseMetadata(options.metadata, name);
    const { sha256, size } = await sha256File(modelPath).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`model file ${modelPath} does not exist`, { object: modelPath });
      throw err;
    });
    // ONNX Runtime loads here, not with the module: reading the registry (`inferflow models list`) does without it.
    const { loadSession, signatureOf } = await import('../runtime/onnx.js');
    const session = await loadSession(await fs.readFile(modelPath), `model file ${modelPath}`);
    const signature = signatureOf(session);
    await session.release();
    checkMetadataAgainstSignature(metadata, signature, modelPath);

    const versions = await this.versions(name);
    if (options.reuseIdentical) {
      for (const v of versions.slice().reverse()) {
        const m = await this.manifest(name, v);
        if (m.artifact.sha256 === sha256) {
          if (options.alias) await this.setAlias(name, options.alias, v);
          return { manifest: m, created: false };
        }
      }
    }
    // Claim the next version number with a create-only manifest write; retry on a race.
    for (let attempt = 0; attempt < 20; attempt++) {
      const version = (versions.at(-1) ?? 0) + 1 + attempt;
      const artifactKey = joinKey(MODELS, name, String(version), 'model.onnx');
      const manifest: ModelManifest = {
        format: 'inferflow.model/v1',
        name,
        version,
        artifact: { key: artifactKey, sha256, size },
        signature,
        metadata,
        createdAt: new Date().toISOString(),
      };
      try {
        await this.store.putFile(artifactKey, modelPath, { ifNoneMatch: true });
      } catch (err) {
        if (err instanceof PreconditionFailedError) continue;
        throw err;
      }
      await this.store.put(joinKey(MODELS, name, String(version), 'manifest.json'), JSON.stringify(manifest, null, 2), {
        ifNoneMatch: true,
        contentType: 'application/json',
      });
      if (options.alias) await this.setAlias(name, options.alias, version);
      return { manifest, created: true };
    }
    throw new PreconditionFailedError(`could not claim a new version of ${name} after 20 attempts`, { model: name });
  }

  async models(): Promise<string[]> {
    const keys = await this.store.list(MODELS);
    return [...new Set(keys.map((k) => k.split('/')[1]!).filter(Boolean))].sort();
  }

  async versions(name: string): Promise<number[]> {
    checkModelName(name);
    const keys = await this.store.list(joinKey(MODELS, name));
    const versions = new Set<number>();
    for (const k of keys) {
      const m = /^models\/[^/]+\/(\d+)\/manifest\.json$/.exec(k);
      if (m) versions.add(Number(m[1]));
    }
    return [...versions].sort((a, b) => a - b);
  }

  async aliases(name: string): Promise<Record<string, number>> {
    const keys = await this.store.list(joinKey(MODELS, name, 'aliases'));
    const out: Record<string, number> = {};
    for (const k of keys) {
      const alias = /\/aliases\/([^/]+)\.json$/.exec(k)?.[1];
      if (alias) out[alias] = (await this.readAlias(name, alias)).version;
    }
    return out;
  }

  async manifest(name: string, version: number): Promise<ModelManifest> {
    const key = joinKey(MODELS, checkModelName(name), String(version), 'manifest.json');
    let raw: Buffer;
    try {
      raw = await this.store.getBytes(key);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new NotFoundError(`model ${name} has no version ${version} in registry ${this.url}`, { model: name, version });
      }
      throw err;
    }
    const parsed = ModelManifestSchema.safeParse(JSON.parse(raw.toString('utf8')));
    if (!parsed.success) {
      throw new CorruptArtifactError(`manifest ${key} in ${this.url} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, {
        object: key,
      });
    }
    return parsed.data;
  }

  /** Resolve `name`, `name:3` or `name@alias` to one exact version. */
  async resolve(refText: string): Promise<{ resolved: ResolvedModel; manifest: ModelManifest }> {
    const ref = parseModelRef(refText);
    let version: number;
    if (ref.kind === 'version') version = ref.version;
    else if (ref.kind === 'alias') version = (await this.readAlias(ref.name, ref.alias)).version;
    else {
      const versions = await this.versions(ref.name);
      if (versions.length === 0) throw new NotFoundError(`model ${ref.name} is not in registry ${this.url}`, { model: ref.name });
      version = versions.at(-1)!;
    }
    const manifest = await this.manifest(ref.name, version);
    return {
      manifest,
      resolved: {
        name: manifest.name,
        version: manifest.version,
        sha256: manifest.artifact.sha256,
        size: manifest.artifact.size,
        uri: `${this.url.replace(/\/+$/, '')}/${manifest.artifact.key}`,
        ref: formatModelRef(ref),
      },
    };
  }

  async setAlias(name: string, alias: string, version: number): Promise<void> {
    checkModelName(name);
    checkAlias(alias);
    await this.manifest(name, version); // the target must exist
    const key = joinKey(MODELS, name, 'aliases', `${alias}.json`);
    const current = await this.store.head(key);
    await this.store.put(key, JSON.stringify({ version, updatedAt: new Date().toISOString() }), current ? { ifMatch: current.etag } : { ifNoneMatch: true });
  }

  private async readAlias(name: string, alias: string): Promise<{ version: number }> {
    const key = joinKey(MODELS, name, 'aliases', `${checkAlias(alias)}.json`);
    try {
      const v = (JSON.parse((await this.store.getBytes(key)).toString('utf8')) as { version?: unknown }).version;
      if (typeof v !== 'number') throw new CorruptArtifactError(`alias file ${key} has no numeric version`, { object: key });
      return { version: v };
    } catch (err) {
      if (err instanceof NotFoundError) throw new NotFoundError(`model ${name} has no alias ${alias} in registry ${this.url}`, { model: name, alias });
      throw err;
    }
  }
}

function parseMetadata(raw: unknown, name: string): ModelMetadata {
  const parsed = ModelMetadataSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `metadata.${i.path.join('.')}: ${i.message}`);
    throw new InvalidInputError(`invalid metadata for model ${name}`, problems);
  }
  return parsed.data;
}

/** The metadata's column lists must fit the model's input tensors, its task the output tensors. */
export function checkMetadataAgainstSignature(metadata: ModelMetadata, signature: ModelSignature, object: string): void {
  const problems = [...signatureProblems(metadata.inputs, signature), ...outputProblems(metadata, signature)];
  if (problems.length > 0) throw new InvalidInputError(`metadata does not fit ${object}`, problems);
}
