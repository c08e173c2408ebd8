/**
 * onlineInference's input and its `predict` Update's request, defined once: the workflow (input
 * check, Update validator), the client and `npm run schemas` use them. Pure (zod only): the
 * workflow bundle imports it.
 */
import { z } from 'zod';
import { isoTime } from './batch';
import { FeatureViewSchema, featureViewRules } from './feature-view';
import { OnDemandRefsSchema } from './on-demand';
import { ResolvedModelSchema } from './model';
import { PostProcessStepsSchema } from './post-process';
import { OnlineStoreSpecSchema } from './online-store';
import { unknownKeyError, withRules, type Problem } from './problems';

/** Rows one durable prediction may carry (history stays small: use batch for volume). */
export const MAX_ROWS_PER_UPDATE = 100;
/** Updates a run answers before it continues as new: well under Temporal's 2,000 Updates per run. */
export const DEFAULT_MAX_PREDICTIONS_PER_RUN = 500;
const MAX_PREDICTIONS_PER_RUN = 1_500;
/** Recent answers a run hands to the next (request id → answer), so a retried request is answered from the record across continue-as-new. */
export const DEDUPE_WINDOW = 200;
/** Serialized size the carried answers may take in the continue-as-new input (history stays small). */
export const DEDUPE_WINDOW_BYTES = 48 * 1024;
/** Partitions one deployment may have. */
export const MAX_PARTITIONS = 64;
const REQUEST_ID_MAX = 200;
/** How long one durable prediction may take: the start-to-close timeout of its local activity, ms. */
export const PREDICT_TIMEOUT_MS = 10_000;
/**
 * External-API lookups of a durable prediction give up this long before PREDICT_TIMEOUT_MS, so a
 * slow API answers with the feature's TIMEOUT status rather than with an activity timeout.
 */
export const LOOKUP_MARGIN_MS = 250;

/** The exact model a deployment pinned, carried across continue-as-new. */
const PinnedModelSchema = ResolvedModelSchema;

const count = z.number().int().min(0);

/** Which deployment a partition belongs to, and where its spec came from (shown by `inferflow online status`). */
export const DeploymentRefSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'letters, digits, ".", "_" and "-", at most 100'),
  partition: count,
  partitions: z.number().int().min(1).max(MAX_PARTITIONS),
  spec: z.string().optional(),
});
export type DeploymentRef = z.output<typeof DeploymentRefSchema>;

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
    .number({ error: 'an integer from 1 to 1,500' })
    .int('an integer from 1 to 1,500')
    .min(1, 'an integer from 1 to 1,500')
    .max(MAX_PREDICTIONS_PER_RUN, 'an integer from 1 to 1,500')
    .optional()
    .describe(`Updates per workflow run before it continues as new (Temporal caps a run at 2,000). Default ${DEFAULT_MAX_PREDICTIONS_PER_RUN}`),
  deployment: DeploymentRefSchema.optional().describe('The deployment this workflow is a partition of (set by `inferflow online deploy` and Update-with-Start)'),
  pinned: PinnedModelSchema.optional().describe('Set by the workflow when it continues as new: the pinned model'),
  servedBefore: count.optional().describe('Set by the workflow when it continues as new: predictions served so far'),
  failedBefore: count.optional().describe('Set by the workflow when it continues as new: predictions failed so far'),
  continuedAsNew: count.optional().describe('Set by the workflow when it continues as new: runs before this one'),
  recentAnswers: z
    .array(z.tuple([z.string(), z.record(z.string(), z.unknown())]))
    .max(DEDUPE_WINDOW)
    .optional()
    .describe('Set by the workflow when it continues as new: the latest answers by request id (de-duplication across runs)'),
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
  timeoutMs: z
    .number({ error: 'a number of milliseconds' })
    .int('a whole number of milliseconds')
    .min(1, 'at least 1 ms')
    .max(PREDICT_TIMEOUT_MS, `at most ${PREDICT_TIMEOUT_MS} ms (a durable prediction's timeout)`)
    .optional()
    .describe(`Milliseconds the prediction may take: external-API features get what is left of it. Default (and at most) ${PREDICT_TIMEOUT_MS} less ${LOOKUP_MARGIN_MS}`),
  requestId: z
    .string({ error: 'a string' })
    .min(1, 'a non-empty string')
    .max(REQUEST_ID_MAX, `at most ${REQUEST_ID_MAX} characters`)
    .optional()
    .describe("Caller's idempotency key: the Update id, echoed back and kept in the history (audit); a retry with the same id gets the recorded answer"),
};

/** One durable prediction (the `predict` Update's argument): a few request rows. */
export const PredictRequestSchema = z.strictObject(predictShape, {
  error: (issue) => (issue.code === 'invalid_type' ? 'request must be an object {"rows": [ {…}, … ]}' : unknownKeyError(predictShape)(issue)),
});
export type PredictRequest = z.input<typeof PredictRequestSchema>;
