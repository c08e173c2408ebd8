/**
 * materializeFeatures' input, defined once: the workflow, the client (schedules) and
 * `npm run schemas` use it. Pure (zod only): the workflow bundle imports it.
 */
import { z } from 'zod';
import { DURATION_PATTERN } from '../util/duration';
import { isoTime } from './batch';
import { FeatureViewSchema, featureViewRules } from './feature-view';
import { OnlineStoreSpecSchema } from './online-store';
import { unknownKeyError, withRules, type Problem } from './problems';

/** Views one run may materialise (one activity each). */
export const MAX_VIEWS_PER_RUN = 100;

const materializeShape = {
  views: z
    .array(FeatureViewSchema, { error: 'must be a non-empty list of feature view specs' })
    .min(1, 'must be a non-empty list of feature view specs')
    .max(MAX_VIEWS_PER_RUN, `at most ${MAX_VIEWS_PER_RUN} views per run`)
    .describe('Feature view specs (docs/features.md), inline. Each view is one activity'),
  store: OnlineStoreSpecSchema.optional().describe('{"type": "redis", "keyPrefix"?: …} or {"type": "sqlite", "path"?: …}. Default: the embedded SQLite store under the worker data dir'),
  start: isoTime().optional().describe('ISO 8601, exclusive: only rows with a later event time. Default: from the beginning'),
  end: isoTime().optional().describe("ISO 8601, inclusive. Default: the schedule's scheduled time for scheduled runs, else the workflow start time"),
  lookback: z
    .string({ error: 'a duration such as 2h, 1d, 90m or 3600s' })
    .regex(DURATION_PATTERN, 'a duration such as 2h, 1d, 90m or 3600s')
    .optional()
    .describe('Instead of start: a window reaching this far back from end (2h, 1d, 90m, 3600s)'),
};

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Rules between fields: start before end, start or lookback, unique view names, and the views' own. */
function materializeRules(raw: unknown): Problem[] {
  if (!isObject(raw)) return [];
  const problems: Problem[] = [];
  const time = (x: unknown) => (typeof x === 'string' ? Date.parse(x) : Number.NaN);
  const start = time(raw.start);
  const end = time(raw.end);
  if (!Number.isNaN(start) && !Number.isNaN(end) && start >= end) problems.push({ path: ['start'], message: `must be before end (${String(raw.start)} ≥ ${String(raw.end)})` });
  if (raw.lookback !== undefined && raw.start !== undefined) problems.push({ path: ['lookback'], message: 'give either start or lookback, not both' });
  if (Array.isArray(raw.views)) {
    const byName = new Map<string, number>();
    raw.views.forEach((v: unknown, n) => {
      problems.push(...featureViewRules(v).map((p) => ({ path: ['views', n, ...p.path], message: p.message })));
      const name = isObject(v) && typeof v.name === 'string' ? v.name : undefined;
      if (name === undefined) return;
      const first = byName.get(name);
      if (first !== undefined) problems.push({ path: ['views', n, 'name'], message: `view ${name} is also views[${first}]; view names must be unique` });
      else byName.set(name, n);
    });
  }
  return problems;
}

/** Input of `materializeFeatures`: one JSON object (the same from code, the CLI, a schedule and the Temporal UI). */
export const MaterializeFeaturesInputSchema = withRules(
  z.strictObject(materializeShape, {
    error: (issue) => (issue.code === 'invalid_type' ? 'input must be a JSON object like {"views": [ … feature view specs … ], "store": {"type": "redis"}}' : unknownKeyError(materializeShape)(issue)),
  }),
  materializeRules,
);
export type MaterializeFeaturesInput = z.input<typeof MaterializeFeaturesInputSchema>;
