/**
 * `inferflow online deploy|predict|status`: durable online predictions. A deployment is N
 * `onlineInference` workflows (`<name>-p<i>`); a request goes to one by a hash of its request
 * id, through Update-with-Start, and the request id is the Update id (client/online.ts).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { OnlineStoreSpec } from '../lib/features/online';
import { parseStoreOption } from './features';
import { examples, positiveInt, printJson, withTemporal } from './options';

interface DeployFlags {
  name?: string;
  partitions: number;
  store?: OnlineStoreSpec;
  perRun?: number;
  json?: boolean;
}

interface PredictFlags {
  requestId?: string;
  json?: string;
  file?: string;
  asOf?: string;
}

const DEFAULT_PARTITIONS = 1;

/** The request body: `{"rows": [ … ]}`, one row object, or a list of rows. */
function requestBody(raw: string, where: string): { rows: unknown[]; asOf?: unknown } {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new InvalidArgumentError(`${where} is not JSON: ${(err as Error).message}`);
  }
  if (Array.isArray(v)) return { rows: v };
  if (typeof v === 'object' && v !== null && 'rows' in v) return v as { rows: unknown[] };
  return { rows: [v] };
}

async function durableRetry() {
  const { durableGrpcRetry } = await import('../client/online.js');
  return { interceptors: [durableGrpcRetry()] };
}

export function registerOnlineCommands(program: Command): void {
  const online = program
    .command('online')
    .description('Durable, audited online predictions: a deployment of N onlineInference workflows answering predict Updates (docs/online.md).')
    .addHelpText('after', examples(`
      inferflow online deploy examples/pipelines/fraud-features.json --partitions 4 --store redis
      inferflow online predict fraud-features --request-id req-1 --json '{"customer_id": 17, "event_timestamp": "2026-10-15T12:00:00Z", "amount": 120.5, "merchant_category": "travel", "lat": 52.5, "lon": 13.4}'
      inferflow online status fraud-features
    `));

  online
    .command('deploy <spec>')
    .description("Start (or ensure) a deployment's partitions for a pipeline spec; idempotent: running partitions are left as they are. The spec's path is recorded on every partition.")
    .option('--name <name>', "deployment name (default: the spec's file name without .json); partitions are <name>-p0 … <name>-p<N-1>")
    .option('--partitions <n>', `workflows sharing the requests (each answers at most 10 Updates at a time; default ${DEFAULT_PARTITIONS})`, positiveInt, DEFAULT_PARTITIONS)
    .option('--store <store>', 'online store: sqlite[:PATH] (default: the embedded store under the worker\'s INFERFLOW_DATA_DIR) or redis[:KEY_PREFIX] (worker: INFERFLOW_REDIS_URL)', parseStoreOption)
    .option('--per-run <n>', 'Updates per workflow run before it continues as new (default 500, at most 1,500)', positiveInt)
    .option('--json', 'print the partitions as JSON')
    .addHelpText('after', examples(`
      inferflow online deploy examples/pipelines/fraud-features.json --store redis
      inferflow online deploy examples/pipelines/fraud-features.json --name fraud-online --partitions 4 --store redis
    `) + '\nA worker (inferflow worker) must run on the task queue (INFERFLOW_TASK_QUEUE). Deploying again with the same name changes nothing that runs:\ncancel the partitions (temporal workflow cancel --workflow-id <name>-p<i>) to deploy a new spec under that name.\n')
    .action(async (specFile: string, opts: DeployFlags) => {
      const { loadPipelineSpec } = await import('../lib/pipeline/spec.js');
      const { ensureDeployment } = await import('../client/online.js');
      const spec = await loadPipelineSpec(specFile);
      const name = opts.name ?? path.basename(specFile).replace(/\.json$/i, '');
      await withTemporal(async (client, config) => {
        const input = {
          model: spec.model,
          ...(spec.featureViews ? { featureViews: spec.featureViews } : {}),
          ...(spec.onDemand ? { onDemand: spec.onDemand } : {}),
          ...(spec.idColumn ? { idColumn: spec.idColumn } : {}),
          ...(opts.store ? { store: opts.store } : {}),
          ...(opts.perRun ? { maxPredictionsPerRun: opts.perRun } : {}),
        };
        const parts = await ensureDeployment(client, { name, partitions: opts.partitions, taskQueue: config.temporal.taskQueue, input, spec: path.resolve(specFile) });
        if (opts.json) return printJson({ name, partitions: parts });
        console.log(`deployment ${name}: ${parts.length} partition(s) on task queue ${config.temporal.taskQueue}, model ${spec.model}`);
        for (const p of parts) console.log(`  ${p.workflowId}  run ${p.runId}`);
        console.log(`predict: inferflow online predict ${name} --request-id <id> --json '{…}'`);
      });
    });

  online
    .command('predict <deployment>')
    .description('Send one durable prediction (Update-with-Start on the partition its request id hashes to) and print the answer, with the workflow and Update id where it is recorded. Sending the same request id again returns the recorded answer.')
    .option('--request-id <id>', 'idempotency key, used as the Update id (default: a random UUID)')
    .option('--json <request>', 'the request: one row object, a list of rows, or {"rows": [ … ], "asOf": "…"}')
    .option('--file <path>', 'read the request from a JSON file instead (- for stdin)')
    .option('--as-of <time>', 'ISO 8601: judge feature freshness at this time instead of now')
    .addHelpText('after', examples(`
      inferflow online predict fraud-features --request-id req-1 --as-of 2026-10-15T12:00:00Z --json '{"customer_id": 17, "event_timestamp": "2026-10-15T12:00:00Z", "amount": 120.5, "merchant_category": "travel", "lat": 52.5, "lon": 13.4}'
      inferflow online predict fraud-features --request-id req-2 --file request.json
    `) + '\nPrints {"workflowId", "updateId", "partition", "answer": {label, score, featureStatus, model, requestId}}. Exit code 2 when the request is rejected (InvalidInput names the field).\n')
    .action(async (name: string, opts: PredictFlags) => {
      if ((opts.json === undefined) === (opts.file === undefined)) throw new InvalidArgumentError('give the request with exactly one of --json or --file');
      const raw = opts.json ?? (opts.file === '-' ? await fs.readFile('/dev/stdin', 'utf8') : await fs.readFile(opts.file!, 'utf8'));
      const body = requestBody(raw, opts.json !== undefined ? '--json' : opts.file!);
      const { findDeployment, predictOnDeployment } = await import('../client/online.js');
      await withTemporal(async (client) => {
        const deployment = await findDeployment(client, name);
        const req = { ...body, ...(opts.asOf ? { asOf: opts.asOf } : {}), ...(opts.requestId ? { requestId: opts.requestId } : {}) } as Parameters<typeof predictOnDeployment>[2];
        const r = await predictOnDeployment(client, deployment, req);
        printJson({ workflowId: r.workflowId, updateId: r.updateId, partition: r.partition, answer: r.answer });
      }, await durableRetry());
    });

  online
    .command('status <deployment>')
    .description("Each partition: its state, run id, predictions (this run and all), continue-as-new count, pinned model version and in-flight Updates.")
    .option('--json', 'print as JSON')
    .addHelpText('after', examples(`
      inferflow online status fraud-features
      inferflow online status fraud-features --json
    `))
    .action(async (name: string, opts: { json?: boolean }) => {
      const { findDeployment, deploymentStatus } = await import('../client/online.js');
      await withTemporal(async (client) => {
        const deployment = await findDeployment(client, name);
        const parts = await deploymentStatus(client, deployment);
        if (opts.json) return printJson({ name, spec: deployment.spec ?? null, taskQueue: deployment.taskQueue, partitions: parts });
        const { table } = await import('../lib/util/format.js');
        console.log(`deployment ${name}: ${deployment.partitions} partition(s), spec ${deployment.spec ?? '(not recorded)'}, task queue ${deployment.taskQueue}`);
        const cells = parts.map((p) => {
          const s = p.status;
          const model = s?.model ? `${s.model.name}:${s.model.version}` : '-';
          return [p.workflowId, p.state, s ? String(s.servedThisRun) : '-', s ? String(s.served) : '-', s ? String(s.failed) : '-', s ? String(s.continuedAsNew) : '-', model, s ? String(s.inFlight) : '-'];
        });
        console.log(table(cells, ['partition', 'state', 'this run', 'served', 'failed', 'continued as new', 'model', 'in flight']));
      });
    });
}
