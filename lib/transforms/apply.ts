/**
 * Applying a transformation spec (spec.ts) to a batch of named columns, and assembling the
 * model's row-major float32 input from named columns. Pure computation: no I/O, no Temporal.
 * The same code serves a 1M-row chunk in batch and a single row online: compile once per
 * model, then `apply` per batch; every step is one loop per column over typed arrays.
 *
 * Numerics follow scikit-learn operation by operation in float64 (e.g. `(x - mean) / scale`,
 * `x * scale_ + min_`), so outputs agree with sklearn's to rounding (test/unit/transforms.test.ts).
 */
import { InvalidInputError, InvalidValueError, SchemaMismatchError } from '../errors';
import { formatIssuePath } from '../util/issues';
import {
  analyzeFlow,
  describeStep,
  effectiveScale,
  oneHotOutputNames,
  TransformSpecSchema,
  type ColumnKind,
  type TransformSpec,
  type TransformStep,
} from './spec';

/** Categorical values; null is a missing value. */
export type CategoricalColumn = readonly (string | null)[];
/** A numeric column (NaN for missing) or a categorical one. */
export type Column = Float64Array | CategoricalColumn;
/** Named columns of equal length. Not modified by `apply`. */
export type Batch = Readonly<Record<string, Column>>;
/** Names row `i` in error messages (an entity key or id), like FeatureBlock.rowLabel. */
export type RowLabel = (row: number) => string;

export interface CompiledTransforms {
  /** The validated spec (defaults applied). */
  readonly spec: TransformSpec;
  /** Batch columns the steps read, in order of first use. */
  readonly inputColumns: readonly string[];
  /** What each input column must hold: 'numeric' → Float64Array, 'string' → (string | null)[]. */
  readonly inputKinds: ReadonlyMap<string, ColumnKind>;
  /** Columns `apply` returns, in order of first production (one_hot: `<column>=<category>` in category order). */
  readonly outputColumns: readonly string[];
  /**
   * Run the steps over `batch`. Returns the output columns only (fresh arrays; the batch is
   * not modified); columns the steps do not touch stay in the batch, so assemble with
   * `assembleMatrix(columns, { ...batch, ...outputs })`.
   *
   * @throws SchemaMismatchError every missing input column at once, or columns of the wrong type or length
   * @throws InvalidValueError an unknown category or missing value the step's policy rejects, ±Infinity, log1p(x ≤ -1): column, value and rows named
   */
  apply(batch: Batch, rowLabel?: RowLabel): Record<string, Float64Array>;
}

/** At most this many offending rows are listed in one error. */
const MAX_LISTED = 10;

const defaultLabel: RowLabel = (i) => `row ${i}`;

/** Validate a spec (as stored in a manifest, or already parsed). @throws InvalidInputError listing every problem. */
export function parseTransformSpec(input: unknown): TransformSpec {
  const r = TransformSpecSchema.safeParse(input);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${formatIssuePath(i.path, '', '(spec)')}: ${i.message}`);
    throw new InvalidInputError('invalid transform spec', problems);
  }
  return r.data;
}

/** Validate a spec and prepare it for repeated application. @throws InvalidInputError listing every problem in the spec. */
export function compileTransforms(input: unknown): CompiledTransforms {
  const spec = parseTransformSpec(input);
  const flow = analyzeFlow(spec.steps);
  const kernels = spec.steps.map((step, i) => compileStep(step, describeStep(step, i)));
  const inputColumns = Object.freeze([...flow.inputColumns]);
  const outputColumns = Object.freeze([...flow.outputColumns]);
  const inputKinds: ReadonlyMap<string, ColumnKind> = flow.inputKinds;

  return {
    spec,
    inputColumns,
    inputKinds,
    outputColumns,
    apply(batch, rowLabel = defaultLabel) {
      const rows = checkBatch(batch, inputColumns, inputKinds);
      const env = new Map<string, Column>();
      for (const c of inputColumns) env.set(c, batch[c]!);
      // Arrays allocated during this call: later steps may overwrite them in place.
      const owned = new Set<Float64Array>();
      for (const kernel of kernels) kernel({ env, owned, rows, rowLabel });
      return Object.fromEntries(outputColumns.map((c) => [c, env.get(c) as Float64Array]));
    },
  };
}

/** Check presence, type and length of the input columns; returns the row count. */
function checkBatch(batch: Batch, columns: readonly string[], kinds: ReadonlyMap<string, ColumnKind>): number {
  const missing = columns.filter((c) => !Object.hasOwn(batch, c));
  if (missing.length > 0) {
    throw new SchemaMismatchError(`batch lacks ${missing.length} column${missing.length === 1 ? '' : 's'} the transforms need`, missing.map((c) => `missing column ${c}`), { missing });
  }
  const problems: string[] = [];
  const lengths = new Map<string, number>();
  for (const c of columns) {
    const col = batch[c]!;
    const want = kinds.get(c)!;
    if (want === 'numeric' && !(col instanceof Float64Array)) problems.push(`column ${c} must be numeric (Float64Array with NaN for missing), got ${describeColumn(col)}`);
    if (want === 'string' && !Array.isArray(col)) problems.push(`column ${c} must be categorical ((string | null)[]), got ${describeColumn(col)}`);
    lengths.set(c, col.length);
  }
  const distinct = new Set(lengths.values());
  if (distinct.size > 1) problems.push(`columns differ in length: ${[...lengths].map(([c, n]) => `${c} ${n}`).join(', ')}`);
  if (problems.length > 0) throw new SchemaMismatchError('batch does not fit the transforms', problems);
  return distinct.size === 1 ? [...distinct][0]! : 0;
}

function describeColumn(col: unknown): string {
  if (Array.isArray(col)) return 'an array';
  if (ArrayBuffer.isView(col)) return col.constructor.name;
  return typeof col;
}

interface StepContext {
  env: Map<string, Column>;
  owned: Set<Float64Array>;
  rows: number;
  rowLabel: RowLabel;
}
type Kernel = (ctx: StepContext) => void;

/** An output buffer for `column`: the current array when this call allocated it, else a new one. */
function target(ctx: StepContext, x: Float64Array): Float64Array {
  if (ctx.owned.has(x)) return x;
  const out = new Float64Array(x.length);
  ctx.owned.add(out);
  return out;
}

/** Throw InvalidValueError listing (up to MAX_LISTED) rows of `x` for which `bad` holds. */
function rejectRows(ctx: StepContext, x: Float64Array, bad: (v: number) => boolean, message: string, details: Record<string, unknown>): never {
  const rows: string[] = [];
  let count = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (bad(v)) {
      if (rows.length < MAX_LISTED) rows.push(`${ctx.rowLabel(i)} = ${String(v)}`);
      count++;
    }
  }
  throw new InvalidValueError(`${message} (${count} row${count === 1 ? '' : 's'}): ${rows.join('; ')}${count > rows.length ? '; …' : ''}`, { ...details, rows: count, problems: rows });
}

const isInfinite = (v: number) => v === Infinity || v === -Infinity;

function compileStep(step: TransformStep, where: string): Kernel {
  switch (step.type) {
    case 'standard_scaler':
    case 'robust_scaler': {
      const sub = step.type === 'standard_scaler' ? step.mean : step.center;
      const div = step.scale.map(effectiveScale);
      return numericPerColumn(step.columns, where, (x, out, j) => {
        const m = sub[j]!;
        const s = div[j]!;
        let inf = false;
        for (let i = 0; i < x.length; i++) {
          const v = x[i]!;
          if (v === Infinity || v === -Infinity) inf = true;
          out[i] = (v - m) / s; // sklearn: X -= mean_; X /= scale_
        }
        return inf;
      });
    }
    case 'min_max_scaler': {
      const [lo, hi] = step.feature_range;
      // Exactly sklearn's MinMaxScaler.fit: scale_ = (hi - lo) / handle_zeros(data_range_); min_ = lo - data_min_ * scale_.
      const scale = step.data_range.map((r) => (hi - lo) / effectiveScale(r));
      const min = step.data_min.map((d, j) => lo - d * scale[j]!);
      const clip = step.clip;
      return numericPerColumn(step.columns, where, (x, out, j) => {
        const s = scale[j]!;
        const m = min[j]!;
        let inf = false;
        for (let i = 0; i < x.length; i++) {
          const v = x[i]!;
          if (v === Infinity || v === -Infinity) inf = true;
          out[i] = v * s + m; // sklearn: X *= scale_; X += min_
        }
        if (clip) {
          for (let i = 0; i < out.length; i++) {
            const v = out[i]!;
            if (v < lo) out[i] = lo;
            else if (v > hi) out[i] = hi; // NaN stays NaN, as with np.clip
          }
        }
        return inf;
      });
    }
    case 'log1p':
      return (ctx) => {
        for (const c of step.columns) {
          const x = ctx.env.get(c) as Float64Array;
          let bad = false;
          for (let i = 0; i < x.length; i++) {
            const v = x[i]!;
            if (v <= -1 || v === Infinity) {
              bad = true;
              break;
            }
          }
          if (bad) {
            rejectRows(ctx, x, (v) => v <= -1 || v === Infinity, `${where}: ${c} must be greater than -1 and finite for log1p`, { column: c, step: where });
          }
          const out = target(ctx, x);
          for (let i = 0; i < x.length; i++) out[i] = Math.log1p(x[i]!);
          ctx.env.set(c, out);
        }
      };
    case 'simple_imputer':
      return (ctx) => {
        step.columns.forEach((c, j) => {
          const stat = step.statistics[j]!;
          const x = ctx.env.get(c)!;
          if (typeof stat === 'string') {
            const cat = x as CategoricalColumn;
            // String columns are never written in place, so without missing values the input can be shared.
            if (!cat.some((v) => v == null)) return;
            const out = new Array<string | null>(cat.length);
            for (let i = 0; i < cat.length; i++) out[i] = cat[i] ?? stat;
            ctx.env.set(c, out);
            return;
          }
          const num = x as Float64Array;
          const out = target(ctx, num);
          let inf = false;
          for (let i = 0; i < num.length; i++) {
            const v = num[i]!;
            if (v === Infinity || v === -Infinity) inf = true;
            out[i] = v !== v ? stat : v; // v !== v ⇔ NaN
          }
          if (inf) rejectRows(ctx, num, isInfinite, `${where}: ${c} contains infinite values`, { column: c, step: where });
          ctx.env.set(c, out);
        });
      };
    case 'one_hot':
    case 'ordinal':
      return encoder(step, where);
  }
}

/** A numeric step applied column by column; `loop` returns true when it met ±Infinity. */
function numericPerColumn(columns: readonly string[], where: string, loop: (x: Float64Array, out: Float64Array, j: number) => boolean): Kernel {
  return (ctx) => {
    columns.forEach((c, j) => {
      const x = ctx.env.get(c) as Float64Array;
      const out = target(ctx, x);
      // Check before writing in place would lose the offending values: scan first when out === x.
      if (out === x && x.some(isInfinite)) rejectRows(ctx, x, isInfinite, `${where}: ${c} contains infinite values`, { column: c, step: where });
      if (loop(x, out, j)) rejectRows(ctx, x, isInfinite, `${where}: ${c} contains infinite values`, { column: c, step: where });
      ctx.env.set(c, out);
    });
  };
}

/** one_hot and ordinal: look each value up in the category index. */
function encoder(step: Extract<TransformStep, { type: 'one_hot' | 'ordinal' }>, where: string): Kernel {
  const index = new Map<string | number, number>();
  step.categories.forEach((c, i) => index.set(c, i));
  const k = step.categories.length;
  const missingIsUnknown = step.handle_missing === 'as_unknown';
  const rejectUnknown = step.type === 'one_hot' ? step.handle_unknown === 'error' : step.unknown_value === null;
  const unknownValue = step.type === 'ordinal' ? (step.unknown_value ?? NaN) : NaN;
  const names = step.type === 'one_hot' ? oneHotOutputNames(step) : [];
  const column = step.column;
  const policy = step.type === 'one_hot' ? `handle_unknown '${step.handle_unknown}'` : `unknown_value ${String(step.unknown_value)}`;

  return (ctx) => {
    const x = ctx.env.get(column)!;
    const n = x.length;
    // code[i]: category index, -1 unknown, -2 missing.
    const code = new Int32Array(n);
    if (x instanceof Float64Array) {
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        code[i] = v !== v ? -2 : (index.get(v) ?? -1);
      }
    } else {
      for (let i = 0; i < n; i++) {
        const v = x[i];
        code[i] = v == null ? -2 : (index.get(v) ?? -1);
      }
    }

    // Policies: missing → error unless as_unknown; unknown → error when the step says so.
    const missing: string[] = [];
    const unknown: string[] = [];
    let nMissing = 0;
    let nUnknown = 0;
    for (let i = 0; i < n; i++) {
      let c = code[i]!;
      if (c === -2) {
        if (!missingIsUnknown) {
          if (missing.length < MAX_LISTED) missing.push(ctx.rowLabel(i));
          nMissing++;
          continue;
        }
        c = code[i] = -1;
      }
      if (c === -1 && rejectUnknown) {
        if (unknown.length < MAX_LISTED) unknown.push(`${ctx.rowLabel(i)}: ${x[i] == null ? 'missing value' : JSON.stringify(x[i])}`);
        nUnknown++;
      }
    }
    if (nMissing > 0) {
      throw new InvalidValueError(
        `${where}: ${column} has missing values (${nMissing} row${nMissing === 1 ? '' : 's'}: ${missing.join(', ')}${nMissing > missing.length ? ', …' : ''}); handle_missing 'error' — impute them first or set handle_missing 'as_unknown'`,
        { column, step: where, rows: nMissing, problems: missing },
      );
    }
    if (nUnknown > 0) {
      throw new InvalidValueError(
        `${where}: unknown categor${nUnknown === 1 ? 'y' : 'ies'} in column ${column} (${nUnknown} row${nUnknown === 1 ? '' : 's'}, ${policy}): ${unknown.join('; ')}${nUnknown > unknown.length ? '; …' : ''}`,
        { column, step: where, rows: nUnknown, problems: unknown },
      );
    }

    if (step.type === 'ordinal') {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const c = code[i]!;
        out[i] = c >= 0 ? c : unknownValue;
      }
      ctx.owned.add(out);
      ctx.env.set(column, out);
      return;
    }
    const outs: Float64Array[] = [];
    for (let j = 0; j < k; j++) outs.push(new Float64Array(n));
    for (let i = 0; i < n; i++) {
      const c = code[i]!;
      if (c >= 0) outs[c]![i] = 1;
    }
    ctx.env.delete(column);
    names.forEach((name, j) => {
      ctx.owned.add(outs[j]!);
      ctx.env.set(name, outs[j]!);
    });
  };
}

/**
 * The row-major float32 matrix `rows × columns.length` for one model input, from named
 * numeric columns (the transform outputs merged over the batch: `{ ...batch, ...outputs }`).
 * Values are rounded to float32; NaN stays NaN (predict() rejects it with the row named).
 *
 * @throws SchemaMismatchError every missing column at once, categorical columns, unequal lengths
 */
export function assembleMatrix(columns: readonly string[], source: Batch): Float32Array {
  const problems: string[] = [];
  const missing = columns.filter((c) => !Object.hasOwn(source, c));
  if (missing.length > 0) {
    throw new SchemaMismatchError(`${missing.length} model input column${missing.length === 1 ? ' is' : 's are'} missing`, missing.map((c) => `missing column ${c}`), { missing });
  }
  let rows = -1;
  for (const c of columns) {
    const col = source[c]!;
    if (!(col instanceof Float64Array)) problems.push(`column ${c} is ${describeColumn(col)}, not numeric: encode it first`);
    else if (rows === -1) rows = col.length;
    else if (col.length !== rows) problems.push(`column ${c} has ${col.length} rows, ${columns[0]} has ${rows}`);
  }
  if (problems.length > 0) throw new SchemaMismatchError('cannot assemble the model input', problems);
  const width = columns.length;
  const out = new Float32Array(Math.max(rows, 0) * width);
  columns.forEach((c, j) => {
    const col = source[c] as Float64Array;
    for (let i = 0, o = j; i < col.length; i++, o += width) out[o] = col[i]!;
  });
  return out;
}
