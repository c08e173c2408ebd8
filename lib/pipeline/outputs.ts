/**
 * The output columns of a pipeline: what the model's predictions become after post-processing,
 * in output order, as typed columns (batch writes them to a sink, online answers them as JSON).
 * The schema (names and kinds) is worked out from the manifest and the post-processing steps
 * before any row is predicted; the columns of every block are checked against it.
 */
import { SchemaMismatchError } from '../errors';
import type { ModelManifest } from '../registry/manifest';

/** The columns of a ranking run's rows after the entity column (lib/pipeline/rank.ts), and of a top-k answer. */
export const RANKING_OUTPUT_COLUMNS = { items: 'items', scores: 'scores' } as const;

/**
 * Kinds of output column:
 *   int      class labels (Float64Array of whole numbers)     BIGINT / INT64
 *   float    scores, probabilities, values (Float32Array)     FLOAT / FP32
 *   double   user post-processor numbers (Float64Array)      DOUBLE / FP64
 *   string   names ((string | null)[])                        VARCHAR / BYTES
 *   floats   a vector per row (Float32Array, rows × width)    FLOAT[] / FP32 [rows, width]
 *   strings  a list of names per row (rows × width)           VARCHAR[] / BYTES [rows, width]
 */
export type OutputKind = 'int' | 'float' | 'double' | 'string' | 'floats' | 'strings';

export type OutputColumn =
  | { kind: 'int'; values: Float64Array }
  | { kind: 'float'; values: Float32Array }
  | { kind: 'double'; values: Float64Array }
  | { kind: 'string'; values: (string | null)[] }
  | { kind: 'floats'; width: number; values: Float32Array }
  | { kind: 'strings'; width: number; values: (string | null)[] };

/** Output columns by name, in output order. */
export type OutputColumns = Map<string, OutputColumn>;

export interface OutputField {
  name: string;
  kind: OutputKind;
  /** List kinds: values per row. */
  width?: number;
}

/** The class labels of a classifier as text (`class_labels`, else 0…k-1 from the probabilities' signature). */
export function classNamesOf(manifest: ModelManifest): string[] {
  const labels = manifest.metadata.class_labels;
  if (labels) return labels.map(String);
  const k = probabilitiesWidth(manifest);
  return Array.from({ length: k ?? 2 }, (_, i) => String(i));
}

function outputShape(manifest: ModelManifest, name: string | undefined): readonly (number | null)[] | undefined {
  const sig = name ? manifest.signature.outputs.find((o) => o.name === name) : manifest.signature.outputs[0];
  return sig?.shape;
}

function probabilitiesWidth(manifest: ModelManifest): number | undefined {
  const w = outputShape(manifest, manifest.metadata.outputs.probabilities ?? 'probabilities')?.[1];
  return typeof w === 'number' ? w : undefined;
}

/** Values per row of a regression model's output: 1, or the targets of a multi-output regressor. */
export function regressionWidth(manifest: ModelManifest): number {
  const w = outputShape(manifest, manifest.metadata.outputs.value)?.[1];
  return typeof w === 'number' && w > 1 ? w : 1;
}

/** The output column of an embedding model: one float vector per row. */
export const EMBEDDING_COLUMN = 'embedding';

/** Values per row of an embedding model's output (its fixed width; checked when the model is registered and opened, outputProblems). */
export function embeddingWidth(manifest: ModelManifest): number {
  const w = outputShape(manifest, manifest.metadata.outputs.embedding)?.[1];
  if (typeof w !== 'number' || w < 1) throw new SchemaMismatchError(`model ${manifest.name}:${manifest.version} is an embedding without a fixed vector width`, [`output shape [${outputShape(manifest, manifest.metadata.outputs.embedding)?.join(', ') ?? 'none'}]`]);
  return w;
}

/** `prob_<class>`: a class label as part of a column name (characters other than letters, digits and _ become _). */
export function probabilityColumn(className: string): string {
  return `prob_${className.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** The columns the model's predictions give before any post-processing step. */
export function baseSchema(manifest: ModelManifest): OutputField[] {
  const task = manifest.metadata.task;
  if (task === 'embedding') return [{ name: EMBEDDING_COLUMN, kind: 'floats', width: embeddingWidth(manifest) }];
  if (task === 'regression') {
    const width = regressionWidth(manifest);
    return [width > 1 ? { name: 'prediction', kind: 'floats', width } : { name: 'prediction', kind: 'float' }];
  }
  const fields: OutputField[] = [
    { name: 'label', kind: 'int' },
    { name: 'score', kind: 'float' },
  ];
  if (task === 'multiclass_classification') for (const c of classNamesOf(manifest)) fields.push({ name: probabilityColumn(c), kind: 'float' });
  return fields;
}

function lengthOf(c: OutputColumn): number {
  return 'width' in c ? c.values.length / Math.max(1, c.width) : c.values.length;
}

/**
 * Check columns against a schema: the same names in the same order, each of its kind and width, `rows` rows.
 * @throws SchemaMismatchError listing every difference, naming `what` (the step that produced them)
 */
export function checkColumns(columns: OutputColumns, schema: readonly OutputField[], rows: number, what: string): void {
  const problems: string[] = [];
  const names = [...columns.keys()];
  const expected = schema.map((f) => f.name);
  if (names.join(',') !== expected.join(',')) problems.push(`columns are ${names.join(', ') || 'none'}, expected ${expected.join(', ')}`);
  for (const f of schema) {
    const c = columns.get(f.name);
    if (!c) continue;
    if (c.kind !== f.kind) problems.push(`${f.name} is ${c.kind}, expected ${f.kind}`);
    else if ('width' in c && c.width !== f.width) problems.push(`${f.name} has ${c.width} values per row, expected ${f.width}`);
    else if (lengthOf(c) !== rows) problems.push(`${f.name} has ${lengthOf(c)} rows, expected ${rows}`);
  }
  if (problems.length > 0) throw new SchemaMismatchError(`${what} produced columns that do not fit the output schema`, problems);
}

/** A column's values as JSON: one value per row, or a list per row for list kinds (null where a number is NaN). */
export function columnJson(c: OutputColumn): unknown[] {
  const num = (x: number) => (Number.isFinite(x) ? x : null);
  switch (c.kind) {
    case 'int':
    case 'float':
    case 'double':
      return Array.from(c.values, num);
    case 'string':
      return [...c.values];
    case 'floats':
    case 'strings': {
      const rows = lengthOf(c);
      const out: unknown[] = new Array(rows);
      for (let r = 0; r < rows; r++) {
        const row = c.values.slice(r * c.width, (r + 1) * c.width);
        out[r] = c.kind === 'floats' ? Array.from(row as Float32Array, num) : row;
      }
      return out;
    }
  }
}
