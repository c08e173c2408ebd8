/**
 * `npm run schemas`: write the JSON Schemas generated from the message schemas (lib/messages),
 * for editors (`"$schema": "../../schemas/batch-pipeline.schema.json"` in a pipeline spec file)
 * and for callers that start workflows from other languages or the Temporal UI.
 * test/unit/pipeline-spec.test.ts fails when the committed files are out of date.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { BatchInferenceInputSchema, BatchPipelineSpecSchema } from '../lib/messages/batch';
import { MaterializeFeaturesInputSchema } from '../lib/messages/materialize';
import { OnlineInferenceInputSchema, PredictRequestSchema } from '../lib/messages/online';
import { StreamPipelineSpecSchema } from '../lib/messages/stream';
import { PACKAGE_ROOT } from '../lib/util/package-root';

/** JSON Schema (draft 2020-12) of a message schema, as callers write the message. */
function jsonSchema(schema: z.ZodType): () => unknown {
  return () => z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });
}

export const SCHEMA_FILES: Record<string, () => unknown> = {
  'batch-pipeline.schema.json': jsonSchema(BatchPipelineSpecSchema),
  'batch-inference-input.schema.json': jsonSchema(BatchInferenceInputSchema),
  'materialize-features-input.schema.json': jsonSchema(MaterializeFeaturesInputSchema),
  'online-inference-input.schema.json': jsonSchema(OnlineInferenceInputSchema),
  'predict-request.schema.json': jsonSchema(PredictRequestSchema),
  'stream-pipeline.schema.json': jsonSchema(StreamPipelineSpecSchema),
};

export const SCHEMAS_DIR = path.join(PACKAGE_ROOT, 'schemas');

export function renderSchema(make: () => unknown): string {
  return `${JSON.stringify(make(), null, 2)}\n`;
}

if (require.main === module) {
  void (async () => {
    await fs.mkdir(SCHEMAS_DIR, { recursive: true });
    for (const [file, make] of Object.entries(SCHEMA_FILES)) {
      await fs.writeFile(path.join(SCHEMAS_DIR, file), renderSchema(make));
      console.log(`wrote schemas/${file}`);
    }
  })();
}
