/**
 * THE post-processing step: the model's raw outputs → prediction columns. Classification: the
 * predicted class label and a score (the positive class's probability for a binary model, the
 * predicted class's for a multiclass one); regression: the predicted value. Runs per chunk as the
 * model produces it (lib/runtime/predict.ts `runModel`), writing into columns sized for the block,
 * so no output is copied twice.
 */
import { CorruptArtifactError } from '../errors';
import type { ModelManifest } from '../registry/manifest';
import { labelsAsNumbers, type ChunkOutputs } from '../runtime/predict';

export interface Predictions {
  rows: number;
  /** Predicted class label (classification). */
  label?: Float64Array;
  /** Probability of the positive class (binary) or of the predicted class (multiclass). */
  score?: Float32Array;
  /** Regression output. */
  value?: Float32Array;
}

/** Predictions as plain JSON lists, under the names the online answers use. */
export interface PredictionLists {
  /** Predicted class per row (classification). */
  label?: number[];
  /** Positive-class probability per row (binary) or the predicted class's (multiclass). */
  score?: number[];
  /** Regression output per row. */
  prediction?: number[];
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
  if (task === 'regression') {
    const value = (out.value = new Float32Array(rows));
    const name = names.value ?? outputNames[0]!;
    return {
      predictions: out,
      collect(outputs, start) {
        const v = outputs[name];
        if (!v) throw new CorruptArtifactError(`model output ${names.value} not found`, { output: names.value });
        value.set(toFloat32(v.data as ArrayLike<number>), start);
      },
    };
  }
  const label = (out.label = new Float64Array(rows));
  const score = (out.score = new Float32Array(rows));
  const classLabels = manifest.metadata.class_labels;
  const positiveIndex = classLabels && manifest.metadata.positive_class !== undefined ? classLabels.indexOf(manifest.metadata.positive_class) : 1;
  const labelName = names.label ?? 'label';
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

/** Predictions as JSON lists (online answers). */
export function predictionLists(p: Predictions): PredictionLists {
  return {
    ...(p.label ? { label: Array.from(p.label) } : {}),
    ...(p.score ? { score: Array.from(p.score) } : {}),
    ...(p.value ? { prediction: Array.from(p.value) } : {}),
  };
}

function toFloat32(data: ArrayLike<number>): Float32Array {
  return data instanceof Float32Array ? data : Float32Array.from(data);
}
