/**
 * Shared run staging (INFERFLOW_STAGING): when a run's shards may execute on several machines,
 * the feature snapshot and every shard's output part are published to an object store
 * (`runs/<runId>/snapshot.parquet`, `runs/<runId>/parts/part-NNNNN.parquet`). A worker that
 * needs a file it did not write fetches it into its own local run directory. The object store
 * is the source of truth: a shard retried on another machine overwrites its part there, and
 * the commit reads every part from there.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import type { ObjectStore } from '../storage';
import { OBJECT_STORE_CONCURRENCY, eachLimited } from '../util/concurrency';

const RUN_ID = /^[A-Za-z0-9._-]{1,128}$/;

export class RunStaging {
  /** Downloads in flight in this process, by local path (shards of one run share a snapshot). */
  private readonly fetching = new Map<string, Promise<void>>();

  constructor(readonly store: ObjectStore) {}

  get url(): string {
    return this.store.url;
  }

  key(runId: string, name: string): string {
    if (!RUN_ID.test(runId) || runId.startsWith('.')) throw new Error(`invalid run id ${JSON.stringify(runId)}`);
    return `runs/${runId}/${name}`;
  }

  /** Upload a local file under the run (overwriting: publishing is idempotent). */
  async publish(runId: string, name: string, localPath: string): Promise<void> {
    await this.store.putFile(this.key(runId, name), localPath);
  }

  /** Names published under the run (relative to it, sorted). */
  async list(runId: string, prefix = ''): Promise<string[]> {
    const base = this.key(runId, '');
    return (await this.store.list(base + prefix)).map((k) => k.slice(base.length));
  }

  /**
   * Download a published file to `localPath` (written to a temporary name and renamed, so the
   * file is whole or absent). Concurrent calls for one path in this process share a download.
   */
  async fetch(runId: string, name: string, localPath: string): Promise<void> {
    let p = this.fetching.get(localPath);
    if (!p) {
      p = (async () => {
        await fs.mkdir(path.dirname(localPath), { recursive: true });
        const tmp = `${localPath}.fetch-${randomUUID()}`;
        try {
          await pipeline(await this.store.getStream(this.key(runId, name)), createWriteStream(tmp));
          await fs.rename(tmp, localPath);
        } finally {
          await fs.rm(tmp, { force: true });
        }
      })().finally(() => this.fetching.delete(localPath));
      this.fetching.set(localPath, p);
    }
    return p;
  }

  /** Remove everything published for the run. */
  async discard(runId: string): Promise<number> {
    const keys = await this.store.list(this.key(runId, ''));
    await eachLimited(keys, OBJECT_STORE_CONCURRENCY, (k) => this.store.delete(k));
    return keys.length;
  }
}

/**
 * Remove local run directories untouched for `maxAgeMs` (copies fetched by workers that did
 * not run the run's cleanup, leftovers of killed processes). Returns the directories removed.
 */
export async function sweepStaleRuns(runsDir: string, maxAgeMs: number, now = Date.now()): Promise<string[]> {
  const removed: string[] = [];
  for (const e of await fs.readdir(runsDir, { withFileTypes: true }).catch(() => [])) {
    if (!e.isDirectory()) continue;
    const dir = path.join(runsDir, e.name);
    const st = await fs.stat(dir).catch(() => undefined);
    if (st && now - st.mtimeMs > maxAgeMs) {
      await fs.rm(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return removed;
}
