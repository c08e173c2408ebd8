/**
 * On-demand features: TypeScript functions computed from request/event data and retrieved
 * features at prediction time (`amount / avg_amount_30d`, the hour of an event, a haversine
 * distance…). One definition serves batch (called once per chunk of rows, vectorised), online
 * and streaming (called with one row): the same code, so training and serving cannot drift
 * apart inside Inferflow.
 *
 * A feature module exports definitions made with `defineOnDemandFeature`. The operator
 * registers modules with the worker (INFERFLOW_MODULES=fraud=examples/features/fraud.ts) and a
 * pipeline names a feature by module name and export (`{ "name": "fraud.amountRatio" }`).
 * Inputs and outputs are declared with types, so a missing or mistyped input is reported
 * before anything is predicted.
 *
 * Column representation (the same as lib/transforms):
 *   - 'float64'   → Float64Array, NaN for missing
 *   - 'timestamp' → Float64Array of epoch milliseconds (UTC), NaN for missing
 *   - 'string'    → (string | null)[], null for missing
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { OnDemandRef } from '../messages/on-demand';
import { pathToFileURL } from 'node:url';
import { ConfigError, type FeatureModuleConfig } from '../config/env';
import { InvalidInputError, InvalidValueError, SchemaMismatchError, TransientError, errorMessage } from '../errors';
import { POST_PROCESSOR_KIND, type LoadedPostProcessor, type PostProcessor } from './post-processor';
import { EXTERNAL_KIND, isExternalFeature, type ExternalFeature, type ExternalFeatures, type ExternalStatus } from './external';

export const ON_DEMAND_KIND = 'inferflow.on-demand/v1';

export type OnDemandInputDtype = 'float64' | 'timestamp' | 'string';
export type OnDemandOutputDtype = 'float64' | 'string';

/** The column a declared dtype arrives as (strings may hold null; numbers NaN for missing). */
export type ColumnOf<D> = D extends 'string' ? (string | null)[] : Float64Array;
export type OnDemandColumn = Float64Array | (string | null)[];

export interface OnDemandFeature {
  readonly kind: typeof ON_DEMAND_KIND;
  /** Names the function in errors and logs. */
  readonly name: string;
  readonly inputs: Readonly<Record<string, OnDemandInputDtype>>;
  readonly outputs: Readonly<Record<string, OnDemandOutputDtype>>;
  /** Vectorised: every input column has `rows` values; returns every output column with `rows` values. */
  readonly compute: (inputs: Record<string, OnDemandColumn>, rows: number) => Record<string, OnDemandColumn>;
}

/**
 * Declare an on-demand feature. `compute` receives typed input columns and must return every
 * declared output with one value per row (NaN / null for "no value": a later imputer may fill
 * it, otherwise the row is rejected before prediction with its key named).
 *
 *   export const amountRatio = defineOnDemandFeature({
 *     name: 'amount_ratio',
 *     inputs: { amount: 'float64', customer_stats__avg_amount_30d: 'float64' },
 *     outputs: { amount_ratio: 'float64' },
 *     compute: ({ amount, customer_stats__avg_amount_30d: avg }, rows) => {
 *       const out = new Float64Array(rows);
 *       for (let i = 0; i < rows; i++) out[i] = amount[i]! / avg[i]!;
 *       return { amount_ratio: out };
 *     },
 *   });
 */
export function defineOnDemandFeature<const I extends Record<string, OnDemandInputDtype>, const O extends Record<string, OnDemandOutputDtype>>(def: {
  name: string;
  inputs: I;
  outputs: O;
  compute: (inputs: { [K in keyof I]: ColumnOf<I[K]> }, rows: number) => { [K in keyof O]: ColumnOf<O[K]> };
}): OnDemandFeature {
  return Object.freeze({
    kind: ON_DEMAND_KIND,
    name: def.name,
    inputs: Object.freeze({ ...def.inputs }),
    outputs: Object.freeze({ ...def.outputs }),
    compute: def.compute as unknown as OnDemandFeature['compute'],
  });
}

/** How a pipeline names an on-demand feature: `<module name>.<export>` of a module registered with the worker. */
export type { OnDemandRef } from '../messages/on-demand';

/** A registered feature: computed from the row (OnDemandFeature) or looked up from an HTTP API (ExternalFeature, external.ts). */
export type LoadedOnDemand = (OnDemandFeature | ExternalFeature) & { ref: OnDemandRef };

/** Extensions of modules that need TypeScript compiled on import. */
const TYPESCRIPT_MODULE = /\.[cm]?tsx?$/i;

/**
 * Import a user's feature module by absolute path: the one place the worker, the model server
 * and the CLI load user code. JavaScript modules load with Node's own `import()`. TypeScript
 * modules load through tsx's scoped loader (`tsImport`), registered only when such a module is
 * imported, so the compiled JavaScript runs TypeScript feature modules without a loader flag
 * and without slowing every start-up.
 */
export async function importFeatureModule(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  if (!TYPESCRIPT_MODULE.test(file)) return (await import(url)) as Record<string, unknown>;
  const { tsImport } = await import('tsx/esm/api');
  return (await tsImport(url, __filename)) as Record<string, unknown>;
}

/**
 * The on-demand features a process may run: every `defineOnDemandFeature` export of the modules
 * the operator registered (INFERFLOW_MODULES), imported once when the registry is created.
 * Pipelines name features (`fraud.amountRatio`), never files, so workflow input cannot make a
 * worker import code.
 */
export class OnDemandRegistry {
  private constructor(
    private readonly features: ReadonlyMap<string, LoadedOnDemand>,
    readonly modules: readonly FeatureModuleConfig[],
    private readonly postProcessors: ReadonlyMap<string, LoadedPostProcessor> = new Map(),
  ) {}

  /**
   * Import every registered module.
   * @throws ConfigError a module file that does not exist or fails to load (naming INFERFLOW_MODULES)
   */
  static async load(modules: readonly FeatureModuleConfig[]): Promise<OnDemandRegistry> {
    const features = new Map<string, LoadedOnDemand>();
    const postProcessors = new Map<string, LoadedPostProcessor>();
    for (const m of modules) {
      const file = path.resolve(m.path);
      const what = `INFERFLOW_MODULES: feature module ${m.name} (${file})`;
      if (!fs.existsSync(file)) throw new ConfigError(`${what}: file not found`);
      let mod: Record<string, unknown>;
      try {
        mod = await importFeatureModule(file);
      } catch (err) {
        throw new ConfigError(`${what} failed to load: ${errorMessage(err)}`, { cause: err });
      }
      const moduleSha256 = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
      // Not named `exports`: in the compiled CommonJS that name is the module's own exports object.
      const members = { ...((mod.default as Record<string, unknown> | undefined) ?? {}), ...mod };
      for (const [exportName, value] of Object.entries(members)) {
        const p = value as Partial<PostProcessor> | null;
        if (p?.kind === POST_PROCESSOR_KIND && typeof p.compute === 'function') postProcessors.set(`${m.name}.${exportName}`, { ...(p as PostProcessor), registeredAs: `${m.name}.${exportName}`, moduleSha256 });
        const f = value as { kind?: unknown; compute?: unknown; request?: unknown } | null;
        const sync = f?.kind === ON_DEMAND_KIND && typeof f.compute === 'function';
        const external = f?.kind === EXTERNAL_KIND && typeof f.request === 'function';
        if (!sync && !external) continue;
        const name = `${m.name}.${exportName}`;
        features.set(name, { ...(f as OnDemandFeature | ExternalFeature), ref: { name } });
      }
    }
    return new OnDemandRegistry(features, modules.map((m) => ({ ...m })), postProcessors);
  }

  /** Registered post-processor names, sorted. */
  postProcessorNames(): string[] {
    return [...this.postProcessors.keys()].sort();
  }

  /** A registered post-processor, or undefined. */
  postProcessor(name: string): LoadedPostProcessor | undefined {
    return this.postProcessors.get(name);
  }

  /** Registered feature names, sorted. */
  names(): string[] {
    return [...this.features.keys()].sort();
  }

  /**
   * The registered features a pipeline names, in its order.
   * @throws InvalidInputError an unregistered name (naming it and listing the registered ones)
   */
  resolve(refs: readonly OnDemandRef[], field = 'onDemand'): LoadedOnDemand[] {
    const problems: string[] = [];
    const out: LoadedOnDemand[] = [];
    refs.forEach((r, n) => {
      const f = this.features.get(r.name);
      if (f) out.push(f);
      else problems.push(`${field}[${n}].name: ${JSON.stringify(r.name)} is not a registered on-demand feature (registered: ${this.names().join(', ') || 'none; set INFERFLOW_MODULES'})`);
    });
    if (problems.length > 0) throw new InvalidInputError('unknown on-demand feature', problems, { object: refs.map((r) => r.name).join(', ') });
    return out;
  }
}

function kindOf(col: unknown): 'numeric' | 'string' | 'other' {
  if (col instanceof Float64Array) return 'numeric';
  if (Array.isArray(col)) return 'string';
  return 'other';
}

/** One row of a batch, for finding which row a failing vectorised call choked on. */
function rowOf(inputs: Record<string, OnDemandColumn>, i: number): Record<string, OnDemandColumn> {
  return Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v instanceof Float64Array ? v.subarray(i, i + 1) : v.slice(i, i + 1)]));
}

/**
 * Run on-demand features over a batch of named columns, in order (a later feature may read an
 * earlier one's outputs). Returns the batch extended with every output.
 *
 * @throws SchemaMismatchError an input missing from the batch or of the wrong type (all listed); an output missing, mistyped or of the wrong length
 * @throws InvalidValueError the function threw: names the function and the first failing row (`rowLabel`)
 */
export function computeOnDemand(
  features: readonly LoadedOnDemand[],
  batch: Record<string, OnDemandColumn>,
  rows: number,
  rowLabel: (row: number) => string = (i) => `row ${i}`,
): Record<string, OnDemandColumn> {
  const cols: Record<string, OnDemandColumn> = { ...batch };
  for (const f of features) {
    const what = `on-demand feature ${f.name} (${f.ref.name})`;
    const problems: string[] = [];
    if (isExternalFeature(f)) {
      // Looked up by computeOnDemandAsync before this runs: its outputs are already columns.
      const absent = Object.keys(f.outputs).filter((o) => cols[o] === undefined);
      if (absent.length > 0) throw new InvalidInputError(`${what} calls an HTTP API: run it with computeOnDemandAsync (Pipeline.onDemandAsync)`, absent.map((o) => `output ${o} was not looked up`));
      continue;
    }
    const inputs: Record<string, OnDemandColumn> = {};
    for (const [name, dtype] of Object.entries(f.inputs)) {
      const col = cols[name];
      const want = dtype === 'string' ? 'string' : 'numeric';
      if (col === undefined) problems.push(`input ${name} (${dtype}) is missing`);
      else if (kindOf(col) !== want) problems.push(`input ${name} must be ${dtype}, got ${kindOf(col) === 'numeric' ? 'numbers' : 'strings'}`);
      else inputs[name] = col;
    }
    if (problems.length > 0) throw new SchemaMismatchError(`${what}: inputs do not fit`, problems);
    let out: Record<string, OnDemandColumn>;
    try {
      out = f.compute(inputs, rows);
    } catch (err) {
      // Name the first row the function fails on (only on this error path: one call per row).
      let failed = -1;
      let message = errorMessage(err);
      for (let i = 0; i < rows; i++) {
        try {
          f.compute(rowOf(inputs, i), 1);
        } catch (rowErr) {
          failed = i;
          message = errorMessage(rowErr);
          break;
        }
      }
      const where = failed >= 0 ? rowLabel(failed) : `a batch of ${rows} rows`;
      throw new InvalidValueError(`${what} threw for ${where}: ${message}`, { feature: f.name, registeredAs: f.ref.name, row: failed >= 0 ? where : null });
    }
    for (const [name, dtype] of Object.entries(f.outputs)) {
      const col = out?.[name];
      const want = dtype === 'string' ? 'string' : 'numeric';
      if (col === undefined) problems.push(`output ${name} was not returned`);
      else if (kindOf(col) !== want) problems.push(`output ${name} must be ${dtype === 'string' ? '(string | null)[]' : 'a Float64Array'}`);
      else if (col.length !== rows) problems.push(`output ${name} has ${col.length} values for ${rows} rows`);
      else cols[name] = col;
    }
    if (problems.length > 0) throw new SchemaMismatchError(`${what} returned the wrong outputs`, problems);
  }
  return cols;
}

/** The asynchronous on-demand step's result: the columns, and per row the status of every external-API output. */
export interface OnDemandResult {
  columns: Record<string, OnDemandColumn>;
  /** Per row, per output column of an external-API feature: its status (empty records when the pipeline has none). */
  statuses: Record<string, ExternalStatus>[];
  /** True when an external-API output of a row was not looked up (its status is not PRESENT). */
  missing: (row: number, column: string) => boolean;
}

/**
 * Run on-demand features in order like computeOnDemand, looking up the external-API ones
 * (external.ts) through the process's `external` clients: a failed lookup leaves the row's
 * outputs missing with a status, never a value.
 *
 * @throws as computeOnDemand; InvalidInputError when an external feature's environment variables are unset
 */
export async function computeOnDemandAsync(
  features: readonly LoadedOnDemand[],
  batch: Record<string, OnDemandColumn>,
  rows: number,
  context: { external: ExternalFeatures; deadline?: number },
  rowLabel: (row: number) => string = (i) => `row ${i}`,
): Promise<OnDemandResult> {
  let cols: Record<string, OnDemandColumn> = { ...batch };
  const statuses: Record<string, ExternalStatus>[] = Array.from({ length: rows }, () => ({}));
  for (const f of features) {
    if (!isExternalFeature(f)) {
      cols = computeOnDemand([f], cols, rows, rowLabel);
      continue;
    }
    const problems: string[] = [];
    const inputs: Record<string, OnDemandColumn> = {};
    for (const [name, dtype] of Object.entries(f.inputs)) {
      const col = cols[name];
      const want = dtype === 'string' ? 'string' : 'numeric';
      if (col === undefined) problems.push(`input ${name} (${dtype}) is missing`);
      else if (kindOf(col) !== want) problems.push(`input ${name} must be ${dtype}`);
      else inputs[name] = col;
    }
    if (problems.length > 0) throw new SchemaMismatchError(`external feature ${f.name} (${f.ref.name}): inputs do not fit`, problems);
    const found = await context.external.lookup(f, f.ref.name, inputs, rows, { ...(context.deadline !== undefined ? { deadline: context.deadline } : {}), rowLabel });
    Object.assign(cols, found.columns);
    for (let i = 0; i < rows; i++) for (const o of Object.keys(f.outputs)) statuses[i]![o] = found.statuses[i]!;
  }
  return { columns: cols, statuses, missing: (row, column) => { const s = statuses[row]?.[column]; return s !== undefined && s !== 'PRESENT'; } };
}

/** Lookup failures worth trying again later (the API was slow, down or rate-limiting). */
const TRANSIENT_STATUSES: ReadonlySet<ExternalStatus> = new Set(['TIMEOUT', 'RATE_LIMITED', 'UNAVAILABLE']);
/** Rows named in an explained error at most. */
const MAX_NAMED_ROWS = 10;

/**
 * Predict's refusal of a missing value the model cannot impute, told with the external lookups
 * behind it: when the refused values are outputs of external-API features, the error names each
 * row, output and status. All of them transient (TIMEOUT, RATE_LIMITED, UNAVAILABLE): a
 * TransientError (HTTP 503; a batch shard is retried); otherwise an InvalidValueError. Any other
 * error is returned as it is.
 */
export function explainMissing(err: unknown, result: Pick<OnDemandResult, 'statuses'>, rowLabel: (row: number) => string): unknown {
  if (!(err instanceof InvalidValueError)) return err;
  const problems = (err.details.problems as string[] | undefined) ?? [];
  const failed: { row: number; column: string; status: ExternalStatus }[] = [];
  result.statuses.forEach((byColumn, row) => {
    for (const [column, status] of Object.entries(byColumn)) if (status !== 'PRESENT') failed.push({ row, column, status });
  });
  const refused = failed.filter((f) => problems.some((p) => p.startsWith(`${rowLabel(f.row)}: ${f.column} = null`)));
  if (refused.length === 0) return err;
  const named = refused.slice(0, MAX_NAMED_ROWS).map((f) => `${rowLabel(f.row)}: ${f.column} ${f.status}`);
  const message = `external-API features gave no value the model could use (${refused.length} rows${refused.length > MAX_NAMED_ROWS ? `, first ${MAX_NAMED_ROWS}` : ''}): ${named.join('; ')}`;
  const details = { problems: named, statuses: Object.fromEntries([...new Set(refused.map((f) => f.status))].map((s) => [s, refused.filter((f) => f.status === s).length])) };
  return refused.every((f) => TRANSIENT_STATUSES.has(f.status)) ? new TransientError(message, details, { cause: err }) : new InvalidValueError(message, details, { cause: err });
}
