/** How pipelines name on-demand features. Pure (zod only): the workflow bundle imports it. */
import { z } from 'zod';

/** An on-demand feature's registered name: `<module>.<export>` (module names from the worker's INFERFLOW_MODULES). */
export const ON_DEMAND_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_$][A-Za-z0-9_$]*$/;

const NAME_MESSAGE = 'required, <module>.<export> of a feature module registered with the workers (e.g. fraud.amountRatio)';
const refShape = {
  name: z.string({ error: NAME_MESSAGE }).regex(ON_DEMAND_NAME_PATTERN, NAME_MESSAGE).describe('<module>.<export> of a feature module registered with the worker (INFERFLOW_MODULES)'),
};

/** `{"name": "fraud.amountRatio"}`: whether the name is registered is checked by the workers, which alone know their modules. */
export const OnDemandRefSchema = z.strictObject(refShape, {
  error: (issue) => (issue.code === 'unrecognized_keys' ? 'unknown field (known: name; modules are registered with the workers, not named by path)' : issue.code === 'invalid_type' ? 'must be an object {"name": "<module>.<export>"}' : undefined),
});
export type OnDemandRef = z.infer<typeof OnDemandRefSchema>;

export const OnDemandRefsSchema = z.array(OnDemandRefSchema, { error: 'must be a list of {"name": "<module>.<export>"}' });
