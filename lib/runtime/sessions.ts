import type * as ortTypes from 'onnxruntime-node';
import { DEFAULT_SESSION_OPTIONS, loadSession, type SessionOptions } from './onnx';
import { defaultPoolSize, InferencePool, registerOffload } from './pool';

export interface SessionCacheOptions {
  /**
   * Threads that run large `predict` chunks off the main thread (see pool.ts); 0 runs
   * everything on the calling thread. Default: `defaultPoolSize()` (the number of cores, at most
   * 4); workers and `inferflow serve` pass INFERFLOW_INFERENCE_THREADS from the config.
   */
  inferenceThreads?: number;
}

/**
 * One ONNX Runtime session per (model sha256, session options) per process: repeated
 * activities reuse it, and concurrent first loads share one promise (single flight). Sessions
 * it hands out are registered with the cache's inference pool, so `predict` can run their
 * large chunks on pool threads (each thread loads the same model file with the same options).
 */
export class SessionCache {
  private readonly sessions = new Map<string, Promise<ortTypes.InferenceSession>>();
  private readonly inferenceThreads: number;
  private pool: InferencePool | undefined;
  loads = 0;

  constructor(options: SessionCacheOptions = {}) {
    this.inferenceThreads = options.inferenceThreads ?? defaultPoolSize();
  }

  get(sha256: string, modelPath: string, options: SessionOptions = DEFAULT_SESSION_OPTIONS): Promise<ortTypes.InferenceSession> {
    const key = `${sha256}:${JSON.stringify(options)}`;
    let p = this.sessions.get(key);
    if (!p) {
      this.loads++;
      p = loadSession(modelPath, `model ${sha256.slice(0, 12)} (${modelPath})`, options).then((session) => {
        const pool = this.poolOrNone();
        if (pool) registerOffload(session, { pool, key, modelPath, options });
        return session;
      });
      this.sessions.set(key, p);
      p.catch(() => this.sessions.delete(key));
    }
    return p;
  }

  /** Start the inference pool's threads before the first session needs them (InferencePool.warm); nothing without a pool. */
  warm(): void {
    this.poolOrNone()?.warm();
  }

  /** The inference pool, created on first need; none with 0 inference threads. */
  private poolOrNone(): InferencePool | undefined {
    if (this.inferenceThreads <= 0) return undefined;
    return (this.pool ??= new InferencePool(this.inferenceThreads));
  }

  /**
   * Drop one model's session and release it (a served model swapped out). A later `get` loads it
   * again. The inference pool's threads keep their own copy until the pool closes.
   */
  async release(sha256: string, options: SessionOptions = DEFAULT_SESSION_OPTIONS): Promise<void> {
    const key = `${sha256}:${JSON.stringify(options)}`;
    const p = this.sessions.get(key);
    if (!p) return;
    this.sessions.delete(key);
    const session = await p.catch(() => undefined);
    await session?.release();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Release every session and stop the pool (InferencePool.close): resolves with the pool's calls left unfinished. */
  async close(): Promise<{ unfinished: number }> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    const pool = this.pool;
    this.pool = undefined;
    const [, closed] = await Promise.all([Promise.allSettled(all.map(async (p) => (await p).release())), pool?.close()]);
    return { unfinished: closed?.unfinished ?? 0 };
  }
}
