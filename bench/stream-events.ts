/** Seeded transaction events for the fraud-detector example model (its 7 features), shared by the stream benchmark and tests. */

import { mulberry32 as rng } from '../lib/util/random';

/** `n` valid events, ids `<prefix>-<i>`, keys (customer_id) over `customers` customers. */
export function transactionEvents(n: number, prefix: string, seed = 7, customers = 97): Record<string, unknown>[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => ({
    transaction_id: `${prefix}-${i}`,
    customer_id: i % customers,
    amount: Math.round(r() * 50_000) / 100,
    customer_avg_amount_30d: Math.round(r() * 20_000) / 100,
    customer_txn_count_24h: Math.floor(r() * 12),
    distance_from_home_km: Math.round(r() * 3_000) / 10,
    hour_of_day: Math.floor(r() * 24),
    is_foreign: r() < 0.1 ? 1 : 0,
    merchant_risk: Math.round(r() * 100) / 100,
  }));
}
