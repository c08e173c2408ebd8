/**
 * server/batcher.ts: coalescing, splitting back in order, per-request errors and the queue delay
 * bound, against a pipeline call whose timing the test controls.
 */
import { describe, expect, it } from 'vitest';
import { InvalidInputError, InvalidValueError, TransientError } from '../../lib/errors';
import type { OnlineRetrieval } from '../../lib/pipeline/pipeline';
import { Batcher, type InferResult } from '../../server/batcher';

/** A pipeline stand-in: score = the row's `x`, label = its index in the call; rejects a row with `bad`. */
function fakeRun(opts: { holdMs?: number } = {}) {
  const calls: OnlineRetrieval[] = [];
  const run = async (input: OnlineRetrieval): Promise<InferResult> => {
    calls.push(input);
    if (opts.holdMs) await new Promise((r) => setTimeout(r, opts.holdMs));
    const bad = input.requests.findIndex((r) => r.bad === true);
    if (bad >= 0) throw new InvalidValueError(`request ${bad}: amount = null`);
    const n = input.requests.length;
    return {
      predictions: { rows: n, label: Float64Array.from(input.requests, (_, i) => i), score: Float32Array.from(input.requests, (r) => r.x as number) },
      statuses: input.requests.map((r) => ({ f: r.x === 0 ? 'NOT_FOUND' : 'PRESENT' })),
    };
  };
  return { calls, run };
}

const rowsOf = (...xs: number[]) => ({ requests: xs.map((x) => ({ x })) });

describe('Batcher', () => {
  it('runs a request at once when idle, then coalesces what arrives while a call runs into one call, split back in order', async () => {
    const { calls, run } = fakeRun({ holdMs: 20 });
    const b = new Batcher(run, { enabled: true, maxBatchRows: 100, maxQueueDelayUs: 1_000_000 });
    const first = b.infer(rowsOf(1));
    const rest = [b.infer(rowsOf(2, 3)), b.infer(rowsOf(4)), b.infer(rowsOf(5, 6, 7))];
    const answers = await Promise.all([first, ...rest]);
    expect(calls.map((c) => c.requests.length)).toEqual([1, 6]);
    expect(answers.map((a) => Array.from(a.predictions.score!))).toEqual([[1], [2, 3], [4], [5, 6, 7]]);
    expect(answers.map((a) => a.predictions.rows)).toEqual([1, 2, 1, 3]);
    expect(Array.from(answers[3]!.predictions.label!)).toEqual([3, 4, 5]);
    expect(answers[2]!.statuses).toEqual([{ f: 'PRESENT' }]);
    expect(b.stats).toMatchObject({ calls: 2, requests: 4, coalesced: 1, maxRows: 6 });
  });

  it('never puts more than maxBatchRows rows in one call, and runs a larger request alone', async () => {
    const { calls, run } = fakeRun({ holdMs: 10 });
    const b = new Batcher(run, { enabled: true, maxBatchRows: 4, maxQueueDelayUs: 1_000_000 });
    const answers = await Promise.all([b.infer(rowsOf(0.5)), b.infer(rowsOf(1, 2)), b.infer(rowsOf(3, 4)), b.infer(rowsOf(5)), b.infer(rowsOf(6, 7, 8, 9, 10))]);
    expect(Math.max(...calls.map((c) => c.requests.length))).toBe(5);
    expect(calls.filter((c) => c.requests.length > 4).map((c) => c.requests.length)).toEqual([5]);
    expect(answers.map((a) => Array.from(a.predictions.score!))).toEqual([[0.5], [1, 2], [3, 4], [5], [6, 7, 8, 9, 10]]);
  });

  it('answers each request with its own error: a request failing the check never joins a batch, a failing batch is run again request by request', async () => {
    const { calls, run } = fakeRun({ holdMs: 10 });
    const check = (input: OnlineRetrieval) => {
      if (input.requests.some((r) => typeof r.x !== 'number')) throw new InvalidInputError('request values do not fit the pipeline', ['x[0]: expected a number']);
    };
    const b = new Batcher(run, { enabled: true, maxBatchRows: 100, maxQueueDelayUs: 1_000_000 }, check);
    const busy = b.infer(rowsOf(1));
    const results = await Promise.allSettled([b.infer(rowsOf(2)), b.infer({ requests: [{ x: 'abc' }] }), b.infer({ requests: [{ x: 3, bad: true }] }), b.infer(rowsOf(4))]);
    await busy;
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(InvalidInputError);
    expect(((results[2] as PromiseRejectedResult).reason as Error).message).toBe('request 0: amount = null');
    expect(Array.from((results[0] as PromiseFulfilledResult<InferResult>).value.predictions.score!)).toEqual([2]);
    expect(Array.from((results[3] as PromiseFulfilledResult<InferResult>).value.predictions.score!)).toEqual([4]);
    expect(calls.some((c) => c.requests.some((r) => r.x === 'abc'))).toBe(false);
    expect(b.stats.fallbacks).toBe(1);
  });

  it('gives every request of a batch a Transient error without asking again per request', async () => {
    let n = 0;
    const b = new Batcher(
      async (input) => {
        n++;
        await new Promise((r) => setTimeout(r, 5));
        if (input.requests.length > 1) throw new TransientError('online store unavailable');
        return { predictions: { rows: 1, score: Float32Array.of(1) }, statuses: [{}] };
      },
      { enabled: true, maxBatchRows: 100, maxQueueDelayUs: 1_000_000 },
    );
    const first = b.infer(rowsOf(1));
    const rest = await Promise.allSettled([b.infer(rowsOf(2)), b.infer(rowsOf(3))]);
    await first;
    expect(rest.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(n).toBe(2);
  });

  it('keeps requests judged at different times (now) apart', async () => {
    const { calls, run } = fakeRun({ holdMs: 10 });
    const b = new Batcher(run, { enabled: true, maxBatchRows: 100, maxQueueDelayUs: 1_000_000 });
    const t1 = new Date('2026-10-13T00:00:00Z');
    const t2 = new Date('2026-10-14T00:00:00Z');
    await Promise.all([b.infer(rowsOf(0.5)), b.infer({ ...rowsOf(1), now: t1 }), b.infer({ ...rowsOf(2), now: t2 }), b.infer({ ...rowsOf(3), now: t1 })]);
    expect(calls.slice(1).map((c) => [c.now?.toISOString(), c.requests.map((r) => r.x)])).toEqual([
      [t1.toISOString(), [1, 3]],
      [t2.toISOString(), [2]],
    ]);
  });

  it('bounds the queue delay: a request queued behind a long call starts within maxQueueDelayUs', async () => {
    const starts: number[] = [];
    const b = new Batcher(
      async (input) => {
        starts.push(performance.now());
        await new Promise((r) => setTimeout(r, input.requests[0]!.x === 1 ? 300 : 1));
        return { predictions: { rows: input.requests.length, score: new Float32Array(input.requests.length) }, statuses: input.requests.map(() => ({})) };
      },
      { enabled: true, maxBatchRows: 100, maxQueueDelayUs: 20_000 },
    );
    const long = b.infer(rowsOf(1));
    const queuedAt = performance.now();
    await b.infer(rowsOf(2));
    const waited = starts[1]! - queuedAt;
    expect(waited).toBeGreaterThanOrEqual(19);
    expect(waited).toBeLessThan(150); // the long call takes 300 ms: the request did not wait for it
    await long;
  });

  it('off: every request is its own call', async () => {
    const { calls, run } = fakeRun({ holdMs: 5 });
    const b = new Batcher(run, { enabled: false, maxBatchRows: 100, maxQueueDelayUs: 1_000_000 });
    await Promise.all([b.infer(rowsOf(1)), b.infer(rowsOf(2)), b.infer(rowsOf(3))]);
    expect(calls.map((c) => c.requests.length)).toEqual([1, 1, 1]);
  });
});
