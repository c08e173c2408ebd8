/**
 * On-demand features: TypeScript functions computed from request/event data and retrieved
 * features at prediction time (`amount / avg_amount_30d`, the hour of an event, a haversine
 * distance…). One definition serves batch (called once per chunk of rows, vectorised), online
 * and streaming (called with one row): the same code, so training and serving cannot drift
 * apart inside Inferflow.
 *
 * A feature module exports definitions made with `defineOnDemandFeature`; a pipeline names
 * them by module path and export name (`{ "module": "examples/features/fraud.ts", "export":
 * "transactionFeatures" }`). Inputs and outputs are declared with types, so a missing or
 * mistyped input is reported before anything is predicted.
 *
 * Column representation (the same as lib/transforms):
 *   - 'float64'   → Float64Array, NaN for missing
 *   - 'timestamp' → Float64Array of epoch milliseconds (UTC), NaN for missing
 *   - 'string'    → (string | null)[], null for missing
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidInputError, InvalidValueError, NotFoundError, SchemaMismatchError, errorMessage } from '../errors';

export const ON_DEMAND_KIND = 'inferflow.on-demand/v1';

export type OnDemandInputDtype = 'float64' | 'timestamp' | 'string';
export type OnDemandOutputDtype = 'float64' | 'string';

type ColumnOf<D> = D extends 'string' ? (string | null)[] : Float64Array;
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

/** Where a pipeline finds an on-demand feature: a module (path relative to the worker's working directory) and an export. */
export interface OnDemandRef {
  module: string;
  export: string;
}

export interface LoadedOnDemand extends OnDemandFeature {
  ref: OnDemandRef;
}

const loaded = new Map<string, Promise<LoadedOnDemand>>();

/** Extensions of modules that need TypeScript compiled on import. */
const TYPESCRIPT_MODULE = /\.[cm]?tsx?$/i;

/**
 * Import a user's feature module by absolute path: the one place the worker, the model server
 * and the CLI load user code. JavaScript modules load with Node's own `import()`. TypeScript
 * modules load through tsx's scoped loader (`tsImport`), registered only when such a module is
 * imported, so the compiled JavaScript runs TypeScript feature modules without a loader flag
 * and without slowing every start-up.
 */
export async function importUserModule(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  if (!TYPESCRIPT_MODULE.test(file)) return (await import(url)) as Record<string, unknown>;
  const { tsImport } = await import('tsx/esm/api');
  return (await tsImport(url, __filename)) as Record<string, unknown>;
}

/**
 * Import an on-demand feature. Module paths resolve against `baseDir` (default: the working
 * directory) and must stay inside it: a pipeline spec cannot make a worker load code from
 * elsewhere on its machine. Loaded once per process.
 *
 * @throws InvalidInputError a path outside baseDir, an export that is not a defineOnDemandFeature value
 * @throws NotFoundError a module that does not exist
 */
export async function loadOnDemand(ref: OnDemandRef, baseDir = process.cwd()): Promise<LoadedOnDemand> {
  const root = path.resolve(baseDir);
  const file = path.resolve(root, ref.module);
  const what = `on-demand feature ${ref.module}#${ref.export}`;
  if (file !== root && !file.startsWith(root + path.sep)) {
    throw new InvalidInputError(`${what}: module is outside ${root}`, [`onDemand.module: ${ref.module} must be a path inside the worker's directory ${root}`], { object: ref.module });
  }
  const key = `${file}#${ref.export}`;
  let p = loaded.get(key);
  if (!p) {
    p = (async () => {
      let mod: Record<string, unknown>;
      try {
        mod = await importUserModule(file);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new NotFoundError(`${what}: module ${file} not found`, { object: ref.module });
        throw new InvalidInputError(`${what}: module ${ref.module} failed to load: ${errorMessage(err)}`, [`onDemand.module: ${errorMessage(err)}`], { object: ref.module });
      }
      const f = (mod[ref.export] ?? (mod.default as Record<string, unknown> | undefined)?.[ref.export]) as Partial<OnDemandFeature> | undefined;
      if (!f || f.kind !== ON_DEMAND_KIND || typeof f.compute !== 'function') {
        const exported = Object.entries(mod).filter(([, v]) => (v as Partial<OnDemandFeature> | null)?.kind === ON_DEMAND_KIND).map(([k]) => k).sort(); // alphabetical, as ES module namespaces list them, whichever loader imported the module
        throw new InvalidInputError(`${what}: not an on-demand feature`, [
          `onDemand.export: ${ref.module} has no export ${ref.export} made with defineOnDemandFeature${exported.length ? ` (it has: ${exported.join(', ')})` : ''}`,
        ], { object: ref.module });
      }
      return { ...(f as OnDemandFeature), ref };
    })();
    loaded.set(key, p);
    p.catch(() => loaded.delete(key));
  }
  return p;
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
    const what = `on-demand feature ${f.name} (${f.ref.module}#${f.ref.export})`;
    const problems: string[] = [];
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
      throw new InvalidValueError(`${what} threw for ${where}: ${message}`, { feature: f.name, module: f.ref.module, export: f.ref.export, row: failed >= 0 ? where : null });
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
