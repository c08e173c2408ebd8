/**
 * THE predict step shared by batch, online and streaming: an assembled feature block in, the
 * model run in chunks (lib/runtime/predict.ts `runModel`), each chunk post-processed as it comes
 * (post-process.ts), the model's numbers checked finite, prediction columns out.
 */
import type * as ortTypes from 'onnxruntime-node';
import { InvalidValueError } from '../errors';
import type { ModelManifest } from '../registry/manifest';
import { runModel, type FeatureBlock, type PredictOptions } from '../runtime/predict';
import { EMBEDDING_COLUMN } from './outputs';
import { postProcess, type Predictions } from './post-process';
import { applyPostProcessing, type CompiledPostProcessing } from './post-steps';

/** `steps`: the pipeline's compiled post-processing steps (post-steps.ts), run over the whole block once the model answered. */
export async function predict(session: ortTypes.InferenceSession, manifest: ModelManifest, block: FeatureBlock, options: PredictOptions = {}, steps?: CompiledPostProcessing): Promise<Predictions> {
  const post = postProcess(manifest, session.outputNames, block.rows);
  await runModel(session, manifest, block, (outputs, start, n) => post.collect(outputs, start, n), options);
  const rowLabel = block.rowLabel ?? ((r: number) => `row ${r}`);
  checkModelOutputs(manifest, post.predictions, rowLabel);
  if (!steps || steps.steps.length === 0) return post.predictions;
  return applyPostProcessing(steps, post.predictions, block.columns ?? {}, rowLabel);
}

/** Values named in a non-finite model output's error at most. */
const MAX_NAMED_VALUES = 10;

/** The model's numbers (score, prediction, embedding, probabilities; labels are class indices) as answers and sinks name them: values row-major, `width` per row. */
function modelOutputs(p: Predictions): { name: string; values: ArrayLike<number>; width: number; columns?: readonly string[] }[] {
  const out: { name: string; values: ArrayLike<number>; width: number; columns?: readonly string[] }[] = [];
  if (p.score) out.push({ name: 'score', values: p.score, width: 1 });
  if (p.value) out.push({ name: 'prediction', values: p.value, width: 1 });
  if (p.vector) out.push({ name: 'prediction', values: p.vector.values, width: p.vector.width });
  if (p.embedding) out.push({ name: EMBEDDING_COLUMN, values: p.embedding.values, width: p.embedding.width });
  if (p.probabilities) out.push({ name: 'probabilities', values: p.probabilities.values, width: p.probabilities.classes.length, columns: p.probabilities.classes });
  return out;
}

/**
 * The model's own numbers must be finite: JSON answers would carry a NaN or ±Infinity as null
 * and sinks as NaN, looking like a value or like a missing one. The whole block fails, as a
 * user post-processor's non-finite output does (post-steps.ts), so no partial answer is written.
 *
 * @throws InvalidValueError naming the model, the outputs and the first rows with their values; `rows`: their positions in the block
 */
export function checkModelOutputs(manifest: ModelManifest, p: Predictions, rowLabel: (row: number) => string): void {
  const bad: string[] = [];
  const rows: number[] = [];
  const outputs = new Set<string>();
  let count = 0;
  for (const { name, values, width, columns } of modelOutputs(p)) {
    for (let i = 0; i < values.length; i++) {
      const x = values[i]!;
      if (x - x === 0) continue; // finite (NaN - NaN and Infinity - Infinity are NaN)
      count++;
      outputs.add(name);
      if (bad.length < MAX_NAMED_VALUES) {
        const r = Math.floor(i / width);
        const element = width === 1 ? name : `${name}[${columns ? columns[i % width] : i % width}]`;
        bad.push(`${rowLabel(r)}: ${element} = ${x}`);
        if (!rows.includes(r)) rows.push(r);
      }
    }
  }
  if (count === 0) return;
  const model = `${manifest.name}:${manifest.version}`;
  throw new InvalidValueError(`model ${model} output non-finite numbers in ${[...outputs].join(', ')} (${count} value${count === 1 ? '' : 's'}${count > MAX_NAMED_VALUES ? `, first ${MAX_NAMED_VALUES}` : ''}): ${bad.join('; ')}`, {
    model,
    output: [...outputs].join(', '),
    problems: bad,
    rows,
  });
}
