import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { ModelManifest } from '../../lib/registry';
import { predict } from '../../lib/pipeline/predict';
import { InferencePool, offloadOf } from '../../lib/runtime/pool';
import { SessionCache } from '../../lib/runtime/sessions';
import { EXAMPLE_MODEL_DIR, REPO_ROOT } from '../helpers/env';

const execFileP = promisify(execFile);
/** test/helpers/pool-close-child.ts in a process of its own; a child that does not exit fails the test after 20 s. */
const child = (mode: 'close' | 'no-close') =>
  execFileP(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test/helpers/pool-close-child.ts'), mode, EXAMPLE_MODEL_DIR, '400000'], { cwd: REPO_ROOT, timeout: 20_000 });

const caches: SessionCache[] = [];
const pools: InferencePool[] = [];
afterAll(() => Promise.all([...caches.map((c) => c.close()), ...pools.map((p) => p.close())]));

async function setup(inferenceThreads: number) {
  const metadata = JSON.parse(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'metadata.json'), 'utf8')) as ModelManifest['metadata'];
  const manifest = { name: 'fraud-detector', version: 1, metadata } as ModelManifest;
  const cache = new SessionCache({ inferenceThreads });
  caches.push(cache);
  const session = await cache.get('example', path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), { intraOpThreads: 1 });
  return { manifest, session };
}

function randomBlock(manifest: ModelManifest, rows: number) {
  const input = manifest.metadata.inputs[0]!;
  const x = new Float32Array(rows * input.columns.length);
  let seed = 42;
  for (let i = 0; i < x.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    x[i] = (seed / 2 ** 31) * 100;
  }
  return { rows, inputs: { [input.name]: x } };
}

describe('inference pool', () => {
  it('gives exactly the main-thread predictions, in order, over several chunks and threads', async () => {
    const { manifest, session } = await setup(2);
    expect(offloadOf(session)).toBeDefined();
    const block = randomBlock(manifest, 20_000);
    const onMain = await predict(session, manifest, block, { offload: false });
    const done: number[] = [];
    const pooled = await predict(session, manifest, block, { chunkRows: 3_000, onChunk: (n) => done.push(n) });
    expect(done).toEqual([3_000, 6_000, 9_000, 12_000, 15_000, 18_000, 20_000]);
    expect(Array.from(pooled.label!)).toEqual(Array.from(onMain.label!));
    expect(Array.from(pooled.score!)).toEqual(Array.from(onMain.score!));
  });

  it('keeps the event loop free while a pool thread computes', async () => {
    const { manifest, session } = await setup(1);
    const block = randomBlock(manifest, 200_000);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await predict(session, manifest, block, { chunkRows: 200_000 });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(5);
  });

  it('stops between chunks when onChunk throws (cancellation), and the pool stays usable', async () => {
    const { manifest, session } = await setup(2);
    const block = randomBlock(manifest, 10_000);
    await expect(
      predict(session, manifest, block, {
        chunkRows: 1_000,
        onChunk: () => {
          throw new Error('cancelled');
        },
      }),
    ).rejects.toThrow('cancelled');
    const again = await predict(session, manifest, block);
    expect(again.rows).toBe(10_000);
  });

  it('warm() starts every thread before any session exists; the sessions then use those threads', async () => {
    const pool = new InferencePool(2);
    pools.push(pool);
    expect(pool.started).toBe(0);
    pool.warm();
    expect(pool.started).toBe(2);
    pool.warm(); // idempotent
    expect(pool.started).toBe(2);

    const cache = new SessionCache({ inferenceThreads: 2 });
    caches.push(cache);
    cache.warm();
    const session = await cache.get('example', path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), { intraOpThreads: 1 });
    expect(offloadOf(session)?.pool.started).toBe(2);
    await pool.close();
    pool.warm(); // a closed pool starts nothing
    expect(pool.started).toBe(0);
  });

  it('close() lets a running call finish before stopping its thread (terminating it there aborts the process), then refuses new calls', async () => {
    // In a child process: if close() terminated the thread mid-call, ONNX Runtime would abort that process.
    const { stdout } = await child('close');
    expect(JSON.parse(stdout.trim())).toEqual({ afterClose: 'resolved with 400000 rows', unfinished: 0, refused: 'Error: inference pool is closed', started: 0 });
  }, 30_000);

  it('a call in flight keeps the process alive, an idle thread does not (a script that never closes its pool still exits)', async () => {
    // Before: the threads kept every process alive until close() (it hung at exit), because adding the 'message' listener undid unref().
    const { stdout } = await child('no-close');
    expect(JSON.parse(stdout.trim())).toEqual({ rows: 400000, started: 1 });
  }, 30_000);

  it('runs everything on the calling thread with 0 threads', async () => {
    const { session } = await setup(0);
    expect(offloadOf(session)).toBeUndefined();
  });
});
