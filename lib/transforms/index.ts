/**
 * Model-dependent transformations (scalers, encoders, imputers fitted at training time).
 *
 *   const t = compileTransforms(manifest.metadata.transforms);   // once per model; throws InvalidInputError
 *   const out = t.apply(batch, rowLabel);                        // per batch or per row
 *   const x = assembleMatrix(input.columns, { ...batch, ...out }); // row-major Float32Array
 *
 * See docs/transforms.md.
 */
export { assembleMatrix, compileTransforms, parseTransformSpec } from './apply';
export type { Batch, CategoricalColumn, Column, CompiledTransforms, RowLabel } from './apply';
export { TRANSFORMS_FORMAT, TransformSpecSchema, TransformStepSchema } from './spec';
export type { ColumnKind, TransformSpec, TransformSpecInput, TransformStep, TransformStepType } from './spec';
