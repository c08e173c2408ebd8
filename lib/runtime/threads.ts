import os from 'node:os';

/**
 * Inference threads when nobody chose: the number of cores, at most 4. The default of
 * INFERFLOW_INFERENCE_THREADS (lib/config/env.ts) and of a SessionCache's pool; 0 disables
 * offloading. Its own module so that the config does not load ONNX Runtime.
 */
export function defaultPoolSize(): number {
  return Math.min(4, os.availableParallelism());
}
