/**
 * A served pipeline's outputs as Open Inference Protocol (KServe V2) tensors, for every front end
 * (REST JSON and binary, gRPC typed and raw, MLflow rows): the pipeline's output schema
 * (`Pipeline.outputSchema`, lib/pipeline/outputs.ts) is the model metadata's outputs, the
 * selection a request may make, and the tensors of a response. One tensor per output column, in
 * output order; list columns (multi-output regression, top-k) are [rows, width] tensors with
 * their data flattened row-major, as V2 lays tensors out.
 */
import { InvalidInputError } from '../../lib/errors';
import { valueText } from '../../lib/pipeline/online';
import { columnJson, type OutputColumn, type OutputField, type OutputKind } from '../../lib/pipeline/outputs';
import type { Pipeline } from '../../lib/pipeline/pipeline';
import { baseColumns, type PredictionLists, type Predictions } from '../../lib/pipeline/post-process';
import { REQUEST, encodeRaw } from './tensors';

/** The V2 datatype of each kind of output column. */
export const OUTPUT_DATATYPE = { int: 'INT64', float: 'FP32', double: 'FP64', string: 'BYTES', floats: 'FP32', strings: 'BYTES' } as const satisfies Record<OutputKind, string>;
export type OutputDatatype = (typeof OUTPUT_DATATYPE)[OutputKind];

/** An output as model metadata describes it (rows are -1). */
export interface OutputMetadata {
  name: string;
  datatype: OutputDatatype;
  shape: number[];
}

/** One output tensor of a response: its column, still typed, until a wire codec encodes it. */
export interface V2Output extends OutputMetadata {
  column: OutputColumn;
}

function metadataOf(f: OutputField): OutputMetadata {
  return { name: f.name, datatype: OUTPUT_DATATYPE[f.kind], shape: f.width ? [-1, f.width] : [-1] };
}

/** The outputs a served pipeline answers with (model metadata: REST `GET /v2/models/{m}`, gRPC ModelMetadata). */
export function outputMetadata(p: Pipeline): OutputMetadata[] {
  return p.outputSchema.map(metadataOf);
}

/** @throws InvalidInputError naming each requested output that is not one of `names`, and the outputs there are */
function checkOutputNames(model: string, names: readonly string[], requested: readonly string[]): void {
  const unknown = requested.flatMap((name, i) => (names.includes(name) ? [] : [`outputs[${i}].name: model ${model} has no output ${valueText(name)} (outputs: ${names.join(', ')})`]));
  if (unknown.length > 0) throw new InvalidInputError(REQUEST, unknown, { outputs: requested.filter((n) => !names.includes(n)) });
}

/**
 * The outputs a request asks for, in the order asked (none asked: all of the pipeline's). An
 * output the pipeline does not have is an InvalidInputError naming the field and the outputs there are.
 */
export function selectOutputs(p: Pipeline, requested: readonly string[] = []): string[] {
  const names = p.outputSchema.map((f) => f.name);
  checkOutputNames(p.model.name, names, requested);
  return requested.length > 0 ? [...requested] : names;
}

/**
 * Predictions → the selected output tensors (selectOutputs). A column's shape is [rows] or, when
 * the request's inputs were [rows, 1], [rows, 1]; a list column's is [rows, width].
 */
export function outputTensors(predictions: Predictions, selected: readonly string[], rank = 1): V2Output[] {
  const columns = baseColumns(predictions);
  return selected.map((name) => {
    const column = columns.get(name);
    if (!column) throw new TypeError(`predictions have no ${name} column`);
    const shape = 'width' in column ? [predictions.rows, column.width] : rank === 2 ? [predictions.rows, 1] : [predictions.rows];
    return { name, datatype: OUTPUT_DATATYPE[column.kind], shape, column };
  });
}

/** A tensor's data as JSON: flat, row-major (a number that is not finite is null). */
export function jsonData(o: V2Output): unknown[] {
  const data = columnJson(o.column);
  return 'width' in o.column ? data.flat() : data;
}

/**
 * A BYTES tensor's elements, flat (the protocol's BYTES elements have no missing value).
 *
 * @throws InvalidInputError a missing value (named, with its row): ask for the output as JSON, where it is null
 */
export function textValues(o: V2Output): string[] {
  const { values } = o.column;
  if (!Array.isArray(values)) throw new TypeError(`${o.name} is not a BYTES output`);
  const missing = values.indexOf(null);
  if (missing >= 0) throw new InvalidInputError(REQUEST, [`outputs: ${o.name} has no value at row ${Math.floor(missing / ('width' in o.column ? o.column.width : 1))}, which binary BYTES data cannot carry; ask for ${o.name} as JSON`], { output: o.name });
  return values as string[];
}

/** A tensor's data as raw little-endian bytes (REST binary data, gRPC raw_output_contents). */
export function rawData(o: V2Output): Buffer {
  return o.datatype === 'BYTES' ? encodeRaw(o.datatype, textValues(o)) : encodeRaw(o.datatype, o.column.values as Float32Array | Float64Array);
}

/** `parameters.post_process` and `post_process_sha256`: which post-processing produced the outputs (none: no parameters). */
export function postProcessParameters(p: Predictions): Record<string, string> {
  return p.postProcessing ? { post_process: p.postProcessing.steps, post_process_sha256: p.postProcessing.sha256 } : {};
}

/** Predictions as MLflow rows: one object per row with every output column (list columns as lists). */
export function outputRows(p: Predictions): Record<string, unknown>[] {
  const columns = [...baseColumns(p)].map(([name, c]) => [name, columnJson(c)] as const);
  return Array.from({ length: p.rows }, (_, r) => Object.fromEntries(columns.map(([name, values]) => [name, values[r]])));
}

/** A JSON output tensor as the REST response carries it. */
export interface JsonOutput {
  name: string;
  datatype: OutputDatatype;
  shape: number[];
  data: unknown[];
}

function listDatatype(name: string, values: readonly unknown[]): OutputDatatype {
  const first = values.flat().find((v) => v !== null);
  if (typeof first === 'string') return 'BYTES';
  return name === 'label' ? 'INT64' : 'FP32';
}

/**
 * Predictions as JSON lists (a durable answer, lib/pipeline/post-process.ts `PredictionLists`; a
 * retried request id's recorded answer may have other rows than the retry) → the selected output tensors (all when `requested` is undefined), list columns as [rows, width].
 *
 * @throws InvalidInputError a requested output the answer does not have
 */
export function listTensors(lists: PredictionLists, requested: readonly string[] | undefined, model: string): JsonOutput[] {
  const columns = new Map<string, unknown[]>();
  for (const name of ['label', 'score', 'prediction'] as const) if (lists[name]) columns.set(name, lists[name]);
  for (const [name, values] of Object.entries(lists.outputs ?? {})) columns.set(name, values);
  const names = [...columns.keys()];
  checkOutputNames(model, names, requested ?? []);
  return (requested ?? names).map((name) => {
    const values = columns.get(name)!;
    const rows = values.length;
    const width = Array.isArray(values[0]) ? (values[0] as unknown[]).length : undefined;
    return { name, datatype: listDatatype(name, values), shape: width === undefined ? [rows] : [rows, width], data: width === undefined ? values : values.flat() };
  });
}
