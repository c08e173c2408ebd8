/**
 * The online serving fixture: the features example model registered in a throwaway data dir,
 * its feature view materialised into the test Redis under a unique key prefix, 60 requests of
 * one day of the spine, and the scores Python's training code computed for them.
 */
import path from 'node:path';
import { FEATURES_EXPECTED, FEATURES_PIPELINE, registerFeaturesExampleModel } from '../../cli/examples';
import { materializeView } from '../../lib/features/materialize';
import { openOnlineStore } from '../../lib/features/online';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { scoresIn, type Scores } from './data';
import { tempConfig, uniqueName } from './env';
import { TEST_REDIS_URL } from './services';

export const DAY = 86_400_000;
/** The day of the spine the requests come from (the view's features are materialised up to its end). */
export const T = Date.parse('2026-10-13T00:00:00Z');

export interface ServeRequest {
  transaction_id: string;
  customer_id: number;
  ts: string;
  amount: number;
  merchant_category: string;
  lat: number;
  lon: number;
}

export interface ServeFixture {
  dir: string;
  keyPrefix: string;
  requests: ServeRequest[];
  expected: Scores;
  cleanup(): Promise<void>;
}

/** Set up the fixture; sets INFERFLOW_DATA_DIR (serve() reads the registry from the environment) until cleanup. */
export async function serveFixture(): Promise<ServeFixture> {
  const saved = { ...process.env };
  const env = await tempConfig();
  const keyPrefix = uniqueName('serve');
  await registerFeaturesExampleModel(new ModelRegistry(openStore(env.config.registry)));
  const spec = await loadPipelineSpec(FEATURES_PIPELINE);
  const store = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: env.dir });
  await materializeView({ view: spec.featureViews![0], store, end: new Date(T + DAY - 1) });
  await store.close();
  process.env.INFERFLOW_DATA_DIR = env.dir;
  process.env.INFERFLOW_LOG_LEVEL = 'warn';
  const expected = await scoresIn(FEATURES_EXPECTED);
  const requests = await withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(
      `SELECT transaction_id, customer_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), amount, merchant_category, lat, lon FROM read_parquet(${lit(path.resolve(spec.spine!))})
       WHERE event_timestamp >= ${lit(new Date(T).toISOString())}::TIMESTAMPTZ AND event_timestamp < ${lit(new Date(T + DAY).toISOString())}::TIMESTAMPTZ ORDER BY transaction_id LIMIT 60`,
    );
    return r.getRowsJS().map((x) => ({ transaction_id: toText(x[0]), customer_id: Number(x[1]), ts: toText(x[2]), amount: Number(x[3]), merchant_category: toText(x[4]), lat: Number(x[5]), lon: Number(x[6]) }));
  });
  return {
    dir: env.dir,
    keyPrefix,
    requests,
    expected,
    cleanup: async () => {
      const s = openOnlineStore({ type: 'redis', keyPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: env.dir });
      await s.deleteView('customer_stats');
      await s.close();
      process.env = saved;
      await env.cleanup();
    },
  };
}

/** A V2 inference request body for request rows (one input per field, shape [N]). */
export function v2Body(rows: readonly ServeRequest[], asOf?: string) {
  const col = (name: string, datatype: string, data: unknown[]) => ({ name, datatype, shape: [data.length], data });
  return {
    id: 'req-1',
    inputs: [
      col('transaction_id', 'BYTES', rows.map((r) => r.transaction_id)),
      col('customer_id', 'INT64', rows.map((r) => r.customer_id)),
      col('event_timestamp', 'BYTES', rows.map((r) => r.ts)),
      col('amount', 'FP64', rows.map((r) => r.amount)),
      col('merchant_category', 'BYTES', rows.map((r) => r.merchant_category)),
      col('lat', 'FP64', rows.map((r) => r.lat)),
      col('lon', 'FP64', rows.map((r) => r.lon)),
    ],
    ...(asOf ? { parameters: { as_of: asOf } } : {}),
  };
}
