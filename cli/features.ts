/**
 * `inferflow features …`: point-in-time retrieval to Parquet, online lookup, and the
 * materializeFeatures workflow. Registered by cli/index.ts.
 */
import { Command, InvalidArgumentError } from 'commander';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { MaterializeFeaturesInput, MaterializeFeaturesResult } from '../workflows/features/shared';
import type { materializeFeatures } from '../workflows/features/materialize';
import { addScheduleTimingOptions, collect, examples, withResources, withTemporal, type ScheduleFlags } from './options';
import { InvalidInputError } from '../lib/errors';
import type { EntityKeyInput, FeatureView, FeatureViewInput, OnlineFeatureVector, OnlineStoreSpec } from '../lib/features';

/**
 * Read feature view specs from JSON or YAML files: a view, a list of views, or `{"views": [...]}`.
 * Relative file-source paths are resolved against the spec file's directory.
 */
export async function readViewFiles(files: readonly string[]): Promise<FeatureViewInput[]> {
  const views: FeatureViewInput[] = [];
  for (const file of files) {
    const text = await fs.readFile(file, 'utf8');
    let doc: unknown;
    if (/\.ya?ml$/i.test(file)) {
      let yaml: { parse: (s: string) => unknown };
      try {
        yaml = await import('yaml');
      } catch {
        throw new InvalidArgumentError(`${file}: reading YAML needs the "yaml" package (npm install yaml), or write the view as JSON`);
      }
      doc = yaml.parse(text);
    } else {
      try {
        doc = JSON.parse(text);
      } catch (err) {
        throw new InvalidArgumentError(`${file}: not valid JSON (${(err as Error).message})`);
      }
    }
    // A view, a list of views, {"views": […]} (materializeFeatures input) or {"featureViews": […]} (a pipeline spec).
    const obj = typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as { views?: unknown; featureViews?: unknown }) : undefined;
    const list = Array.isArray(doc) ? (doc as unknown[]) : Array.isArray(obj?.views) ? obj.views : Array.isArray(obj?.featureViews) ? obj.featureViews : [doc];
    for (const raw of list) {
      const v = raw as FeatureViewInput;
      const src = (v as { source?: { type?: unknown; path?: unknown } } | null)?.source;
      if (src?.type === 'file' && typeof src.path === 'string' && !/^[a-z][a-z0-9+.-]*:\/\//i.test(src.path) && !path.isAbsolute(src.path)) {
        views.push({ ...v, source: { type: 'file', path: path.resolve(path.dirname(file), src.path) } });
      } else views.push(v);
    }
  }
  if (views.length === 0) throw new InvalidArgumentError('give at least one --view file');
  return views;
}

/** `--store`: `sqlite` (default), `sqlite:PATH`, `redis` or `redis:KEY_PREFIX`. The Redis server comes from INFERFLOW_REDIS_URL. */
export function parseStoreOption(value: string): OnlineStoreSpec {
  const [type, ...rest] = value.split(':');
  const arg = rest.join(':');
  if (type === 'sqlite') return arg ? { type: 'sqlite', path: path.resolve(arg) } : { type: 'sqlite' };
  if (type === 'redis') return arg ? { type: 'redis', keyPrefix: arg } : { type: 'redis' };
  throw new InvalidArgumentError('expected sqlite[:PATH] or redis[:KEY_PREFIX]');
}

/** `--key 42`, `--key customer_id=42,country=DE` or `--key '{"customer_id": 42}'`. */
export function parseKeyOption(value: string): EntityKeyInput {
  const v = value.trim();
  if (v.startsWith('{')) {
    try {
      return JSON.parse(v) as Record<string, string | number>;
    } catch {
      throw new InvalidArgumentError(`--key ${value}: not valid JSON`);
    }
  }
  if (!v.includes('=')) return v;
  return Object.fromEntries(
    v.split(',').map((pair) => {
      const at = pair.indexOf('=');
      if (at <= 0) throw new InvalidArgumentError(`--key ${value}: expected COLUMN=VALUE[,COLUMN=VALUE…]`);
      return [pair.slice(0, at).trim(), pair.slice(at + 1)];
    }),
  );
}

/**
 * Online vectors as JSON: int64 values as strings (no precision lost beyond 2^53, as in
 * protobuf's JSON mapping), NaN and ±Infinity as the strings "NaN", "Infinity", "-Infinity".
 */
export function vectorsToJson(vectors: OnlineFeatureVector[]): string {
  return JSON.stringify(
    vectors,
    (_k, x: unknown) => {
      if (typeof x === 'bigint') return x.toString();
      if (typeof x === 'number' && !Number.isFinite(x)) return String(x);
      return x;
    },
    2,
  );
}

/** Online vectors for people: one line per key and feature, values as JSON shows them. */
async function vectorsTable(vectors: OnlineFeatureVector[]): Promise<string> {
  const { table } = await import('../lib/util/format.js');
  const text = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'string' ? v : typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v));
  const rows = vectors.flatMap((vec) => {
    const key = Object.entries(vec.key).map(([k, v]) => `${k}=${v}`).join(',');
    return Object.entries(vec.features).map(([name, f]) => [key, name, text(f.value), f.status, f.eventTime ? f.eventTime.toISOString() : '']);
  });
  return rows.length ? table(rows, ['key', 'feature', 'value', 'status', 'event time']) : 'no features';
}

async function pickView(views: FeatureViewInput[], name: string | undefined): Promise<FeatureView> {
  const { parseFeatureView } = await import('../lib/features/spec.js');
  const parsed = views.map((v) => parseFeatureView(v));
  if (name === undefined) {
    if (parsed.length > 1) throw new InvalidArgumentError(`the view files hold ${parsed.length} views (${parsed.map((v) => v.name).join(', ')}): choose one with --name`);
    return parsed[0]!;
  }
  const v = parsed.find((x) => x.name === name);
  if (!v) throw new InvalidInputError(`no view named ${name}`, [`--name: views are ${parsed.map((x) => x.name).join(', ')}`]);
  return v;
}

export function registerFeatureCommands(program: Command): void {
  const features = program.command('features').description('Feature store: point-in-time training sets, online lookup, materialisation into the online store.');

  features
    .command('historical')
    .description('Join feature views point-in-time onto a spine (entity keys + timestamps) and write Parquet: every row gets the latest values at or before its timestamp, within the TTL, never later ones.')
    .requiredOption('--view <file>', 'feature view specs (JSON or YAML): a view, a list, {"views": […]} or a pipeline spec\'s "featureViews"; repeatable', collect)
    .option('--spine <file>', 'Parquet or CSV spine (path, glob, directory, file:// or s3://)')
    .option('--as-of <time>', 'instead of --spine: every entity of the views as of this ISO 8601 time')
    .requiredOption('-o, --output <file>', 'Parquet file to write')
    .option('--timestamp-field <column>', "the spine's timestamp column (default event_timestamp)")
    .addHelpText('after', examples(`
      inferflow features historical --view examples/pipelines/fraud-features.json --spine examples/data/card_requests.parquet -o /tmp/training.parquet
      inferflow features historical --view examples/pipelines/fraud-features.json --as-of 2026-10-15T00:00:00Z -o /tmp/snapshot.parquet
      inferflow features historical --view views.yaml --spine s3://bucket/labels/ --timestamp-field label_ts -o training.parquet
    `))
    .action(async (opts: { view: string[]; spine?: string; asOf?: string; output: string; timestampField?: string }) => {
      if ((opts.spine === undefined) === (opts.asOf === undefined)) throw new InvalidArgumentError('give exactly one of --spine and --as-of');
      const asOf = opts.asOf !== undefined ? new Date(opts.asOf) : undefined;
      if (asOf && Number.isNaN(asOf.getTime())) throw new InvalidArgumentError('--as-of must be an ISO 8601 time');
      const { loadConfig } = await import('../lib/config/env.js');
      const { getHistoricalFeatures } = await import('../lib/features/index.js');
      const { int, table } = await import('../lib/util/format.js');
      const config = loadConfig();
      const started = Date.now();
      const r = await getHistoricalFeatures({
        spine: asOf ? { allEntitiesAsOf: asOf } : opts.spine!,
        views: await readViewFiles(opts.view),
        output: opts.output,
        ...(opts.timestampField ? { entityTimestampField: opts.timestampField } : {}),
        postgres: { url: config.postgresUrl },
      });
      console.log(`wrote ${int(r.rows)} rows to ${r.output} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      console.log(table(r.columns.map((c) => [c.name, c.type]), ['column', 'type']));
    });

  features
    .command('online')
    .description('Look up the latest feature values of entity keys in the online store: JSON vectors in key order, each value with its status (PRESENT, NULL, NOT_FOUND, STALE) and event time.')
    .requiredOption('--view <file>', 'feature view spec file (JSON or YAML)', collect)
    .option('--name <view>', 'the view to use when the files hold several')
    .option('-k, --key <key>', 'entity key: 42, COLUMN=VALUE[,COLUMN=VALUE…] or a JSON object; repeatable', collect)
    .option('--keys <file>', 'JSON file with a list of keys (same forms as --key, numbers or objects)')
    .option('--store <store>', 'sqlite[:PATH] (default: the embedded store under INFERFLOW_DATA_DIR) or redis[:KEY_PREFIX] (server: INFERFLOW_REDIS_URL)', parseStoreOption)
    .option('--now <time>', 'judge freshness (the TTL) as of this ISO 8601 time instead of now')
    .option('--json', 'print the vectors as JSON: [{key, features: {NAME: {value, status, eventTime}}}] in key order')
    .addHelpText('after', examples(`
      inferflow features online --view examples/pipelines/fraud-features.json --key 17 --key 42 --now 2026-10-15T12:00:00Z
      inferflow features online --view examples/pipelines/fraud-features.json --key 17 --json | jq '.[0].features'
      echo '[1, 2, 3]' > /tmp/keys.json && inferflow features online --view examples/pipelines/fraud-features.json --store redis --keys /tmp/keys.json
      inferflow features online --view views.yaml --name merchant_stats --key merchant_id=m-17,country=DE --store redis:myapp:features
    `) + '\nThe table has one line per key and feature. In --json, int64 values are strings (exact beyond 2^53), NaN/±Infinity are "NaN"/"Infinity"/"-Infinity"; STALE and NOT_FOUND values are null.\n')
    .action(async (opts: { view: string[]; name?: string; key?: string[]; keys?: string; store?: OnlineStoreSpec; now?: string; json?: boolean }) => {
      const now = opts.now !== undefined ? new Date(opts.now) : undefined;
      if (now && Number.isNaN(now.getTime())) throw new InvalidArgumentError('--now must be an ISO 8601 time');
      const view = await pickView(await readViewFiles(opts.view), opts.name);
      const keys: EntityKeyInput[] = (opts.key ?? []).map(parseKeyOption);
      if (opts.keys) {
        const list = JSON.parse(await fs.readFile(opts.keys, 'utf8')) as unknown;
        if (!Array.isArray(list)) throw new InvalidArgumentError(`--keys ${opts.keys}: expected a JSON list`);
        keys.push(...(list as EntityKeyInput[]));
      }
      if (keys.length === 0) throw new InvalidArgumentError('give at least one --key or --keys FILE');
      const { getOnlineFeatures } = await import('../lib/features/online/index.js');
      const vectors = await withResources((resources) => getOnlineFeatures(resources.onlineStore(opts.store), view, keys, now ? { now } : {}));
      if (opts.json) console.log(vectorsToJson(vectors));
      else console.log(await vectorsTable(vectors));
    });

  features
    .command('materialize')
    .description('Start a materializeFeatures run: copy the latest values per entity with event time in (start, end] from each view\'s offline source into the online store (idempotent; an older window never overwrites newer values).')
    .requiredOption('--view <file>', 'feature view spec file (JSON or YAML); every view in it is materialised; repeatable', collect)
    .option('--store <store>', 'sqlite[:PATH] (default: the embedded store under the worker\'s INFERFLOW_DATA_DIR) or redis[:KEY_PREFIX] (server: the worker\'s INFERFLOW_REDIS_URL)', parseStoreOption)
    .option('--start <time>', 'ISO 8601, exclusive (default: from the beginning)')
    .option('--end <time>', 'ISO 8601, inclusive (default: the run\'s start time)')
    .option('--workflow-id <id>', 'workflow id (default: materialize-<time>-<random>)')
    .option('--wait', 'wait for the run and print its summary')
    .addHelpText('after', examples(`
      inferflow features materialize --view examples/pipelines/fraud-features.json --wait
      inferflow features materialize --view examples/pipelines/fraud-features.json --store redis --start 2026-10-14T00:00:00Z --end 2026-10-15T00:00:00Z --wait
      inferflow features materialize --view views.yaml --store redis:myapp:features
    `) + '\nA worker (inferflow worker) must be running; it reads the sources and writes the store. To run it on a schedule: inferflow features schedule (or a Temporal schedule of workflow type materializeFeatures with the same JSON input and no "end": each run uses its scheduled time).\n')
    .action(async (opts: { view: string[]; store?: OnlineStoreSpec; start?: string; end?: string; workflowId?: string; wait?: boolean }) => {
      const input: MaterializeFeaturesInput = {
        views: await readViewFiles(opts.view),
        ...(opts.store ? { store: opts.store } : {}),
        ...(opts.start ? { start: opts.start } : {}),
        ...(opts.end ? { end: opts.end } : {}),
      };
      for (const k of ['start', 'end'] as const) if (input[k] !== undefined && Number.isNaN(Date.parse(input[k]))) throw new InvalidArgumentError(`--${k} must be an ISO 8601 time`);
      await withTemporal(async (client, config) => {
        const { defaultWorkflowId } = await import('../client/index.js');
        const { MATERIALIZE_WORKFLOW_TYPE, materializeProgressQuery } = await import('../workflows/features/shared.js');
        const { int, table } = await import('../lib/util/format.js');
        const handle = await client.workflow.start<typeof materializeFeatures>(MATERIALIZE_WORKFLOW_TYPE, {
          taskQueue: config.temporal.taskQueue,
          workflowId: opts.workflowId ?? defaultWorkflowId('materialize'),
          args: [input],
        });
        console.log(`started ${handle.workflowId} on task queue ${config.temporal.taskQueue}`);
        if (!opts.wait) return;
        const r: MaterializeFeaturesResult = await handle.result();
        const p = await handle.query(materializeProgressQuery).catch(() => undefined);
        console.log(`materialised ${r.views.length} view(s), event times (${r.start ?? '-∞'}, ${r.end}] in ${(r.durationMs / 1000).toFixed(1)} s${p ? ` (${p.phase})` : ''}`);
        console.log(
          table(
            r.views.map((v) => [v.view, v.store, int(v.rowsRead), int(v.entities), int(v.written), int(v.unchanged), int(v.skippedOlder)]),
            ['view', 'store', 'rows read', 'entities', 'written', 'unchanged', 'skipped (older)'],
          ),
        );
      });
    });

  addScheduleTimingOptions(
    features
      .command('schedule')
      .description('Create a Temporal Schedule that runs materializeFeatures: each run copies the rows with event time up to its scheduled time (and after scheduled time − lookback, when given) into the online store.')
      .requiredOption('--view <file>', 'feature view spec file (JSON or YAML); every view in it is materialised; repeatable', collect)
      .requiredOption('--id <scheduleId>', 'schedule id (manage it with inferflow schedule describe|pause|unpause|trigger|backfill|delete)')
      .option('--store <store>', 'sqlite[:PATH] (default: the embedded store under the worker\'s INFERFLOW_DATA_DIR) or redis[:KEY_PREFIX]', parseStoreOption)
      .option('--lookback <duration>', 'each run copies rows newer than scheduled time − lookback (e.g. 2h for an hourly schedule: an hour of overlap for late rows); default: all history up to the scheduled time'),
    '5 * * * *',
  )
    .addHelpText('after', examples(`
      inferflow features schedule --view examples/pipelines/fraud-features.json --id customer-stats-hourly --every 1h --lookback 2h --store redis
      inferflow features schedule --view views.yaml --id features-nightly --cron '15 2 * * *' --timezone Europe/Berlin --catchup 6h
      inferflow schedule trigger customer-stats-hourly
    `))
    .action(async (opts: ScheduleFlags & { view: string[]; id: string; store?: OnlineStoreSpec; lookback?: string }) => {
      const input: MaterializeFeaturesInput = {
        views: await readViewFiles(opts.view),
        ...(opts.store ? { store: opts.store } : {}),
        ...(opts.lookback ? { lookback: opts.lookback } : {}),
      };
      await withTemporal(async (client, config) => {
        const { createMaterializeSchedule, timingFromFlags } = await import('../client/schedules.js');
        const handle = await createMaterializeSchedule(client, {
          scheduleId: opts.id,
          input,
          taskQueue: config.temporal.taskQueue,
          ...timingFromFlags(opts),
        });
        const d = await handle.describe();
        console.log(`created schedule ${opts.id} (materializeFeatures, ${input.views.length} view(s)); next runs: ${d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()).join(', ') || '-'}`);
      });
    });
}
