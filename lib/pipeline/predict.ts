/**
 * THE predict step shared by batch, online and streaming: an assembled feature block in, the
 * model run in chunks (lib/runtime/predict.ts `runModel`), each chunk post-processed as it comes
 * (post-process.ts), prediction columns out.
 */
import type * as ortTypes from 'onnxruntime-node';
import type { ModelManifest } from '../registry/manifest';
import { runModel, type FeatureBlock, type PredictOptions } from '../runtime/predict';
import { postProcess, type Predictions } from './post-process';
import { applyPostProcessing, type CompiledPostProcessing } from './post-steps';

/** `steps`: the pipeline's compiled post-processing steps (post-steps.ts), run over the whole block once the model answered. */
export async function predict(session: ortTypes.InferenceSession, manifest: ModelManifest, block: FeatureBlock, options: PredictOptions = {}, steps?: CompiledPostProcessing): Promise<Predictions> {
  const post = postProcess(manifest, session.outputNames, block.rows);
  await runModel(session, manifest, block, (outputs, start, n) => post.collect(outputs, start, n), options);
  if (!steps || steps.steps.length === 0) return post.predictions;
  return applyPostProcessing(steps, post.predictions, block.columns ?? {}, block.rowLabel ?? ((r) => `row ${r}`));
}
