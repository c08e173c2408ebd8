/**
 * Online/offline parity: requests scored online (features from Redis, materialised from the
 * view's offline source) get the same scores as the batch pipeline and the Python training
 * code give them — the same on-demand functions and fitted transforms, one assembly step.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FEATURES_EXPECTED, FEATURES_MODEL_DIR, FEATURES_PIPELINE, registerFeaturesExampleModel } from '../../cli/examples';
import { InvalidInputError, SchemaMismatchError } from '../../lib/errors';
import { getHistoricalFeatures } from '../../lib/features';
import { materializeView } from '../../lib/features/materialize';
import { parseFeatureView, type FeatureView } from '../../lib/features/spec';
import { openOnlineStore, type OnlineStore } from '../../lib/features/online';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { scoresIn, type Scores } from '../helpers/data';
import { OnDemandRegistry } from '../../lib/features/on-demand';
import { planAssembly, type AssemblyPlan } from '../../lib/pipeline/assemble';
import { assembleOnline, type OnlineRequest } from '../../lib/pipeline/online';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import { ModelRegistry, type ModelManifest } from '../../lib/registry';
import { loadSession } from '../../lib/runtime/onnx';
import { predict } from '../../lib/pipeline/predict';
import { openStore } from '../../lib/storage';
import { tempConfig, uniqueName } from '../helpers/env';
import { TEST_REDIS_URL } from '../helpers/services';

const DAY = 86_400_000;
const T = Date.parse('2026-10-12T00:00:00Z');

let store: OnlineStore;
let cleanup: () => Promise<void>;
let plan: AssemblyPlan;
let manifest: ModelManifest;
let views: FeatureView[];
let requests: (OnlineRequest & { transaction_id: string; event_timestamp: Date })[];
let expected: Scores;

beforeAll(async () => {
  const env = await tempConfig();
  cleanup = env.cleanup;
  const registry = new ModelRegistry(openStore(env.config.registry));
  ({ manifest } = await registerFeaturesExampleModel(registry));
  const input = await loadPipelineSpec(FEATURES_PIPELINE);
  views = input.featureViews!.map((v) => parseFeatureView(v));
  plan = planAssembly(manifest, (await OnDemandRegistry.load(env.config.modules)).resolve(input.onDemand ?? []));
  store = openOnlineStore({ type: 'redis', keyPrefix: uniqueName('parity') }, { redisUrl: TEST_REDIS_URL, dataDir: env.dir });
  // Every snapshot up to the end of day T: what an hourly materialisation would hold during that day.
  const r = await materializeView({ view: views[0], store, end: new Date(T + DAY - 1) });
  expect(r.written).toBeGreaterThan(900);
  expected = await scoresIn(FEATURES_EXPECTED);
  ({ requests } = await withDuckDB(async (conn) => {
    const spine = await conn.runAndReadAll(
      `SELECT transaction_id, customer_id, epoch_ms(event_timestamp)::DOUBLE AS ts, amount, merchant_category, lat, lon FROM read_parquet(${lit(input.spine!)})
       WHERE event_timestamp >= ${lit(new Date(T).toISOString())}::TIMESTAMPTZ AND event_timestamp < ${lit(new Date(T + DAY).toISOString())}::TIMESTAMPTZ
       ORDER BY transaction_id LIMIT 400`,
    );
    return {
      requests: spine.getRowObjectsJS().map((o) => ({
        transaction_id: toText(o.transaction_id),
        customer_id: Number(o.customer_id),
        event_timestamp: new Date(Number(o.ts)),
        amount: Number(o.amount),
        merchant_category: toText(o.merchant_category),
        lat: Number(o.lat),
        lon: Number(o.lon),
      })),
    };
  }));
});

afterAll(async () => {
  await store?.deleteView('customer_stats');
  await store?.close();
  await cleanup?.();
});

describe('online scoring through the shared assembly step', () => {
  it('scores each request as batch and the Python training code do', async () => {
    expect(requests.length).toBeGreaterThan(300);
    const session = await loadSession(path.join(FEATURES_MODEL_DIR, 'model.onnx'), 'fraud-features');
    try {
      let maxDiff = 0;
      let labelMismatches = 0;
      const seen = new Set<string>();
      for (const req of requests) {
        // Freshness at the request's own time, as a server answering it then would see it.
        const { block, statuses } = await assembleOnline({ plan, views, store, requests: [req], now: req.event_timestamp, idField: 'transaction_id' });
        for (const s of Object.values(statuses[0]!)) seen.add(s);
        const p = await predict(session, manifest, block);
        const want = expected.get(req.transaction_id)!;
        if (want.label !== p.label![0]) labelMismatches++;
        maxDiff = Math.max(maxDiff, Math.abs(want.score - p.score![0]!));
      }
      expect(labelMismatches).toBe(0);
      expect(maxDiff).toBeLessThan(1e-6);
      expect(seen.has('PRESENT')).toBe(true);
    } finally {
      await session.release();
    }
  });

  it('a customer the store does not know is scored on imputed values, with NOT_FOUND reported', async () => {
    const req = { ...requests[0]!, customer_id: 999_999 };
    const { block, statuses } = await assembleOnline({ plan, views, store, requests: [req], now: req.event_timestamp });
    expect(statuses[0]!['customer_stats__avg_amount_30d']).toBe('NOT_FOUND');
    // home distance is unknown → imputed by the model's median imputer, not NaN
    expect(Array.from(block.inputs.features!).every(Number.isFinite)).toBe(true);
  });

  it('a null entity key finds no features: NOT_FOUND and the model inputs of an unknown customer, as batch joins nulls for a spine row with a null key', async () => {
    const unknown = await assembleOnline({ plan, views, store, requests: [{ ...requests[0]!, customer_id: 999_999 }], now: requests[0]!.event_timestamp });
    for (const customer_id of [null, undefined]) {
      const { block, statuses } = await assembleOnline({ plan, views, store, requests: [{ ...requests[0]!, customer_id }], now: requests[0]!.event_timestamp });
      expect(Object.values(statuses[0]!).every((s) => s === 'NOT_FOUND')).toBe(true);
      expect(block.inputs).toEqual(unknown.block.inputs);
    }
    // Batch: the same request as a spine row with a null key gets null features, imputed by the same assembly step.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-null-key-'));
    try {
      const spine = path.join(dir, 'spine.csv');
      const ts = requests[0]!.event_timestamp.toISOString();
      await fs.writeFile(spine, `customer_id,event_timestamp\n${requests[0]!.customer_id as number},${ts}\n,${ts}\n`);
      const out = await getHistoricalFeatures({ spine, views, output: path.join(dir, 'out.parquet') });
      const rows = await withDuckDB(async (c) => (await c.runAndReadAll(`SELECT * FROM read_parquet(${lit(out.output)}) ORDER BY spine_row`)).getRowObjectsJS());
      expect(rows[0]!.customer_stats__avg_amount_30d).not.toBeNull();
      for (const f of views[0]!.features) expect(rows[1]![`customer_stats__${f.name}`]).toBeNull();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects request values of the wrong type, naming the field, the row and what it must be', async () => {
    const err = await assembleOnline({ plan, views, store, requests: [requests[0]!, { ...requests[1]!, customer_id: 1.5, amount: true, event_timestamp: 'not a time' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).problems).toEqual([
      'customer_id[1]: expected a string (BYTES) or an integer (INT64) entity key, or null, got 1.5',
      'amount[1]: expected a number (FP64) or null, got true',
      'event_timestamp[1]: expected an ISO 8601 time (BYTES) or epoch milliseconds (INT64), or null, got "not a time"',
    ]);
  });

  it('lists every request field the pipeline needs and did not get', async () => {
    const { amount: _a, lat: _l, ...partial } = requests[0]!;
    const err = await assembleOnline({ plan, views, store, requests: [partial] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaMismatchError);
    expect((err as SchemaMismatchError).problems).toEqual([
      expect.stringMatching(/^amount is missing from the requests/),
      expect.stringMatching(/^lat is missing from the requests \(on-demand feature distance_km needs it as numeric\)/),
    ]);
  });
});
