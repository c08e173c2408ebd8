/** Seeded transaction events for the fraud-detector example model (its 7 features), shared by the stream benchmark and tests. */

/** A seeded generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
