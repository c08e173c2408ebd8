/**
 * Option parsers and help pieces shared by the CLI's command modules. Only light modules at
 * the top: the Temporal SDK, DuckDB and ONNX Runtime load inside the actions that use them.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Client, ConnectionOptions } from '@temporalio/client';
import { OVERLAP_NAMES, type OverlapName } from '../client/overlap';
import type { InferflowConfig } from '../lib/config/env';
import type { Resources } from '../lib/pipeline/resources';

/** The "Examples:" block of a command's --help. */
export const examples = (text: string) => `\nExamples:\n${text.trim().split('\n').map((l) => `  ${l.trim()}`).join('\n')}\n`;

/** Repeatable option: every value, in order. */
export const collect = (v: string, prev: string[] = []) => [...prev, v];

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** A positive integer with optional `_` separators (`100_000`), for counts in benchmark flags. */
export const positiveCount = (value: string): number => positiveInt(value.replace(/_/g, ''));

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number ≥ 0');
  return n;
}

/** What the schedule timing options parse to (see timingFromFlags in client/schedules.ts). */
export interface ScheduleFlags {
  cron?: string[];
  every?: string[];
  timezone?: string;
  overlap: OverlapName;
  catchup?: string;
  paused?: boolean;
}

/** --cron, --every, --timezone, --overlap, --catchup, --paused: the same for every kind of schedule. */
export function addScheduleTimingOptions(cmd: Command, cronExample: string): Command {
  return cmd
    .option('--cron <expr>', `cron expression, repeatable (e.g. "${cronExample}")`, collect)
    .option('--every <duration>', 'fixed interval, repeatable (e.g. 1h, 15m, 1d)', collect)
    .option('--timezone <tz>', 'IANA time zone for cron expressions (default UTC)')
    .addOption(new Option('--overlap <policy>', 'when a run is still going at the next time').choices(OVERLAP_NAMES).default('skip'))
    .option('--catchup <duration>', 'catch up runs missed within this window after downtime (e.g. 1h)')
    .option('--paused', 'create it paused');
}

/** Run `fn` with a client connected to the configured Temporal server; the connection is closed afterwards. */
export async function withTemporal<T>(fn: (client: Client, config: InferflowConfig) => Promise<T>, options: Pick<ConnectionOptions, 'interceptors'> = {}): Promise<T> {
  // Loaded here, not at the top: commands that never talk to Temporal start without the SDK.
  const { loadConfig } = await import('../lib/config/env.js');
  const { connectClient } = await import('../client/index.js');
  const config = loadConfig();
  const client = await connectClient(config.temporal, options);
  try {
    return await fn(client, config);
  } finally {
    await client.connection.close();
  }
}

/**
 * Run `fn` with a Resources for this command (lib/pipeline/resources.ts: registry, model cache,
 * online stores), closed afterwards. `registry` replaces INFERFLOW_REGISTRY (`models --registry`).
 * The command prints its own result: Resources log warnings and errors only.
 */
export async function withResources<T>(fn: (resources: Resources, config: InferflowConfig) => Promise<T>, options: { registry?: string | undefined } = {}): Promise<T> {
  const [{ loadConfig }, { createResources }, { createLogger }] = await Promise.all([import('../lib/config/env.js'), import('../lib/pipeline/resources.js'), import('../lib/log.js')]);
  const loaded = loadConfig();
  const config = options.registry ? { ...loaded, registry: options.registry } : loaded;
  const resources = createResources(config, { logger: createLogger('warn') });
  try {
    return await fn(resources, config);
  } finally {
    await resources.close();
  }
}

/** `--json` output: one JSON document on stdout, indented for people, parseable by scripts. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}
