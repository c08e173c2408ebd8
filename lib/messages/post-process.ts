/**
 * How a pipeline names its post-processing steps (the `postProcess` list of a batch input, a
 * pipeline spec file and the online deployment input). Pure (zod only): the workflow bundle
 * imports it. What a step does: lib/pipeline/post-steps.ts; docs/pipelines.md.
 */
import { z } from 'zod';
import { ON_DEMAND_NAME_PATTERN } from './on-demand';

/** Names of output columns a step writes or reads. */
export const OUTPUT_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const outputName = (what: string) => z.string({ error: `must be ${what}` }).regex(OUTPUT_NAME_PATTERN, `must be ${what} (letters, digits, _; max 63)`);

const UNIT = 'must be a number between 0 and 1';
const classValue = z.union([z.string(), z.number()], { error: 'must be a class label (string or number)' });

const thresholdStep = z.strictObject({
  type: z.literal('threshold'),
  threshold: z.number({ error: UNIT }).min(0, UNIT).max(1, UNIT).describe('Decision threshold: label = positive class when score >= threshold, else the other class'),
});

const classNamesStep = z.strictObject({
  type: z.literal('classNames'),
  names: z.record(z.string(), z.string({ error: 'must be a class name (string)' }), { error: 'must be an object {"<class label>": "<name>"}' }).describe('Class label (as the model answers it, e.g. "0") → the name written as label; also renames prob_<class> columns'),
});

const topKStep = z.strictObject({
  type: z.literal('topK'),
  k: z.number({ error: 'must be a whole number ≥ 1' }).int('must be a whole number ≥ 1').min(1, 'must be a whole number ≥ 1').describe('How many classes: columns top_classes and top_probabilities, most probable first'),
});

const clipStep = z.strictObject({
  type: z.literal('clip'),
  min: z.number({ error: 'must be a number' }).optional().describe('Lower bound of the regression value'),
  max: z.number({ error: 'must be a number' }).optional().describe('Upper bound of the regression value'),
  decimals: z.number({ error: 'must be a whole number between 0 and 15' }).int().min(0).max(15).optional().describe('Round to this many decimals (after clipping)'),
});

const OPERATORS = ['>', '>=', '<', '<=', '==', '!='] as const;
export type RuleOperator = (typeof OPERATORS)[number];

const ruleStep = z.strictObject({
  type: z.literal('rule'),
  feature: outputName('a feature column name').describe('Numeric feature the rule reads (a request/feature column or an on-demand output)'),
  op: z.enum(OPERATORS, { error: `must be one of ${OPERATORS.join(' ')}` }),
  value: z.union([z.number(), z.strictObject({ feature: outputName('a feature column name') })], { error: 'must be a number or {"feature": "<column>"}' }).describe('A constant, or another feature column ("amount > credit_limit")'),
  set: classValue.describe('The label written where the rule holds (e.g. "review"); other rows keep theirs'),
});

const moduleStep = z.strictObject({
  type: z.literal('module'),
  name: z.string({ error: 'must be <module>.<export>' }).regex(ON_DEMAND_NAME_PATTERN, 'must be <module>.<export> of a module registered with the workers (INFERFLOW_MODULES)').describe('A user-defined post-processor (definePostProcessor) registered with the workers'),
});

export const PostProcessStepSchema = z.discriminatedUnion('type', [thresholdStep, classNamesStep, topKStep, clipStep, ruleStep, moduleStep], {
  error: 'must be a step {"type": "threshold" | "classNames" | "topK" | "clip" | "rule" | "module", …}',
});
export type PostProcessStep = z.infer<typeof PostProcessStepSchema>;

export const PostProcessStepsSchema = z.array(PostProcessStepSchema, { error: 'must be a list of post-processing steps' });
