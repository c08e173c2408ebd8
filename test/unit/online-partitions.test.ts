/**
 * A durable online deployment's request → partition mapping: FNV-1a (32 bit) of the request id,
 * checked against the published FNV-1a test vectors so it never changes between versions (a
 * change would send a retried request to another partition, past its recorded answer).
 */
import { describe, expect, it } from 'vitest';
import { partitionOf, partitionWorkflowId } from '../../workflows/online/shared';

describe('partitionOf', () => {
  it('is FNV-1a 32 modulo the partition count', () => {
    // FNV-1a 32: "" → 0x811c9dc5, "a" → 0xe40c292c, "foobar" → 0xbf9cf968.
    expect(partitionOf('', 1_000_003)).toBe(0x811c9dc5 % 1_000_003);
    expect(partitionOf('a', 1_000_003)).toBe(0xe40c292c % 1_000_003);
    expect(partitionOf('foobar', 1_000_003)).toBe(0xbf9cf968 % 1_000_003);
    expect(partitionOf('anything', 1)).toBe(0);
  });

  it('spreads request ids evenly', () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 20_000; i++) counts[partitionOf(`req-${i}`, 4)]!++;
    for (const n of counts) expect(Math.abs(n - 5_000)).toBeLessThan(500);
  });

  it('names partitions <deployment>-p<i>', () => {
    expect(partitionWorkflowId('fraud-online', 3)).toBe('fraud-online-p3');
  });
});
