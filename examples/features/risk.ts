/**
 * An external-API feature for the fraud-detector example model: the merchant category's risk,
 * looked up from a merchant-risk service instead of read from the feature file. The service's
 * location and token come from the worker's environment (RISK_API_URL, RISK_API_TOKEN), never
 * from the pipeline spec. docs/features.md shows a run against a local stand-in for the service.
 *
 * Registered with workers as a module (INFERFLOW_MODULES=fraud=…,risk=examples/features/risk.ts)
 * and named by a pipeline: "onDemand": [{ "name": "risk.merchantRisk" }]
 */
import { defineExternalFeature } from '../../lib/features/external';

/** GET $RISK_API_URL/merchants/<category> → {"risk": 0.12}; one call per category per 10 minutes and process. */
export const merchantRisk = defineExternalFeature({
  name: 'merchant_risk',
  inputs: { merchant_category: 'string' },
  outputs: { merchant_risk: 'float64' },
  fields: { merchant_risk: 'risk' },
  env: { url: 'RISK_API_URL', token: 'RISK_API_TOKEN' },
  request: ({ merchant_category }, env) => ({
    url: `${env.url}/merchants/${encodeURIComponent(merchant_category)}`,
    headers: { authorization: `Bearer ${env.token}` },
  }),
  timeoutMs: 500,
  retries: 2,
  backoffMs: 50,
  concurrency: 4,
  cacheTtlMs: 600_000,
});
