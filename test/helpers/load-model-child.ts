/**
 * Child process for the cross-process cache test: N concurrent loads of one model from the
 * registry at argv[2] into the shared cache at argv[3]; prints what happened as JSON.
 */
import * as ort from 'onnxruntime-node';
import { ModelCache, ModelRegistry } from '../../lib/registry';
import { SessionCache } from '../../lib/runtime/sessions';
import { openStore } from '../../lib/storage';

async function main(): Promise<void> {
  const [registryUrl, cacheDir, ref, n] = process.argv.slice(2) as [string, string, string, string];
  const registry = new ModelRegistry(openStore(registryUrl));
  const { resolved } = await registry.resolve(ref);
  const cache = new ModelCache(cacheDir);
  const sessions = new SessionCache();
  const loads = await Promise.all(
    Array.from({ length: Number(n) }, async () => {
      const { path } = await cache.ensure(resolved, registry);
      const session = await sessions.get(resolved.sha256, path);
      const out = await session.run({ features: new ort.Tensor('float32', new Float32Array(7).fill(1), [1, 7]) });
      return (out.probabilities!.data as Float32Array)[1]!;
    }),
  );
  process.stdout.write(
    JSON.stringify({ downloads: cache.events.filter((e) => e.kind === 'download').length, hits: cache.events.filter((e) => e.kind === 'hit').length, sessions: sessions.loads, scores: loads }) + '\n',
  );
  await sessions.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
