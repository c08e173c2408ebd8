/**
 * `inferflow serve <spec>`: online predictions over HTTP (KServe V2 REST) for a pipeline spec's
 * model, feature views and on-demand features, with features from the online store.
 */
import type { Command } from 'commander';
import type { ServeLimits } from '../lib/config/env';
import type { OnlineStoreSpec } from '../lib/features/online';
import type { InferenceServer } from '../server/http';
import { parseStoreOption } from './features';
import { examples, nonNegativeInt } from './options';

export interface ServeOptions {
  port: number;
  host: string;
  store?: OnlineStoreSpec;
  /** Overrides of the INFERFLOW_SERVE_* limits. */
  limits?: Partial<ServeLimits>;
}

/** Resolve the spec's model (cached locally, verified), open the store, and listen. */
export async function serve(specFile: string, opts: ServeOptions): Promise<InferenceServer & { describe: string; shutdown: () => Promise<void> }> {
  // Loaded here so that the rest of the CLI starts without ONNX Runtime and the server.
  const { loadConfig } = await import('../lib/config/env.js');
  const { createLogger } = await import('../lib/log.js');
  const { openPipeline } = await import('../lib/pipeline/pipeline.js');
  const { createResources } = await import('../lib/pipeline/resources.js');
  const { loadPipelineSpec } = await import('../lib/pipeline/spec.js');
  const { startInferenceServer } = await import('../server/http.js');
  const { fixedDeployment } = await import('../server/deployment.js');
  const config = loadConfig();
  const spec = await loadPipelineSpec(specFile);
  // The workers' runtime: manifest, assembly plan and session, each checked against the model's ONNX signature.
  const resources = createResources(config, { logger: createLogger(config.logLevel, 'inferflow-serve') });
  try {
    const model = await resources.resolveModel(spec.model);
    const pipeline = await openPipeline(
      { model, featureViews: spec.featureViews ?? [], store: opts.store ?? { type: 'sqlite' }, ...(spec.onDemand ? { onDemand: spec.onDemand } : {}), ...(spec.postProcess ? { postProcess: spec.postProcess } : {}), ...(spec.idColumn ? { idColumn: spec.idColumn } : {}) },
      resources,
    );
    const features = pipeline.store.location; // opened before listening: a bad store spec fails here
    const server = await startInferenceServer(fixedDeployment(pipeline), { port: opts.port, host: opts.host, limits: { ...config.serveLimits, ...opts.limits } });
    return {
      ...server,
      describe: `${model.name}:${model.version} (${model.sha256.slice(0, 12)}) at ${server.url}/v2/models/${model.name}/infer, features from ${features}`,
      shutdown: async () => {
        await server.close();
        await resources.close();
      },
    };
  } catch (err) {
    await resources.close();
    throw err;
  }
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve <spec>')
    .description('Serve a pipeline spec online over HTTP (KServe V2 REST): request fields in, features from the online store, the same on-demand features and transforms as batch, predictions out.')
    .option('--port <port>', 'port (0 picks a free one)', nonNegativeInt, 8080)
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--store <store>', 'online store: sqlite[:PATH] (default: the embedded store under INFERFLOW_DATA_DIR) or redis[:KEY_PREFIX] (server: INFERFLOW_REDIS_URL)', parseStoreOption)
    .addHelpText('after', examples(`
      inferflow serve examples/pipelines/fraud-features.json --store redis
      curl -s localhost:8080/v2/models/fraud-features
      curl -s localhost:8080/v2/models/fraud-features/infer -d '{"inputs": [
        {"name": "customer_id", "datatype": "INT64", "shape": [1], "data": [17]},
        {"name": "event_timestamp", "datatype": "BYTES", "shape": [1], "data": ["2026-10-15T12:00:00Z"]},
        {"name": "amount", "datatype": "FP64", "shape": [1], "data": [120.5]},
        {"name": "merchant_category", "datatype": "BYTES", "shape": [1], "data": ["travel"]},
        {"name": "lat", "datatype": "FP64", "shape": [1], "data": [52.5]},
        {"name": "lon", "datatype": "FP64", "shape": [1], "data": [13.4]}],
        "parameters": {"as_of": "2026-10-15T12:00:00Z"}}'
    `) + '\nFill the online store first (inferflow features materialize). parameters.as_of judges feature freshness (the views\' TTL) at that time instead of now.\n')
    .action(async (specFile: string, opts: ServeOptions) => {
      const { loadConfig } = await import('../lib/config/env.js');
      const { createLogger } = await import('../lib/log.js');
      const log = createLogger(loadConfig().logLevel, 'inferflow-serve');
      const s = await serve(specFile, opts);
      log.info(`serving ${s.describe}`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await s.shutdown();
      log.info('stopped');
    });
}
