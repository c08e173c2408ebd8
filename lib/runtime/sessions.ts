import type * as ortTypes from 'onnxruntime-node';
import { DEFAULT_SESSION_OPTIONS, loadSession, type SessionOptions } from './onnx';

/**
 * One ONNX Runtime session per (model sha256, session options) per process: repeated
 * activities reuse it, and concurrent first loads share one promise (single flight).
 */
export class SessionCache {
  private readonly sessions = new Map<string, Promise<ortTypes.InferenceSession>>();
  loads = 0;

  get(sha256: string, modelPath: string, options: SessionOptions = DEFAULT_SESSION_OPTIONS): Promise<ortTypes.InferenceSession> {
    const key = `${sha256}:${JSON.stringify(options)}`;
    let p = this.sessions.get(key);
    if (!p) {
      this.loads++;
      p = loadSession(modelPath, `model ${sha256.slice(0, 12)} (${modelPath})`, options);
      this.sessions.set(key, p);
      p.catch(() => this.sessions.delete(key));
    }
    return p;
  }

  get size(): number {
    return this.sessions.size;
  }

  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(all.map(async (p) => (await p).release()));
  }
}
