import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureWeed, startSeaweedFS, type SeaweedFS } from '../../devservices/seaweedfs';
import { loadConfig } from '../../lib/config/env';

declare module 'vitest' {
  export interface ProvidedContext {
    s3: { endpoint: string; accessKey: string; secretKey: string; region: string; bucket: string; dataDir: string };
  }
}

export const TEST_BUCKET = 'inferflow-test';
let server: SeaweedFS | undefined;
let dir: string | undefined;

/** A real S3-compatible server for the tests: SeaweedFS on loopback with a throwaway data dir. */
export async function setup(project: TestProject): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const weed = ensureWeed(loadConfig().dataDir, (m) => console.log(m));
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-seaweed-'));
  server = await startSeaweedFS({ weed, dir, logFile: path.join(dir, 'weed.log') });
  await server.ensureBucket(TEST_BUCKET);
  console.log(`started SeaweedFS S3 for tests at ${server.endpoint}`);
  project.provide('s3', { endpoint: server.endpoint, accessKey: server.accessKey, secretKey: server.secretKey, region: server.region, bucket: TEST_BUCKET, dataDir: dir });
}

export async function teardown(): Promise<void> {
  await server?.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
}
