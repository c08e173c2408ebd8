import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { keepAlive } from '../../activities/heartbeat';

// Fake timers: the interval fires exactly as often as the clock is advanced, however loaded the machine is.
afterEach(() => {
  vi.useRealTimers();
});

describe('keepAlive', () => {
  it('heartbeats on a timer while a step runs, repeating the latest progress, and stops when disposed', async () => {
    vi.useFakeTimers();
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    await env.run(async () => {
      let latest = { rowsDone: 0 };
      using _alive = keepAlive(() => latest, 20);
      await vi.advanceTimersByTimeAsync(70); // a long inference call: no progress heartbeat of its own
      latest = { rowsDone: 65_536 };
      await vi.advanceTimersByTimeAsync(70);
    });
    const during = beats.length;
    expect(during).toBeGreaterThanOrEqual(4);
    expect(beats[0]).toEqual({ rowsDone: 0 });
    expect(beats.at(-1)).toEqual({ rowsDone: 65_536 }); // never cleared to undefined: a retry resumes from it
    await vi.advanceTimersByTimeAsync(60);
    expect(beats.length).toBe(during); // disposed with the scope
  });
});
