import { z } from 'zod';
import { TransformSpecSchema } from '../transforms/spec';

export const TensorSignatureSchema = z.object({
  name: z.string(),
  /** ONNX element type as onnxruntime names it: float32, int64, string, … */
  elementType: z.string(),
  /** Dimensions; `null` for a dynamic (symbolic) dimension. */
  shape: z.array(z.number().int().nullable()),
});
export type TensorSignature = z.infer<typeof TensorSignatureSchema>;

export const ModelSignatureSchema = z.object({
  inputs: z.array(TensorSignatureSchema),
  outputs: z.array(TensorSignatureSchema),
});
export type ModelSignature = z.infer<typeof ModelSignatureSchema>;

/**
 * How the model's input tensors are assembled from named feature columns, and how its
 * outputs are read. Written by the training script (metadata.json), stored in the manifest.
 */
export const ModelMetadataSchema = z.object({
  description: z.string().optional(),
  /** What the outputs are: class label + probabilities, value(s), or (embedding) one float vector per row, `[batch, k]` with k fixed. */
  task: z.enum(['binary_classification', 'multiclass_classification', 'regression', 'embedding']).default('binary_classification'),
  inputs: z
    .array(
      z.object({
        name: z.string().min(1),
        dtype: z.literal('float32').default('float32'),
        columns: z.array(z.string().min(1)).min(1),
      }),
    )
    .min(1),
  outputs: z
    .object({ label: z.string().optional(), probabilities: z.string().optional(), value: z.string().optional(), embedding: z.string().optional() })
    .default({}),
  class_labels: z.array(z.union([z.number(), z.string()])).optional(),
  positive_class: z.union([z.number(), z.string()]).optional(),
  id_column: z.string().optional(),
  /**
   * Fitted preprocessing (scalers, encoders, imputers) the model was trained behind, written by
   * the training script (format inferflow.transforms/v1, see docs/transforms.md). Applied to
   * the raw feature columns before the `inputs` are assembled; absent: the columns go in as they are.
   */
  transforms: TransformSpecSchema.optional(),
  metrics: z.record(z.string(), z.unknown()).default({}),
  training: z.record(z.string(), z.unknown()).default({}),
  tags: z.record(z.string(), z.string()).default({}),
});
export type ModelMetadata = z.infer<typeof ModelMetadataSchema>;

export const ModelManifestSchema = z.object({
  format: z.literal('inferflow.model/v1'),
  name: z.string(),
  version: z.number().int().positive(),
  artifact: z.object({ key: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }),
  signature: ModelSignatureSchema,
  metadata: ModelMetadataSchema,
  createdAt: z.string(),
});
export type ModelManifest = z.infer<typeof ModelManifestSchema>;

/** What a workflow records about the model a run uses: small, exact, no bulk data. */
export interface ResolvedModel {
  name: string;
  version: number;
  sha256: string;
  size: number;
  /** Where the artifact lives in the registry (a URL; never contains credentials). */
  uri: string;
  /** The reference as given (`name@production`). */
  ref: string;
}
