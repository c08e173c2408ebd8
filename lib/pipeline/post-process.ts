/**
 * THE post-processing step: the model's raw outputs → prediction columns. Classification: the
 * predicted class label and a score (the positive class's probability for a binary model, the
 * predicted class's for a multiclass one); regression: the predicted value(s); embedding: the
 * vector. Runs per chunk as the model produces it (lib/runtime/predict.ts `runModel`), writing
 * into columns sized for the block, so no output is copied twice.
 */
import { CorruptArtifactError } from '../errors';
import type { ModelManifest } from '../registry/manifest';
import { labelsAsNumbers, type ChunkOutputs } from '../runtime/predict';
import { EMBEDDING_COLUMN, classNamesOf, columnJson, embeddingWidth, probabilityColumn, regressionWidth, type OutputColumns } from './outputs';

export interface Predictions {
  rows: number;
  /** Predicted class label (classification). */
  label?: Float64Array;
  /** Probability of the positive class (binary) or of the predicted class (multiclass). */
  score?: Float32Array;
  /** Regression output. */
  value?: Float32Array;
  /** Multi-class: every class's probability, row-major `rows × classes.length`, classes as `classNamesOf` gives them. */
  probabilities?: { classes: string[]; values: Float32Array };
  /** Multi-output regression: the outputs of each row, row-major `rows × width` (instead of `value`). */
  vector?: { width: number; values: Float32Array };
  /** Embedding: one vector per row, row-major `rows × width`. */
  embedding?: { width: number; values: Float32Array };
  /** The output columns after the pipeline's post-processing steps (post-steps.ts); absent: `baseColumns` of the above. */
  columns?: OutputColumns;
  /** Which post-processing produced the columns: the steps and a content hash of them (and of user modules). */
  postProcessing?: PostProcessingId;
}

/** Names the post-processing of a pipeline in every output row, beside the model version. */
export interface PostProcessingId {
  /** The steps, e.g. `threshold(0.3) > classNames > fraud_post.review`. */
  steps: string;
  /** sha256 of the steps' spec and of the source of each user module they run. */
  sha256: string;
}

/** Predictions as plain JSON lists, under the names the online answers use. */
export interface PredictionLists {
  /** Predicted class per row (classification; a name after a classNames or rule step). */
  label?: (number | string | null)[];
  /** Positive-class probability per row (binary) or the predicted class's (multiclass). */
  score?: (number | null)[];
  /** Regression output per row (a list per row for a multi-output regressor). */
  prediction?: unknown[];
  /** Every other output column (prob_<class>, top_classes, a post-processor's outputs), by name, in output order. */
  outputs?: Record<string, unknown[]>;
}

export interface PostProcess {
  /** The columns being filled (complete once every chunk was collected). */
  readonly predictions: Predictions;
  /** Post-process rows [start, start + n) from one chunk's outputs. */
  collect(outputs: ChunkOutputs, start: number, n: number): void;
}

/** The post-processing of `rows` rows of a model (`outputNames`: the session's, for messages and the regression default). */
export function postProcess(manifest: ModelManifest, outputNames: readonly string[], rows: number): PostProcess {
  const names = manifest.metadata.outputs;
  const task = manifest.metadata.task;
  const out: Predictions = { rows };
  if (task === 'regression' || task === 'embedding') {
    const embedding = task === 'embedding';
    const width = embedding ? embeddingWidth(manifest) : regressionWidth(manifest);
    const value = new Float32Array(rows * width);
    if (embedding) out.embedding = { width, values: value };
    else if (width > 1) out.vector = { width, values: value };
    else out.value = value;
    const name = (embedding ? names.embedding : names.value) ?? outputNames[0]!;
    return {
      predictions: out,
      collect(outputs, start, n) {
        const v = outputs[name];
        if (!v) throw new CorruptArtifactError(`model output ${name} not found (model has ${outputNames.join(', ')})`, { output: name });
        const got = toFloat32(v.data as ArrayLike<number>);
        if (got.length !== n * width) throw new CorruptArtifactError(`model output ${name} has ${got.length} values for ${n} rows × ${width}`, { output: name });
        value.set(got, start * width);
      },
    };
  }
  const label = (out.label = new Float64Array(rows));
  const score = (out.score = new Float32Array(rows));
  const classLabels = manifest.metadata.class_labels;
  const positiveIndex = classLabels && manifest.metadata.positive_class !== undefined ? classLabels.indexOf(manifest.metadata.positive_class) : 1;
  const labelName = names.label ?? 'label';
  const classes = task === 'multiclass_classification' ? classNamesOf(manifest) : undefined;
  const all = classes ? (out.probabilities = { classes, values: new Float32Array(rows * classes.length) }).values : undefined;
  const probabilitiesName = names.probabilities ?? 'probabilities';
  return {
    predictions: out,
    collect(outputs, start, n) {
      const labelT = outputs[labelName];
      const probT = outputs[probabilitiesName];
      if (!labelT || !probT) throw new CorruptArtifactError(`model outputs ${labelName} / ${probabilitiesName} not found (model has ${outputNames.join(', ')})`, {});
      const labels = labelsAsNumbers(labelT.data, n);
      const probs = probT.data as Float32Array;
      const k = probT.dims[1] ?? 1;
      if (all) {
        if (k !== classes!.length) throw new CorruptArtifactError(`model output ${probabilitiesName} has ${k} classes, the manifest names ${classes!.length}`, { output: probabilitiesName });
        all.set(probs.subarray(0, n * k), start * k);
      }
      for (let r = 0; r < n; r++) {
        label[start + r] = labels[r]!;
        if (task === 'binary_classification') score[start + r] = probs[r * k + (positiveIndex >= 0 ? positiveIndex : 1)]!;
        else {
          let best = 0;
          for (let c = 1; c < k; c++) if (probs[r * k + c]! > probs[r * k + best]!) best = c;
          score[start + r] = probs[r * k + best]!;
        }
      }
    },
  };
}

/** The output columns of predictions: the post-processed ones, else label, score (and prob_<class>) or prediction. */
export function baseColumns(p: Predictions): OutputColumns {
  if (p.columns) return p.columns;
  const cols: OutputColumns = new Map();
  if (p.value) cols.set('prediction', { kind: 'float', values: p.value });
  if (p.vector) cols.set('prediction', { kind: 'floats', width: p.vector.width, values: p.vector.values });
  if (p.embedding) cols.set(EMBEDDING_COLUMN, { kind: 'floats', width: p.embedding.width, values: p.embedding.values });
  if (p.label) cols.set('label', { kind: 'int', values: p.label });
  if (p.score) cols.set('score', { kind: 'float', values: p.score });
  if (p.probabilities) {
    const { classes, values } = p.probabilities;
    classes.forEach((c, j) => {
      const col = new Float32Array(p.rows);
      for (let r = 0; r < p.rows; r++) col[r] = values[r * classes.length + j]!;
      cols.set(probabilityColumn(c), { kind: 'float', values: col });
    });
  }
  return cols;
}

/** Predictions as JSON lists (online answers): every output column by name (`prediction` for regression). */
export function predictionLists(p: Predictions): PredictionLists {
  const lists: PredictionLists = {};
  const outputs: Record<string, unknown[]> = {};
  for (const [name, c] of baseColumns(p)) {
    if (name === 'label' || name === 'score' || name === 'prediction') lists[name] = columnJson(c) as never;
    else outputs[name] = columnJson(c);
  }
  return Object.keys(outputs).length > 0 ? { ...lists, outputs } : lists;
}

function toFloat32(data: ArrayLike<number>): Float32Array {
  return data instanceof Float32Array ? data : Float32Array.from(data);
}
