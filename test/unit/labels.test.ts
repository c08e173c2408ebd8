import { describe, expect, it } from 'vitest';
import { labelsAsNumbers } from '../../lib/runtime/predict';

describe('labelsAsNumbers', () => {
  it('reads int64 labels through their 32-bit halves, exactly, for any sign and magnitude', () => {
    const values = [0n, 1n, -1n, 7n, -(2n ** 31n), 2n ** 32n + 5n, -(2n ** 40n) - 3n, 2n ** 53n - 1n, -(2n ** 53n) + 1n, 2n ** 60n + 1n, -(2n ** 63n)];
    const data = new BigInt64Array(values);
    expect(Array.from(labelsAsNumbers(data, values.length))).toEqual(values.map((v) => Number(v)));
  });

  it('converts only the first n labels of a view into a larger buffer', () => {
    const buffer = new BigInt64Array([9n, 3n, -4n, 11n]);
    const view = buffer.subarray(1, 4);
    expect(Array.from(labelsAsNumbers(view, 2))).toEqual([3, -4]);
  });

  it('passes number arrays through and converts other array-likes per value', () => {
    const f = new Float32Array([0, 1]);
    expect(labelsAsNumbers(f, 2)).toBe(f);
    expect(Array.from(labelsAsNumbers([1n, -2n], 2))).toEqual([1, -2]);
  });
});
