/**
 * requestValueProblems: the one check of request values shared by `serve` and the
 * onlineInference workflow (no services).
 */
import { describe, expect, it } from 'vitest';
import type { FeatureView } from '../../lib/features/spec';
import type { AssemblyPlan } from '../../lib/pipeline/assemble';
import { requestValueProblems } from '../../lib/pipeline/online';

const view = { name: 'stats', entities: ['customer_id'], timestampField: 'ts', features: [{ name: 'avg', dtype: 'float64' }], source: { type: 'file', path: 'x.parquet' } } as FeatureView;
const plan = {
  sourceColumns: [
    { name: 'customer_id', kind: 'numeric', by: 'model m:1' },
    { name: 'stats__avg', kind: 'numeric', by: 'model m:1' },
    { name: 'amount', kind: 'numeric', by: 'model m:1' },
    { name: 'segment', kind: 'string', by: 'model m:1' },
    { name: 'event_timestamp', kind: 'timestamp', by: 'on-demand feature hour' },
  ],
} as unknown as AssemblyPlan;

describe('requestValueProblems', () => {
  it('accepts the right types and null (a missing value) in every kind', () => {
    const ok = [
      { customer_id: 17, amount: 1.5, segment: 'a', event_timestamp: '2026-10-15T12:00:00Z' },
      { customer_id: 18n, amount: null, segment: null, event_timestamp: 1_760_529_600_000 },
      { customer_id: null, event_timestamp: new Date(0) },
    ];
    expect(requestValueProblems({ plan, views: [view], requests: ok })).toEqual([]);
  });

  it('names the field, the row and what it must be; a key the model also reads as a number must be both', () => {
    const bad = [{ customer_id: 'abc', amount: true, segment: 3, event_timestamp: 'not a time', stats__avg: 'ignored: from the view' }];
    expect(requestValueProblems({ plan, views: [view], requests: bad })).toEqual([
      'customer_id[0]: expected a number (FP64) or null, got "abc"',
      'amount[0]: expected a number (FP64) or null, got true',
      'segment[0]: expected a string (BYTES) or null, got 3',
      'event_timestamp[0]: expected an ISO 8601 time (BYTES) or epoch milliseconds (INT64), or null, got "not a time"',
    ]);
    expect(requestValueProblems({ plan, views: [view], requests: [{ customer_id: 1.5 }] })).toEqual(['customer_id[0]: expected a string (BYTES) or an integer (INT64) entity key, or null, got 1.5']);
  });
});
