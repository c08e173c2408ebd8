/**
 * The `risk` example module (INFERFLOW_MODULES=…,risk=examples/features/risk.ts):
 *
 * - `risk.action`: a user-defined post-processor for the risk-tier example
 *   (examples/pipelines/risk-tier.json), named in a pipeline's postProcess list as
 *   {"type": "module", "name": "risk.action"}: the action an operator takes, from the predicted
 *   tier name and the amount.
 * - `risk.merchantRisk`: an external-API feature for the fraud-detector example model
 *   (examples/pipelines/fraud-risk-api.json), named as "onDemand": [{ "name": "risk.merchantRisk" }]:
 *   the merchant category's risk, looked up from a merchant-risk service. The service's location
 *   and token come from the worker's environment (RISK_API_URL, RISK_API_TOKEN), never from the
 *   pipeline spec. docs/features.md shows a run against a local stand-in for the service.
 */
import { defineExternalFeature } from '../../lib/features/external';
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

/** The merchant-risk service's call: GET $RISK_API_URL/merchants/<category> → {"risk": 0.12}, $RISK_API_TOKEN as the bearer token. */
export const merchantRiskCall = {
  name: 'merchant_risk',
  inputs: { merchant_category: 'string' },
  outputs: { merchant_risk: 'float64' },
  fields: { merchant_risk: 'risk' },
  env: { url: 'RISK_API_URL', token: 'RISK_API_TOKEN' },
  request: ({ merchant_category }: { merchant_category: string }, env: Readonly<Record<string, string>>) => ({
    url: `${env.url}/merchants/${encodeURIComponent(merchant_category)}`,
    headers: { authorization: `Bearer ${env.token}` },
  }),
} as const;

/** The merchant's risk: one call per category per 10 minutes and process, at most 4 in flight. */
export const merchantRisk = defineExternalFeature({
  ...merchantRiskCall,
  timeoutMs: 500,
  retries: 2,
  backoffMs: 50,
  concurrency: 4,
  cacheTtlMs: 600_000,
});
