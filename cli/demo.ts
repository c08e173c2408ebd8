/**
 * `npm run demo`: the batch pipeline end to end on embedded defaults — card requests (the
 * spine) get point-in-time customer features, on-demand features and the model's fitted
 * transforms, then fraud scores (examples/pipelines/fraud-features.json).
 * Uses the Temporal server at TEMPORAL_ADDRESS when one answers (the run stays visible there);
 * otherwise starts a dev server for the duration of the demo and stops it afterwards.
 */
import path from 'node:path';
import { connectClient, ensureSearchAttributes, startBatchInference } from '../client';
import { loadConfig } from '../lib/config/env';
import { createLogger } from '../lib/log';
import { createResources } from '../lib/pipeline/resources';
import { lit, toText, withDuckDB } from '../lib/io/duckdb';
import { table } from '../lib/util/format';
import { createInferflowWorker } from '../workers/worker';
import { installTemporalRuntime } from '../workers/runtime';
import { startLocalTemporal, temporalAnswers, type DevServer } from '../devservices/temporal';
import { summaryTable, watchBatch } from './watch';
import { registerExampleModel, registerFeaturesExampleModel, FEATURES_PIPELINE, REPO_ROOT } from './examples';
import { loadPipelineSpec } from '../lib/pipeline/spec';

export async function runDemo(): Promise<void> {
  const config = loadConfig();
  installTemporalRuntime(createLogger('warn'));
  const say = (s: string) => process.stdout.write(`${s}\n`);
  let server: DevServer | undefined;

  say(`Inferflow demo: batch fraud scoring on Temporal — feature store → on-demand features → transforms → ONNX Runtime\n`);
  if (await temporalAnswers(config.temporal.address)) {
    say(`Temporal: using the server at ${config.temporal.address} (namespace ${config.temporal.namespace})`);
  } else {
    const dbFile = path.join(config.dataDir, 'temporal', 'demo.db');
    say(`Temporal: nothing answers at ${config.temporal.address}; starting a dev server for this demo (stopped at the end)…`);
    server = await startLocalTemporal({ dataDir: config.dataDir, ...(config.temporalCli ? { explicitCli: config.temporalCli } : {}), address: config.temporal.address, dbFile, logFile: path.join(config.dataDir, 'temporal', 'demo-server.log') }, say);
    say(`Temporal: dev server up, Web UI at ${server.uiUrl ?? '(headless)'} while the demo runs`);
  }

  try {
    const resources = createResources(config, { logger: createLogger('warn', 'inferflow-worker') });
    const { manifest, created } = await registerFeaturesExampleModel(resources.registry);
    say(`Registry: ${config.registry}: model ${manifest.name} version ${manifest.version} ${created ? 'registered' : 'already registered'} (alias production)`);
    // The plain model of the README's examples (a prepared feature file in, scores out).
    await registerExampleModel(resources.registry);
    const input = await loadPipelineSpec(FEATURES_PIPELINE);
    const rel = (p: string) => path.relative(REPO_ROOT, p);
    const views = (input.featureViews ?? []).map((v) => `${String(v.name)} (${(v.features ?? []).length} features, ttl ${String(v.ttl ?? 'none')}) from ${rel((v.source as { path: string }).path)}`);
    say(`Pipeline: ${rel(FEATURES_PIPELINE)}`);
    say(`  spine:      ${rel(input.spine!)} (card requests: customer_id, event_timestamp, amount, merchant_category, lat, lon)`);
    say(`  features:   ${views.join('; ')}, joined point-in-time (never a value from after the request)`);
    const modules = config.modules.map((m) => `${m.name}=${rel(m.path)}`).join(', ');
    say(`  on-demand:  ${(input.onDemand ?? []).map((r) => r.name).join(', ')} (registered with the worker: ${modules})`);
    say(`  transforms: ${manifest.metadata.transforms?.steps.map((s) => s.type).join(', ') ?? 'none'} (fitted at training, from the model manifest)`);

    const client = await connectClient(config.temporal);
    await ensureSearchAttributes(client, config.temporal.namespace);
    const { worker, close } = await createInferflowWorker({ config, resources });
    let result;
    try {
      result = await worker.runUntil(async () => {
        const handle = await startBatchInference(client, { ...input, shardSize: 5_000 }, { taskQueue: config.temporal.taskQueue });
        say(`Workflow: ${handle.workflowId} on task queue ${config.temporal.taskQueue}\n`);
        return watchBatch(handle, process.stdout);
      });
    } finally {
      await close();
      await client.connection.close();
    }
    const cacheEvent = resources.cache.events.find((e) => e.kind === 'download') ? 'downloaded from the registry into the cache' : 'reused from the local cache (no download)';
    say(`\n${summaryTable(result, [['model cache', `${config.modelCacheDir} (${cacheEvent})`]])}\n`);

    const top = await withDuckDB(async (conn) => {
      const r = await conn.runAndReadAll(
        `SELECT transaction_id, label, printf('%.4f', score) AS score FROM read_parquet(${lit(path.join(result.output.location, '*.parquet'))}) ORDER BY score DESC, transaction_id LIMIT 5`,
      );
      return r.getRowsJS().map((row) => row.map(toText));
    });
    say(`Highest fraud scores:\n${table(top, ['transaction_id', 'label', 'score'])}\n`);
    say(`Show predictions:      npm run inferflow -- predictions ${result.output.location}`);
    if (!server) say(`See the run:           temporal workflow show --workflow-id ${result.workflowId}`);
  } finally {
    if (server) {
      await server.stop();
      say(`Temporal: dev server stopped (start one with 'npm run temporal' to keep runs visible in the UI)`);
    }
  }
}

if (require.main === module) {
  runDemo().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
