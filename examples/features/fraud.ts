/**
 * On-demand features of the fraud-features example model, computed at prediction time from
 * the request (amount, time, location) and the customer's point-in-time features. The
 * training script (examples/train/train_fraud_features.py, `on_demand`) computes the same
 * formulas in Python; test/workflows/features-batch.test.ts checks that served scores equal
 * the ones Python computed.
 *
 * Registered with workers as module `fraud` (the default of INFERFLOW_MODULES) and used by
 * examples/pipelines/fraud-features.json:
 *   "onDemand": [{ "name": "fraud.amountRatio" }, …]
 */
import { defineOnDemandFeature } from '../../lib/features/on-demand';

/** How unusual the amount is for this customer: amount / 30-day average (NaN when the average is unknown or stale). */
export const amountRatio = defineOnDemandFeature({
  name: 'amount_ratio',
  inputs: { amount: 'float64', customer_stats__avg_amount_30d: 'float64' },
  outputs: { amount_ratio: 'float64' },
  compute: ({ amount, customer_stats__avg_amount_30d: avg }, rows) => {
    const out = new Float64Array(rows);
    for (let i = 0; i < rows; i++) out[i] = amount[i]! / avg[i]!;
    return { amount_ratio: out };
  },
});

/** Hour of the event in UTC, 0–23. */
export const hourOfDay = defineOnDemandFeature({
  name: 'hour_of_day',
  inputs: { event_timestamp: 'timestamp' },
  outputs: { hour_of_day: 'float64' },
  compute: ({ event_timestamp: ts }, rows) => {
    const out = new Float64Array(rows);
    for (let i = 0; i < rows; i++) out[i] = Number.isNaN(ts[i]!) ? NaN : Math.floor((((ts[i]! % 86_400_000) + 86_400_000) % 86_400_000) / 3_600_000);
    return { hour_of_day: out };
  },
});

const EARTH_RADIUS_KM = 6371.0088;
const RAD = Math.PI / 180;

/** Great-circle (haversine) distance in km between the transaction and the customer's home. */
export const homeDistance = defineOnDemandFeature({
  name: 'distance_km',
  inputs: { lat: 'float64', lon: 'float64', customer_stats__home_lat: 'float64', customer_stats__home_lon: 'float64' },
  outputs: { distance_km: 'float64' },
  compute: ({ lat, lon, customer_stats__home_lat: homeLat, customer_stats__home_lon: homeLon }, rows) => {
    const out = new Float64Array(rows);
    for (let i = 0; i < rows; i++) {
      const a = Math.sin(((homeLat[i]! - lat[i]!) * RAD) / 2) ** 2 + Math.cos(lat[i]! * RAD) * Math.cos(homeLat[i]! * RAD) * Math.sin(((homeLon[i]! - lon[i]!) * RAD) / 2) ** 2;
      out[i] = 2 * EARTH_RADIUS_KM * Math.asin(Math.sqrt(a));
    }
    return { distance_km: out };
  },
});
