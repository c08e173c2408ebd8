/**
 * Batch pipeline spec files: the JSON a team keeps in its repository and hands to
 * `inferflow batch run <spec>` / `inferflow schedule create <spec>` — the batchInference input
 * (lib/messages/batch.ts) as a file. Validated with zod (every problem with its path); the
 * JSON Schema for editors is generated from the same schema (`npm run schemas` →
 * schemas/batch-pipeline.schema.json; add `"$schema": "../../schemas/batch-pipeline.schema.json"`).
 *
 * Relative paths in a spec file (features, spine, file sources of feature views, a Parquet
 * sink directory) are relative to the file's directory; they are made
 * absolute before the workflow starts, because workers resolve paths against their own
 * working directory.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { InvalidInputError, NotFoundError } from '../errors';
import { BatchPipelineSpecSchema, type BatchInferenceInput, type BatchPipelineSpec } from '../messages/batch';
import { checkMessage } from '../messages/problems';

export { BatchPipelineSpecSchema, type BatchPipelineSpec };

/** Validate a parsed spec. @throws InvalidInputError listing every problem with its path. */
export function parsePipelineSpec(raw: unknown, object = 'pipeline spec'): BatchPipelineSpec {
  const r = checkMessage(BatchPipelineSpecSchema, raw);
  if (r.data === undefined) throw new InvalidInputError(`invalid ${object}`, r.problems, { object });
  return r.data;
}

const isUrl = (p: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(p);
const absolute = (baseDir: string, p: string) => (isUrl(p) || path.isAbsolute(p) ? p : path.resolve(baseDir, p));

/** The spec as workflow input, with relative paths made absolute against `baseDir`. */
export function toBatchInput(spec: BatchPipelineSpec, baseDir: string): BatchInferenceInput {
  const { $schema: _ignored, ...rest } = spec;
  const input: BatchInferenceInput = structuredClone<BatchInferenceInput>(rest);
  if (input.features) input.features = absolute(baseDir, input.features);
  if (input.spine) input.spine = absolute(baseDir, input.spine);
  for (const v of input.featureViews ?? []) {
    const src = v.source as { type: string; path?: string };
    if (src.type === 'file' && src.path) src.path = absolute(baseDir, src.path);
  }
  if (input.sink?.type === 'parquet' && input.sink.path) input.sink.path = absolute(baseDir, input.sink.path);
  if (input.sink?.type === 'duckdb' && input.sink.path) input.sink.path = absolute(baseDir, input.sink.path);
  return input;
}

/**
 * Read, validate and resolve a pipeline spec file (JSON).
 * @throws NotFoundError a missing file; InvalidInputError malformed JSON or an invalid spec (every problem listed)
 */
export async function loadPipelineSpec(file: string): Promise<BatchInferenceInput> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`pipeline spec ${file} does not exist`, { object: file });
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidInputError(`pipeline spec ${file} is not valid JSON`, [(err as Error).message], { object: file });
  }
  return toBatchInput(parsePipelineSpec(raw, `pipeline spec ${file}`), path.dirname(path.resolve(file)));
}
