/**
 * THE post-processing steps of a pipeline (its `postProcess` list, lib/messages/post-process.ts):
 * compiled once per model + steps against the model's output columns, so that every problem (a
 * threshold outside [0, 1], a top-k larger than the class count, a step reading a column nothing
 * produces) is reported before any row is predicted; then applied to each predicted block, in
 * order, by predict.ts — batch, online and streaming alike.
 *
 *   threshold   score → label (binary classifiers)
 *   classNames  class label → name (label becomes a name; prob_<class> columns renamed)
 *   topK        top_classes / top_probabilities lists, most probable first (multi-class)
 *   clip        clip and round regression values
 *   rule        a feature comparison overriding the label ("amount > limit → review")
 *   module      a user-defined post-processor (lib/features/post-processor.ts)
 */
import { createHash } from 'node:crypto';
import { InvalidInputError, InvalidValueError, SchemaMismatchError, errorMessage } from '../errors';
import type { OnDemandColumn } from '../features/on-demand';
import type { LoadedPostProcessor } from '../features/post-processor';
import type { PostProcessStep, RuleOperator } from '../messages/post-process';
import type { ModelManifest } from '../registry/manifest';
import type { RawBatch, SourceColumn } from './assemble';
import { baseSchema, checkColumns, classNamesOf, probabilityColumn, type OutputColumn, type OutputColumns, type OutputField, type OutputKind } from './outputs';
import { baseColumns, type PostProcessingId, type Predictions } from './post-process';

export type { PostProcessStep } from '../messages/post-process';

interface StepContext {
  columns: OutputColumns;
  features: RawBatch;
  rows: number;
  rowLabel: (row: number) => string;
}

interface CompiledStep {
  /** `postProcess[2] (topK)`: names the step in errors. */
  what: string;
  apply(ctx: StepContext): void;
}

export interface CompiledPostProcessing {
  steps: readonly CompiledStep[];
  /** The output columns once every step ran, in order. */
  schema: readonly OutputField[];
  /** Request/feature columns the steps read (added to the assembly plan's source columns). */
  featureInputs: readonly SourceColumn[];
  id: PostProcessingId;
}

/** What compiling reads besides the steps: the registered user post-processors. */
export interface PostProcessingRegistry {
  postProcessor(name: string): LoadedPostProcessor | undefined;
  postProcessorNames(): string[];
}

/** The classes of a classifier as compiling tracks them: their label values, current names and prob_ columns. */
interface ClassState {
  labels: (string | number)[];
  names: string[];
  probColumns: string[] | undefined;
}

const NUMERIC: ReadonlySet<OutputKind> = new Set(['int', 'float', 'double']);

const compare: Record<RuleOperator, (a: number, b: number) => boolean> = {
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '==': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};

function describeStep(step: PostProcessStep): string {
  switch (step.type) {
    case 'threshold':
      return `threshold(${step.threshold})`;
    case 'topK':
      return `topK(${step.k})`;
    case 'clip':
      return 'clip';
    case 'classNames':
      return 'classNames';
    case 'rule':
      return `rule(${step.feature} ${step.op} ${typeof step.value === 'number' ? step.value : step.value.feature} → ${step.set})`;
    case 'module':
      return step.name;
  }
}

/** Numbers of a numeric output column as float64 (a copy where the column is float32). */
function numbersOf(c: OutputColumn): Float64Array {
  return c.values instanceof Float64Array ? c.values : Float64Array.from(c.values as Float32Array);
}

/**
 * Compile a pipeline's post-processing steps for a model.
 * @throws InvalidInputError every problem, each naming the step (`postProcess[i] (type)`) and its field
 */
export function compilePostProcessing(manifest: ModelManifest, steps: readonly PostProcessStep[], registry: PostProcessingRegistry): CompiledPostProcessing {
  const task = manifest.metadata.task;
  const schema = new Map<string, OutputField>(baseSchema(manifest).map((f) => [f.name, f]));
  const problems: string[] = [];
  const featureInputs = new Map<string, SourceColumn>();
  const compiled: CompiledStep[] = [];
  const classification = task === 'binary_classification' || task === 'multiclass_classification';
  const classLabels = classification ? (manifest.metadata.class_labels ?? classNamesOf(manifest).map(Number)) : [];
  const classes: ClassState | undefined = classification
    ? { labels: classLabels, names: classLabels.map(String), probColumns: task === 'multiclass_classification' ? classNamesOf(manifest).map(probabilityColumn) : undefined }
    : undefined;
  const moduleHashes: string[] = [];

  steps.forEach((step, i) => {
    const what = `postProcess[${i}] (${step.type === 'module' ? step.name : step.type})`;
    const problem = (field: string, message: string) => problems.push(`${what}.${field}: ${message}`);
    const needColumn = (name: string, kinds: readonly OutputKind[], field: string): boolean => {
      const f = schema.get(name);
      if (!f) problem(field, `needs output column ${name}, which is not produced here (columns: ${[...schema.keys()].join(', ')})`);
      else if (!kinds.includes(f.kind)) problem(field, `needs ${name} as ${kinds.join(' or ')}, it is ${f.kind} here`);
      else return true;
      return false;
    };
    const needFeature = (name: string) => {
      if (!featureInputs.has(name)) featureInputs.set(name, { name, kind: 'numeric', by: what });
    };
    switch (step.type) {
      case 'threshold': {
        if (!(step.threshold >= 0 && step.threshold <= 1)) problem('threshold', `${step.threshold} is outside [0, 1]`);
        if (task !== 'binary_classification') problem('type', `a threshold needs a binary classifier (model ${manifest.name}:${manifest.version} is ${task})`);
        else if (needColumn('label', ['int'], 'type') && needColumn('score', ['float'], 'type')) {
          const positive = manifest.metadata.positive_class ?? classLabels[1] ?? 1;
          const negative = classLabels.find((c) => c !== positive) ?? 0;
          if (typeof positive !== 'number' || typeof negative !== 'number') problem('type', 'needs numeric class labels');
          const t = step.threshold;
          compiled.push({
            what,
            apply({ columns, rows }) {
              const score = columns.get('score')!.values as Float32Array;
              const label = new Float64Array(rows);
              for (let r = 0; r < rows; r++) label[r] = score[r]! >= t ? (positive as number) : (negative as number);
              columns.set('label', { kind: 'int', values: label });
            },
          });
        }
        break;
      }
      case 'classNames': {
        if (!classes) {
          problem('type', `class names need a classifier (model ${manifest.name}:${manifest.version} is ${task})`);
          break;
        }
        const known = new Set(classes.labels.map(String));
        const unknown = Object.keys(step.names).filter((k) => !known.has(k));
        if (unknown.length > 0) problem('names', `${unknown.join(', ')} ${unknown.length === 1 ? 'is not a class' : 'are not classes'} of the model (classes: ${[...known].join(', ')})`);
        const missing = [...known].filter((k) => step.names[k] === undefined);
        if (missing.length > 0) problem('names', `no name for class ${missing.join(', ')}`);
        if (!needColumn('label', ['int', 'string'], 'type') || unknown.length > 0 || missing.length > 0) break;
        const names = step.names;
        const renamed = classes.probColumns?.map((from, j) => [from, probabilityColumn(names[String(classes.labels[j])]!)] as const) ?? [];
        classes.names = classes.labels.map((l) => names[String(l)]!);
        const clash = new Set(renamed.map(([, to]) => to));
        if (clash.size < renamed.length) problem('names', 'two classes get the same prob_<name> column');
        schema.set('label', { name: 'label', kind: 'string' });
        for (const [from, to] of renamed) renameField(schema, from, to);
        if (classes.probColumns) classes.probColumns = renamed.map(([, to]) => to);
        compiled.push({
          what,
          apply({ columns, rows }) {
            const label = columns.get('label')!;
            const out = new Array<string | null>(rows);
            for (let r = 0; r < rows; r++) {
              const v = label.kind === 'string' ? label.values[r] : String(label.values[r]);
              out[r] = v === null || v === undefined ? null : (names[v] ?? v);
            }
            columns.set('label', { kind: 'string', values: out });
            for (const [from, to] of renamed) renameColumn(columns, from, to);
          },
        });
        break;
      }
      case 'topK': {
        const probs = classes?.probColumns;
        if (!classes || !probs) {
          problem('type', `top-k classes need a multi-class classifier (model ${manifest.name}:${manifest.version} is ${task})`);
          break;
        }
        if (step.k > probs.length) {
          problem('k', `${step.k} is larger than the model's ${probs.length} classes`);
          break;
        }
        if (!probs.every((c) => needColumn(c, ['float'], 'type'))) break;
        const k = step.k;
        const cols = [...probs];
        const names = [...classes.names];
        schema.set('top_classes', { name: 'top_classes', kind: 'strings', width: k });
        schema.set('top_probabilities', { name: 'top_probabilities', kind: 'floats', width: k });
        compiled.push({
          what,
          apply({ columns, rows }) {
            const p = cols.map((c) => columns.get(c)!.values as Float32Array);
            const topNames = new Array<string | null>(rows * k);
            const topProbs = new Float32Array(rows * k);
            const order = cols.map((_, j) => j);
            for (let r = 0; r < rows; r++) {
              // Stable: equal probabilities keep the model's class order.
              order.sort((a, b) => p[b]![r]! - p[a]![r]! || a - b);
              for (let j = 0; j < k; j++) {
                topNames[r * k + j] = names[order[j]!]!;
                topProbs[r * k + j] = p[order[j]!]![r]!;
              }
              order.sort((a, b) => a - b);
            }
            columns.set('top_classes', { kind: 'strings', width: k, values: topNames });
            columns.set('top_probabilities', { kind: 'floats', width: k, values: topProbs });
          },
        });
        break;
      }
      case 'clip': {
        if (task !== 'regression') problem('type', `clipping needs a regression model (model ${manifest.name}:${manifest.version} is ${task})`);
        if (step.min !== undefined && step.max !== undefined && step.min > step.max) problem('min', `${step.min} is larger than max ${step.max}`);
        if (step.min === undefined && step.max === undefined && step.decimals === undefined) problem('type', 'give min, max or decimals');
        if (task !== 'regression' || !needColumn('prediction', ['float', 'floats'], 'type')) break;
        const lo = step.min ?? -Infinity;
        const hi = step.max ?? Infinity;
        const scale = step.decimals === undefined ? undefined : 10 ** step.decimals;
        compiled.push({
          what,
          apply({ columns }) {
            const c = columns.get('prediction')!;
            const values = Float32Array.from(c.values as Float32Array, (x) => {
              const clipped = Math.min(hi, Math.max(lo, x));
              return scale === undefined ? clipped : Math.round(clipped * scale) / scale;
            });
            columns.set('prediction', c.kind === 'floats' ? { kind: 'floats', width: c.width, values } : { kind: 'float', values });
          },
        });
        break;
      }
      case 'rule': {
        const target = classification ? 'label' : 'prediction';
        needFeature(step.feature);
        if (typeof step.value !== 'number') needFeature(step.value.feature);
        if (!classification && typeof step.set !== 'number') problem('set', `a regression rule sets a number (got ${JSON.stringify(step.set)})`);
        if (!needColumn(target, classification ? ['int', 'string'] : ['float'], 'type')) break;
        const labelKind = schema.get(target)!.kind;
        const becomesString = labelKind === 'string' || typeof step.set === 'string';
        if (becomesString) schema.set(target, { name: target, kind: 'string' });
        const { feature, op, set } = step;
        const other = step.value;
        compiled.push({
          what,
          apply({ columns, features, rows }) {
            const a = features[feature] as Float64Array;
            const b = typeof other === 'number' ? undefined : (features[other.feature] as Float64Array);
            const test = compare[op];
            const current = columns.get(target)!;
            if (becomesString) {
              const out: (string | null)[] = current.kind === 'string' ? [...current.values] : Array.from(current.values as Float64Array, (v) => String(v));
              for (let r = 0; r < rows; r++) if (test(a[r]!, b ? b[r]! : (other as number))) out[r] = String(set);
              columns.set(target, { kind: 'string', values: out });
            } else {
              const out = current.values.slice() as Float64Array | Float32Array;
              for (let r = 0; r < rows; r++) if (test(a[r]!, b ? b[r]! : (other as number))) out[r] = set as number;
              columns.set(target, { ...current, values: out } as OutputColumn);
            }
          },
        });
        break;
      }
      case 'module': {
        const p = registry.postProcessor(step.name);
        if (!p) {
          problem('name', `${JSON.stringify(step.name)} is not a registered post-processor (registered: ${registry.postProcessorNames().join(', ') || 'none; set INFERFLOW_MODULES'})`);
          break;
        }
        moduleHashes.push(`${step.name}:${p.moduleSha256}`);
        const fromColumns: string[] = [];
        for (const [name, dtype] of Object.entries(p.inputs)) {
          const f = schema.get(name);
          if (!f) {
            if (dtype === 'string') featureInputs.set(name, { name, kind: 'string', by: what });
            else needFeature(name);
            continue;
          }
          fromColumns.push(name);
          const ok = dtype === 'string' ? f.kind === 'string' : NUMERIC.has(f.kind);
          if (!ok) problem(`inputs.${name}`, `declared ${dtype}, output column ${name} is ${f.kind} here`);
        }
        for (const [name, dtype] of Object.entries(p.outputs)) schema.set(name, { name, kind: dtype === 'string' ? 'string' : 'double' });
        compiled.push({ what, apply: (ctx) => runModule(p, what, fromColumns, ctx) });
        break;
      }
    }
  });
  if (problems.length > 0) throw new InvalidInputError(`post-processing of model ${manifest.name}:${manifest.version} is invalid`, problems, { object: 'postProcess' });
  const sha256 = createHash('sha256').update(JSON.stringify(steps)).update(moduleHashes.join('\n')).digest('hex');
  return { steps: compiled, schema: [...schema.values()], featureInputs: [...featureInputs.values()], id: { steps: steps.map(describeStep).join(' > '), sha256 } };
}

function renameField(schema: Map<string, OutputField>, from: string, to: string): void {
  const entries = [...schema.entries()].map(([k, f]) => (k === from ? ([to, { ...f, name: to }] as const) : ([k, f] as const)));
  schema.clear();
  for (const [k, f] of entries) schema.set(k, f);
}

function renameColumn(columns: OutputColumns, from: string, to: string): void {
  const entries = [...columns.entries()].map(([k, c]) => (k === from ? ([to, c] as const) : ([k, c] as const)));
  columns.clear();
  for (const [k, c] of entries) columns.set(k, c);
}

function kindOf(col: unknown): 'float64' | 'string' | 'other' {
  if (col instanceof Float64Array) return 'float64';
  if (Array.isArray(col)) return 'string';
  return 'other';
}

function runModule(p: LoadedPostProcessor, what: string, fromColumns: readonly string[], ctx: StepContext): void {
  const { columns, features, rows } = ctx;
  const inputs: Record<string, OnDemandColumn> = {};
  for (const name of Object.keys(p.inputs)) {
    const c = fromColumns.includes(name) ? columns.get(name)! : undefined;
    inputs[name] = c ? (c.kind === 'string' ? c.values : numbersOf(c)) : features[name]!;
  }
  let out: Record<string, OnDemandColumn>;
  try {
    out = p.compute(inputs, rows);
  } catch (err) {
    throw new InvalidValueError(`${what} threw for a block of ${rows} rows (first: ${ctx.rowLabel(0)}): ${errorMessage(err)}`, { step: what });
  }
  const declared = Object.keys(p.outputs);
  const returned = Object.keys(out ?? {});
  const problems = [
    ...declared.filter((n) => !returned.includes(n)).map((n) => `output ${n} is declared but not returned`),
    ...returned.filter((n) => !declared.includes(n)).map((n) => `output ${n} is returned but not declared (declared: ${declared.join(', ')})`),
  ];
  for (const [name, dtype] of Object.entries(p.outputs)) {
    const col = out?.[name];
    if (col === undefined) continue;
    if (kindOf(col) !== dtype) problems.push(`output ${name} must be ${dtype === 'string' ? '(string | null)[]' : 'a Float64Array'}`);
    else if (col.length !== rows) problems.push(`output ${name} has ${col.length} values for ${rows} rows`);
  }
  if (problems.length > 0) throw new SchemaMismatchError(`${what}: declared outputs do not match what it returned`, problems);
  checkFiniteOutputs(p, what, out, ctx);
  for (const [name, dtype] of Object.entries(p.outputs)) {
    columns.set(name, dtype === 'string' ? { kind: 'string', values: out[name] as (string | null)[] } : { kind: 'double', values: out[name] as Float64Array });
  }
}

/** Rows named in a non-finite output's error at most. */
const MAX_NAMED_ROWS = 10;

/**
 * A user post-processor's numbers must be finite: a NaN or ±Infinity would reach JSON answers as
 * null and sinks as NaN, looking like a value or like a missing one the model never gave.
 * @throws InvalidValueError naming the step, the output and the first rows with their values
 */
function checkFiniteOutputs(p: LoadedPostProcessor, what: string, out: Record<string, OnDemandColumn>, ctx: StepContext): void {
  const bad: string[] = [];
  const rows: number[] = [];
  let count = 0;
  for (const [name, dtype] of Object.entries(p.outputs)) {
    if (dtype === 'string') continue;
    const values = out[name] as Float64Array;
    for (let r = 0; r < values.length; r++) {
      const x = values[r]!;
      if (x - x === 0) continue;
      count++;
      if (bad.length < MAX_NAMED_ROWS) {
        bad.push(`${ctx.rowLabel(r)}: ${name} = ${x}`);
        rows.push(r);
      }
    }
  }
  if (count > 0) {
    // `rows`: the named rows' positions in the block, for a caller that labels rows only on failure (batch's direct path).
    throw new InvalidValueError(`${what} returned non-finite numbers (${count} value${count === 1 ? '' : 's'}${count > MAX_NAMED_ROWS ? `, first ${MAX_NAMED_ROWS}` : ''}): ${bad.join('; ')}`, {
      step: what,
      problems: bad,
      rows,
    });
  }
}

/**
 * Run the compiled steps over one predicted block; the predictions then carry the output
 * columns (checked against the compiled schema) and the post-processing's id.
 */
export function applyPostProcessing(post: CompiledPostProcessing, predictions: Predictions, features: RawBatch, rowLabel: (row: number) => string): Predictions {
  const columns = new Map(baseColumns(predictions));
  for (const step of post.steps) step.apply({ columns, features, rows: predictions.rows, rowLabel });
  checkColumns(columns, post.schema, predictions.rows, 'post-processing');
  return { ...predictions, columns, postProcessing: post.id };
}

