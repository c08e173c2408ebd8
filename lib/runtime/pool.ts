/**
 * ONNX Runtime in worker threads. onnxruntime-node computes `session.run` on the calling
 * thread, so on the main thread a large block stalls the event loop (activity heartbeats,
 * cancellation, HTTP) and cannot overlap with DuckDB reading the next shard. The pool runs
 * each `run` on one of a few worker threads, each with its own session per model (loaded
 * once per thread, same session options, so results are bit-for-bit those of a main-thread
 * session).
 *
 * Sessions created by `SessionCache` are registered here (`offloadOf`); `predict` sends large
 * chunks to the pool and keeps small ones (online requests) on the calling thread, where a
 * message round trip would cost more than the computation.
 */
import { Worker } from 'node:worker_threads';
import type * as ortTypes from 'onnxruntime-node';
import { errorMessage } from '../errors';
import { toOrtOptions, type SessionOptions } from './onnx';

/** A tensor crossing threads: plain data, no native handle. */
export interface PlainTensor {
  type: ortTypes.Tensor.Type;
  dims: readonly number[];
  data: ortTypes.Tensor.DataType;
}

interface Request {
  id: number;
  key: string;
  modelPath: string;
  ortOptions: ortTypes.InferenceSession.SessionOptions;
  feeds: { name: string; type: ortTypes.Tensor.Type; dims: readonly number[]; data: ortTypes.Tensor.DataType }[];
}

type Reply = { id: number; out: Record<string, PlainTensor> } | { id: number; error: string };

// Plain CommonJS, evaluated as the thread's entry point: no TypeScript loader needed in the thread.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const sessions = new Map();
parentPort.on('message', async (m) => {
  try {
    let s = sessions.get(m.key);
    if (!s) {
      s = ort.InferenceSession.create(m.modelPath, m.ortOptions);
      sessions.set(m.key, s);
      s.catch(() => sessions.delete(m.key));
    }
    const session = await s;
    const feeds = {};
    for (const f of m.feeds) feeds[f.name] = new ort.Tensor(f.type, f.data, f.dims);
    const result = await session.run(feeds);
    const out = {};
    const transfer = [];
    for (const [name, t] of Object.entries(result)) {
      const data = t.data.slice();
      out[name] = { type: t.type, dims: t.dims, data };
      if (ArrayBuffer.isView(data)) transfer.push(data.buffer);
      if (typeof t.dispose === 'function') t.dispose();
    }
    parentPort.postMessage({ id: m.id, out }, transfer);
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String((err && err.stack) || err) });
  }
});
`;

/** A call sent to a thread and not answered yet. */
interface Call {
  result: Promise<Record<string, PlainTensor>>;
  resolve: (out: Record<string, PlainTensor>) => void;
  reject: (err: Error) => void;
}

/** A pending call (Promise.withResolvers, which Node 20 lacks). */
function newCall(): Call {
  let resolve!: Call['resolve'];
  let reject!: Call['reject'];
  const result = new Promise<Record<string, PlainTensor>>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { result, resolve, reject };
}

interface Slot {
  worker: Worker;
  pending: Map<number, Call>;
}

/**
 * A thread with calls pending keeps the process alive, an idle one does not. Called after every
 * change to `pending`, and once after the listeners are added (a 'message' listener refs the worker).
 */
function refWhileBusy(slot: Slot): void {
  if (slot.pending.size > 0) slot.worker.ref();
  else slot.worker.unref();
}

/**
 * How long `close` waits for calls sent to the threads (a 65,536-row call of a large model takes
 * seconds). Workers close their pool after their own 10 s shutdown grace: 20 s in all, inside a
 * typical 30 s kill deadline.
 */
const CLOSE_GRACE_MS = 10_000;

export class InferencePool {
  private slots: (Slot | undefined)[];
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number) {
    this.slots = new Array<Slot | undefined>(Math.max(1, size)).fill(undefined);
  }

  private spawn(i: number): Slot {
    const worker = new Worker(THREAD_SOURCE, { eval: true, workerData: { ortPath: require.resolve('onnxruntime-node') } });
    const slot: Slot = { worker, pending: new Map() };
    worker.on('message', (reply: Reply) => {
      const p = slot.pending.get(reply.id);
      if (!p) return;
      slot.pending.delete(reply.id);
      refWhileBusy(slot);
      if ('error' in reply) p.reject(new Error(reply.error));
      else p.resolve(reply.out);
    });
    const rejectAll = (err: Error) => {
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      refWhileBusy(slot);
    };
    const fail = (err: Error) => {
      if (this.slots[i] === slot) this.slots[i] = undefined; // respawned on next use
      rejectAll(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`inference thread exited (code ${code})`)));
    // A reply that cannot be deserialised names no call: fail every call waiting on this thread.
    worker.on('messageerror', (err) => rejectAll(new Error(`unreadable reply from inference thread: ${errorMessage(err)}`)));
    refWhileBusy(slot);
    this.slots[i] = slot;
    return slot;
  }

  /** The thread with the fewest requests in flight (spawned on first use). */
  private pick(): Slot {
    let best = -1;
    let bestLoad = Infinity;
    for (let i = 0; i < this.slots.length; i++) {
      const load = this.slots[i]?.pending.size ?? 0;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
        if (load === 0) break;
      }
    }
    return this.slots[best] ?? this.spawn(best);
  }

  /**
   * Run a model on a pool thread. `key` identifies the model file + options (one session per
   * key per thread). Feed data is copied (a view's whole buffer would otherwise be cloned).
   */
  run(key: string, modelPath: string, options: SessionOptions, feeds: Record<string, ortTypes.Tensor>): Promise<Record<string, PlainTensor>> {
    if (this.closed) return Promise.reject(new Error('inference pool is closed'));
    const slot = this.pick();
    const id = this.nextId++;
    const transfer: ArrayBuffer[] = [];
    const req: Request = {
      id,
      key,
      modelPath,
      ortOptions: toOrtOptions(options),
      feeds: Object.entries(feeds).map(([name, t]) => {
        const data = (t.data as Float32Array).slice();
        transfer.push(data.buffer);
        return { name, type: t.type, dims: t.dims, data };
      }),
    };
    const call = newCall();
    slot.pending.set(id, call);
    refWhileBusy(slot);
    try {
      slot.worker.postMessage(req, transfer);
    } catch (err) {
      slot.pending.delete(id);
      refWhileBusy(slot);
      call.reject(new Error(`cannot send to inference thread: ${errorMessage(err)}`));
    }
    return call.result;
  }

  /**
   * Start every thread now (each loads ONNX Runtime as it starts), so the first large block does
   * not wait for that: workers call this at start-up, before any task arrives.
   */
  warm(): void {
    if (this.closed) return;
    for (let i = 0; i < this.slots.length; i++) if (!this.slots[i]) this.spawn(i);
  }

  /** Threads running now (spawned by `warm` or on first use, respawned after a crash). */
  get started(): number {
    return this.slots.filter((s) => s !== undefined).length;
  }

  /**
   * Stop the threads. New calls are refused at once; calls already sent to a thread (running or
   * queued there) finish first, up to CLOSE_GRACE_MS: terminating a thread inside ONNX Runtime's
   * native code aborts the whole process (a cancelled shard can leave a call running when a worker
   * shuts down). Resolves with the number of calls still unfinished when the threads were stopped
   * anyway; with more than 0 the abort can still happen.
   */
  async close(): Promise<{ unfinished: number }> {
    this.closed = true;
    const slots = this.slots.filter((s): s is Slot => s !== undefined);
    const calls = slots.flatMap((s) => [...s.pending.values()].map((c) => c.result));
    if (calls.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_GRACE_MS);
      });
      await Promise.race([Promise.allSettled(calls), grace]);
      clearTimeout(timer);
    }
    const unfinished = slots.reduce((n, s) => n + s.pending.size, 0);
    this.slots = this.slots.map(() => undefined);
    await Promise.allSettled(slots.map((s) => s.worker.terminate()));
    return { unfinished };
  }
}

export { defaultPoolSize } from './threads';

/** How a main-thread session can run on the pool instead. */
export interface Offload {
  pool: InferencePool;
  key: string;
  modelPath: string;
  options: SessionOptions;
}

const offloads = new WeakMap<object, Offload>();

export function registerOffload(session: ortTypes.InferenceSession, offload: Offload): void {
  offloads.set(session, offload);
}

export function offloadOf(session: ortTypes.InferenceSession): Offload | undefined {
  return offloads.get(session);
}
