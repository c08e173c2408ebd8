/**
 * Workers on several machines: two workers with separate data directories (their own local
 * disks) share one task queue, one registry and shared run staging on S3 (SeaweedFS). Shards
 * run on both; the worker that did not plan the run fetches the snapshot from staging, and the
 * commit takes every part from staging wherever its shard ran.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBatchInference } from '../../client';
import { createResources, type Resources } from '../../lib/pipeline/resources';
import { loadConfig, type InferflowConfig } from '../../lib/config/env';
import { createLogger } from '../../lib/log';
import { RunStaging } from '../../lib/pipeline/staging';
import { openStore } from '../../lib/storage';
import { createInferflowWorker } from '../../workers/worker';
import { readOutput, referenceScores, writeVariant } from '../helpers/data';
import { exampleRegistry, tempConfig, uniqueName } from '../helpers/env';
import { workflowBundle } from '../helpers/worker';

interface Machine {
  config: InferflowConfig;
  resources: Resources;
  stop: () => Promise<void>;
}

let shared: string;
let cleanup: () => Promise<void>;
let machines: Machine[] = [];
let client: Client;
let staging: RunStaging;
const taskQueue = uniqueName('test-multi');

async function startMachine(name: string, stagingUrl: string): Promise<Machine> {
  const dataDir = path.join(shared, name);
  const config = loadConfig({
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    INFERFLOW_TASK_QUEUE: taskQueue,
    INFERFLOW_DATA_DIR: dataDir,
    INFERFLOW_REGISTRY: `file://${path.join(shared, 'registry')}`,
    INFERFLOW_OUTPUT: path.join(shared, 'predictions'),
    INFERFLOW_STAGING: stagingUrl,
    // The input is on a mount both machines read.
    INFERFLOW_ALLOWED_ROOTS: shared,
    INFERFLOW_LOG_LEVEL: 'warn',
  });
  const resources = createResources(config, { logger: createLogger('warn') });
  const bundle = await workflowBundle(); // installs the Temporal runtime before the first connection
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  // One activity at a time per machine: with 4 shards in flight, both machines must take some.
  const { worker, close } = await createInferflowWorker({ config, connection, resources, overrides: { workflowBundle: bundle, maxConcurrentActivityTaskExecutions: 1 } });
  const running = worker.run();
  return {
    config,
    resources,
    stop: async () => {
      worker.shutdown();
      await running;
      await close();
      await connection.close();
    },
  };
}

beforeAll(async () => {
  const env = await tempConfig();
  shared = env.dir;
  cleanup = env.cleanup;
  const s3 = inject('s3');
  const stagingUrl = `s3://${s3.bucket}/${uniqueName('staging')}`;
  staging = new RunStaging(openStore(stagingUrl));
  await exampleRegistry(loadConfig({ INFERFLOW_DATA_DIR: shared }));
  machines = [await startMachine('machine-a', stagingUrl), await startMachine('machine-b', stagingUrl)];
  client = new Client({ connection: await Connection.connect({ address: inject('temporalAddress') }) });
});

afterAll(async () => {
  await Promise.all(machines.map((m) => m.stop()));
  await client?.connection.close();
  await cleanup?.();
});

describe('workers on two machines with shared S3 staging', () => {
  it('shards run on both; the snapshot and the parts travel through staging; the output is complete and exact', async () => {
    // A CSV input is staged as a snapshot on the planning machine's disk, which the other machine cannot use.
    const csv = await writeVariant(shared, 'input.csv', '*', 'true', 30_000);
    const handle = await startBatchInference(client, { model: 'fraud-detector@production', features: csv, shardSize: 2_500, maxConcurrency: 4 }, { taskQueue, workflowId: uniqueName('wf-multi') });
    const result = await handle.result();
    expect(result.rowsOut).toBe(30_000);
    expect(result.shards).toBe(12);

    // Both machines predicted: each downloaded the model into its own cache.
    for (const m of machines) expect(m.resources.cache.events.filter((e) => e.kind === 'download'), m.config.dataDir).toHaveLength(1);
    // A snapshot copy is left in a run directory (the planner's, or the fetcher's when discardRun ran on the planner).
    // That both machines predicted (a model download on each, above) and the output is exact (below) shows the staging path worked.
    const fetched = await Promise.all(machines.map((m) => fs.stat(path.join(m.config.dataDir, 'runs', result.runId, 'snapshot.parquet')).then(() => true, () => false)));
    expect(fetched).toContain(true);

    const rows = await readOutput(result.output.location);
    const ref = await referenceScores(await writeVariant(shared, 'same-rows.parquet', '*', 'true', 30_000));
    expect(rows).toHaveLength(30_000);
    expect(new Set(rows.map((r) => r.transaction_id)).size).toBe(30_000);
    expect(rows.filter((r) => ref.get(r.transaction_id)?.score !== r.score)).toEqual([]);
    // Nothing of the run is left in shared staging.
    expect(await staging.list(result.runId)).toEqual([]);
  });
});
