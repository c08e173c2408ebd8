/**
 * `inferflow serve <spec…>`: online predictions for one or more pipeline specs (each served under
 * its model's name): over HTTP the Open Inference Protocol (KServe V2) REST, MLflow's
 * `/invocations` and Prometheus `/metrics`; with --grpc-port, V2 gRPC (inference.GRPCInferenceService).
 */
import path from 'node:path';
import type { Command } from 'commander';
import type { ServeLimits, ServeModelOptions, TemporalConfig } from '../lib/config/env';
import type { OnlineStoreSpec } from '../lib/features/online';
import type { Deployment } from '../server/deployment';
import type { ServedRanking } from '../server/v2/ranking';
import type { GrpcInferenceServer } from '../server/grpc';
import type { InferenceServer } from '../server/http';
import type { DurableTarget } from '../server/v2/durable';
import { parseStoreOption } from './features';
import { examples, nonNegativeInt, positiveInt } from './options';

export interface ServeOptions {
  port: number;
  host: string;
  store?: OnlineStoreSpec;
  /** Also serve V2 gRPC (inference.GRPCInferenceService) on this port; unset: no gRPC. */
  grpcPort?: number;
  /** Overrides of the INFERFLOW_SERVE_* limits. */
  limits?: Partial<ServeLimits>;
  /** A file of bearer tokens, one a line (added to INFERFLOW_SERVE_TOKENS). */
  tokenFile?: string;
  /** The model /invocations answers with when several are served. */
  mlflowModel?: string;
  /** The online deployment (`inferflow online deploy --name`) `?durable=true` V2 requests go to; unset: no Temporal connection. */
  durableDeployment?: string;
  /** Overrides of INFERFLOW_SERVE_POLL_MS and the batching settings. */
  pollMs?: number;
  batching?: boolean;
  maxBatchRows?: number;
  maxQueueDelayUs?: number;
}

/** The serve options over the configuration's INFERFLOW_SERVE_* model settings. */
function modelOptions(config: ServeModelOptions, opts: ServeOptions): ServeModelOptions {
  return {
    pollMs: opts.pollMs ?? config.pollMs,
    batching: opts.batching ?? config.batching,
    maxBatchRows: opts.maxBatchRows ?? config.maxBatchRows,
    maxQueueDelayUs: opts.maxQueueDelayUs ?? config.maxQueueDelayUs,
  };
}


/** Spec files named on the command line: a file as is, a directory's *.json files in name order. */
export async function specFiles(args: readonly string[]): Promise<string[]> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const { InvalidInputError } = await import('../lib/errors.js');
  const files: string[] = [];
  for (const arg of args) {
    const stat = await fs.stat(arg).catch(() => undefined);
    if (!stat) throw new InvalidInputError(`spec ${arg}: no such file or directory`, [], { spec: arg });
    if (!stat.isDirectory()) files.push(arg);
    else {
      const inDir = (await fs.readdir(arg)).filter((f) => f.endsWith('.json')).sort();
      if (inDir.length === 0) throw new InvalidInputError(`spec directory ${arg} has no *.json pipeline specs`, [], { spec: arg });
      files.push(...inDir.map((f) => path.join(arg, f)));
    }
  }
  return files;
}

/** Tokens from INFERFLOW_SERVE_TOKENS and the token file. */
async function serveTokens(fromEnv: readonly string[], tokenFile: string | undefined): Promise<string[]> {
  if (tokenFile === undefined) return [...fromEnv];
  const fs = await import('node:fs/promises');
  const { parseTokens } = await import('../lib/config/env.js');
  const { InvalidInputError, errorMessage } = await import('../lib/errors.js');
  const text = await fs.readFile(tokenFile, 'utf8').catch((err: unknown) => {
    throw new InvalidInputError(`--token-file ${tokenFile}: ${errorMessage(err)}`, [], { tokenFile });
  });
  const tokens = parseTokens(text);
  if (tokens.length === 0) throw new InvalidInputError(`--token-file ${tokenFile} holds no token (one a line; # starts a comment)`, [], { tokenFile });
  return [...new Set([...fromEnv, ...tokens])];
}

export type ServeHandle = InferenceServer & { grpc?: GrpcInferenceServer; deployments: Deployment[]; describe: string[]; auth: string; settings: string; shutdown: () => Promise<void> };

/** Resolve each spec's model (cached locally, verified), open the store, and listen. */
export async function serve(specs: string | readonly string[], opts: ServeOptions): Promise<ServeHandle> {
  // Loaded here so that the rest of the CLI starts without ONNX Runtime and the server.
  const { loadConfig } = await import('../lib/config/env.js');
  const { createLogger } = await import('../lib/log.js');
  const { createResources } = await import('../lib/pipeline/resources.js');
  const { loadPipelineSpec } = await import('../lib/pipeline/spec.js');
  const { startInferenceServer } = await import('../server/http.js');
  const { modelDeployment } = await import('../server/deployment.js');
  const { startGrpcServer } = await import('../server/grpc.js');
  const { ServedRanking } = await import('../server/v2/ranking.js');
  const { InvalidInputError } = await import('../lib/errors.js');
  const config = loadConfig();
  const files = await specFiles(typeof specs === 'string' ? [specs] : specs);
  const tokens = await serveTokens(config.serveTokens, opts.tokenFile);
  const log = createLogger(config.logLevel, 'inferflow-serve');
  // The workers' runtime: manifest, assembly plan and session, each checked against the model's ONNX signature.
  const resources = createResources(config, { logger: log });
  const m = modelOptions(config.serveModel, opts);
  const deployments: Deployment[] = [];
  let durable: DurableTarget | undefined;
  try {
    const served = new Map<string, { file: string; describe: (at: string) => string; deployment: Deployment }>();
    const rankings = new Map<string, ServedRanking>();
    for (const file of files) {
      const spec = await loadPipelineSpec(file);
      const model = await resources.resolveModel(spec.model);
      const before = served.get(model.name);
      if (before) throw new InvalidInputError(`model ${model.name} is served by two specs, ${before.file} and ${file}: serve each model once`, [], { model: model.name, specs: [before.file, file] });
      const deployment = modelDeployment({
        ref: spec.model,
        definition: { featureViews: spec.featureViews ?? [], store: opts.store ?? { type: 'sqlite' }, ...(spec.onDemand ? { onDemand: spec.onDemand } : {}), ...(spec.postProcess ? { postProcess: spec.postProcess } : {}), ...(spec.idColumn ? { idColumn: spec.idColumn } : {}) },
        resources,
        pollMs: m.pollMs,
        batching: { enabled: m.batching, maxBatchRows: m.maxBatchRows, maxQueueDelayUs: m.maxQueueDelayUs },
      });
      deployments.push(deployment);
      const ranking = spec.ranking ? new ServedRanking(spec.ranking, spec.ranking.candidates ? { postgres: spec.ranking.candidates, settings: { url: config.postgresUrl }, exportDir: path.join(config.dataDir, 'ranking') } : { file: spec.features! }) : undefined;
      if (ranking) rankings.set(model.name, ranking);
      await deployment.loaded;
      // The first version's candidates are read before listening: a bad source (a duplicate pair, a missing column) fails here.
      if (ranking) await ranking.candidatesFor(deployment.current!);
      const serving = deployment.current!.model;
      const features = deployment.current!.store.location; // opened before listening: a bad store spec fails here
      served.set(model.name, { file, deployment, describe: (at) => `${spec.model} → ${serving.name}:${serving.version} (${serving.sha256.slice(0, 12)}) at ${at}, features from ${features}` });
    }
    if (opts.mlflowModel !== undefined && !served.has(opts.mlflowModel)) throw new InvalidInputError(`--mlflow-model ${opts.mlflowModel} is not served (served: ${[...served.keys()].join(', ')})`, [], { mlflowModel: opts.mlflowModel });
    const limits = { ...config.serveLimits, ...opts.limits };
    durable = opts.durableDeployment === undefined ? undefined : await durableTarget(config.temporal, opts.durableDeployment);
    const server = await startInferenceServer(deployments, {
      ...(durable ? { durable } : {}),
      port: opts.port,
      host: opts.host,
      limits,
      tokens,
      ...(opts.mlflowModel !== undefined ? { mlflowModel: opts.mlflowModel } : {}),
      rankings,
      log,
    });
    const grpc =
      opts.grpcPort === undefined
        ? undefined
        : await startGrpcServer(deployments, { rankings, port: opts.grpcPort, host: opts.host, requestTimeoutMs: limits.requestTimeoutMs, maxMessageBytes: limits.maxBodyBytes, ...(tokens.length > 0 ? { tokens: new Set(tokens) } : {}), logger: log }).catch(async (err: unknown) => {
            await server.close();
            throw err;
          });
    const mlflow = opts.mlflowModel ?? (served.size === 1 ? [...served.keys()][0] : undefined);
    const settings = `${m.pollMs > 0 ? `a model served by alias or latest version checked for a new version every ${m.pollMs} ms` : 'no alias polling'}; batching ${m.batching ? `up to ${m.maxBatchRows} rows, ${m.maxQueueDelayUs} µs` : 'off'}`;
    return {
      ...server,
      ...(grpc ? { grpc } : {}),
      deployments,
      describe: [...served.entries()].map(([name, s]) => s.describe(`${server.url}/v2/models/${name}/infer${name === mlflow ? ` and ${server.url}/invocations` : ''}${grpc ? `, gRPC ${grpc.address}` : ''}`)),
      settings,
      auth: tokens.length > 0 ? `bearer-token auth on (${tokens.length} token${tokens.length === 1 ? '' : 's'}); open without a token: /v2/health/*, /ping, /health` : 'no auth (--token-file or INFERFLOW_SERVE_TOKENS turn it on)',
      shutdown: async () => {
        await Promise.all([server.close(), grpc?.close()]);
        await Promise.all(deployments.map((d) => d.close()));
        await durable?.client.connection.close();
        await resources.close();
      },
    };
  } catch (err) {
    await Promise.all(deployments.map((d) => d.close()));
    await durable?.client.connection.close();
    await resources.close();
    throw err;
  }
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve <specs...>')
    .description(
      'Serve pipeline specs online over HTTP: request fields in, features from the online store, the same on-demand features and transforms as batch, predictions out. ' +
        'Each spec (a file, or every *.json in a directory) is served under its model\'s name, through the Open Inference Protocol (KServe V2 REST, binary tensor data included; V2 gRPC with --grpc-port) and MLflow\'s /invocations.',
    )
    .option('--port <port>', 'port (0 picks a free one)', nonNegativeInt, 8080)
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--store <store>', 'online store: sqlite[:PATH] (default: the embedded store under INFERFLOW_DATA_DIR) or redis[:KEY_PREFIX] (server: INFERFLOW_REDIS_URL)', parseStoreOption)
    .option('--grpc-port <port>', 'also serve KServe V2 gRPC (inference.GRPCInferenceService, what tritonclient.grpc speaks) on this port (0 picks a free one; default: no gRPC)', nonNegativeInt)
    .option('--token-file <file>', 'require Authorization: Bearer <token> with one of the tokens in this file (one a line; also INFERFLOW_SERVE_TOKENS); health routes stay open')
    .option('--mlflow-model <name>', 'the model POST /invocations answers with when several are served (default: the only one)')
    .option('--durable-deployment <name>', 'answer V2 requests sent with ?durable=true (or Inferflow-Durable: true) through this online deployment (inferflow online deploy --name): one Update-with-Start each, kept in its workflow history; needs TEMPORAL_ADDRESS (default: no Temporal connection, durable requests are a 400)')
    .option('--poll-ms <ms>', 'a model served by alias (name@production) or latest version: look for a new version this often; 0 never (default INFERFLOW_SERVE_POLL_MS, 5000)', nonNegativeInt)
    .option('--batching', 'coalesce concurrent requests into one model call (default: on, INFERFLOW_SERVE_BATCHING)')
    .option('--no-batching', 'answer every request with its own model call')
    .option('--max-batch-rows <n>', 'dynamic batching: most rows in one coalesced call (default INFERFLOW_SERVE_MAX_BATCH_ROWS, 64)', positiveInt)
    .option('--max-queue-delay-us <us>', 'dynamic batching: longest a request waits for a busy model, in µs (default INFERFLOW_SERVE_MAX_QUEUE_DELAY_US, 500)', nonNegativeInt)
    .addHelpText(
      'after',
      examples(`
      inferflow serve examples/pipelines/fraud-features.json --store redis
      inferflow serve specs/ --mlflow-model fraud-features --token-file /run/secrets/serve-tokens
      curl -s localhost:8080/v2/models/fraud-features
      curl -s localhost:8080/v2/models/fraud-features/infer -d '{"inputs": [
        {"name": "customer_id", "datatype": "INT64", "shape": [1], "data": [17]},
        {"name": "event_timestamp", "datatype": "BYTES", "shape": [1], "data": ["2026-10-15T12:00:00Z"]},
        {"name": "amount", "datatype": "FP64", "shape": [1], "data": [120.5]},
        {"name": "merchant_category", "datatype": "BYTES", "shape": [1], "data": ["travel"]},
        {"name": "lat", "datatype": "FP64", "shape": [1], "data": [52.5]},
        {"name": "lon", "datatype": "FP64", "shape": [1], "data": [13.4]}],
        "parameters": {"as_of": "2026-10-15T12:00:00Z"}}'
      curl -s localhost:8080/invocations -H 'content-type: application/json' -d '{"dataframe_records": [
        {"customer_id": 17, "event_timestamp": "2026-10-15T12:00:00Z", "amount": 120.5, "merchant_category": "travel", "lat": 52.5, "lon": 13.4}]}'
      curl -s localhost:8080/metrics
      inferflow serve examples/pipelines/fraud-features.json --store redis --durable-deployment fraud-online
      curl -s 'localhost:8080/v2/models/fraud-online/infer?durable=true' -d '{"id": "req-1", "inputs": [ …as above… ]}'   # parameters.workflow_id, update_id
      inferflow serve examples/pipelines/fraud-features.json --store redis --grpc-port 8001
      python3 -c 'import tritonclient.grpc as g; print(g.InferenceServerClient("localhost:8001").get_model_metadata("fraud-features"))'
    `) +
        `
Routes: GET /v2, /v2/health/live, /v2/health/ready, /v2/models/{m}[/versions/{v}][/ready]; POST /v2/models/{m}[/versions/{v}]/infer;
POST /invocations (dataframe_split, dataframe_records, instances, inputs; or text/csv); GET /ping, /health, /metrics.
gRPC (--grpc-port): inference.GRPCInferenceService (the KServe V2 proto in server/proto/), numpy tensors from tritonclient.grpc or typed contents.
Fill the online store first (inferflow features materialize). parameters.as_of judges feature freshness (the views' TTL) at that time instead of now.
Limits (docs/configuration.md): INFERFLOW_SERVE_DEADLINE_MS (504 past it), INFERFLOW_SERVE_MAX_BODY_BYTES (413), INFERFLOW_SERVE_MAX_CONNECTIONS.
SIGTERM/SIGINT drain: no new connections, requests in flight answered, then the stores close. Details: docs/online.md.
`,
    )
    .action(async (specs: string[], opts: ServeOptions) => {
      const { loadConfig } = await import('../lib/config/env.js');
      const { createLogger } = await import('../lib/log.js');
      const log = createLogger(loadConfig().logLevel, 'inferflow-serve');
      const s = await serve(specs, opts);
      for (const line of s.describe) log.info(`serving ${line}`);
      log.info(s.auth);
      log.info(s.settings);
      const signal = await new Promise<string>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      log.info(`${signal}: draining (no new connections; requests in flight finish)`);
      await s.shutdown();
      log.info('stopped');
    });
}

/** The Temporal client and the online deployment durable requests go to (NotFound, naming it, when it was never deployed). */
async function durableTarget(temporal: TemporalConfig, name: string): Promise<DurableTarget> {
  const { connectClient } = await import('../client/index.js');
  const { durableGrpcRetry, findDeployment } = await import('../client/online.js');
  const client = await connectClient(temporal, { interceptors: [durableGrpcRetry()] });
  try {
    return { client, deployment: await findDeployment(client, name) };
  } catch (err) {
    await client.connection.close();
    throw err;
  }
}
