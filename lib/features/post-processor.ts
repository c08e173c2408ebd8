/**
 * User-defined post-processors: TypeScript functions over a block of predicted rows, registered
 * with the workers like on-demand features (INFERFLOW_MODULES, see on-demand.ts) and named by a
 * pipeline's `postProcess` list (`{"type": "module", "name": "fraud_post.reviewLarge"}`).
 *
 * Inputs are output columns produced so far (`label`, `score`, `prob_<class>`, `prediction`, an
 * earlier step's output) or request/feature columns; outputs are new output columns, or replace
 * one of the same name. Column representation as for on-demand features: 'float64' →
 * Float64Array (NaN for a missing input), 'string' → (string | null)[] (null for missing).
 * Numeric outputs must be finite: a NaN or ±Infinity output fails the block with an
 * InvalidValueError naming the step, the output and the rows (post-steps.ts), on every path.
 * A post-processor with nothing to say for a row returns a string output (null there).
 */
import type { ColumnOf, OnDemandColumn } from './on-demand';

export const POST_PROCESSOR_KIND = 'inferflow.post-process/v1';

export type PostProcessorDtype = 'float64' | 'string';


export interface PostProcessor {
  readonly kind: typeof POST_PROCESSOR_KIND;
  /** Names the function in errors and logs. */
  readonly name: string;
  readonly inputs: Readonly<Record<string, PostProcessorDtype>>;
  readonly outputs: Readonly<Record<string, PostProcessorDtype>>;
  /** Vectorised: every input column has `rows` values; returns every declared output with `rows` values. */
  readonly compute: (inputs: Record<string, OnDemandColumn>, rows: number) => Record<string, OnDemandColumn>;
}

/**
 * Declare a post-processor. `compute` receives typed input columns and must return exactly the
 * declared outputs, one value per row (checked on every block: a mismatch fails the run naming
 * the step and the columns).
 *
 *   export const reviewLarge = definePostProcessor({
 *     name: 'review_large',
 *     inputs: { score: 'float64', amount: 'float64' },
 *     outputs: { decision: 'string' },
 *     compute: ({ score, amount }, rows) => ({
 *       decision: Array.from({ length: rows }, (_, i) => (amount[i]! > 1000 && score[i]! > 0.2 ? 'review' : 'accept')),
 *     }),
 *   });
 */
export function definePostProcessor<const I extends Record<string, PostProcessorDtype>, const O extends Record<string, PostProcessorDtype>>(def: {
  name: string;
  inputs: I;
  outputs: O;
  compute: (inputs: { [K in keyof I]: ColumnOf<I[K]> }, rows: number) => { [K in keyof O]: ColumnOf<O[K]> };
}): PostProcessor {
  return Object.freeze({
    kind: POST_PROCESSOR_KIND,
    name: def.name,
    inputs: Object.freeze({ ...def.inputs }),
    outputs: Object.freeze({ ...def.outputs }),
    compute: def.compute as unknown as PostProcessor['compute'],
  });
}

/** A registered post-processor: its registered name and the sha256 of its module's source. */
export interface LoadedPostProcessor extends PostProcessor {
  registeredAs: string;
  moduleSha256: string;
}
