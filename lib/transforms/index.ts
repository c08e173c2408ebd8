/**
 * Model-dependent transformations (scalers, encoders, imputers fitted at training time).
 *
 *   const t = compileTransforms(spec);                             // once per model; throws InvalidInputError
 *   const out = t.apply(batch, rowLabel);                          // per batch or per row
 *   const x = assembleMatrix(input.columns, { ...batch, ...out }); // row-major Float32Array per model input
 *
 * The spec is written by the training script (examples/train/make_transform_fixtures.py has
 * the exporter) into the model's metadata (`transforms`); lib/pipeline/assemble.ts applies it.
 *
 * See docs/transforms.md.
 */
export { assembleMatrix, compileTransforms, parseTransformSpec } from './apply';
export type { Batch, CategoricalColumn, Column, CompiledTransforms, RowLabel } from './apply';
export { TRANSFORMS_FORMAT, TransformSpecSchema, TransformStepSchema } from './spec';
export type { ColumnKind, TransformSpec, TransformSpecInput, TransformStep, TransformStepType } from './spec';
