/**
 * Model-dependent transformations: the fitted preprocessing a model was trained behind
 * (scalers, encoders, imputers), stored with the model in its registry manifest and written
 * by the training script from the fitted scikit-learn objects (see docs/transforms.md and
 * examples/train/make_transform_fixtures.py).
 *
 * A spec is an ordered list of steps. Steps operate on named columns:
 *   - the batch supplies the columns the steps read first (numeric columns as Float64Array
 *     with NaN for missing, categorical columns as `(string | null)[]` with null for missing);
 *   - scalers, `log1p`, `simple_imputer` and `ordinal` replace a column by its transformed
 *     values under the same name (so `log1p` then `standard_scaler` on `amount` chain);
 *   - `one_hot` consumes its column and produces one indicator column per category, named
 *     `<column>=<category>`; a later step may not read the consumed column.
 *
 * Missing values and unknown categories, per step (stated once here, enforced in apply.ts):
 *
 * | step            | NaN / null input                          | ±Infinity input | unknown category                      |
 * |-----------------|-------------------------------------------|-----------------|---------------------------------------|
 * | standard_scaler | NaN out (propagated, like sklearn)        | InvalidValue    | –                                     |
 * | min_max_scaler  | NaN out (propagated, like sklearn)        | InvalidValue    | –                                     |
 * | robust_scaler   | NaN out (propagated, like sklearn)        | InvalidValue    | –                                     |
 * | log1p           | NaN out; x ≤ -1 is an InvalidValue error  | InvalidValue    | –                                     |
 * | simple_imputer  | replaced by the column's statistic        | InvalidValue    | –                                     |
 * | one_hot         | `handle_missing`: 'error' (default) or    | –               | `handle_unknown`: 'ignore' → all      |
 * |                 | 'as_unknown' (then handled as unknown)    |                 | indicators 0; 'error' → InvalidValue  |
 * | ordinal         | `handle_missing`: 'error' (default) or    | –               | `unknown_value`: a number → that      |
 * |                 | 'as_unknown' (then handled as unknown)    |                 | value; null → InvalidValue            |
 *
 * Infinity is rejected everywhere: scikit-learn's scalers and imputers reject it too
 * ("Input X contains infinity"); for `log1p` this is stricter than
 * `FunctionTransformer(np.log1p)`, which would silently produce inf / NaN (and a later
 * imputer would then fill a value that was never missing).
 *
 * To give missing categorical values a category of their own (what scikit-learn does when
 * NaN was seen at fit time), put a `simple_imputer` with strategy 'constant' and a string
 * fill value (e.g. "missing") before the encoder.
 */
import { z } from 'zod';

export const TRANSFORMS_FORMAT = 'inferflow.transforms/v1';

const ColumnName = z.string().min(1);
const Columns = z.array(ColumnName).min(1);
/** zod 4's number() rejects NaN and ±Infinity: every statistic is finite. */
const Finite = z.number();
/** A scale or range; 0 (or anything below 10·ε, as sklearn's `_handle_zeros_in_scale`) is applied as 1. */
const Scale = z.number().nonnegative();
/** Categories of a categorical column (strings, matched against string columns) or of an integer-coded column (numbers, matched against Float64Array columns by exact value). */
const Categories = z.union([z.array(z.string()).min(1), z.array(Finite).min(1)]);
/** What a missing value (null in a string column, NaN in a numeric column) means to an encoder. */
const HandleMissing = z.enum(['error', 'as_unknown']);

/**
 * sklearn `StandardScaler`: `(x - mean) / scale` with `mean_` and `scale_` (std, zeros
 * already replaced by 1). `with_mean=False` is written as mean 0, `with_std=False` as scale 1.
 * NaN propagates.
 */
export const StandardScalerStep = z.strictObject({
  type: z.literal('standard_scaler'),
  columns: Columns,
  mean: z.array(Finite),
  scale: z.array(Scale),
});

/**
 * sklearn `MinMaxScaler`: `x * s + m` where `s = (hi - lo) / data_range` (a zero range counts
 * as 1) and `m = lo - data_min * s` — computed here from the fitted `data_min_` and
 * `data_range_` exactly as sklearn computes its `scale_` and `min_`. With `clip` the result is
 * clipped to `feature_range`. NaN propagates.
 */
export const MinMaxScalerStep = z.strictObject({
  type: z.literal('min_max_scaler'),
  columns: Columns,
  data_min: z.array(Finite),
  data_range: z.array(Scale),
  feature_range: z.tuple([Finite, Finite]).default([0, 1]),
  clip: z.boolean().default(false),
});

/**
 * sklearn `RobustScaler`: `(x - center) / scale` with `center_` (median) and `scale_`
 * (quantile range; zeros applied as 1). `with_centering=False` is written as center 0,
 * `with_scaling=False` as scale 1. NaN propagates.
 */
export const RobustScalerStep = z.strictObject({
  type: z.literal('robust_scaler'),
  columns: Columns,
  center: z.array(Finite),
  scale: z.array(Scale),
});

/** `FunctionTransformer(np.log1p)`: `ln(1 + x)`. NaN propagates; x ≤ -1 and ±Infinity are errors. */
export const Log1pStep = z.strictObject({
  type: z.literal('log1p'),
  columns: Columns,
});

/**
 * sklearn `OneHotEncoder` (dense, no `drop`, no infrequent categories) for one column:
 * produces one 0/1 column per category, named `<column>=<category>`, in category order, and
 * removes `column`. Unknown category: 'ignore' → all zeros, 'error' → InvalidValueError.
 * Missing value: see `handle_missing`.
 */
export const OneHotStep = z.strictObject({
  type: z.literal('one_hot'),
  column: ColumnName,
  categories: Categories,
  handle_unknown: z.enum(['ignore', 'error']),
  /** 'error' (default): a missing value is an InvalidValueError. 'as_unknown': it is an unknown category (sklearn's behaviour when NaN was not seen at fit time). */
  handle_missing: HandleMissing.default('error'),
});

/**
 * sklearn `OrdinalEncoder` for one column: the category's index in `categories`, as one
 * numeric column under the same name. Unknown category: `unknown_value` when a number
 * (sklearn's `handle_unknown='use_encoded_value'`), an InvalidValueError when null
 * (`handle_unknown='error'`). Missing value: see `handle_missing`.
 */
export const OrdinalStep = z.strictObject({
  type: z.literal('ordinal'),
  column: ColumnName,
  categories: Categories,
  unknown_value: Finite.nullable(),
  /** 'error' (default): a missing value is an InvalidValueError. 'as_unknown': it is an unknown category (gets `unknown_value`, or the error when that is null). */
  handle_missing: HandleMissing.default('error'),
});

/**
 * sklearn `SimpleImputer` (missing_values = NaN/None, no indicator): replaces each missing
 * value by its column's fitted statistic (`statistics_`). Numeric statistics apply to numeric
 * columns; string statistics (strategies 'most_frequent' and 'constant') to categorical
 * columns, which then stay categorical and must be encoded by a later step. `strategy` says
 * how the statistics were fitted; for 'constant' every statistic equals `fill_value`.
 */
export const SimpleImputerStep = z.strictObject({
  type: z.literal('simple_imputer'),
  columns: Columns,
  strategy: z.enum(['mean', 'median', 'most_frequent', 'constant']),
  statistics: z.array(z.union([Finite, z.string()])),
  fill_value: z.union([Finite, z.string()]).optional(),
});

export const TransformStepSchema = z.discriminatedUnion('type', [
  StandardScalerStep,
  MinMaxScalerStep,
  RobustScalerStep,
  Log1pStep,
  OneHotStep,
  OrdinalStep,
  SimpleImputerStep,
]);
export type TransformStep = z.infer<typeof TransformStepSchema>;
export type TransformStepType = TransformStep['type'];

/** What a column holds at a point of the pipeline. */
export type ColumnKind = 'numeric' | 'string';

/**
 * The column flow of a pipeline: which batch columns it reads (and as what), which numeric
 * columns it produces, and every inconsistency (wrong lengths, a consumed column read again,
 * a string column scaled, clashing output names…). Used by the schema and by compileTransforms.
 */
export interface TransformFlow {
  /** Batch columns read before any step produces them, in order of first use. */
  inputColumns: string[];
  /** What each input column must hold. */
  inputKinds: Map<string, ColumnKind>;
  /** Columns the steps produce and leave in place, in order of first production. */
  outputColumns: string[];
  problems: { path: (string | number)[]; message: string }[];
}

const EPS10 = 10 * Number.EPSILON;

/** Per-step checks that need no context: array lengths, duplicates, parameter ranges. */
function checkStep(step: TransformStep): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const sameLength = (field: string, values: readonly unknown[], columns: readonly string[]) => {
    if (values.length !== columns.length) problems.push({ path: [field], message: `${field} has ${values.length} value${values.length === 1 ? '' : 's'} for ${columns.length} column${columns.length === 1 ? '' : 's'}` });
  };
  if ('columns' in step) {
    const seen = new Set<string>();
    step.columns.forEach((c, i) => {
      if (seen.has(c)) problems.push({ path: ['columns', i], message: `column ${c} is listed twice` });
      seen.add(c);
    });
  }
  switch (step.type) {
    case 'standard_scaler':
      sameLength('mean', step.mean, step.columns);
      sameLength('scale', step.scale, step.columns);
      break;
    case 'robust_scaler':
      sameLength('center', step.center, step.columns);
      sameLength('scale', step.scale, step.columns);
      break;
    case 'min_max_scaler':
      sameLength('data_min', step.data_min, step.columns);
      sameLength('data_range', step.data_range, step.columns);
      if (!(step.feature_range[0] < step.feature_range[1])) problems.push({ path: ['feature_range'], message: `feature_range [${step.feature_range.join(', ')}]: minimum must be smaller than maximum` });
      break;
    case 'log1p':
      break;
    case 'one_hot':
    case 'ordinal': {
      const seen = new Set<string | number>();
      step.categories.forEach((c, i) => {
        if (seen.has(c)) problems.push({ path: ['categories', i], message: `category ${JSON.stringify(c)} is listed twice` });
        seen.add(c);
      });
      if (step.type === 'ordinal' && step.unknown_value !== null && Number.isInteger(step.unknown_value) && step.unknown_value >= 0 && step.unknown_value < step.categories.length) {
        problems.push({ path: ['unknown_value'], message: `unknown_value ${step.unknown_value} is also the code of category ${JSON.stringify(step.categories[step.unknown_value])}` });
      }
      break;
    }
    case 'simple_imputer':
      sameLength('statistics', step.statistics, step.columns);
      if ((step.strategy === 'mean' || step.strategy === 'median') && step.statistics.some((s) => typeof s !== 'number')) {
        problems.push({ path: ['statistics'], message: `strategy ${step.strategy} needs numeric statistics` });
      }
      if (step.strategy === 'constant') {
        if (step.fill_value === undefined) problems.push({ path: ['fill_value'], message: 'strategy constant needs fill_value' });
        else if (step.statistics.some((s) => s !== step.fill_value)) problems.push({ path: ['statistics'], message: `strategy constant: every statistic must equal fill_value ${JSON.stringify(step.fill_value)}` });
      }
      break;
  }
  return problems;
}

/** A short name for a step in messages: `steps[2] (one_hot merchant_category)`. */
export function describeStep(step: TransformStep, index: number): string {
  const cols = 'columns' in step ? step.columns.join(', ') : step.column;
  return `steps[${index}] (${step.type} ${cols})`;
}

/** Column names a one_hot step produces, in category order. */
export function oneHotOutputNames(step: { column: string; categories: readonly (string | number)[] }): string[] {
  return step.categories.map((c) => `${step.column}=${String(c)}`);
}

function categoryKind(categories: readonly (string | number)[]): ColumnKind {
  return typeof categories[0] === 'number' ? 'numeric' : 'string';
}

/** Follow the columns through the steps (see TransformFlow). */
export function analyzeFlow(steps: readonly TransformStep[]): TransformFlow {
  const problems: TransformFlow['problems'] = [];
  const inputColumns: string[] = [];
  const inputKinds = new Map<string, ColumnKind>();
  /** Current state of every column seen so far. */
  const state = new Map<string, { kind: ColumnKind; produced: boolean; consumedBy?: number; producer?: number }>();
  const produced: string[] = [];

  steps.forEach((step, si) => {
    for (const { path, message } of checkStep(step)) problems.push({ path: ['steps', si, ...path], message });
    const here = describeStep(step, si);

    /** Read `column` as `kind`; record it as a batch input when nothing produced it. */
    const read = (column: string, kind: ColumnKind, path: (string | number)[]) => {
      const s = state.get(column);
      if (!s) {
        inputColumns.push(column);
        inputKinds.set(column, kind);
        state.set(column, { kind, produced: false });
        return;
      }
      if (s.consumedBy !== undefined) {
        problems.push({ path: ['steps', si, ...path], message: `${here} reads ${column}, which ${describeStep(steps[s.consumedBy]!, s.consumedBy)} replaced by its indicator columns` });
      } else if (s.kind !== kind) {
        const origin = s.producer !== undefined ? describeStep(steps[s.producer]!, s.producer) : 'an earlier step';
        problems.push({ path: ['steps', si, ...path], message: `${here} needs ${kind === 'numeric' ? 'numbers' : 'strings'} in ${column}, which holds ${s.kind === 'numeric' ? 'numbers' : 'strings'} after ${origin}` });
      }
    };
    const write = (column: string, kind: ColumnKind) => {
      const s = state.get(column);
      if (!s || !s.produced) produced.push(column);
      state.set(column, { kind, produced: true, producer: si });
    };

    switch (step.type) {
      case 'standard_scaler':
      case 'min_max_scaler':
      case 'robust_scaler':
      case 'log1p':
        step.columns.forEach((c, i) => {
          read(c, 'numeric', ['columns', i]);
          write(c, 'numeric');
        });
        break;
      case 'simple_imputer':
        step.columns.forEach((c, i) => {
          const stat = step.statistics[i];
          const kind: ColumnKind = typeof stat === 'string' ? 'string' : 'numeric';
          read(c, kind, ['columns', i]);
          write(c, kind);
        });
        break;
      case 'ordinal':
        read(step.column, categoryKind(step.categories), ['column']);
        write(step.column, 'numeric');
        break;
      case 'one_hot': {
        read(step.column, categoryKind(step.categories), ['column']);
        const prev = state.get(step.column)!;
        state.set(step.column, { ...prev, consumedBy: si });
        for (const name of oneHotOutputNames(step)) {
          if (state.has(name)) problems.push({ path: ['steps', si, 'categories'], message: `${here} produces ${name}, a column that already exists` });
          else write(name, 'numeric');
        }
        break;
      }
    }
  });

  const outputColumns = produced.filter((c) => state.get(c)?.consumedBy === undefined);
  for (const c of outputColumns) {
    const s = state.get(c)!;
    if (s.kind === 'string') {
      problems.push({ path: ['steps', s.producer!], message: `${c} still holds strings after ${describeStep(steps[s.producer!]!, s.producer!)}: encode it (one_hot or ordinal) in a later step` });
    }
  }
  return { inputColumns, inputKinds, outputColumns, problems };
}

/**
 * A transformation pipeline as stored with a model. Validating it checks the structure,
 * every array length against its columns, and the column flow between steps.
 */
export const TransformSpecSchema = z
  .strictObject({
    format: z.literal(TRANSFORMS_FORMAT).default(TRANSFORMS_FORMAT),
    steps: z.array(TransformStepSchema),
  })
  .superRefine((spec, ctx) => {
    for (const p of analyzeFlow(spec.steps).problems) ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
  });
export type TransformSpec = z.infer<typeof TransformSpecSchema>;
/** The spec as written (defaults not yet applied). */
export type TransformSpecInput = z.input<typeof TransformSpecSchema>;

/** Zero (below 10·ε, as sklearn's `_handle_zeros_in_scale`) scales are applied as 1. */
export function effectiveScale(s: number): number {
  return s < EPS10 ? 1 : s;
}
