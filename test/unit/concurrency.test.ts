import { describe, expect, it } from 'vitest';
import { eachLimited } from '../../lib/util/concurrency';

describe('eachLimited', () => {
  it('runs every item once, with its index, never more than `limit` at a time', async () => {
    let running = 0;
    let peak = 0;
    const seen: [string, number][] = [];
    const items = Array.from({ length: 25 }, (_, i) => `item-${i}`);
    await eachLimited(items, 4, async (item, i) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 1 + (i % 3)));
      seen.push([item, i]);
      running--;
    });
    expect(peak).toBe(4);
    expect(seen.sort((a, b) => a[1] - b[1])).toEqual(items.map((item, i) => [item, i]));
  });

  it('after a failure starts nothing new, lets running calls finish, then rejects with it; an empty list does nothing', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    await expect(
      eachLimited([0, 1, 2, 3, 4, 5], 2, async (n) => {
        started.push(n);
        await new Promise((r) => setTimeout(r, n === 0 ? 30 : 5));
        if (n === 1) throw new Error('item 1 failed');
        finished.push(n);
      }),
    ).rejects.toThrow('item 1 failed');
    expect(started).toEqual([0, 1]); // 1 failed while 0 was still running: nothing else started
    expect(finished).toEqual([0]); // and 0 was awaited before the rejection
    await new Promise((r) => setTimeout(r, 50));
    expect(started).toEqual([0, 1]);
    await expect(eachLimited([], 8, () => Promise.reject(new Error('never called')))).resolves.toBeUndefined();
  });
});
