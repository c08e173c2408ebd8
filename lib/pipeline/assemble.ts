/**
 * From raw columns to the model's input tensors — THE assembly step shared by batch, online
 * and streaming:
 *
 *   raw columns (request/event data + retrieved features)
 *     → on-demand features (lib/features/on-demand.ts)
 *     → fitted transforms from the model's manifest (lib/transforms)
 *     → one row-major float32 matrix per model input (checked against the ONNX signature)
 *
 * `planAssembly` works out once per model + pipeline which raw columns are needed and as
 * what; `assembleBlock` runs the steps over a batch of rows. Pure computation after planning.
 */
import type { ColumnInfo } from '../io/duckdb';
import { isNumericType, isTimestampType } from '../io/duckdb';
import { InvalidInputError, SchemaMismatchError } from '../errors';
import type { ExternalFeatures } from '../features/external';
import { computeOnDemand, computeOnDemandAsync, type LoadedOnDemand, type OnDemandColumn, type OnDemandResult } from '../features/on-demand';
import type { ModelManifest, ModelMetadata, ModelSignature } from '../registry/manifest';
import type { FeatureBlock } from '../runtime/predict';
import { outputProblems, signatureProblems } from '../runtime/signature';
import { assembleMatrix, compileTransforms, type CompiledTransforms } from '../transforms';

/** How a raw column is read: numbers (Float64Array, NaN = missing), strings ((string | null)[]), or instants (Float64Array of epoch ms). */
export type SourceKind = 'numeric' | 'string' | 'timestamp';

export interface SourceColumn {
  name: string;
  kind: SourceKind;
  /** What needs it (for messages): `model m:1`, `model m:1 transforms`, `on-demand feature f`. */
  by: string;
}

export interface AssemblyPlan {
  /** Model inputs in the manifest's order, each with its feature columns in order. */
  inputs: { name: string; columns: string[] }[];
  /** Raw columns the data must provide, in a fixed order. */
  sourceColumns: SourceColumn[];
  onDemand: LoadedOnDemand[];
  transforms: CompiledTransforms | undefined;
  /** No on-demand features and no transforms: the raw columns are the model's columns (read straight into float32). */
  direct: boolean;
  /** The model's task and output names: its output tensors are checked against them with its inputs (checkSignature). */
  model: Pick<ModelMetadata, 'task' | 'outputs'>;
}


/**
 * Work out which raw columns a model needs behind a pipeline's on-demand features (resolved
 * from the process's OnDemandRegistry).
 *
 * @throws InvalidInputError a column needed as two different kinds, an on-demand output of the wrong type for its consumer
 */
export function planAssembly(manifest: ModelManifest, onDemandFeatures: readonly LoadedOnDemand[] = [], extraSources: readonly SourceColumn[] = []): AssemblyPlan {
  const inputs = manifest.metadata.inputs.map((i) => ({ name: i.name, columns: [...i.columns] }));
  const onDemand = [...onDemandFeatures];
  const transforms = manifest.metadata.transforms ? compileTransforms(manifest.metadata.transforms) : undefined;
  const problems: string[] = [];
  const need = new Map<string, { kind: SourceKind; by: string }>();
  const needSource = (name: string, kind: SourceKind, by: string) => {
    const had = need.get(name);
    if (had && had.kind !== kind) problems.push(`column ${name} is needed as ${had.kind} by ${had.by} and as ${kind} by ${by}`);
    else if (!had) need.set(name, { kind, by });
  };
  // Columns read after prediction (post-processing rules and modules), kept beside the model's.
  for (const c of extraSources) needSource(c.name, c.kind, c.by);
  const modelColumns = [...new Set(inputs.flatMap((i) => i.columns))];
  const model = `model ${manifest.name}:${manifest.version}`;
  if (transforms) {
    const produced = new Set(transforms.outputColumns);
    for (const c of modelColumns) if (!produced.has(c)) needSource(c, 'numeric', model);
    for (const c of transforms.inputColumns) needSource(c, transforms.inputKinds.get(c) ?? 'numeric', `${model} transforms`);
  } else {
    for (const c of modelColumns) needSource(c, 'numeric', model);
  }
  // Later on-demand features may read earlier ones' outputs: resolve from the last one back.
  for (const f of [...onDemand].reverse()) {
    const by = `on-demand feature ${f.name}`;
    for (const [name, dtype] of Object.entries(f.outputs)) {
      const consumer = need.get(name);
      if (!consumer) continue;
      const kind: SourceKind = dtype === 'string' ? 'string' : 'numeric';
      if (kind !== consumer.kind && !(consumer.kind === 'timestamp' && kind === 'numeric')) problems.push(`${by} produces ${name} as ${dtype}, ${consumer.by} needs ${consumer.kind}`);
      need.delete(name);
    }
    for (const [name, dtype] of Object.entries(f.inputs)) needSource(name, dtype === 'float64' ? 'numeric' : dtype, by);
  }
  if (problems.length > 0) throw new InvalidInputError(`pipeline for ${model} is inconsistent`, problems);
  const sourceColumns = [...need.entries()].map(([name, { kind, by }]) => ({ name, kind, by }));
  return {
    inputs,
    sourceColumns,
    onDemand,
    transforms,
    direct: onDemand.length === 0 && !transforms && extraSources.length === 0,
    model: { task: manifest.metadata.task, outputs: manifest.metadata.outputs },
  };
}

/**
 * Check a data source's columns (name + DuckDB type) against the plan, listing every problem:
 * missing columns, strings where numbers are needed, non-time columns where instants are.
 */
export function checkSourceColumns(plan: AssemblyPlan, columns: readonly ColumnInfo[], object: string, what: string, idColumn: string | null): void {
  const byName = new Map(columns.map((c) => [c.name, c]));
  const problems: string[] = [];
  for (const { name, kind, by } of plan.sourceColumns) {
    const c = byName.get(name);
    if (!c) problems.push(`column ${name} is missing (${by} needs it as ${kind})`);
    else if (kind === 'numeric' && !isNumericType(c.type)) problems.push(`column ${name} is ${c.type}, ${what} needs a number`);
    else if (kind === 'timestamp' && !isTimestampType(c.type)) problems.push(`column ${name} is ${c.type}, ${what} needs a DATE or TIMESTAMP`);
    else if (kind === 'string' && c.type !== 'VARCHAR') problems.push(`column ${name} is ${c.type}, ${what} needs a string (VARCHAR) category`);
  }
  if (idColumn !== null && !byName.has(idColumn)) problems.push(`id column ${idColumn} is missing`);
  if (problems.length > 0) {
    throw new SchemaMismatchError(`${object} does not fit ${what}`, problems, { object, available: columns.map((c) => `${c.name} ${c.type}`) });
  }
}

/**
 * The assembled inputs, and the outputs the model's task reads, against an ONNX signature (from
 * the manifest, or from the loaded session).
 * @throws SchemaMismatchError listing every offending input, feature and output
 */
export function checkSignature(plan: AssemblyPlan, signature: ModelSignature, what: string): void {
  const problems = [...signatureProblems(plan.inputs.map((i) => ({ ...i, dtype: 'float32' })), signature), ...outputProblems(plan.model, signature)];
  if (problems.length > 0) throw new SchemaMismatchError(`the features assembled for ${what} do not fit its ONNX signature`, problems);
}

/** A batch of raw columns, as read from a source or built from requests. */
export type RawBatch = Record<string, OnDemandColumn>;

/** THE on-demand step: the plan's on-demand features computed from the raw columns, added to them. */
export function onDemandColumns(plan: AssemblyPlan, batch: RawBatch, rows: number, rowLabel: (row: number) => string): RawBatch {
  return plan.onDemand.length > 0 ? computeOnDemand(plan.onDemand, batch, rows, rowLabel) : batch;
}

/** THE on-demand step with external-API features (looked up through the process's clients; online, within `deadline`). */
export async function onDemandColumnsAsync(
  plan: AssemblyPlan,
  batch: RawBatch,
  rows: number,
  rowLabel: (row: number) => string,
  context: { external: ExternalFeatures; deadline?: number },
): Promise<OnDemandResult> {
  if (plan.onDemand.length === 0) return { columns: batch, statuses: Array.from({ length: rows }, () => ({})), missing: () => false };
  return computeOnDemandAsync(plan.onDemand, batch, rows, context, rowLabel);
}

/** THE transform step: the model's fitted transforms applied to the columns, then one row-major float32 matrix per model input. */
export function transformColumns(plan: AssemblyPlan, columns: RawBatch, rows: number, rowLabel: (row: number) => string): FeatureBlock {
  const cols = plan.transforms ? { ...columns, ...plan.transforms.apply(columns, rowLabel) } : columns;
  const inputs: Record<string, Float32Array> = {};
  for (const input of plan.inputs) inputs[input.name] = assembleMatrix(input.columns, cols);
  return { rows, inputs, rowLabel, columns: cols };
}

/**
 * On-demand features → transforms → model input matrices for `rows` rows.
 * @throws SchemaMismatchError / InvalidValueError from the steps, naming columns and rows (`rowLabel`)
 */
export function assembleBlock(plan: AssemblyPlan, batch: RawBatch, rows: number, rowLabel: (row: number) => string = (i) => `row ${i}`): FeatureBlock {
  return transformColumns(plan, onDemandColumns(plan, batch, rows, rowLabel), rows, rowLabel);
}
