import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SEARCH_ATTRIBUTES, queryProgress, startBatchInference } from '../../client';
import { createResources } from '../../lib/pipeline/resources';
import { ensureWeed, startSeaweedFS, type SeaweedFS } from '../../devservices/seaweedfs';
import { createLogger } from '../../lib/log';
import { loadConfig } from '../../lib/config/env';
import { ModelRegistry } from '../../lib/registry';
import { S3ObjectStore } from '../../lib/storage/s3';
import { EXAMPLE_FEATURES, EXAMPLE_MODEL_DIR, registerExample, tempConfig, uniqueName } from '../helpers/env';
import { readOutput } from '../helpers/data';
import { startWorker } from '../helpers/worker';

/** A copy of the example model with different bytes (a renamed producer), so it is a distinct artifact. */
async function variantModel(dir: string): Promise<string> {
  const bytes = await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'model.onnx'));
  bytes.write('skl2onnZ', bytes.indexOf('skl2onnx'));
  const p = path.join(dir, 'variant.onnx');
  await fs.writeFile(p, bytes);
  return p;
}

function resolveAttempts(cli: string, address: string, workflowId: string): number {
  const shown = spawnSync(cli, ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', address], { encoding: 'utf8' });
  const events = (JSON.parse(shown.stdout) as { events: { activityTaskStartedEventAttributes?: { attempt: number } }[] }).events;
  return Math.max(...events.map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 0));
}

describe('batchInference with the model registry on S3 (SeaweedFS)', () => {
  let cleanup: () => Promise<void>;
  let dir: string;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempConfig());
  });
  afterAll(() => cleanup());

  it('uses the version the alias named at the start, even when the alias moves mid-run', async () => {
    const { config } = await tempConfig({
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      INFERFLOW_TASK_QUEUE: uniqueName('test-registry'),
      INFERFLOW_REGISTRY: `s3://${inject('s3').bucket}/reg-${randomUUID().slice(0, 8)}`,
    });
    const registry = new ModelRegistry(new S3ObjectStore({ bucket: inject('s3').bucket, prefix: config.registry.split('/').pop()! }));
    const metadata: unknown = JSON.parse(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'metadata.json'), 'utf8'));
    await registry.register(path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), { name: 'fraud-detector', metadata, alias: 'production' });
    await registry.register(await variantModel(dir), { name: 'fraud-detector', metadata });

    const w = await startWorker(config);
    try {
      // Many small shards, one at a time, so the run is still predicting when the alias moves.
      const handle = await startBatchInference(w.client, { model: 'fraud-detector@production', features: EXAMPLE_FEATURES, shardSize: 1_000, maxConcurrency: 1 }, { taskQueue: config.temporal.taskQueue });
      for (let i = 0; i < 200; i++) {
        const p = await queryProgress(handle);
        if (p?.phase === 'predicting' && p.shardsDone >= 2) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await registry.setAlias('fraud-detector', 'production', 2);
      const progressAtMove = await queryProgress(handle);
      expect(progressAtMove?.phase).toBe('predicting');
      expect(progressAtMove!.shardsDone).toBeLessThan(progressAtMove!.shardsTotal);

      const result = await handle.result();
      expect(result.model).toMatchObject({ name: 'fraud-detector', version: 1, ref: 'fraud-detector@production' });
      expect(result.model.uri).toBe(`${config.registry}/models/fraud-detector/1/model.onnx`);
      const rows = await readOutput(result.output.location);
      expect(rows).toHaveLength(50_000);
      expect(new Set(rows.map((r) => r.model_version))).toEqual(new Set([1]));
      expect(new Set(rows.map((r) => r.model_sha256))).toEqual(new Set([result.model.sha256]));
      expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.modelVersion)).toBe('1');

      // A run started now resolves the moved alias.
      const next = await (await startBatchInference(w.client, { model: 'fraud-detector@production', features: EXAMPLE_FEATURES, shardSize: 25_000 }, { taskQueue: config.temporal.taskQueue })).result();
      expect(next.model.version).toBe(2);
    } finally {
      await w.stop();
    }
  });

  describe('with the registry unreachable for a while', () => {
    let weed: SeaweedFS;
    let weedDir: string;

    beforeAll(async () => {
      weedDir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-weed-outage-'));
      weed = await startSeaweedFS({ weed: ensureWeed(loadConfig().dataDir), dir: weedDir, logFile: path.join(weedDir, 'weed.log') });
      await weed.ensureBucket('outage');
    });
    afterAll(async () => {
      await weed?.stop();
      await fs.rm(weedDir, { recursive: true, force: true });
    });

    it('retries with backoff and completes once S3 is back', async () => {
      const { config } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-outage') });
      const store = new S3ObjectStore({ bucket: 'outage', prefix: 'registry', settings: { endpoint: weed.endpoint, region: weed.region, forcePathStyle: true }, client: weed.client() });
      const registry = new ModelRegistry(store);
      await registerExample(registry);
      const w = await startWorker(config, createResources(config, { logger: createLogger('silent'), registry }));
      try {
        await weed.kill();
        const handle = await startBatchInference(w.client, { model: 'fraud-detector@production', features: EXAMPLE_FEATURES }, { taskQueue: config.temporal.taskQueue });
        await new Promise((r) => setTimeout(r, 2_500));
        expect((await handle.describe()).status.name).toBe('RUNNING');
        await weed.restart();
        const result = await handle.result();
        expect(result.rowsOut).toBe(50_000);
        expect(resolveAttempts(inject('temporalCli'), config.temporal.address, handle.workflowId)).toBeGreaterThan(1);
      } finally {
        await w.stop();
      }
    });
  });
});
