import { describe, expect, it } from 'vitest';
import { durationSeconds } from '../../lib/features/spec';
import { parseDurationMs } from '../../lib/util/duration';
import { MaterializeFeaturesInputSchema } from '../../lib/messages/materialize';
import { checkMessage } from '../../lib/messages/problems';

const VIEW = { name: 'v', entities: ['k'], timestampField: 'ts', source: { type: 'file', path: '/x.parquet' }, features: [{ name: 'a', dtype: 'float64' }] };
const materializeProblems = (input: unknown) => checkMessage(MaterializeFeaturesInputSchema, input).problems;

describe('durations (feature view ttl, materialize lookback)', () => {
  it('reads a positive whole number of one unit', () => {
    expect(['30d', '12h', '90m', '3600s'].map(parseDurationMs)).toEqual([2_592_000_000, 43_200_000, 5_400_000, 3_600_000]);
    expect(durationSeconds('30d')).toBe(2_592_000);
    expect(materializeProblems({ views: [VIEW], lookback: '2h' })).toEqual([]);
  });

  it('rejects everything else, in lib and in the workflow input check alike', () => {
    for (const bad of ['0h', '1.5h', '1w', 'h', '-1d', '1 d', '01d', '']) {
      expect(parseDurationMs(bad), bad).toBeUndefined();
      expect(() => durationSeconds(bad)).toThrow('invalid duration');
      expect(materializeProblems({ views: [VIEW], lookback: bad })).toContain('lookback: a duration such as 2h, 1d, 90m or 3600s');
    }
  });
});
