import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidInputError, InvalidValueError, SchemaMismatchError } from '../../lib/errors';
import { assembleMatrix, compileTransforms, type Batch, type TransformSpecInput } from '../../lib/transforms';

/**
 * Reference check against scikit-learn: test/fixtures/transforms/*.json are written by
 * examples/train/make_transform_fixtures.py (fitted sklearn transformers exported as specs,
 * transform inputs, and sklearn's transform() outputs).
 *
 * Agreement criterion, per value: |ours − sklearn| ≤ 1e-6 · max(1, |sklearn|), i.e. absolute
 * 1e-6 for |value| ≤ 1 and relative 1e-6 above; NaN must be NaN at the same positions, and
 * the output column names must be the same. TRANSFORMS_REPORT=1 prints the measured maximum
 * absolute and relative errors per fixture.
 */
const FIXTURE_DIR = path.resolve(__dirname, '..', 'fixtures', 'transforms');
const TOLERANCE = 1e-6;

interface Fixture {
  name: string;
  description: string;
  sklearn: string;
  rows: number;
  spec: TransformSpecInput;
  input_kinds: Record<string, 'numeric' | 'string'>;
  input: Record<string, (number | string | null)[]>;
  expected: Record<string, (number | null)[]>;
  model_columns?: string[];
}

const fixtureNames = fs
  .readdirSync(FIXTURE_DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -'.json'.length))
  .sort();
const fixtures = new Map(fixtureNames.map((n) => [n, JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, `${n}.json`), 'utf8')) as Fixture]));
const fixture = (name: string): Fixture => {
  const f = fixtures.get(name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
};
const clone = <T>(v: T): T => structuredClone(v);

function toBatch(fx: Fixture): Batch {
  const batch: Record<string, Float64Array | (string | null)[]> = {};
  for (const [c, values] of Object.entries(fx.input)) {
    batch[c] = fx.input_kinds[c] === 'numeric' ? Float64Array.from(values, (v) => (v === null ? NaN : (v as number))) : values.map((v) => (v === null ? null : String(v)));
  }
  return batch;
}

interface Comparison {
  maxAbs: number;
  maxRel: number;
  values: number;
  mismatches: string[];
}

/** Compare named output columns with sklearn's (null = NaN). */
function compare(actual: Record<string, ArrayLike<number>>, expected: Record<string, (number | null)[]>, round: (v: number) => number = (v) => v): Comparison {
  const r: Comparison = { maxAbs: 0, maxRel: 0, values: 0, mismatches: [] };
  const want = Object.keys(expected).sort();
  const got = Object.keys(actual).sort();
  for (const c of want) if (!got.includes(c)) r.mismatches.push(`missing output column ${c}`);
  for (const c of got) if (!want.includes(c)) r.mismatches.push(`unexpected output column ${c}`);
  for (const c of want) {
    const a = actual[c];
    const e = expected[c]!;
    if (!a) continue;
    if (a.length !== e.length) {
      r.mismatches.push(`${c}: ${a.length} rows, sklearn ${e.length}`);
      continue;
    }
    for (let i = 0; i < e.length; i++) {
      const ev = e[i] ?? null;
      const av = a[i]!;
      if (ev === null || Number.isNaN(av)) {
        if (!(ev === null && Number.isNaN(av))) r.mismatches.push(`${c}[${i}]: ours ${av}, sklearn ${String(ev ?? NaN)}`);
        continue;
      }
      const exp = round(ev);
      const abs = Math.abs(av - exp);
      r.values++;
      r.maxAbs = Math.max(r.maxAbs, abs);
      if (exp !== 0) r.maxRel = Math.max(r.maxRel, abs / Math.abs(exp));
      if (!(abs <= TOLERANCE * Math.max(1, Math.abs(exp)))) r.mismatches.push(`${c}[${i}]: ours ${av}, sklearn ${exp} (|Δ| ${abs.toExponential(2)})`);
    }
  }
  return r;
}

/** Split a row-major matrix into named columns. */
function columnsOf(matrix: Float32Array, names: readonly string[]): Record<string, Float32Array> {
  const w = names.length;
  const rows = matrix.length / w;
  return Object.fromEntries(names.map((n, j) => [n, Float32Array.from({ length: rows }, (_, i) => matrix[i * w + j]!)]));
}

const measured = new Map<string, Comparison>();
afterAll(() => {
  if (!process.env.TRANSFORMS_REPORT) return;
  const rows = [...measured].map(([name, r]) => `${name.padEnd(32)} ${String(r.values).padStart(6)}  ${r.maxAbs.toExponential(2).padStart(9)}  ${r.maxRel.toExponential(2).padStart(9)}`);
  console.log(['fixture                          values    max|Δ|   max|Δ|/|e|', ...rows].join('\n'));
});

describe('transforms agree with scikit-learn', () => {
  it('has a fixture for every transformer and strategy', () => {
    const types = new Set<string>();
    const strategies = new Set<string>();
    for (const fx of fixtures.values()) {
      for (const s of fx.spec.steps) {
        types.add(s.type);
        if (s.type === 'simple_imputer') strategies.add(s.strategy);
      }
    }
    expect([...types].sort()).toEqual(['log1p', 'min_max_scaler', 'one_hot', 'ordinal', 'robust_scaler', 'simple_imputer', 'standard_scaler']);
    expect([...strategies].sort()).toEqual(['constant', 'mean', 'median', 'most_frequent']);
  });

  it.each(fixtureNames)('%s', (name) => {
    const fx = fixture(name);
    const t = compileTransforms(fx.spec);
    const batch = toBatch(fx);
    const out = t.apply(batch);
    // Columns sklearn passes through (ColumnTransformer remainder) come from the batch unchanged.
    const passthrough = Object.keys(fx.expected).filter((c) => !t.outputColumns.includes(c));
    expect(passthrough, 'passthrough columns').toEqual(name === 'pipeline' ? ['is_foreign'] : []);
    for (const c of passthrough) out[c] = batch[c] as Float64Array;

    // Not vacuous: rows, every expected column has numbers, and the fixture actually transforms something.
    expect(fx.rows).toBeGreaterThan(50);
    for (const [c, values] of Object.entries(fx.expected)) expect(values.filter((v) => v !== null).length, c).toBeGreaterThan(fx.rows / 2);
    const r = compare(out, fx.expected);
    measured.set(name, r);
    expect(r.mismatches).toEqual([]);
    expect(r.values).toBeGreaterThan(0);
    expect([...t.outputColumns, ...passthrough].sort()).toEqual(Object.keys(fx.expected).sort());
  });

  it('pipeline: the assembled float32 matrix (passthrough column included) equals sklearn’s ColumnTransformer output', () => {
    const fx = fixture('pipeline');
    const t = compileTransforms(fx.spec);
    const batch = toBatch(fx);
    const columns = fx.model_columns!;
    expect(columns).toContain('is_foreign'); // passed through, not transformed
    expect(t.outputColumns).not.toContain('is_foreign');
    const matrix = assembleMatrix(columns, { ...batch, ...t.apply(batch) });
    expect(matrix).toBeInstanceOf(Float32Array);
    expect(matrix.length).toBe(fx.rows * columns.length);
    const r = compare(columnsOf(matrix, columns), fx.expected, Math.fround);
    expect(r.mismatches).toEqual([]);
  });

  it('one row at a time (online) gives exactly the batch result', () => {
    const fx = fixture('pipeline');
    const t = compileTransforms(fx.spec);
    const batch = toBatch(fx);
    const all = t.apply(batch);
    for (const i of [0, 3, 7, 150]) {
      const row = Object.fromEntries(Object.entries(batch).map(([c, v]) => [c, v instanceof Float64Array ? v.subarray(i, i + 1) : v.slice(i, i + 1)]));
      const one = t.apply(row);
      for (const c of t.outputColumns) expect(one[c]![0], `${c}[${i}]`).toBe(all[c]![i]);
    }
  });

  it('does not modify the batch, even where steps chain on one column', () => {
    const fx = fixture('pipeline');
    const batch = toBatch(fx);
    const before = clone(batch);
    const out = compileTransforms(fx.spec).apply(batch);
    expect(batch).toEqual(before);
    expect(out.amount).not.toBe(batch.amount);
  });
});

/** A copy of the spec with one fitted statistic deliberately wrong (relative 1e-4), or null when it has none. */
function perturbStatistic(spec: TransformSpecInput): { spec: TransformSpecInput; what: string } | null {
  const s = clone(spec);
  const bump = (v: number) => v + 1e-4 * Math.max(1, Math.abs(v));
  for (const [i, step] of s.steps.entries()) {
    switch (step.type) {
      case 'standard_scaler':
        if (step.mean[0] !== 0) step.mean[0] = bump(step.mean[0]!);
        else step.scale[0] = bump(step.scale[0]!);
        return { spec: s, what: `steps[${i}] ${step.mean[0] !== 0 ? 'mean' : 'scale'}[0]` };
      case 'robust_scaler':
        if (step.center[0] !== 0) step.center[0] = bump(step.center[0]!);
        else step.scale[0] = bump(step.scale[0]!);
        return { spec: s, what: `steps[${i}] center/scale[0]` };
      case 'min_max_scaler':
        // Relative to the column's range: an error of 1e-4 × data_min would vanish against a wide range.
        step.data_min[0] = step.data_min[0]! + 1e-4 * Math.max(1, step.data_range[0]!);
        return { spec: s, what: `steps[${i}] data_min[0]` };
      case 'simple_imputer': {
        const v = step.statistics[0]!;
        const wrong = typeof v === 'number' ? bump(v) : `${v}?`;
        step.statistics[0] = wrong;
        if (step.strategy === 'constant') step.statistics = step.statistics.map(() => wrong);
        if (step.fill_value !== undefined) step.fill_value = wrong;
        return { spec: s, what: `steps[${i}] statistics[0]` };
      }
      case 'ordinal': {
        const [a, b] = step.categories;
        step.categories = [b, a, ...step.categories.slice(2)] as typeof step.categories;
        return { spec: s, what: `steps[${i}] categories 0 ↔ 1` };
      }
      case 'one_hot':
      case 'log1p':
        continue;
    }
  }
  return null;
}

describe('the comparison can fail', () => {
  const withStatistics = fixtureNames.filter((n) => perturbStatistic(fixture(n).spec) !== null);

  it('covers every fixture that has a fitted statistic', () => {
    expect(withStatistics.length).toBeGreaterThanOrEqual(fixtureNames.length - 2); // log1p and one_hot have no numeric statistic
  });

  it.each(withStatistics)('%s: a deliberately wrong statistic is detected', (name) => {
    const fx = fixture(name);
    const { spec, what } = perturbStatistic(fx.spec)!;
    const r = compare(compileTransforms(spec).apply(toBatch(fx)), fx.expected);
    expect(r.mismatches.length, `${what} perturbed`).toBeGreaterThan(0);
  });

  it('a standard scaler mean off by 1e-5 (relative) no longer matches', () => {
    const fx = fixture('standard_scaler');
    const spec = clone(fx.spec);
    const step = spec.steps[0]!;
    if (step.type !== 'standard_scaler') throw new Error('fixture changed');
    step.mean[1] = step.mean[1]! * (1 + 1e-5); // balance ≈ 1e6: shifts outputs by ≈ 3.6
    const r = compare(compileTransforms(spec).apply(toBatch(fx)), fx.expected);
    expect(r.mismatches.length).toBeGreaterThan(fx.rows / 2);
    expect(r.mismatches[0]).toMatch(/^balance\[/);
  });

  it('one_hot: category order does not matter (names carry the category); a wrong category set is detected', () => {
    const fx = fixture('one_hot');
    const spec = clone(fx.spec);
    const step = spec.steps[0]!;
    if (step.type !== 'one_hot') throw new Error('fixture changed');
    step.categories = [...step.categories].reverse() as typeof step.categories;
    expect(compare(compileTransforms(spec).apply(toBatch(fx)), fx.expected).mismatches).toEqual([]);
    step.categories = step.categories.map((c) => (c === 'red' ? 'purple' : c)) as typeof step.categories; // purple: seen only at transform time
    expect(compare(compileTransforms(spec).apply(toBatch(fx)), fx.expected).mismatches).toEqual(['missing output column color=red', 'unexpected output column color=purple']);
  });

  it('log1p: an input scaled by 1 + 1e-5 before log1p is detected', () => {
    const fx = fixture('log1p');
    const spec = clone(fx.spec);
    spec.steps.unshift({ type: 'standard_scaler', columns: ['amount'], mean: [0], scale: [1 + 1e-5] });
    const r = compare(compileTransforms(spec).apply(toBatch(fx)), fx.expected);
    expect(r.mismatches.length).toBeGreaterThan(0);
    expect(r.mismatches.every((m) => m.startsWith('amount['))).toBe(true);
  });

  it('an output off by 2e-6 (beyond the tolerance) is detected, within it is not', () => {
    const fx = fixture('robust_scaler');
    const out = compileTransforms(fx.spec).apply(toBatch(fx));
    const i = fx.expected.amount!.findIndex((v) => v !== null);
    const e = fx.expected.amount![i]!;
    out.amount![i] = e + 2e-6 * Math.max(1, Math.abs(e));
    expect(compare(out, fx.expected).mismatches).toHaveLength(1);
    out.amount![i] = e + 0.5e-6 * Math.max(1, Math.abs(e));
    expect(compare(out, fx.expected).mismatches).toEqual([]);
    out.amount![i] = NaN;
    expect(compare(out, fx.expected).mismatches).toHaveLength(1);
  });
});

const label = (i: number) => `tx-${1000 + i}`;

describe('unknown categories and missing values', () => {
  const colors = (...v: (string | null)[]) => ({ color: v });

  it("one_hot handle_unknown 'error': InvalidValueError naming the column, each category and its row", () => {
    const t = compileTransforms({ steps: [{ type: 'one_hot', column: 'color', categories: ['blue', 'red'], handle_unknown: 'error' }] });
    const err = catchError(() => t.apply(colors('red', 'purple', 'blue', 'mauve'), label));
    expect(err).toBeInstanceOf(InvalidValueError);
    expect(err.message).toContain('column color');
    expect(err.message).toContain('tx-1001: "purple"');
    expect(err.message).toContain('tx-1003: "mauve"');
    expect(err.message).toContain('2 rows');
    expect((err as InvalidValueError).details).toMatchObject({ column: 'color', rows: 2 });
  });

  it("one_hot handle_unknown 'ignore': all indicators 0; output columns named <column>=<category>", () => {
    const t = compileTransforms({ steps: [{ type: 'one_hot', column: 'color', categories: ['blue', 'red'], handle_unknown: 'ignore' }] });
    expect(t.inputColumns).toEqual(['color']);
    expect(t.outputColumns).toEqual(['color=blue', 'color=red']);
    const out = t.apply(colors('red', 'purple', 'blue'));
    expect(Array.from(out['color=blue']!)).toEqual([0, 0, 1]);
    expect(Array.from(out['color=red']!)).toEqual([1, 0, 0]);
  });

  it('ordinal unknown_value null: an unknown category is an error; a number is used as the code', () => {
    const spec = (unknown_value: number | null) => ({ steps: [{ type: 'ordinal', column: 'color', categories: ['blue', 'red'], unknown_value }] });
    expect(() => compileTransforms(spec(null)).apply(colors('red', 'green'), label)).toThrow(/tx-1001: "green"/);
    expect(Array.from(compileTransforms(spec(-1)).apply(colors('red', 'green', 'blue')).color!)).toEqual([1, -1, 0]);
  });

  it("a missing value into an encoder is an error by default, naming the rows; 'as_unknown' makes it unknown", () => {
    for (const type of ['one_hot', 'ordinal'] as const) {
      const step = type === 'one_hot' ? { type, column: 'color', categories: ['blue', 'red'], handle_unknown: 'ignore' } : { type, column: 'color', categories: ['blue', 'red'], unknown_value: -1 };
      const err = catchError(() => compileTransforms({ steps: [step] }).apply(colors('red', null, 'blue', null), label));
      expect(err, type).toBeInstanceOf(InvalidValueError);
      expect(err.message).toMatch(/color has missing values \(2 rows: tx-1001, tx-1003\)/);
      const ok = compileTransforms({ steps: [{ ...step, handle_missing: 'as_unknown' }] }).apply(colors('red', null));
      expect(ok[type === 'one_hot' ? 'color=red' : 'color']![1]).toBe(type === 'one_hot' ? 0 : -1);
    }
    // as_unknown with handle_unknown 'error': still an error, saying the value was missing.
    const strict = compileTransforms({ steps: [{ type: 'one_hot', column: 'color', categories: ['red'], handle_unknown: 'error', handle_missing: 'as_unknown' }] });
    expect(() => strict.apply(colors('red', null), label)).toThrow(/tx-1001: missing value/);
  });

  it('NaN into a numeric-category encoder is an error naming the row', () => {
    const t = compileTransforms({ steps: [{ type: 'ordinal', column: 'children', categories: [0, 1, 2], unknown_value: -1 }] });
    expect(Array.from(t.apply({ children: Float64Array.of(2, 7, 0) }).children!)).toEqual([2, -1, 0]);
    const err = catchError(() => t.apply({ children: Float64Array.of(1, NaN, 2) }, label));
    expect(err).toBeInstanceOf(InvalidValueError);
    expect(err.message).toContain('children has missing values (1 row: tx-1001)');
  });

  it('a categorical imputer before the encoder gives missing values a category of their own', () => {
    const t = compileTransforms({
      steps: [
        { type: 'simple_imputer', columns: ['color'], strategy: 'constant', statistics: ['missing'], fill_value: 'missing' },
        { type: 'one_hot', column: 'color', categories: ['missing', 'red'], handle_unknown: 'error' },
      ],
    });
    const out = t.apply(colors('red', null));
    expect(Array.from(out['color=missing']!)).toEqual([0, 1]);
    expect(Array.from(t.apply(colors('red', 'missing', 'red'))['color=red']!)).toEqual([1, 0, 1]); // nothing to fill
  });
});

describe('numeric edge cases', () => {
  it('scalers propagate NaN; an infinite value is an InvalidValueError naming column and row', () => {
    for (const step of [
      { type: 'standard_scaler', columns: ['x'], mean: [1], scale: [2] },
      { type: 'min_max_scaler', columns: ['x'], data_min: [0], data_range: [4] },
      { type: 'robust_scaler', columns: ['x'], center: [1], scale: [2] },
      { type: 'simple_imputer', columns: ['x'], strategy: 'mean', statistics: [3] },
      { type: 'log1p', columns: ['x'] },
    ]) {
      const t = compileTransforms({ steps: [step] });
      const out = t.apply({ x: Float64Array.of(3, NaN) }).x!;
      expect(out[0], step.type).toBeCloseTo(step.type === 'log1p' ? Math.log(4) : step.type === 'simple_imputer' ? 3 : step.type === 'min_max_scaler' ? 0.75 : 1, 12);
      if (step.type === 'simple_imputer') expect(out[1]).toBe(3);
      else expect(out[1], step.type).toBeNaN();
      const err = catchError(() => t.apply({ x: Float64Array.of(1, -Infinity, 2, Infinity) }, label));
      expect(err, step.type).toBeInstanceOf(InvalidValueError);
      expect(err.message, step.type).toMatch(/x .*\(\d rows?\): .*tx-1001 = -Infinity|tx-1003 = Infinity/);
    }
  });

  it('a second step in place still reports the offending input values', () => {
    const t = compileTransforms({ steps: [{ type: 'log1p', columns: ['x'] }, { type: 'standard_scaler', columns: ['x'], mean: [0], scale: [1] }] });
    expect(() => t.apply({ x: Float64Array.of(0, 1e308 * 10) }, label)).toThrow(/tx-1001 = Infinity/);
  });

  it('log1p of x ≤ -1 is an error (sklearn would give -inf / NaN)', () => {
    const t = compileTransforms({ steps: [{ type: 'log1p', columns: ['ratio'] }] });
    const err = catchError(() => t.apply({ ratio: Float64Array.of(0.5, -1, -3) }, label));
    expect(err).toBeInstanceOf(InvalidValueError);
    expect(err.message).toContain('tx-1001 = -1; tx-1002 = -3');
  });

  it('zero scales and ranges are applied as 1, like sklearn', () => {
    const x = Float64Array.of(5, 6);
    expect(Array.from(compileTransforms({ steps: [{ type: 'standard_scaler', columns: ['x'], mean: [5], scale: [0] }] }).apply({ x }).x!)).toEqual([0, 1]);
    expect(Array.from(compileTransforms({ steps: [{ type: 'robust_scaler', columns: ['x'], center: [5], scale: [0] }] }).apply({ x }).x!)).toEqual([0, 1]);
    expect(Array.from(compileTransforms({ steps: [{ type: 'min_max_scaler', columns: ['x'], data_min: [5], data_range: [0] }] }).apply({ x }).x!)).toEqual([0, 1]);
  });

  it('an empty batch gives empty columns; an empty spec is the identity', () => {
    const t = compileTransforms(fixture('pipeline').spec);
    const empty = Object.fromEntries(t.inputColumns.map((c) => [c, t.inputKinds.get(c) === 'numeric' ? new Float64Array(0) : []]));
    const out = t.apply(empty);
    expect(Object.keys(out)).toEqual(t.outputColumns);
    for (const c of t.outputColumns) expect(out[c]!.length).toBe(0);
    expect(compileTransforms({ steps: [] }).apply({ x: Float64Array.of(1) })).toEqual({});
  });
});

describe('batch shape errors', () => {
  it('a missing column: SchemaMismatchError listing every missing column at once', () => {
    const fx = fixture('pipeline');
    const t = compileTransforms(fx.spec);
    const batch = { ...toBatch(fx) } as Record<string, unknown>;
    delete batch.amount;
    delete batch.color;
    delete batch.tiny;
    const err = catchError(() => t.apply(batch as Batch));
    expect(err).toBeInstanceOf(SchemaMismatchError);
    expect((err as SchemaMismatchError).problems).toEqual(['missing column amount', 'missing column tiny', 'missing column color']);
    expect(err.message).toContain('lacks 3 columns');
  });

  it('inherited property names are not columns', () => {
    const t = compileTransforms({ steps: [{ type: 'log1p', columns: ['constructor', 'toString'] }] });
    expect(() => t.apply({})).toThrow(/missing column constructor; missing column toString/);
  });

  it('wrong column types and unequal lengths are listed together', () => {
    const t = compileTransforms({
      steps: [
        { type: 'standard_scaler', columns: ['x'], mean: [0], scale: [1] },
        { type: 'ordinal', column: 'c', categories: ['a'], unknown_value: -1 },
        { type: 'log1p', columns: ['y'] },
      ],
    });
    const err = catchError(() => t.apply({ x: ['1', '2'], c: Float64Array.of(1, 2), y: Float64Array.of(1) }));
    expect(err).toBeInstanceOf(SchemaMismatchError);
    expect((err as SchemaMismatchError).problems).toEqual([
      'column x must be numeric (Float64Array with NaN for missing), got an array',
      'column c must be categorical ((string | null)[]), got Float64Array',
      'columns differ in length: x 2, c 2, y 1',
    ]);
  });

  it('assembleMatrix: row-major float32 in the given order; every missing column listed, categorical columns refused', () => {
    const m = assembleMatrix(['b', 'a'], { a: Float64Array.of(1, 2, 3), b: Float64Array.of(0.1, 0.2, 0.3), unused: ['x', 'y', 'z'] });
    expect(Array.from(m)).toEqual([0.1, 1, 0.2, 2, 0.3, 3].map(Math.fround));
    const err = catchError(() => assembleMatrix(['a', 'q', 'b', 'r'], { a: Float64Array.of(1), b: Float64Array.of(2) }));
    expect(err).toBeInstanceOf(SchemaMismatchError);
    expect((err as SchemaMismatchError).problems).toEqual(['missing column q', 'missing column r']);
    expect(() => assembleMatrix(['a', 'c'], { a: Float64Array.of(1), c: ['x'] })).toThrow(/column c is an array, not numeric: encode it first/);
    expect(() => assembleMatrix(['a', 'b'], { a: Float64Array.of(1), b: Float64Array.of(1, 2) })).toThrow(/column b has 2 rows, a has 1/);
  });
});

describe('spec validation', () => {
  it('lists every problem of a bad spec in one InvalidInputError', () => {
    const err = catchError(() =>
      compileTransforms({
        steps: [
          { type: 'standard_scaler', columns: ['a', 'b', 'c'], mean: [0, 1], scale: [1, 1, 1, 1] },
          { type: 'robust_scaler', columns: ['a', 'a'], center: [0, 0], scale: [1, 1] },
          { type: 'min_max_scaler', columns: ['a'], data_min: [0], data_range: [1], feature_range: [1, 0] },
          { type: 'ordinal', column: 'c2', categories: ['x', 'y', 'x'], unknown_value: 1 },
          { type: 'simple_imputer', columns: ['d'], strategy: 'constant', statistics: [0] },
          { type: 'simple_imputer', columns: ['e', 'f'], strategy: 'median', statistics: ['x'] },
        ],
      }),
    );
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).problems).toEqual([
      'steps[0].mean: mean has 2 values for 3 columns',
      'steps[0].scale: scale has 4 values for 3 columns',
      'steps[1].columns[1]: column a is listed twice',
      'steps[2].feature_range: feature_range [1, 0]: minimum must be smaller than maximum',
      'steps[3].categories[2]: category "x" is listed twice',
      'steps[3].unknown_value: unknown_value 1 is also the code of category "y"',
      'steps[4].fill_value: strategy constant needs fill_value',
      'steps[5].statistics: statistics has 1 value for 2 columns',
      'steps[5].statistics: strategy median needs numeric statistics',
      'steps[5]: e still holds strings after steps[5] (simple_imputer e, f): encode it (one_hot or ordinal) in a later step',
    ]);
  });

  it('rejects unknown step types, unknown keys (a typo or an unsupported option), non-finite and negative statistics', () => {
    const problems = (spec: unknown) => (catchError(() => compileTransforms(spec)) as InvalidInputError).problems;
    expect(problems({ steps: [{ type: 'power_transformer', columns: ['a'] }] })[0]).toMatch(/^steps\[0\]\.type: /);
    expect(problems({ steps: [{ type: 'one_hot', column: 'c', categories: ['a'], handle_unknown: 'ignore', drop: 'first' }] })[0]).toMatch(/^steps\[0\]: Unrecognized key.*"drop"/);
    expect(problems({ steps: [{ type: 'one_hot', column: 'c', categories: ['a'], handle_unkown: 'error' }] }).join('\n')).toMatch(/handle_unknown[\s\S]*handle_unkown/);
    expect(problems({ steps: [{ type: 'standard_scaler', columns: ['a'], mean: [NaN], scale: [-1] }] })).toEqual([expect.stringMatching(/^steps\[0\]\.mean\[0\]: /), expect.stringMatching(/^steps\[0\]\.scale\[0\]: /)]);
    expect(problems({ steps: [{ type: 'one_hot', column: 'c', categories: ['a', 1], handle_unknown: 'ignore' }] })[0]).toMatch(/^steps\[0\]\.categories/);
    expect(problems(null)[0]).toMatch(/^\(spec\): /);
  });

  it('checks the column flow between steps', () => {
    const problems = (steps: unknown[]) => (catchError(() => compileTransforms({ steps })) as InvalidInputError).problems;
    expect(
      problems([
        { type: 'one_hot', column: 'color', categories: ['red'], handle_unknown: 'ignore' },
        { type: 'log1p', columns: ['color'] },
      ]),
    ).toEqual(['steps[1].columns[0]: steps[1] (log1p color) reads color, which steps[0] (one_hot color) replaced by its indicator columns']);
    expect(
      problems([
        { type: 'simple_imputer', columns: ['color'], strategy: 'most_frequent', statistics: ['red'] },
        { type: 'standard_scaler', columns: ['color'], mean: [0], scale: [1] },
      ]),
    ).toEqual(['steps[1].columns[0]: steps[1] (standard_scaler color) needs numbers in color, which holds strings after steps[0] (simple_imputer color)']);
    expect(problems([{ type: 'simple_imputer', columns: ['color'], strategy: 'most_frequent', statistics: ['red'] }])).toEqual([
      'steps[0]: color still holds strings after steps[0] (simple_imputer color): encode it (one_hot or ordinal) in a later step',
    ]);
    expect(
      problems([
        { type: 'log1p', columns: ['c=a'] },
        { type: 'one_hot', column: 'c', categories: ['a'], handle_unknown: 'ignore' },
      ]),
    ).toEqual(['steps[1].categories: steps[1] (one_hot c) produces c=a, a column that already exists']);
  });

  it('reports input and output columns in order of first use', () => {
    const t = compileTransforms(fixture('pipeline').spec);
    expect(t.inputColumns).toEqual(['amount', 'balance', 'constant', 'ratio', 'tiny', 'color', 'size']);
    expect(Object.fromEntries(t.inputKinds)).toMatchObject({ amount: 'numeric', color: 'string', size: 'string' });
    expect(t.outputColumns).toEqual(['amount', 'balance', 'constant', 'ratio', 'tiny', 'color=black', 'color=blue', 'color=green', 'color=missing', 'color=red', 'size']);
    expect(t.spec.steps[5]).toMatchObject({ type: 'min_max_scaler', clip: false, feature_range: [0, 1] });
  });
});

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}
