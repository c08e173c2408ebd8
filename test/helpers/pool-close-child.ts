/**
 * Child process for the inference-pool lifecycle tests, printing what happened as JSON:
 * - `close`: starts a large call on a pool thread and closes the pool while it runs (terminating
 *   a thread inside ONNX Runtime's native code aborts the process, hence a process of its own);
 * - `no-close`: awaits a large call (nothing else keeps this process alive meanwhile), prints, and
 *   returns without closing the pool: the process must then exit by itself.
 */
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { InferencePool } from '../../lib/runtime/pool';

async function main(): Promise<void> {
  const [mode, modelDir, rowsArg] = process.argv.slice(2) as ['close' | 'no-close', string, string];
  const modelPath = path.join(modelDir, 'model.onnx');
  const options = { intraOpThreads: 1 };
  const rows = Number(rowsArg);
  const pool = new InferencePool(1);
  const feeds = (n: number) => ({ features: new ort.Tensor('float32', new Float32Array(n * 7).fill(1), [n, 7]) });
  await pool.run('m', modelPath, options, feeds(1)); // thread started, model loaded
  if (mode === 'no-close') {
    await new Promise((resolve) => setTimeout(resolve, 50)); // the thread is idle now
    const out = await pool.run('m', modelPath, options, feeds(rows));
    process.stdout.write(JSON.stringify({ rows: (out.probabilities!.data as Float32Array).length / 2, started: pool.started }) + '\n');
    return;
  }
  let outcome = 'pending';
  const call = pool.run('m', modelPath, options, feeds(rows)).then(
    (out) => (outcome = `resolved with ${(out.probabilities!.data as Float32Array).length / 2} rows`),
    (err: unknown) => (outcome = `rejected: ${String(err)}`),
  );
  await new Promise((resolve) => setTimeout(resolve, 20)); // the call is running on the thread now
  const { unfinished } = await pool.close();
  const afterClose = outcome;
  await call;
  const refused = await pool.run('m', modelPath, options, feeds(1)).then(
    () => 'accepted',
    (err: unknown) => String(err),
  );
  process.stdout.write(JSON.stringify({ afterClose, unfinished, refused, started: pool.started }) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
