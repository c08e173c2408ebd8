/**
 * `inferflow serve` with models that answer with more than one score and a post-processed
 * pipeline: the V2 response carries every class probability, the post-processing steps' columns
 * (lists as [rows, width] tensors) and which post-processing produced them; the values equal
 * scikit-learn's for the same rows (examples/data/*_expected.parquet).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_FEATURES, RISK_MODULE, RISK_TIER_EXPECTED, RISK_TIER_PIPELINE, SPEND_FORECAST_EXPECTED, registerMultiOutputExampleModels } from '../../cli/examples';
import { serve } from '../../cli/serve';
import { InvalidInputError } from '../../lib/errors';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { tempConfig } from '../helpers/env';

type Row = Record<string, unknown>;
type Output = { name: string; datatype: string; shape: number[]; data: unknown[] };
const TIER_NAMES: Record<string, string> = { '0': 'low', '1': 'medium', '2': 'high' };
const ROWS = 40;
const saved = { ...process.env };
let cleanup: () => Promise<void>;
let dir: string;
const servers: Awaited<ReturnType<typeof serve>>[] = [];
let rows: Row[];

beforeAll(async () => {
  const env = await tempConfig();
  ({ dir, cleanup } = env);
  await registerMultiOutputExampleModels(new ModelRegistry(openStore(env.config.registry)));
  process.env.INFERFLOW_DATA_DIR = env.dir;
  process.env.INFERFLOW_LOG_LEVEL = 'warn';
  process.env.INFERFLOW_MODULES = `risk=${RISK_MODULE}`;
  rows = await withDuckDB(async (conn) =>
    (
      await conn.runAndReadAll(
        `SELECT t.transaction_id, t.amount, t.customer_avg_amount_30d, t.customer_txn_count_24h, t.distance_from_home_km, t.merchant_risk, t.is_foreign,
                r.label, r.prob_0, r.prob_1, r.prob_2, s.spend_7d, s.spend_30d
         FROM read_parquet(${lit(RISK_TIER_EXPECTED)}) r JOIN read_parquet(${lit(SPEND_FORECAST_EXPECTED)}) s USING (transaction_id) JOIN read_parquet(${lit(EXAMPLE_FEATURES)}) t USING (transaction_id)
         ORDER BY t.amount DESC LIMIT ${ROWS}`,
      )
    ).getRowObjectsJS() as Row[],
  );
});

afterAll(async () => {
  for (const s of servers) await s.shutdown();
  process.env = saved;
  await cleanup?.();
});

async function start(spec: string) {
  const s = await serve(spec, { port: 0, host: '127.0.0.1' });
  servers.push(s);
  return s;
}

async function infer(url: string, model: string, fields: string[]): Promise<{ outputs: Output[]; parameters: Record<string, unknown> }> {
  const inputs = fields.map((f) => ({ name: f, datatype: f === 'transaction_id' ? 'BYTES' : 'FP64', shape: [rows.length], data: rows.map((r) => (f === 'transaction_id' ? r[f] : Number(r[f]))) }));
  const res = await fetch(`${url}/v2/models/${model}/infer`, { method: 'POST', body: JSON.stringify({ inputs }), headers: { 'content-type': 'application/json' } });
  const json = (await res.json()) as { outputs: Output[]; parameters: Record<string, unknown> };
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json;
}

const close = (a: number, b: number, rel = 2e-6, abs = 1e-6) => Math.abs(a - b) <= abs + rel * Math.abs(b);

describe('inferflow serve: multi-class, multi-output and post-processed pipelines', () => {
  it('answers the risk-tier spec\'s post-processed outputs, equal to scikit-learn\'s probabilities', async () => {
    const s = await start(RISK_TIER_PIPELINE);
    const meta = (await (await fetch(`${s.url}/v2/models/risk-tier`)).json()) as { outputs: { name: string; datatype: string; shape: number[] }[] };
    expect(meta.outputs).toEqual([
      { name: 'label', datatype: 'BYTES', shape: [-1] },
      { name: 'score', datatype: 'FP32', shape: [-1] },
      { name: 'prob_low', datatype: 'FP32', shape: [-1] },
      { name: 'prob_medium', datatype: 'FP32', shape: [-1] },
      { name: 'prob_high', datatype: 'FP32', shape: [-1] },
      { name: 'top_classes', datatype: 'BYTES', shape: [-1, 2] },
      { name: 'top_probabilities', datatype: 'FP32', shape: [-1, 2] },
      { name: 'action', datatype: 'BYTES', shape: [-1] },
    ]);
    const { outputs, parameters } = await infer(s.url, 'risk-tier', ['transaction_id', 'amount', 'customer_avg_amount_30d', 'distance_from_home_km', 'merchant_risk', 'is_foreign']);
    const out = Object.fromEntries(outputs.map((o) => [o.name, o]));
    expect(out.top_classes!.shape).toEqual([ROWS, 2]);
    expect(parameters.post_process).toBe('classNames > topK(2) > rule(amount > 2000 → review) > risk.action');
    expect(parameters.post_process_sha256).toMatch(/^[0-9a-f]{64}$/);
    let reviewed = 0;
    rows.forEach((r, i) => {
      const label = Number(r.amount) > 2000 ? 'review' : TIER_NAMES[String(r.label)];
      if (label === 'review') reviewed++;
      expect(out.label!.data[i]).toBe(label);
      for (const [c, name] of Object.entries(TIER_NAMES)) expect(close(out[`prob_${name}`]!.data[i] as number, Number(r[`prob_${c}`]))).toBe(true);
      const top = Object.entries(TIER_NAMES).sort(([a], [b]) => Number(r[`prob_${b}`]) - Number(r[`prob_${a}`]));
      expect(out.top_classes!.data.slice(i * 2, i * 2 + 2)).toEqual(top.slice(0, 2).map(([, n]) => n));
    });
    expect(reviewed).toBeGreaterThan(0);
  });

  it('answers a multi-output regressor\'s targets as a [rows, 2] tensor, equal to scikit-learn\'s', async () => {
    const spec = path.join(dir, 'spend.json');
    await fs.writeFile(spec, JSON.stringify({ model: 'spend-forecast@production', features: EXAMPLE_FEATURES }));
    const s = await start(spec);
    const { outputs } = await infer(s.url, 'spend-forecast', ['amount', 'customer_avg_amount_30d', 'customer_txn_count_24h']);
    expect(outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([['prediction', 'FP32', [ROWS, 2]]]);
    const data = outputs[0]!.data as number[];
    rows.forEach((r, i) => {
      expect(close(data[2 * i]!, Number(r.spend_7d), 1e-5, 1e-3)).toBe(true);
      expect(close(data[2 * i + 1]!, Number(r.spend_30d), 1e-5, 1e-3)).toBe(true);
    });
  });

  it('does not start with a step that cannot fit the model (top-k larger than the class count)', async () => {
    const spec = path.join(dir, 'bad-topk.json');
    await fs.writeFile(spec, JSON.stringify({ model: 'risk-tier@production', features: EXAMPLE_FEATURES, postProcess: [{ type: 'topK', k: 5 }] }));
    const err = (await serve(spec, { port: 0, host: '127.0.0.1' }).catch((e: unknown) => e)) as InvalidInputError;
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.problems).toEqual(["postProcess[0] (topK).k: 5 is larger than the model's 3 classes"]);
  });
});
