import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { FileObjectStore, type ObjectStore } from '../../lib/storage';
import { S3ObjectStore } from '../../lib/storage/s3';

export type BackendName = 'file' | 's3';

/** A fresh, empty store on each backend: a temp dir, or a unique prefix in the test bucket. */
export const backends: Record<BackendName, () => Promise<{ store: ObjectStore; cleanup: () => Promise<void> }>> = {
  file: async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-store-'));
    return { store: new FileObjectStore(dir), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
  },
  s3: () => {
    // A unique prefix per test in the shared test bucket; the whole server is thrown away after the run.
    const store = new S3ObjectStore({ bucket: inject('s3').bucket, prefix: `t-${randomUUID().slice(0, 8)}`, partSize: 5 * 1024 * 1024 });
    return Promise.resolve({ store, cleanup: () => Promise.resolve() });
  },
};
