/**
 * The fraud-features pipeline ready for online tests: its model registered, its feature view
 * materialised into Redis under `keyPrefix` up to the end of one day of the example spine, that
 * day's first `limit` request rows (as a client sends them) and the offline scores to compare with.
 */
import path from 'node:path';
import { FEATURES_EXPECTED, FEATURES_PIPELINE, registerFeaturesExampleModel } from '../../cli/examples';
import type { InferflowConfig } from '../../lib/config/env';
import type { OnlineInferenceInput } from '../../lib/messages/online';
import { materializeView } from '../../lib/features/materialize';
import { openOnlineStore } from '../../lib/features/online';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { scoresIn, type Scores } from './data';
import { tempConfig, uniqueName } from './env';
import { TEST_REDIS_URL } from './services';
import { startWorker, type RunningWorker } from './worker';

const DAY = 86_400_000;
const T = Date.parse('2026-10-13T00:00:00Z');

export interface OnlineFraudFixture {
  spec: Awaited<ReturnType<typeof loadPipelineSpec>>;
  requests: Record<string, unknown>[];
  expected: Scores;
}

export async function prepareOnlineFraud(config: InferflowConfig, dir: string, keyPrefix: string, limit: number): Promise<OnlineFraudFixture> {
  await registerFeaturesExampleModel(new ModelRegistry(openStore(config.registry)));
  const spec = await loadPipelineSpec(FEATURES_PIPELINE);
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: dir });
  await materializeView({ view: spec.featureViews![0], store, end: new Date(T + DAY - 1) });
  await store.close();
  const expected = await scoresIn(FEATURES_EXPECTED);
  const requests = await withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(
      `SELECT transaction_id, customer_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS event_timestamp, amount, merchant_category, lat, lon FROM read_parquet(${lit(path.resolve(spec.spine!))})
       WHERE event_timestamp >= ${lit(new Date(T).toISOString())}::TIMESTAMPTZ AND event_timestamp < ${lit(new Date(T + DAY).toISOString())}::TIMESTAMPTZ ORDER BY transaction_id LIMIT ${limit}`,
    );
    return r.getRowObjectsJS().map((o) => ({ ...o, customer_id: Number(o.customer_id), amount: Number(o.amount), lat: Number(o.lat), lon: Number(o.lon), transaction_id: toText(o.transaction_id), merchant_category: toText(o.merchant_category), event_timestamp: toText(o.event_timestamp) }));
  });
  return { spec, requests, expected };
}

/** Remove the materialised view from Redis. */
export async function dropOnlineFraud(keyPrefix: string): Promise<void> {
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: '/tmp' });
  await store.deleteView('customer_stats');
  await store.close();
}

/** The online fixture with a worker: what the onlineInference tests share. */
export interface OnlineFraudWorker extends OnlineFraudFixture {
  config: InferflowConfig;
  dir: string;
  /** Where the view is materialised in Redis. */
  keyPrefix: string;
  worker: RunningWorker;
  /** The onlineInference input of the fixture's pipeline, its features from the Redis view. */
  input(maxPredictionsPerRun: number): OnlineInferenceInput;
  /** Stop the worker, drop the view from Redis, remove the data dir. */
  stop(): Promise<void>;
}

/** A throwaway config on the test Temporal server with its own task queue (`test-<name>-…`), the fixture prepared with `limit` requests, a worker started. */
export async function startOnlineFraudWorker(temporalAddress: string, name: string, limit: number): Promise<OnlineFraudWorker> {
  const keyPrefix = uniqueName(name);
  const { config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: temporalAddress, INFERFLOW_TASK_QUEUE: uniqueName(`test-${name}`) });
  const fixture = await prepareOnlineFraud(config, dir, keyPrefix, limit);
  const worker = await startWorker(config);
  return {
    ...fixture,
    config,
    dir,
    keyPrefix,
    worker,
    input: (maxPredictionsPerRun) => ({ model: fixture.spec.model, featureViews: fixture.spec.featureViews!, onDemand: fixture.spec.onDemand!, store: { type: 'redis', keyPrefix }, idColumn: 'transaction_id', maxPredictionsPerRun }),
    stop: async () => {
      await worker.stop();
      await dropOnlineFraud(keyPrefix);
      await cleanup();
    },
  };
}
