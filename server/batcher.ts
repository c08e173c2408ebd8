/**
 * Dynamic batching for one served pipeline version, after Triton's dynamic batcher: concurrent
 * `infer` calls are coalesced into one `Pipeline.infer` (one store lookup per view, one ONNX
 * Runtime call) and the answer is split back per request, in order.
 *
 * A request is dispatched at once while no call of this batcher is running (an idle server adds
 * no delay). While one runs, requests queue; the queue goes out as one call when the running one
 * ends, when it holds `maxBatchRows` rows, or when its oldest request has waited
 * `maxQueueDelayUs` (then it runs alongside the busy call). Requests judged at different times
 * (`now`) are never coalesced. Each request is checked alone before it joins a batch (a bad value
 * answers that request only); a batch that still fails is run again request by request, so one
 * request's error never becomes another's, except for a Transient error (the store is down:
 * every request of the batch gets it, and the store is not asked again per request).
 */
import { TransientError } from '../lib/errors';
import type { OnlineRetrieval } from '../lib/pipeline/pipeline';
import type { OnlineRetrieved } from '../lib/pipeline/online';
import type { Predictions } from '../lib/pipeline/post-process';

export interface BatchingOptions {
  /** false: every request is its own call. */
  enabled: boolean;
  /** Most rows in one coalesced call (a request with more rows runs alone). */
  maxBatchRows: number;
  /** Longest a queued request waits for a busy batcher, in µs (below 1 ms: one event-loop turn). */
  maxQueueDelayUs: number;
}

export interface InferResult {
  predictions: Predictions;
  statuses: OnlineRetrieved['statuses'];
}

export type InferFn = (input: OnlineRetrieval) => Promise<InferResult>;

export interface BatcherStats {
  /** Pipeline calls made. */
  calls: number;
  /** Requests answered (or failed) through those calls, each counted once. */
  requests: number;
  /** Calls that carried more than one request. */
  coalesced: number;
  /** Batches that failed and were run again request by request. */
  fallbacks: number;
  /** Largest batch, in rows. */
  maxRows: number;
}

interface Pending {
  input: OnlineRetrieval;
  rows: number;
  resolve: (r: InferResult) => void;
  reject: (err: unknown) => void;
}

interface Queue {
  items: Pending[];
  rows: number;
  timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
}

const US_PER_MS = 1_000;

/** The rows [start, start + n) of predictions. */
export function slicePredictions(p: Predictions, start: number, n: number): Predictions {
  return {
    rows: n,
    ...(p.label ? { label: p.label.subarray(start, start + n) } : {}),
    ...(p.score ? { score: p.score.subarray(start, start + n) } : {}),
    ...(p.value ? { value: p.value.subarray(start, start + n) } : {}),
  };
}

export class Batcher {
  readonly stats: BatcherStats = { calls: 0, requests: 0, coalesced: 0, fallbacks: 0, maxRows: 0 };
  private running = 0;
  /** Queued requests by their `now` (ms, or '' for "now at lookup time"). */
  private readonly queues = new Map<string, Queue>();

  /**
   * @param run the pipeline call (Pipeline.infer of one version)
   * @param check throws for a request that must not join a batch (run before it is queued)
   */
  constructor(
    private readonly run: InferFn,
    readonly options: BatchingOptions,
    private readonly check: (input: OnlineRetrieval) => void = () => {},
  ) {}

  /** Calls running plus requests queued. */
  get pending(): number {
    let queued = 0;
    for (const q of this.queues.values()) queued += q.items.length;
    return this.running + queued;
  }

  async infer(input: OnlineRetrieval): Promise<InferResult> {
    if (!this.options.enabled || input.requests.length >= this.options.maxBatchRows) return (await this.call([input]))[0]!;
    this.check(input);
    return new Promise<InferResult>((resolve, reject) => {
      const key = input.now ? String(input.now.getTime()) : '';
      let q = this.queues.get(key);
      if (!q) this.queues.set(key, (q = { items: [], rows: 0, timer: undefined }));
      q.items.push({ input, rows: input.requests.length, resolve, reject });
      q.rows += input.requests.length;
      if (this.running === 0 || q.rows >= this.options.maxBatchRows) this.flush(key);
      else if (!q.timer) q.timer = this.schedule(() => this.flush(key));
    });
  }

  private schedule(fn: () => void): NodeJS.Timeout | NodeJS.Immediate {
    const us = this.options.maxQueueDelayUs;
    return us < US_PER_MS ? setImmediate(fn) : setTimeout(fn, us / US_PER_MS);
  }

  /** Send a queue's requests as calls of at most maxBatchRows rows each. */
  private flush(key: string): void {
    const q = this.queues.get(key);
    if (!q) return;
    this.queues.delete(key);
    if (q.timer) {
      clearTimeout(q.timer as NodeJS.Timeout);
      clearImmediate(q.timer as NodeJS.Immediate);
    }
    let batch: Pending[] = [];
    let rows = 0;
    const send = () => {
      if (batch.length > 0) void this.dispatch(batch);
      batch = [];
      rows = 0;
    };
    for (const item of q.items) {
      if (rows + item.rows > this.options.maxBatchRows) send();
      batch.push(item);
      rows += item.rows;
    }
    send();
  }

  private async dispatch(batch: Pending[]): Promise<void> {
    try {
      const results = await this.call(batch.map((b) => b.input));
      batch.forEach((b, i) => b.resolve(results[i]!));
    } catch (err) {
      if (batch.length === 1 || err instanceof TransientError) batch.forEach((b) => b.reject(err));
      else {
        this.stats.fallbacks++;
        await Promise.all(batch.map((b) => this.call([b.input], true).then((r) => b.resolve(r[0]!), b.reject)));
      }
    }
  }

  /** One pipeline call for several requests (all with the same `now`), split back per request; `again`: a request of a failed batch, counted once. */
  private async call(inputs: OnlineRetrieval[], again = false): Promise<InferResult[]> {
    this.running++;
    this.stats.calls++;
    if (!again) this.stats.requests += inputs.length;
    if (inputs.length > 1) this.stats.coalesced++;
    try {
      if (inputs.length === 1) {
        this.stats.maxRows = Math.max(this.stats.maxRows, inputs[0]!.requests.length);
        return [await this.run(inputs[0]!)];
      }
      const requests = inputs.flatMap((i) => i.requests);
      this.stats.maxRows = Math.max(this.stats.maxRows, requests.length);
      const now = inputs[0]!.now;
      // The batch answers by the earliest deadline among its requests (external-API features get what is left of it).
      const deadlines = inputs.flatMap((i) => (i.deadline === undefined ? [] : [i.deadline]));
      const deadline = deadlines.length > 0 ? Math.min(...deadlines) : undefined;
      const { predictions, statuses } = await this.run({ requests, ...(now ? { now } : {}), ...(deadline !== undefined ? { deadline } : {}) });
      let start = 0;
      return inputs.map((i) => {
        const n = i.requests.length;
        const r = { predictions: slicePredictions(predictions, start, n), statuses: statuses.slice(start, start + n) };
        start += n;
        return r;
      });
    } finally {
      this.running--;
      if (this.running === 0) for (const key of [...this.queues.keys()]) this.flush(key);
    }
  }
}
