/**
 * batchInference with the feature store on a real Temporal server: spine → point-in-time
 * features → on-demand features → fitted transforms → predict, against the scores the Python
 * training code computed for the same spine (examples/train/train_fraud_features.py).
 */
import { ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { pipeline as pipeline_ } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBatchInference, type BatchInferenceInput } from '../../client';
import * as ort from 'onnxruntime-node';
import { FEATURES_EXPECTED, FEATURES_PIPELINE, REPO_ROOT, registerFeaturesExampleModel } from '../../cli/examples';
import type { InferflowConfig } from '../../lib/config/env';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { DEFAULT_SESSION_OPTIONS, toOrtOptions } from '../../lib/runtime/onnx';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { readOutput, scoresIn } from '../helpers/data';
import { tempConfig, uniqueName } from '../helpers/env';
import { startWorker, type RunningWorker } from '../helpers/worker';
import { permanentFailureOf } from '../helpers/failures';
import { recordHistory } from '../helpers/histories';

let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;
let pipeline: BatchInferenceInput;

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-features'), INFERFLOW_POSTGRES_URL: inject('postgresUrl') }));
  await registerFeaturesExampleModel(new ModelRegistry(openStore(config.registry)));
  pipeline = await loadPipelineSpec(FEATURES_PIPELINE);
  w = await startWorker(config);
});

afterAll(async () => {
  await w?.stop();
  await cleanup?.();
});

const expected = () => scoresIn(FEATURES_EXPECTED);

async function runFailing(input: unknown): Promise<ApplicationFailure> {
  const handle = await w.client.workflow.start('batchInference', { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-features-bad'), args: [input] });
  return permanentFailureOf(handle);
}

describe('batchInference with feature views, on-demand features and transforms', () => {
  it('scores the spine exactly as the Python training code does', async () => {
    const handle = await startBatchInference(w.client, { ...pipeline, shardSize: 6_000 }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-features') });
    const result = await handle.result();
    await recordHistory(inject('temporalCli'), config.temporal.address, handle.workflowId, 'batchInference-feature-views.json');
    expect(result.rowsIn).toBe(20_000);
    expect(result.rowsOut).toBe(20_000);
    expect(result.shards).toBe(4);
    const rows = await readOutput(result.output.location);
    const want = await expected();
    expect(rows).toHaveLength(want.size);
    let labelMismatches = 0;
    let maxDiff = 0;
    for (const r of rows) {
      const e = want.get(r.transaction_id)!;
      expect(e, r.transaction_id).toBeDefined();
      if (e.label !== r.label) labelMismatches++;
      maxDiff = Math.max(maxDiff, Math.abs(e.score - r.score));
    }
    expect(labelMismatches).toBe(0);
    expect(maxDiff).toBeLessThan(1e-6);
    // Nothing of the run is left in the staging area.
    expect(await fs.readdir(path.join(dir, 'runs')).catch(() => [])).toEqual([]);
  });

  it('scores the same with the feature view read from a PostgreSQL table (connection from the worker environment)', async () => {
    const table = uniqueName('customer_stats').replace(/-/g, '_');
    const pool = new pg.Pool({ connectionString: inject('postgresUrl'), max: 1 });
    const csv = path.join(dir, 'customer_stats.csv');
    const viewSource = (pipeline.featureViews![0]!.source as { path: string }).path;
    await withDuckDB((conn) => conn.run(`COPY (SELECT customer_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS event_timestamp, avg_amount_30d, txn_count_7d, home_lat, home_lon FROM read_parquet(${lit(viewSource)})) TO ${lit(csv)} (FORMAT csv, HEADER true)`));
    const client = await pool.connect();
    try {
      await client.query(`CREATE TABLE ${table} (customer_id bigint, event_timestamp timestamptz, avg_amount_30d double precision, txn_count_7d bigint, home_lat double precision, home_lon double precision)`);
      await pipeline_(createReadStream(csv), client.query(copyFrom(`COPY ${table} FROM STDIN (FORMAT csv, HEADER true)`)));
      const view = { ...pipeline.featureViews![0]!, source: { type: 'postgres' as const, table } };
      const handle = await startBatchInference(w.client, { ...pipeline, featureViews: [view], shardSize: 10_000 }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-features-pg') });
      const result = await handle.result();
      const rows = await readOutput(result.output.location);
      const want = await expected();
      expect(rows).toHaveLength(20_000);
      expect(rows.filter((r) => want.get(r.transaction_id)?.label !== r.label || Math.abs(want.get(r.transaction_id)!.score - r.score) >= 1e-6)).toEqual([]);
    } finally {
      await client.query(`DROP TABLE IF EXISTS ${table}`);
      client.release();
      await pool.end();
    }
  });

  it('names every missing raw column before predicting', async () => {
    const spine = path.join(dir, 'spine-no-lat.parquet');
    await withDuckDB((conn) => conn.run(`COPY (SELECT * EXCLUDE (lat, merchant_category) FROM read_parquet(${lit(path.resolve(pipeline.spine!))}) LIMIT 100) TO ${lit(spine)} (FORMAT parquet)`));
    const failure = await runFailing({ ...pipeline, spine });
    expect(failure.type).toBe('SchemaMismatch');
    expect(failure.message).toContain('column lat is missing (on-demand feature distance_km needs it as numeric)');
    expect(failure.message).toContain('column merchant_category is missing (model fraud-features:1 transforms needs it as string)');
  });

  it('names the on-demand function and the row when it throws', async () => {
    const failure = await runFailing({ ...pipeline, onDemand: [...pipeline.onDemand!, { module: path.resolve('test/fixtures/on-demand/throwing.ts'), export: 'throwsOnLargeAmounts' }] });
    expect(failure.type).toBe('InvalidValue');
    expect(failure.message).toMatch(/on-demand feature large_amount_flag \(\/\S+\/test\/fixtures\/on-demand\/throwing\.ts#throwsOnLargeAmounts\) threw for transaction_id=tx-\d{7}: amount too large/);
  });

  it('rejects an on-demand module outside the worker directory and an unknown export', async () => {
    const outside = await runFailing({ ...pipeline, onDemand: [{ module: '../../etc/passwd.ts', export: 'x' }] });
    expect(outside.type).toBe('InvalidInput');
    expect(outside.message).toContain('must be a path inside the worker');
    const unknown = await runFailing({ ...pipeline, onDemand: [{ module: 'examples/features/fraud.ts', export: 'nope' }] });
    expect(unknown.type).toBe('InvalidInput');
    expect(unknown.message).toContain('has no export nope made with defineOnDemandFeature (it has: amountRatio, homeDistance, hourOfDay)');
  });
});

describe('batchInference over every entity as of the run time (no spine)', () => {
  const COLUMNS = ['amount', 'customer_avg_amount_30d', 'customer_txn_count_24h', 'distance_from_home_km', 'hour_of_day', 'is_foreign', 'merchant_risk'];

  it('scores each entity on its latest snapshot at or before asOf, and leaves out entities that appear later', async () => {
    // The plain example model, registered with input columns that come from a feature view.
    const registry = new ModelRegistry(openStore(config.registry));
    const metadata = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'examples', 'models', 'fraud-detector', 'metadata.json'), 'utf8')) as { inputs: { columns: string[] }[] };
    metadata.inputs[0]!.columns = COLUMNS.map((c) => `snap__${c}`);
    await registry.register(path.join(REPO_ROOT, 'examples', 'models', 'fraud-detector', 'model.onnx'), { name: 'fraud-entity', metadata, alias: 'production' });

    const source = path.join(dir, 'snapshots.parquet');
    const values = (seed: number) => COLUMNS.map((c, j) => `round(((hash(customer_id * 31 + ${seed * 7 + j}) % 1000) / 10.0)::DOUBLE, 1) AS ${c}`).join(', ');
    await withDuckDB((conn) =>
      conn.run(`COPY (
        SELECT customer_id, TIMESTAMPTZ '2026-01-01 00:00:00+00' AS ts, ${values(1)} FROM range(1, 301) t(customer_id)
        UNION ALL SELECT customer_id, TIMESTAMPTZ '2026-01-10 00:00:00+00', ${values(2)} FROM range(1, 311) t(customer_id)
      ) TO ${lit(source)} (FORMAT parquet)`),
    );
    const view = { name: 'snap', entities: ['customer_id'], timestampField: 'ts', source: { type: 'file' as const, path: source }, features: COLUMNS.map((name) => ({ name, dtype: 'float64' as const })) };
    const handle = await startBatchInference(w.client, { model: 'fraud-entity@production', featureViews: [view], idColumn: 'customer_id', asOf: '2026-01-05T00:00:00Z' }, { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('wf-entities') });
    const result = await handle.result();
    expect(result.rowsIn).toBe(300); // customers 301–310 first appear on 2026-01-10
    expect(result.asOf).toBe('2026-01-05T00:00:00.000Z');

    const { got, x, ids } = await withDuckDB(async (conn) => {
      const out = await conn.runAndReadAll(`SELECT customer_id, score FROM read_parquet(${lit(path.join(result.output.location, '*.parquet'))}) ORDER BY customer_id`);
      const snap = await conn.runAndReadAll(`SELECT customer_id, ${COLUMNS.join(', ')} FROM read_parquet(${lit(source)}) WHERE ts = TIMESTAMPTZ '2026-01-01 00:00:00+00' ORDER BY customer_id`);
      const rows = snap.getRowsJS();
      return {
        got: out.getRowsJS().map((r) => [Number(r[0]), Number(r[1])] as const),
        ids: rows.map((r) => Number(r[0])),
        x: Float32Array.from(rows.flatMap((r) => r.slice(1).map(Number))),
      };
    });
    const session = await ort.InferenceSession.create(path.join(REPO_ROOT, 'examples', 'models', 'fraud-detector', 'model.onnx'), toOrtOptions(DEFAULT_SESSION_OPTIONS));
    const ref = await session.run({ features: new ort.Tensor('float32', x, [ids.length, COLUMNS.length]) });
    const probs = ref.probabilities!.data as Float32Array;
    await session.release();
    expect(got.map(([id]) => id)).toEqual(ids);
    expect(got.map(([, s]) => s)).toEqual(ids.map((_, i) => probs[i * 2 + 1]));
  });
});
