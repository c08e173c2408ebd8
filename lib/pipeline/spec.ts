/**
 * Batch pipeline spec files: the JSON a team keeps in its repository and hands to
 * `inferflow batch run <spec>` / `inferflow schedule create <spec>` — the batchInference input
 * (workflows/definitions.ts) as a file. Validated with zod (every problem with its path); the
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
import { z } from 'zod';
import { InvalidInputError, NotFoundError } from '../errors';
import { FeatureViewSchema } from '../features/spec';
import { SinkSpecSchema } from '../sinks/spec';
import { formatIssuePath } from '../util/issues';
import { BATCH_LIMITS, ON_DEMAND_NAME_PATTERN, batchLimitMessage, checkBatchInput, type BatchInferenceInput } from '../../workflows/definitions';

const OnDemandRefSchema = z.strictObject({
  /** `<module>.<export>` of a feature module registered with the worker (INFERFLOW_MODULES). */
  name: z
    .string()
    .regex(ON_DEMAND_NAME_PATTERN, 'name must be <module>.<export> of a module registered with the worker (INFERFLOW_MODULES), e.g. fraud.amountRatio')
    .describe('<module>.<export> of a feature module registered with the worker (INFERFLOW_MODULES)'),
});

/** An optional whole-number run setting in its BATCH_LIMITS range, with the workflow's own message. */
function limited(field: keyof typeof BATCH_LIMITS) {
  const { min, max } = BATCH_LIMITS[field];
  const message = batchLimitMessage(field);
  return z.number({ error: message }).int(message).min(min, message).max(max, message).optional();
}

export const BatchPipelineSpecSchema = z
  .strictObject({
    $schema: z.string().optional().describe('JSON Schema for editors (ignored by Inferflow)'),
    model: z.string().min(1).describe('Model reference: name (latest), name:3, or name@alias'),
    pipeline: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).optional().describe('Pipeline name (output paths, search attribute). Default: the model name'),
    features: z.string().min(1).optional().describe('A prepared feature file (Parquet/CSV). Give this or featureViews'),
    featureViews: z.array(FeatureViewSchema).min(1).optional().describe('Feature views joined point-in-time onto the spine'),
    spine: z.string().min(1).optional().describe('Rows to score (entity keys, timestamp, request columns). Default with featureViews: every entity as of the run'),
    entityTimestampField: z.string().min(1).optional().describe("The spine's timestamp column. Default event_timestamp"),
    onDemand: z.array(OnDemandRefSchema).optional().describe('On-demand features computed before the model transforms, by registered name ({"name": "fraud.amountRatio"})'),
    idColumn: z.string().min(1).optional().describe("Row identifier copied to the output. Default: the model's id_column"),
    sink: SinkSpecSchema.optional().describe('Where predictions go. Default: Parquet under the output directory'),
    asOf: z.string().optional().describe('ISO 8601 as-of time. Default: the scheduled time, else the start time'),
    shardSize: limited('shardSize'),
    maxConcurrency: limited('maxConcurrency'),
    shardsPerChild: limited('shardsPerChild'),
  })
  .superRefine((spec, ctx) => {
    // The workflow's own input checks (no I/O) apply to files too: one set of rules.
    const { $schema: _ignored, ...input } = spec;
    for (const p of checkBatchInput(input)) ctx.addIssue({ code: 'custom', path: [], message: p });
  });
export type BatchPipelineSpec = z.infer<typeof BatchPipelineSpecSchema>;

/** Validate a parsed spec. @throws InvalidInputError listing every problem with its path. */
export function parsePipelineSpec(raw: unknown, object = 'pipeline spec'): BatchPipelineSpec {
  const r = BatchPipelineSpecSchema.safeParse(raw);
  if (!r.success) {
    const problems = [...new Set(r.error.issues.map((i) => (i.path.length ? `${formatIssuePath(i.path)}: ${i.message}` : i.message)))];
    throw new InvalidInputError(`invalid ${object}`, problems, { object });
  }
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

/** JSON Schema (draft 2020-12) of pipeline spec files, for editors. */
export function pipelineJsonSchema(): unknown {
  return z.toJSONSchema(BatchPipelineSpecSchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });
}
