import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { joinKey, localPathOf, type ObjectStore } from '../storage';
import { OBJECT_STORE_CONCURRENCY, eachLimited } from '../util/concurrency';
import type { CommitRequest, CommitResult, RunRef, RunSink } from './types';

export const SUCCESS_MARKER = '_SUCCESS';

/** Directory-safe form of a workflow id. */
export function runDirName(workflowId: string): string {
  const safe = workflowId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120);
  return safe === '' || safe.startsWith('.') ? `run_${safe}` : safe;
}

/**
 * Parquet files on the local filesystem: `<root>/<pipeline>/<run>/part-NNNNN.parquet`, plus
 * `manifest.json` and `_SUCCESS`. The run directory is assembled under a temporary name and
 * renamed into place, so it appears complete or not at all; `<root>/<pipeline>/_LATEST` then
 * names the newest committed run.
 */
export class ParquetSink implements RunSink {
  readonly type = 'parquet';
  readonly root: string;

  constructor(root: string) {
    this.root = localPathOf(root);
  }

  runDir(pipeline: string, workflowId: string): string {
    return path.join(this.root, runDirName(pipeline), runDirName(workflowId));
  }

  /** The run directory's manifest, when it is whole (`_SUCCESS`) and names this run. */
  async committed(run: RunRef): Promise<CommitResult | undefined> {
    const dest = this.runDir(run.pipeline, run.workflowId);
    const existing = await readManifest(dest);
    return existing?.runId === run.runId ? { location: dest, rows: existing.rows, created: false } : undefined;
  }

  async commit(req: CommitRequest): Promise<CommitResult> {
    const done = await this.committed(req);
    if (done) return done;
    const dest = this.runDir(req.pipeline, req.workflowId);

    const tmp = `${dest}.tmp-${randomUUID()}`;
    await fs.mkdir(tmp, { recursive: true });
    try {
      for (const [i, part] of req.parts.entries()) await fs.copyFile(part, path.join(tmp, `part-${String(i).padStart(5, '0')}.parquet`));
      const manifest = {
        runId: req.runId,
        workflowId: req.workflowId,
        pipeline: req.pipeline,
        model: req.model,
        rows: req.rows,
        parts: req.parts.length,
        committedAt: new Date().toISOString(),
      };
      await fs.writeFile(path.join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2));
      await fs.writeFile(path.join(tmp, SUCCESS_MARKER), '');
      // Replace an earlier run of the same workflow id (a re-run) only once the new one is whole.
      const old = `${dest}.old-${randomUUID()}`;
      const hadOld = await fs.rename(dest, old).then(() => true, () => false);
      await fs.rename(tmp, dest);
      if (hadOld) await fs.rm(old, { recursive: true, force: true });
      const latestTmp = path.join(path.dirname(dest), `._LATEST.${randomUUID()}`);
      await fs.writeFile(latestTmp, `${path.basename(dest)}\n`);
      await fs.rename(latestTmp, path.join(path.dirname(dest), '_LATEST'));
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
    return { location: dest, rows: req.rows, created: true };
  }
}

async function readManifest(dir: string): Promise<{ runId: string; rows: number } | undefined> {
  try {
    await fs.access(path.join(dir, SUCCESS_MARKER));
    return JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as { runId: string; rows: number };
  } catch {
    return undefined;
  }
}

/**
 * Parquet files on an object store (`s3://bucket/prefix`): `<pipeline>/<run>/part-NNNNN.parquet`,
 * then `manifest.json`, then `_SUCCESS` last; `<pipeline>/_LATEST` names the newest run.
 * Readers use a run only once its `_SUCCESS` exists. Re-running a workflow id first removes
 * the old run's `_SUCCESS`, then its files, so no reader ever mixes two runs.
 */
export class ObjectStoreParquetSink implements RunSink {
  readonly type = 'parquet';

  constructor(readonly store: ObjectStore) {}

  private where(run: RunRef): { dir: string; location: string } {
    const dir = joinKey(runDirName(run.pipeline), runDirName(run.workflowId));
    return { dir, location: `${this.store.url.replace(/\/+$/, '')}/${dir}` };
  }

  /** The run's manifest, when `_SUCCESS` marks the run directory whole and the manifest names this run. */
  async committed(run: RunRef): Promise<CommitResult | undefined> {
    const { dir, location } = this.where(run);
    if (!(await this.store.head(joinKey(dir, SUCCESS_MARKER)))) return undefined;
    const previous = JSON.parse((await this.store.getBytes(joinKey(dir, 'manifest.json'))).toString('utf8')) as { runId?: string; rows: number };
    return previous.runId === run.runId ? { location, rows: previous.rows, created: false } : undefined;
  }

  async commit(req: CommitRequest): Promise<CommitResult> {
    const { dir, location } = this.where(req);
    const done = await this.committed(req);
    if (done) return done;
    // Another run of the same workflow id: readers stop using it before its files go.
    if (await this.store.head(joinKey(dir, SUCCESS_MARKER))) await this.store.delete(joinKey(dir, SUCCESS_MARKER));
    // Old files all gone before any new part goes up (a late delete must not hit a new part).
    await eachLimited(await this.store.list(dir), OBJECT_STORE_CONCURRENCY, (key) => this.store.delete(key));
    await eachLimited(req.parts, OBJECT_STORE_CONCURRENCY, (part, i) => this.store.putFile(joinKey(dir, `part-${String(i).padStart(5, '0')}.parquet`), part));
    const manifest = { runId: req.runId, workflowId: req.workflowId, pipeline: req.pipeline, model: req.model, rows: req.rows, parts: req.parts.length, committedAt: new Date().toISOString() };
    await this.store.put(joinKey(dir, 'manifest.json'), JSON.stringify(manifest, null, 2), { contentType: 'application/json' });
    await this.store.put(joinKey(dir, SUCCESS_MARKER), '');
    await this.store.put(joinKey(runDirName(req.pipeline), '_LATEST'), `${runDirName(req.workflowId)}\n`);
    return { location, rows: req.rows, created: true };
  }
}
