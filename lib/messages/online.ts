/**
 * onlineInference's input and its `predict` Update's request, defined once: the workflow (input
 * check, Update validator), the client and `npm run schemas` use them. Pure (zod only): the
 * workflow bundle imports it.
 */
import { z } from 'zod';
import { isoTime } from './batch';
import { FeatureViewSchema, featureViewRules } from './feature-view';
import { OnDemandRefsSchema } from './on-demand';
import { PostProcessStepsSchema } from './post-process';
import { OnlineStoreSpecSchema } from './online-store';
import { unknownKeyError, withRules, type Problem } from './problems';

/** Rows one durable prediction may carry (history stays small: use batch for volume). */
export const MAX_ROWS_PER_UPDATE = 100;
export const DEFAULT_MAX_PREDICTIONS_PER_RUN = 500;
const MAX_PREDICTIONS_PER_RUN = 10_000;

/** The exact model a deployment pinned (lib/registry's ResolvedModel), carried across continue-as-new. */
const PinnedModelSchema = z.strictObject({ name: z.string(), version: z.number().int(), sha256: z.string(), size: z.number(), uri: z.string(), ref: z.string() });

const count = z.number().int().min(0);

const onlineShape = {
  model: z
    .string({ error: 'required, a model reference' })
    .refine((s) => s.trim() !== '', 'required, a model reference')
    .describe('Model reference, resolved once when the deployment starts: every prediction of the deployment uses that exact version'),
  featureViews: z.array(FeatureViewSchema, { error: 'a list of feature view specs' }).optional().describe('Feature views whose online values the model reads'),
  onDemand: OnDemandRefsSchema.optional().describe('On-demand features by registered name'),
  postProcess: PostProcessStepsSchema.optional().describe('Post-processing steps run on the model outputs, in order (docs/pipelines.md)'),
  store: OnlineStoreSpecSchema.optional().describe("Online store the views' features come from. Default: the embedded SQLite store under the worker data dir"),
  idColumn: z.string().min(1).optional().describe('Request field that names rows in errors'),
  maxPredictionsPerRun: z
    .number({ error: 'an integer from 1 to 10,000' })
    .int('an integer from 1 to 10,000')
    .min(1, 'an integer from 1 to 10,000')
    .max(MAX_PREDICTIONS_PER_RUN, 'an integer from 1 to 10,000')
    .optional()
    .describe(`Predictions per workflow run before it continues as new (keeps each history small). Default ${DEFAULT_MAX_PREDICTIONS_PER_RUN}`),
  pinned: PinnedModelSchema.optional().describe('Set by the workflow when it continues as new: the pinned model'),
  servedBefore: count.optional().describe('Set by the workflow when it continues as new: predictions served so far'),
  failedBefore: count.optional().describe('Set by the workflow when it continues as new: predictions failed so far'),
};

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function onlineRules(raw: unknown): Problem[] {
  if (!isObject(raw) || !Array.isArray(raw.featureViews)) return [];
  return raw.featureViews.flatMap((v, n) => featureViewRules(v).map((p) => ({ path: ['featureViews', n, ...p.path], message: p.message })));
}

/** Input of `onlineInference`: one JSON object (a pipeline spec's model, views and on-demand features). */
export const OnlineInferenceInputSchema = withRules(
  z.strictObject(onlineShape, {
    error: (issue) =>
      issue.code === 'invalid_type' ? 'input must be a JSON object like {"model": "fraud-features@production", "featureViews": [ … ], "onDemand": [ … ]}' : unknownKeyError(onlineShape)(issue),
  }),
  onlineRules,
);
export type OnlineInferenceInput = z.input<typeof OnlineInferenceInputSchema>;

const predictShape = {
  rows: z
    .array(z.record(z.string(), z.unknown(), { error: 'must be an object of request fields' }), { error: 'at least one request row' })
    .min(1, 'at least one request row')
    .max(MAX_ROWS_PER_UPDATE, `at most ${MAX_ROWS_PER_UPDATE} per durable prediction; use batchInference for volume`)
    .describe('Request rows: entity keys and request fields'),
  asOf: isoTime().optional().describe('ISO 8601: judge feature freshness at this time instead of now'),
  requestId: z.string({ error: 'a string' }).optional().describe("Caller's id for the request, echoed back and kept in the history (audit)"),
};

/** One durable prediction (the `predict` Update's argument): a few request rows. */
export const PredictRequestSchema = z.strictObject(predictShape, {
  error: (issue) => (issue.code === 'invalid_type' ? 'request must be an object {"rows": [ {…}, … ]}' : unknownKeyError(predictShape)(issue)),
});
export type PredictRequest = z.input<typeof PredictRequestSchema>;
