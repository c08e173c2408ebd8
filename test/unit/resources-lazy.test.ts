/**
 * Heavy libraries load when first used, not on import: a Resources that resolves a model, plans
 * its assembly and opens stores and sinks it does not use yet loads neither ONNX Runtime nor
 * DuckDB nor a database, store or bus client; the model server's modules load no DuckDB or NATS; a
 * worker's activities load no NATS client. Checked in a fresh Node process (tsx's CommonJS loader),
 * whose require cache lists every module it loaded.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleRegistry, REPO_ROOT, tempConfig } from '../helpers/env';

const HEAVY = ['onnxruntime-node', '@duckdb/node-api', '@nats-io/transport-node', '@nats-io/jetstream', 'pg', 'pg-copy-streams', 'ioredis', 'better-sqlite3', '@aws-sdk/client-s3'];

/** The HEAVY packages a script (an expression evaluating to a promise) has loaded once it settles. */
const heavyLoaded = (script: string): string[] =>
  JSON.parse(
    execFileSync(
      process.execPath,
      [
        '-r',
        'tsx/cjs',
        '-e',
        `(${script}).then(() => console.log(JSON.stringify([...new Set(Object.keys(require.cache).map((f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(f)?.[1]).filter((p) => ${JSON.stringify(HEAVY)}.includes(p)))].sort())))`,
      ],
      { cwd: REPO_ROOT, encoding: 'utf8' },
    ),
  ) as string[];

let env: Awaited<ReturnType<typeof tempConfig>>;

beforeAll(async () => {
  env = await tempConfig();
  await exampleRegistry(env.config);
});

afterAll(async () => {
  await env?.cleanup();
});

describe('heavy modules load lazily', () => {
  it('a Resources that resolves a model, plans its inputs, opens an unused store and sink and closes loads none of them', () => {
    const loaded = heavyLoaded(`(async () => {
      const { loadConfig } = require('./lib/config/env.ts');
      const { createResources } = require('./lib/pipeline/resources.ts');
      const resources = createResources(loadConfig({ INFERFLOW_DATA_DIR: ${JSON.stringify(env.dir)}, INFERFLOW_LOG_LEVEL: 'warn' }));
      const model = await resources.resolveModel('fraud-detector@production');
      await resources.modelContext(model);
      resources.recordSink({ type: 'nats', subject: 'lazy.check' });
      resources.onlineStore();
      resources.onlineStore({ type: 'redis' });
      await resources.close();
    })()`);
    expect(loaded).toEqual([]);
  });

  it('the model server loads no DuckDB and no NATS client; a worker’s activities load no NATS client', () => {
    const server = heavyLoaded(`Promise.resolve(['./cli/serve.ts', './server/http.ts', './server/grpc.ts', './server/deployment.ts', './lib/pipeline/resources.ts', './lib/pipeline/spec.ts'].forEach((m) => require(m)))`);
    expect(server.filter((p) => p.startsWith('@duckdb') || p.startsWith('@nats-io'))).toEqual([]);
    const worker = heavyLoaded(`Promise.resolve(require('./activities/index.ts'))`);
    expect(worker.filter((p) => p.startsWith('@nats-io'))).toEqual([]);
  });
});
