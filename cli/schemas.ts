/**
 * `npm run schemas`: write the JSON Schemas generated from the zod schemas, for editors
 * (`"$schema": "../../schemas/batch-pipeline.schema.json"` in a pipeline spec file).
 * test/unit/pipeline-spec.test.ts fails when the committed files are out of date.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipelineJsonSchema } from '../lib/pipeline/spec';
import { PACKAGE_ROOT } from '../lib/util/package-root';

export const SCHEMA_FILES: Record<string, () => unknown> = {
  'batch-pipeline.schema.json': pipelineJsonSchema,
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
