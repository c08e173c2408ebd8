import { describe, expect, it } from 'vitest';
import { durationSeconds } from '../../lib/features/spec';
import { parseDurationMs } from '../../lib/util/duration';
import { checkMaterializeShape } from '../../workflows/features-definitions';

describe('durations (feature view ttl, materialize lookback)', () => {
  it('reads a positive whole number of one unit', () => {
    expect(['30d', '12h', '90m', '3600s'].map(parseDurationMs)).toEqual([2_592_000_000, 43_200_000, 5_400_000, 3_600_000]);
    expect(durationSeconds('30d')).toBe(2_592_000);
    expect(checkMaterializeShape({ views: [{}], lookback: '2h' })).toEqual([]);
  });

  it('rejects everything else, in lib and in the workflow input check alike', () => {
    for (const bad of ['0h', '1.5h', '1w', 'h', '-1d', '1 d', '01d', '']) {
      expect(parseDurationMs(bad), bad).toBeUndefined();
      expect(() => durationSeconds(bad)).toThrow('invalid duration');
      expect(checkMaterializeShape({ views: [{}], lookback: bad })).toContain('lookback: a duration such as 2h, 1d, 90m or 3600s');
    }
  });
});
