/**
 * A user-defined post-processor for the risk-tier example (examples/pipelines/risk-tier.json):
 * the action an operator takes, from the predicted tier name and the amount. Registered with
 * workers as module `risk` (INFERFLOW_MODULES=risk=examples/features/risk.ts) and named in a
 * pipeline's postProcess list as {"type": "module", "name": "risk.action"}.
 */
import { definePostProcessor } from '../../lib/features/post-processor';

/** Large amounts above the low tier are held; the high tier is declined outright. */
export const action = definePostProcessor({
  name: 'action',
  inputs: { label: 'string', amount: 'float64' },
  outputs: { action: 'string' },
  compute: ({ label, amount }, rows) => {
    const out = new Array<string | null>(rows);
    for (let i = 0; i < rows; i++) out[i] = label[i] === 'high' ? 'decline' : label[i] !== 'low' && amount[i]! > 500 ? 'hold' : 'approve';
    return { action: out };
  },
});
