/**
 * Post-processing steps and models that answer with more than one score, through the shared
 * runtime (openPipeline → predict → the batch part writer, and Pipeline.infer online): every
 * output is compared with scikit-learn's on the same rows (examples/train/train_multi_output.py
 * wrote them), and every bad step is a typed error naming the step and the field before any row
 * is predicted.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import {
  EMBEDDING_EXPECTED,
  EXAMPLE_FEATURES,
  EXAMPLE_MODEL_DIR,
  REPO_ROOT,
  RISK_MODULE,
  RISK_TIER_EXPECTED,
  RISK_TIER_PIPELINE,
  SPEND_FORECAST_EXPECTED,
  registerEmbeddingModel,
  registerExampleModel,
  registerMultiOutputExampleModels,
} from '../../cli/examples';
import { InvalidInputError, InvalidValueError, SchemaMismatchError } from '../../lib/errors';
import type { ModelRegistry } from '../../lib/registry';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { predictShard, stageSnapshot } from '../../lib/pipeline/batch';
import { openPipeline, type Pipeline } from '../../lib/pipeline/pipeline';
import { createResources, type Resources } from '../../lib/pipeline/resources';
import { loadPipelineSpec } from '../../lib/pipeline/spec';
import type { PostProcessStep } from '../../lib/messages/post-process';
import type { ResolvedModel } from '../../lib/registry/manifest';
import { tempConfig } from '../helpers/env';

const ROWS = 2_000;
const TIER_NAMES: Record<string, string> = { '0': 'low', '1': 'medium', '2': 'high' };
let dir: string;
let cleanup: () => Promise<void>;
let resources: Resources;
let models: { riskTier: ResolvedModel; spendForecast: ResolvedModel; fraud: ResolvedModel; embedding: ResolvedModel };
let registry: ModelRegistry;
let input: string;

type Row = Record<string, unknown>;

async function rowsOf(sql: string): Promise<Row[]> {
  return withDuckDB(async (conn) => (await conn.runAndReadAll(sql)).getRowObjectsJS() as Row[]);
}

/** Predict the first ROWS rows of transactions.parquet through the batch path into a Parquet part; its rows by transaction_id. */
async function batchPart(pipeline: Pipeline, name: string, features = input): Promise<Map<string, Row>> {
  const planned = await stageSnapshot({ featuresPath: features, snapshotPath: path.join(dir, `${name}-snapshot.parquet`), manifest: pipeline.manifest, idColumn: 'transaction_id', shardSize: ROWS, plan: pipeline.plan });
  const partPath = path.join(dir, `${name}.parquet`);
  await predictShard({
    pipeline,
    snapshotPath: planned.snapshotPath,
    ...(planned.inPlace ? { inPlace: planned.inPlace } : {}),
    idColumn: 'transaction_id',
    shard: planned.shards[0]!,
    partPath,
    lineage: { runId: `run-${name}`, model: pipeline.model, asOf: '2026-12-01T00:00:00Z' },
    chunkRows: 512,
  });
  const rows = await rowsOf(`SELECT * FROM read_parquet(${lit(partPath)})`);
  return new Map(rows.map((r) => [String(r.transaction_id), r]));
}

async function expectedRows(file: string): Promise<Row[]> {
  return rowsOf(`SELECT e.*, t.amount FROM read_parquet(${lit(file)}) e JOIN read_parquet(${lit(EXAMPLE_FEATURES)}) t USING (transaction_id)`);
}

/** float32 model outputs against Python's float64: within a few float32 ulps. */
const close = (a: number, b: number, rel = 2e-6, abs = 1e-6) => Math.abs(a - b) <= abs + rel * Math.abs(b);

beforeAll(async () => {
  const env = await tempConfig({ INFERFLOW_MODULES: `risk=${RISK_MODULE},bad=${path.join(REPO_ROOT, 'test', 'fixtures', 'post-process', 'bad.ts')}` });
  ({ dir, cleanup } = env);
  resources = createResources(env.config);
  const { ModelRegistry } = await import('../../lib/registry');
  const { openStore } = await import('../../lib/storage');
  registry = new ModelRegistry(openStore(env.config.registry));
  await registerMultiOutputExampleModels(registry);
  await registerExampleModel(registry);
  await registerEmbeddingModel(registry);
  models = {
    riskTier: await resources.resolveModel('risk-tier@production'),
    spendForecast: await resources.resolveModel('spend-forecast@production'),
    fraud: await resources.resolveModel('fraud-detector@production'),
    embedding: await resources.resolveModel('transaction-embedding@production'),
  };
  input = path.join(dir, 'first-rows.parquet');
  await withDuckDB((conn) => conn.run(`COPY (SELECT * FROM read_parquet(${lit(EXAMPLE_FEATURES)}) LIMIT ${ROWS}) TO ${lit(input)} (FORMAT parquet)`));
});

afterAll(async () => {
  await resources?.close();
  await cleanup?.();
});

describe('multi-class and multi-output models', () => {
  it('multi-class: the top class and every class probability, named prob_<class>, equal scikit-learn\'s', async () => {
    const pipeline = await openPipeline({ model: models.riskTier }, resources);
    expect(pipeline.outputSchema.map((f) => `${f.name}:${f.kind}`)).toEqual(['label:int', 'score:float', 'prob_0:float', 'prob_1:float', 'prob_2:float']);
    const out = await batchPart(pipeline, 'risk-plain');
    const expected = await expectedRows(RISK_TIER_EXPECTED);
    expect(out.size).toBe(ROWS);
    const bad = expected.filter((e) => {
      const r = out.get(String(e.transaction_id))!;
      const probs = [0, 1, 2].map((c) => Number(r[`prob_${c}`]));
      return Number(r.label) !== Number(e.label) || [0, 1, 2].some((c) => !close(probs[c]!, Number(e[`prob_${c}`]))) || Number(r.score) !== Math.max(...probs);
    });
    expect(bad).toEqual([]);
  });

  it('multi-output regression: one list column per row, equal to scikit-learn\'s targets', async () => {
    const pipeline = await openPipeline({ model: models.spendForecast }, resources);
    expect(pipeline.outputSchema).toEqual([{ name: 'prediction', kind: 'floats', width: 2 }]);
    const out = await batchPart(pipeline, 'spend-plain');
    const expected = await expectedRows(SPEND_FORECAST_EXPECTED);
    const bad = expected.filter((e) => {
      const p = out.get(String(e.transaction_id))!.prediction as number[];
      return p.length !== 2 || !close(p[0]!, Number(e.spend_7d), 1e-5, 1e-3) || !close(p[1]!, Number(e.spend_30d), 1e-5, 1e-3);
    });
    expect(bad).toEqual([]);
  });
});

describe('embedding models', () => {
  it('an embedding: one FLOAT[8] column per row, every element equal to scikit-learn\'s', async () => {
    const pipeline = await openPipeline({ model: models.embedding }, resources);
    expect(pipeline.outputSchema).toEqual([{ name: 'embedding', kind: 'floats', width: 8 }]);
    const out = await batchPart(pipeline, 'embedding');
    const expected = await rowsOf(`SELECT * FROM read_parquet(${lit(EMBEDDING_EXPECTED)})`);
    expect(expected).toHaveLength(ROWS);
    const bad = expected.filter((e) => {
      const v = out.get(String(e.transaction_id))!.embedding as number[];
      return v.length !== 8 || v.some((x, j) => !close(x, Number(e[`e${j}`]), 2e-4, 1e-5));
    });
    expect(bad).toEqual([]);
  });

  it('fails a block where the model itself outputs ±Infinity, in batch and online, naming the model, the output and the row, never null', async () => {
    // amount 3e38 is a finite float32 the embedding's linear layers take past float32's range.
    const huge = path.join(dir, 'huge-amount.parquet');
    const [first] = await rowsOf(`SELECT transaction_id FROM read_parquet(${lit(input)}) ORDER BY transaction_id LIMIT 1`);
    const id = String(first!.transaction_id);
    await withDuckDB((conn) =>
      conn.run(`COPY (SELECT * REPLACE (CASE WHEN transaction_id = ${lit(id)} THEN 3e38 ELSE amount END AS amount) FROM read_parquet(${lit(input)})) TO ${lit(huge)} (FORMAT parquet)`),
    );
    const pipeline = await openPipeline({ model: models.embedding, idColumn: 'transaction_id' }, resources);
    const want = new RegExp(`^model transaction-embedding:${models.embedding.version} output non-finite numbers in embedding \\(8 values\\): transaction_id=${id}: embedding\\[0\\] = -?Infinity; `);
    const err = await batchPart(pipeline, 'huge-amount', huge).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidValueError);
    expect((err as InvalidValueError).message).toMatch(want);

    const [request] = (await rowsOf(`SELECT * FROM read_parquet(${lit(huge)}) WHERE transaction_id = ${lit(id)}`)).map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.toISOString() : v])),
    );
    await expect(pipeline.infer({ requests: [request!] })).rejects.toThrow(new RegExp(`output non-finite numbers in embedding \\(8 values\\): transaction_id=${id}: embedding\\[0\\] = -?Infinity`));
  });

  it('refuses to register an embedding whose output is not one float32 [N, k] tensor, naming the output', async () => {
    const metadata = { ...(JSON.parse(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'metadata.json'), 'utf8')) as object), task: 'embedding' };
    const err = await registry.register(path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), { name: 'not-an-embedding', metadata }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).problems).toEqual(['output label is int64; an embedding is float32', 'output label has shape [N]; an embedding is [N, k] with k fixed']);
  });
});

describe('post-processing steps', () => {
  it('runs the risk-tier spec\'s steps in batch and online alike, and records them in every row', async () => {
    const spec = await loadPipelineSpec(RISK_TIER_PIPELINE);
    const pipeline = await openPipeline({ model: models.riskTier, postProcess: spec.postProcess! }, resources);
    expect(pipeline.outputSchema.map((f) => `${f.name}:${f.kind}${f.width ? `[${f.width}]` : ''}`)).toEqual([
      'label:string', 'score:float', 'prob_low:float', 'prob_medium:float', 'prob_high:float', 'top_classes:strings[2]', 'top_probabilities:floats[2]', 'action:string',
    ]);
    const out = await batchPart(pipeline, 'risk-post');
    const expected = await expectedRows(RISK_TIER_EXPECTED);
    let reviewed = 0;
    const bad = expected.filter((e) => {
      const r = out.get(String(e.transaction_id))!;
      const probs = [0, 1, 2].map((c) => ({ name: TIER_NAMES[c]!, p: Number(e[`prob_${c}`]) })).sort((a, b) => b.p - a.p);
      const amount = Number(e.amount);
      const label = amount > 2000 ? 'review' : TIER_NAMES[String(e.label)]!;
      if (label === 'review') reviewed++;
      const action = label === 'high' ? 'decline' : label !== 'low' && amount > 500 ? 'hold' : 'approve';
      const top = r.top_classes as string[];
      const topP = r.top_probabilities as number[];
      return r.label !== label || r.action !== action || top.join() !== probs.slice(0, 2).map((x) => x.name).join() || !close(topP[0]!, probs[0]!.p) || !close(topP[1]!, probs[1]!.p);
    });
    expect(bad).toEqual([]);
    expect(reviewed).toBeGreaterThan(0);
    const first = [...out.values()][0]!;
    expect(first.post_process).toBe('classNames > topK(2) > rule(amount > 2000 → review) > risk.action');
    expect(first.post_process_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(first.model_version).toBe(models.riskTier.version);

    // Online: the same steps over request rows.
    const sample = expected.slice(0, 5);
    const requests = await rowsOf(`SELECT * FROM read_parquet(${lit(input)}) WHERE transaction_id IN (${sample.map((e) => lit(String(e.transaction_id))).join(', ')}) ORDER BY transaction_id`);
    const { predictions } = await pipeline.infer({ requests: requests.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.toISOString() : v]))) });
    const labels = predictions.columns!.get('label')!.values;
    requests.forEach((r, i) => expect(labels[i]).toBe(out.get(String(r.transaction_id))!.label));
    expect(predictions.postProcessing).toEqual({ steps: first.post_process, sha256: first.post_process_sha256 });
  });

  it('applies a decision threshold to a binary classifier\'s score, then a rule comparing two features', async () => {
    const plain = await batchPart(await openPipeline({ model: models.fraud }, resources), 'fraud-plain');
    const pipeline = await openPipeline({ model: models.fraud, postProcess: [{ type: 'threshold', threshold: 0.3 }, { type: 'rule', feature: 'amount', op: '>', value: { feature: 'customer_avg_amount_30d' }, set: 9 }] }, resources);
    expect(pipeline.outputSchema.map((f) => `${f.name}:${f.kind}`)).toEqual(['label:int', 'score:float']);
    const out = await batchPart(pipeline, 'fraud-threshold');
    const inputs = new Map((await rowsOf(`SELECT transaction_id, amount, customer_avg_amount_30d FROM read_parquet(${lit(input)})`)).map((r) => [String(r.transaction_id), r]));
    let flipped = 0;
    const bad = [...plain].filter(([id, p]) => {
      const r = out.get(id)!;
      const x = inputs.get(id)!;
      const want = Number(x.amount) > Number(x.customer_avg_amount_30d) ? 9 : Number(p.score) >= 0.3 ? 1 : 0;
      if ((Number(p.score) >= 0.3 ? 1 : 0) !== Number(p.label)) flipped++; // rows the 0.5 default decides otherwise
      return r.score !== p.score || Number(r.label) !== want;
    });
    expect(bad).toEqual([]);
    expect(flipped).toBeGreaterThan(0);
    expect(out.values().next().value!.post_process).toBe('threshold(0.3) > rule(amount > customer_avg_amount_30d → 9)');
  });

  it('clips and rounds regression values, list columns included', async () => {
    const pipeline = await openPipeline({ model: models.spendForecast, postProcess: [{ type: 'clip', min: 0, max: 5000, decimals: 1 }] }, resources);
    const out = await batchPart(pipeline, 'spend-clip');
    const expected = await expectedRows(SPEND_FORECAST_EXPECTED);
    const want = (x: number) => Math.fround(Math.round(Math.min(5000, Math.max(0, x)) * 10) / 10);
    const bad = expected.filter((e) => {
      const p = out.get(String(e.transaction_id))!.prediction as number[];
      return Math.abs(p[0]! - want(Number(e.spend_7d))) > 0.11 || Math.abs(p[1]! - want(Number(e.spend_30d))) > 0.11 || p.some((x) => x < 0 || x > 5000 || Math.abs(x * 10 - Math.round(x * 10)) > 1e-3 * Math.max(1, x));
    });
    expect(bad).toEqual([]);
    expect(expected.some((e) => Number(e.spend_30d) > 5000)).toBe(true);
  });

  const fails = async (model: () => ResolvedModel, postProcess: unknown[]) => {
    const err = await openPipeline({ model: model(), postProcess: postProcess as PostProcessStep[] }, resources, { session: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidInputError);
    return (err as InvalidInputError).problems.join('\n');
  };

  it('rejects a bad step before anything is predicted, naming the step and the field', async () => {
    expect(await fails(() => models.riskTier, [{ type: 'topK', k: 4 }])).toBe("postProcess[0] (topK).k: 4 is larger than the model's 3 classes");
    expect(await fails(() => models.riskTier, [{ type: 'threshold', threshold: 0.5 }])).toContain('postProcess[0] (threshold).type: a threshold needs a binary classifier');
    expect(await fails(() => models.spendForecast, [{ type: 'clip', min: 10, max: 1 }])).toBe('postProcess[0] (clip).min: 10 is larger than max 1');
    expect(await fails(() => models.riskTier, [{ type: 'classNames', names: { '0': 'low', '1': 'medium', '7': 'x' } }])).toBe(
      'postProcess[0] (classNames).names: 7 is not a class of the model (classes: 0, 1, 2)\npostProcess[0] (classNames).names: no name for class 2',
    );
    expect(await fails(() => models.riskTier, [{ type: 'module', name: 'risk.nope' }])).toContain('postProcess[0] (risk.nope).name: "risk.nope" is not a registered post-processor (registered: bad.notFinite, bad.wrongName, bad.wrongType, risk.action)');
    expect(await fails(() => models.riskTier, [{ type: 'module', name: 'risk.action' }])).toBe('postProcess[0] (risk.action).inputs.label: declared string, output column label is int here');
  });

  it('rejects a threshold outside [0, 1] in the spec, naming the field', async () => {
    const { parsePipelineSpec } = await import('../../lib/pipeline/spec');
    expect(() => parsePipelineSpec({ model: 'm', features: 'x.parquet', postProcess: [{ type: 'threshold', threshold: 1.5 }] })).toThrow(/postProcess\[0\]\.threshold: must be a number between 0 and 1/);
  });

  it('fails a block whose post-processor returns NaN, in batch and online, naming the step, the output and the rows', async () => {
    const pipeline = await openPipeline({ model: models.fraud, postProcess: [{ type: 'module', name: 'bad.notFinite' }], idColumn: 'transaction_id' }, resources);
    const err = await batchPart(pipeline, 'not-finite').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidValueError);
    expect((err as InvalidValueError).message).toMatch(/^postProcess\[0\] \(bad\.notFinite\) returned non-finite numbers \(\d+ values, first 10\): transaction_id=\S+: log_margin = NaN; /);
    expect((err as InvalidValueError).details.problems).toHaveLength(10);

    const requests = (await rowsOf(`SELECT * FROM read_parquet(${lit(input)}) ORDER BY transaction_id LIMIT 3`)).map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.toISOString() : v])),
    );
    await expect(pipeline.infer({ requests })).rejects.toThrow(/returned non-finite numbers \(\d values?\): transaction_id=\S+: log_margin = NaN/);
  });

  it('fails a run whose post-processor returns other outputs than it declares, naming the step and the columns', async () => {
    const wrongName = await openPipeline({ model: models.riskTier, postProcess: [{ type: 'module', name: 'bad.wrongName' }] }, resources);
    await expect(batchPart(wrongName, 'bad-name')).rejects.toThrow(SchemaMismatchError);
    await expect(batchPart(wrongName, 'bad-name')).rejects.toThrow(/postProcess\[0\] \(bad\.wrongName\): declared outputs do not match/);
    const err = await batchPart(wrongName, 'bad-name').catch((e: unknown) => e as SchemaMismatchError);
    expect((err as SchemaMismatchError).problems).toEqual(['output decision is declared but not returned', 'output verdict is returned but not declared (declared: decision)']);
    const wrongType = await openPipeline({ model: models.riskTier, postProcess: [{ type: 'module', name: 'bad.wrongType' }] }, resources);
    const err2 = await batchPart(wrongType, 'bad-type').catch((e: unknown) => e as SchemaMismatchError);
    expect((err2 as SchemaMismatchError).problems).toEqual(['output margin must be a Float64Array']);
  });
});
