/**
 * The assembled model input against the model's ONNX input signature: tensor names, element
 * types, rank and width (one feature per column, in the order the metadata lists them). The
 * registry runs the same check when a model is registered; pipelines run it again against the
 * session they loaded, before predicting anything, so a manifest edited by hand or a cached
 * artifact that differs cannot feed the wrong features silently.
 */
import type { ModelMetadata, ModelSignature } from '../registry/manifest';

export interface AssembledInput {
  name: string;
  dtype: string;
  columns: readonly string[];
}

/** Every way `inputs` does not fit `signature` (empty when it fits). */
export function signatureProblems(inputs: readonly AssembledInput[], signature: ModelSignature): string[] {
  const problems: string[] = [];
  for (const input of inputs) {
    const sig = signature.inputs.find((s) => s.name === input.name);
    if (!sig) {
      problems.push(`input ${input.name} is not a model input (the model has ${signature.inputs.map((s) => s.name).join(', ') || 'none'})`);
      continue;
    }
    if (sig.elementType !== input.dtype) problems.push(`input ${input.name} is ${sig.elementType} in the model, the pipeline assembles ${input.dtype}`);
    if (sig.shape.length !== 2) {
      problems.push(`input ${input.name} has rank ${sig.shape.length}; only [batch, features] inputs are supported`);
      continue;
    }
    const width = sig.shape[1];
    if (width !== null && width !== undefined && width !== input.columns.length) {
      const extra = input.columns.slice(width);
      problems.push(
        `input ${input.name} takes ${width} features, the pipeline assembles ${input.columns.length}` +
          (extra.length > 0 ? ` (not in the model: ${extra.join(', ')})` : ` (the model expects ${width - input.columns.length} more after ${input.columns.at(-1) ?? '(none)'})`),
      );
    }
  }
  for (const sig of signature.inputs) {
    if (!inputs.some((i) => i.name === sig.name)) problems.push(`model input ${sig.name} gets no features`);
  }
  return problems;
}

/**
 * Every way the model's outputs do not fit its task (empty when they fit). An embedding model
 * answers one float32 vector per row: its output (`outputs.embedding`, else the first) must be
 * `[batch, k]` with k fixed, the width every sink and answer gives the vector.
 */
export function outputProblems(metadata: Pick<ModelMetadata, 'task' | 'outputs'>, signature: ModelSignature): string[] {
  if (metadata.task !== 'embedding') return [];
  const name = metadata.outputs.embedding;
  const sig = name === undefined ? signature.outputs[0] : signature.outputs.find((o) => o.name === name);
  if (!sig) return [`output ${name ?? '(first)'} is not a model output (the model has ${signature.outputs.map((o) => o.name).join(', ') || 'none'})`];
  const problems: string[] = [];
  if (sig.elementType !== 'float32') problems.push(`output ${sig.name} is ${sig.elementType}; an embedding is float32`);
  const width = sig.shape[1];
  if (sig.shape.length !== 2 || typeof width !== 'number' || width < 1) {
    problems.push(`output ${sig.name} has shape [${sig.shape.map((d) => d ?? 'N').join(', ')}]; an embedding is [N, k] with k fixed`);
  }
  return problems;
}
