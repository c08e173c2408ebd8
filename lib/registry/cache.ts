import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CorruptArtifactError, TransientError } from '../errors';
import { sha256File } from '../storage';
import type { ResolvedModel } from './manifest';
import type { ModelRegistry } from './registry';

export interface CacheEvent {
  kind: 'hit' | 'download' | 'corrupt' | 'evict';
  sha256: string;
  bytes?: number;
}

export interface EnsureResult {
  path: string;
  /** True when this call downloaded the artifact (false: it was already cached). */
  downloaded: boolean;
}

/** Events kept in `ModelCache.events` (for tests and summaries). */
const MAX_EVENTS = 1_000;

/**
 * Content-addressed local model cache: `<dir>/<sha256>.onnx`. A model is downloaded once per
 * machine: calls in one process share a promise, processes share a lock directory, and the
 * file appears under its final name only after its sha256 was verified (atomic rename).
 * A cached file is re-verified the first time a process uses it; a corrupt one is replaced.
 */
export class ModelCache {
  private readonly inflight = new Map<string, Promise<EnsureResult>>();
  private readonly verified = new Set<string>();
  /** The latest events (at most 1,000), oldest first. */
  readonly events: CacheEvent[] = [];

  constructor(
    readonly dir: string,
    readonly maxBytes = 2 * 1024 ** 3,
    private readonly onEvent: (e: CacheEvent) => void = () => {},
  ) {}

  pathFor(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new CorruptArtifactError(`invalid sha256 ${JSON.stringify(sha256)}`, { sha256 });
    return path.join(this.dir, `${sha256}.onnx`);
  }

  ensure(model: ResolvedModel, registry: ModelRegistry): Promise<EnsureResult> {
    let p = this.inflight.get(model.sha256);
    if (!p) {
      p = this.ensureOnce(model, registry).finally(() => this.inflight.delete(model.sha256));
      this.inflight.set(model.sha256, p);
    }
    return p;
  }

  private emit(e: CacheEvent): void {
    // The latest events only: a long-lived worker would otherwise keep one per shard or request forever.
    if (this.events.length >= MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS + 1);
    this.events.push(e);
    this.onEvent(e);
  }

  private async ensureOnce(model: ResolvedModel, registry: ModelRegistry): Promise<EnsureResult> {
    const target = this.pathFor(model.sha256);
    if (await this.validCached(target, model)) {
      this.emit({ kind: 'hit', sha256: model.sha256 });
      await touch(target);
      return { path: target, downloaded: false };
    }
    const lock = `${target}.lock`;
    await fs.mkdir(this.dir, { recursive: true }); // only a download needs the directory
    await acquireLock(lock, target);
    try {
      // Another process may have finished while we waited for the lock.
      if (await this.validCached(target, model)) {
        this.emit({ kind: 'hit', sha256: model.sha256 });
        return { path: target, downloaded: false };
      }
      let lastError: unknown;
      for (let attempt = 1; attempt <= 2; attempt++) {
        try {
          await this.download(model, registry, target, lock);
          this.verified.add(model.sha256);
          this.emit({ kind: 'download', sha256: model.sha256, bytes: model.size });
          break;
        } catch (err) {
          lastError = err;
          if (!(err instanceof CorruptArtifactError)) throw err;
        }
      }
      if (!this.verified.has(model.sha256)) throw lastError;
    } finally {
      await fs.rm(lock, { recursive: true, force: true });
    }
    await this.evict(model.sha256);
    return { path: target, downloaded: true };
  }

  private async validCached(target: string, model: ResolvedModel): Promise<boolean> {
    const st = await fs.stat(target).catch(() => undefined);
    if (!st) return false;
    if (this.verified.has(model.sha256) && st.size === model.size) return true;
    const { sha256 } = await sha256File(target);
    if (sha256 === model.sha256) {
      this.verified.add(model.sha256);
      return true;
    }
    this.emit({ kind: 'corrupt', sha256: model.sha256 });
    this.verified.delete(model.sha256);
    await fs.rm(target, { force: true });
    return false;
  }

  private async download(model: ResolvedModel, registry: ModelRegistry, target: string, lock: string): Promise<void> {
    const key = model.uri.startsWith(registry.url) ? model.uri.slice(registry.url.replace(/\/+$/, '').length + 1) : model.uri;
    const tmp = path.join(this.dir, `.${model.sha256}.${randomUUID()}.part`);
    const hash = createHash('sha256');
    let bytes = 0;
    const keepLockFresh = setInterval(() => void touch(lock), 2_000);
    try {
      const body = await registry.store.getStream(key);
      await pipeline(
        body,
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            bytes += chunk.length;
            cb(null, chunk);
          },
        }),
        createWriteStream(tmp),
      );
      const got = hash.digest('hex');
      if (bytes !== model.size || got !== model.sha256) {
        throw new CorruptArtifactError(
          `downloaded ${model.uri}: expected ${model.size} bytes with sha256 ${model.sha256}, got ${bytes} bytes with sha256 ${got}`,
          { object: model.uri, expectedSha256: model.sha256, actualSha256: got },
        );
      }
      await fs.rename(tmp, target);
    } finally {
      clearInterval(keepLockFresh);
      await fs.rm(tmp, { force: true });
    }
  }

  /** Evict least-recently-used models until the cache fits `maxBytes` (never `keep`). */
  async evict(keep: string): Promise<void> {
    const entries = await fs.readdir(this.dir).catch(() => [] as string[]);
    const files = await Promise.all(
      entries
        .filter((f) => /^[0-9a-f]{64}\.onnx$/.test(f))
        .map(async (f) => ({ f, st: await fs.stat(path.join(this.dir, f)).catch(() => undefined) })),
    );
    const live = files.filter((x): x is { f: string; st: NonNullable<typeof x.st> } => x.st !== undefined);
    let total = live.reduce((s, x) => s + x.st.size, 0);
    for (const x of live.sort((a, b) => a.st.mtimeMs - b.st.mtimeMs)) {
      if (total <= this.maxBytes) break;
      const sha = x.f.slice(0, 64);
      if (sha === keep) continue;
      await fs.rm(path.join(this.dir, x.f), { force: true });
      this.verified.delete(sha);
      total -= x.st.size;
      this.emit({ kind: 'evict', sha256: sha, bytes: x.st.size });
    }
  }
}

async function touch(p: string): Promise<void> {
  const now = new Date();
  await fs.utimes(p, now, now).catch(() => undefined);
}

/** A cross-process lock: mkdir is atomic. A lock not refreshed for 15 s belongs to a dead process. */
async function acquireLock(lock: string, target: string): Promise<void> {
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      await fs.mkdir(lock);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = await fs.stat(lock).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > 15_000) {
      await fs.rm(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new TransientError(`timed out waiting for another process to download ${target}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
