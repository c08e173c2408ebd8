import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NotFoundError, TransientError } from '../../lib/errors';
import { ModelRegistry } from '../../lib/registry';
import { PermissionDeniedError } from '../../lib/errors';
import { S3ObjectStore } from '../../lib/storage/s3';
import { registerExample, REPO_ROOT, tempConfig } from '../helpers/env';

const run = promisify(execFile);
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => ({ dir, cleanup } = await tempConfig()));
afterAll(() => cleanup());

describe('S3 specifics (SeaweedFS)', () => {
  it('wrong credentials: a permanent error naming the endpoint and bucket, never the secret', async () => {
    const s3 = inject('s3');
    const secret = 'definitely-not-the-secret-value';
    const store = new S3ObjectStore({
      bucket: s3.bucket,
      prefix: 'creds',
      settings: { endpoint: s3.endpoint, region: s3.region, forcePathStyle: true },
      client: new (await import('@aws-sdk/client-s3')).S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKey, secretAccessKey: secret } }),
    });
    for (const attempt of [() => store.getBytes('x'), () => store.put('x', 'y'), () => store.list('')]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect((err as Error).message).toContain(s3.endpoint);
      expect((err as Error).message).toContain(`s3://${s3.bucket}/creds`);
      expect((err as Error).message).not.toContain(secret);
      expect(JSON.stringify((err as PermissionDeniedError).details)).not.toContain(secret);
    }
  });

  it('an unreachable endpoint is a transient (retryable) error; a missing bucket is NotFound', async () => {
    const down = new S3ObjectStore({ bucket: 'b', settings: { endpoint: 'http://127.0.0.1:9', region: 'us-east-1', forcePathStyle: true } });
    const err = await down.getBytes('k').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toContain('http://127.0.0.1:9');
    const noBucket = new S3ObjectStore({ bucket: `missing-${randomUUID().slice(0, 8)}` });
    await expect(noBucket.getBytes('k')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('16 concurrent loads of an uncached model from 2 processes: exactly one download on the machine, all sessions usable', async () => {
    const registryUrl = `s3://${inject('s3').bucket}/mp-${randomUUID().slice(0, 8)}`;
    const registry = new ModelRegistry(new S3ObjectStore({ bucket: inject('s3').bucket, prefix: registryUrl.split('/').pop()! }));
    await registerExample(registry);
    const cacheDir = path.join(dir, 'shared-cache');
    const child = () =>
      run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test/helpers/load-model-child.ts'), registryUrl, cacheDir, 'fraud-detector@production', '8'], {
        cwd: REPO_ROOT,
        env: process.env,
      });
    const outs = (await Promise.all([child(), child()])).map((r) => JSON.parse(r.stdout.trim()) as { downloads: number; hits: number; sessions: number; scores: number[] });
    expect(outs.reduce((s, o) => s + o.downloads, 0)).toBe(1);
    for (const o of outs) {
      expect(o.sessions).toBe(1);
      expect(o.scores).toHaveLength(8);
      expect(new Set(o.scores).size).toBe(1);
    }
    expect(outs[0]!.scores[0]).toBe(outs[1]!.scores[0]);
    expect((await fs.readdir(cacheDir)).filter((f) => f.endsWith('.onnx'))).toHaveLength(1);
  });
});
