import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../cli/examples';
import { InvalidInputError, InvalidValueError, SchemaMismatchError } from '../../lib/errors';
import { ConfigError } from '../../lib/config/env';
import { computeOnDemand, defineOnDemandFeature, OnDemandRegistry, type LoadedOnDemand } from '../../lib/features/on-demand';
import { assembleBlock, checkSignature, checkSourceColumns, planAssembly } from '../../lib/pipeline/assemble';
import type { ModelManifest } from '../../lib/registry/manifest';
import { ModelMetadataSchema } from '../../lib/registry/manifest';

const FRAUD = path.join(REPO_ROOT, 'examples', 'features', 'fraud.ts');
const registry = OnDemandRegistry.load([{ name: 'fraud', path: FRAUD }]);
/** Registered fraud features by export name. */
const fraud = async (...names: string[]) => (await registry).resolve(names.map((e) => ({ name: `fraud.${e}` })));

function manifest(metadata: unknown, width?: number): ModelManifest {
  const m = ModelMetadataSchema.parse(metadata);
  return {
    format: 'inferflow.model/v1',
    name: 'm',
    version: 1,
    artifact: { key: 'k', sha256: '0'.repeat(64), size: 1 },
    signature: { inputs: [{ name: 'x', elementType: 'float32', shape: [null, width ?? m.inputs[0]!.columns.length] }], outputs: [] },
    metadata: m,
    createdAt: '2026-11-25T00:00:00Z',
  };
}

const loaded = (f: ReturnType<typeof defineOnDemandFeature>): LoadedOnDemand => ({ ...f, ref: { name: `inline.${f.name}` } });

describe('planAssembly', () => {
  it('without transforms or on-demand features, the model columns are read directly', () => {
    const plan = planAssembly(manifest({ inputs: [{ name: 'x', columns: ['a', 'b'] }] }));
    expect(plan.direct).toBe(true);
    expect(plan.sourceColumns).toEqual([{ name: 'a', kind: 'numeric', by: 'model m:1' }, { name: 'b', kind: 'numeric', by: 'model m:1' }]);
  });

  it('works back from model columns through transforms and on-demand features to raw columns', async () => {
    const m = manifest({
      inputs: [{ name: 'x', columns: ['amount', 'amount_ratio', 'hour_of_day', 'mcc=a', 'mcc=b'] }],
      transforms: { steps: [{ type: 'log1p', columns: ['amount'] }, { type: 'one_hot', column: 'mcc', categories: ['a', 'b'], handle_unknown: 'ignore' }] },
    });
    const plan = planAssembly(m, await fraud('amountRatio', 'hourOfDay'));
    expect(plan.direct).toBe(false);
    expect(Object.fromEntries(plan.sourceColumns.map((c) => [c.name, c.kind]))).toEqual({
      amount: 'numeric',
      mcc: 'string',
      customer_stats__avg_amount_30d: 'numeric',
      event_timestamp: 'timestamp',
    });
  });

  it('checks the data source, listing every missing or mistyped column', async () => {
    const m = manifest({ inputs: [{ name: 'x', columns: ['amount', 'mcc=a'] }], transforms: { steps: [{ type: 'one_hot', column: 'mcc', categories: ['a'], handle_unknown: 'ignore' }] } });
    const plan = planAssembly(m, await fraud('hourOfDay'));
    const err = (() => {
      try {
        checkSourceColumns(plan, [{ name: 'amount', type: 'VARCHAR' }, { name: 'mcc', type: 'BIGINT' }], 'spine.parquet', 'model m:1', 'id');
      } catch (e) {
        return e as SchemaMismatchError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(SchemaMismatchError);
    expect(err!.problems).toEqual([
      'column amount is VARCHAR, model m:1 needs a number',
      'column mcc is BIGINT, model m:1 needs a string (VARCHAR) category',
      'column event_timestamp is missing (on-demand feature hour_of_day needs it as timestamp)',
      'id column id is missing',
    ]);
  });

  it('rejects a column needed as two different kinds', async () => {
    const m = manifest({ inputs: [{ name: 'x', columns: ['event_timestamp', 'hour_of_day'] }] });
    const hour = await fraud('hourOfDay');
    expect(() => planAssembly(m, hour)).toThrow(/column event_timestamp is needed as numeric by model m:1 and as timestamp by on-demand feature hour_of_day/);
  });

  it('checks the assembled inputs against the ONNX signature, naming the features', () => {
    const plan = planAssembly(manifest({ inputs: [{ name: 'x', columns: ['a', 'b', 'c'] }] }, 2));
    expect(() => checkSignature(plan, manifest({ inputs: [{ name: 'x', columns: ['a', 'b', 'c'] }] }, 2).signature, 'model m:1')).toThrow(
      /input x takes 2 features, the pipeline assembles 3 \(not in the model: c\)/,
    );
    expect(() => checkSignature(plan, { inputs: [{ name: 'y', elementType: 'int64', shape: [null, 3] }], outputs: [] }, 'model m:1')).toThrow(
      /input x is not a model input \(the model has y\); model input y gets no features/,
    );
  });

  it("checks an embedding model's output against the ONNX signature: one float32 [N, k] tensor with k fixed", () => {
    const plan = planAssembly(manifest({ task: 'embedding', inputs: [{ name: 'x', columns: ['a', 'b'] }], outputs: { embedding: 'v' } }));
    const input = { name: 'x', elementType: 'float32', shape: [null, 2] };
    expect(() => checkSignature(plan, { inputs: [input], outputs: [{ name: 'v', elementType: 'float32', shape: [null, 8] }] }, 'model m:1')).not.toThrow();
    expect(() => checkSignature(plan, { inputs: [input], outputs: [{ name: 'v', elementType: 'float32', shape: [null, null] }] }, 'model m:1')).toThrow(
      /output v has shape \[N, N\]; an embedding is \[N, k\] with k fixed/,
    );
    expect(() => checkSignature(plan, { inputs: [input], outputs: [{ name: 'v', elementType: 'int64', shape: [null, 8] }] }, 'model m:1')).toThrow(/output v is int64; an embedding is float32/);
    expect(() => checkSignature(plan, { inputs: [input], outputs: [{ name: 'w', elementType: 'float32', shape: [null, 8] }] }, 'model m:1')).toThrow(/output v is not a model output \(the model has w\)/);
  });

  it('resolves registered names only, naming an unknown one and listing the registered ones', async () => {
    const r = await registry;
    expect(r.names()).toEqual(['fraud.amountRatio', 'fraud.homeDistance', 'fraud.hourOfDay']);
    expect(r.resolve([{ name: 'fraud.hourOfDay' }])[0]!.name).toBe('hour_of_day');
    const err = (() => {
      try {
        r.resolve([{ name: 'fraud.amountRatio' }, { name: 'bench/worker-child.ts' }, { name: 'fraud.RAD' }]);
      } catch (e) {
        return e;
      }
      return undefined;
    })() as InvalidInputError;
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.problems).toEqual([
      'onDemand[1].name: "bench/worker-child.ts" is not a registered on-demand feature (registered: fraud.amountRatio, fraud.homeDistance, fraud.hourOfDay)',
      'onDemand[2].name: "fraud.RAD" is not a registered on-demand feature (registered: fraud.amountRatio, fraud.homeDistance, fraud.hourOfDay)',
    ]);
    expect(() => r.resolve([{ name: 'fraud.amountRatio' }])).not.toThrow();
  });

  it('refuses to start with a registered module that is missing or fails to load, naming INFERFLOW_MODULES', async () => {
    await expect(OnDemandRegistry.load([{ name: 'gone', path: path.join(REPO_ROOT, 'examples', 'features', 'missing.ts') }])).rejects.toThrow(ConfigError);
    await expect(OnDemandRegistry.load([{ name: 'gone', path: path.join(REPO_ROOT, 'examples', 'features', 'missing.ts') }])).rejects.toThrow(/INFERFLOW_MODULES: feature module gone .* file not found/);
    await expect(OnDemandRegistry.load([{ name: 'broken', path: path.join(REPO_ROOT, 'test', 'fixtures', 'on-demand', 'broken.ts') }])).rejects.toThrow(
      /INFERFLOW_MODULES: feature module broken \(.*broken\.ts\) failed to load: broken feature module/,
    );
    expect((await OnDemandRegistry.load([])).names()).toEqual([]);
  });
});

describe('assembleBlock and on-demand features', () => {
  it('computes on-demand features, then transforms, into the model matrix', async () => {
    const m = manifest({ inputs: [{ name: 'x', columns: ['amount_ratio', 'hour_of_day', 'mcc=a', 'mcc=b'] }], transforms: { steps: [{ type: 'one_hot', column: 'mcc', categories: ['a', 'b'], handle_unknown: 'ignore' }] } });
    const plan = planAssembly(m, await fraud('amountRatio', 'hourOfDay'));
    const block = assembleBlock(plan, {
      amount: Float64Array.of(50, 30),
      customer_stats__avg_amount_30d: Float64Array.of(25, 60),
      event_timestamp: Float64Array.of(Date.UTC(2026, 10, 25, 23, 59, 59), Date.UTC(1969, 11, 31, 1, 0, 0)),
      mcc: ['b', 'unseen'],
    }, 2);
    expect(Array.from(block.inputs.x!)).toEqual([2, 23, 0, 1, 0.5, 1, 0, 0]);
  });

  it('a throwing function is named with the first failing row', () => {
    const f = loaded(defineOnDemandFeature({
      name: 'picky',
      inputs: { v: 'float64' },
      outputs: { w: 'float64' },
      compute: ({ v }, rows) => {
        if (v.some((x) => x < 0)) throw new Error('negative value');
        return { w: new Float64Array(rows) };
      },
    }));
    expect(() => computeOnDemand([f], { v: Float64Array.of(1, 2, -3, -4) }, 4, (i) => `customer_id=${100 + i}`)).toThrow(InvalidValueError);
    expect(() => computeOnDemand([f], { v: Float64Array.of(1, 2, -3, -4) }, 4, (i) => `customer_id=${100 + i}`)).toThrow('on-demand feature picky (inline.picky) threw for customer_id=102: negative value');
  });

  it('missing inputs and wrong outputs are schema errors listing every problem', () => {
    const f = loaded(defineOnDemandFeature({ name: 'f', inputs: { a: 'float64', b: 'string' }, outputs: { c: 'float64', d: 'string' }, compute: () => ({ c: new Float64Array(1), d: [] as (string | null)[] }) }));
    expect(() => computeOnDemand([f], { a: ['x'] }, 1)).toThrow(/inputs do not fit: input a must be float64, got strings; input b \(string\) is missing/);
    expect(() => computeOnDemand([f], { a: Float64Array.of(1), b: ['x'] }, 1)).toThrow(/returned the wrong outputs: output d has 0 values for 1 rows/);
  });
});
