/**
 * The Open Inference Protocol (KServe V2) tensors of a served pipeline, independent of the wire
 * (REST JSON, REST binary extension, gRPC): request tensors → request rows, predictions →
 * output tensors (with `outputs` selection), and the model metadata's inputs and outputs. Every
 * front end decodes its wire format into `V2Column`s (flat, row-major values) and calls these,
 * so a request gets the same answer and the same validation messages whichever protocol it came by.
 */
import { InvalidInputError, NotFoundError, TransientError } from '../../lib/errors';
import { outputColumnName } from '../../lib/features/spec';
import type { OnlineRequest } from '../../lib/pipeline/online';
import { valueText } from '../../lib/pipeline/online';
import type { Pipeline } from '../../lib/pipeline/pipeline';
import { outputMetadata, type OutputMetadata } from './outputs';

/** Most rows one request may carry. */
export const MAX_ROWS_PER_REQUEST = 10_000;
/** Wrong values named per input at most. */
const MAX_DATA_PROBLEMS = 5;

/** The protocol's tensor datatypes. */
export const V2_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const;
export type V2Datatype = (typeof V2_DATATYPES)[number];

export function isV2Datatype(d: unknown): d is V2Datatype {
  return typeof d === 'string' && (V2_DATATYPES as readonly string[]).includes(d);
}

const INTEGER_RANGE: Partial<Record<V2Datatype, readonly [bigint, bigint]>> = {
  INT8: [-(2n ** 7n), 2n ** 7n - 1n],
  INT16: [-(2n ** 15n), 2n ** 15n - 1n],
  INT32: [-(2n ** 31n), 2n ** 31n - 1n],
  INT64: [-(2n ** 63n), 2n ** 63n - 1n],
  UINT8: [0n, 2n ** 8n - 1n],
  UINT16: [0n, 2n ** 16n - 1n],
  UINT32: [0n, 2n ** 32n - 1n],
  UINT64: [0n, 2n ** 64n - 1n],
};

/** Whether a decoded value fits its tensor's datatype (null: a missing value, allowed in every datatype). */
export function fitsDatatype(datatype: V2Datatype, v: unknown): boolean {
  if (v === null) return true;
  const range = INTEGER_RANGE[datatype];
  if (range) {
    if (typeof v === 'bigint') return v >= range[0] && v <= range[1];
    return typeof v === 'number' && Number.isSafeInteger(v) && BigInt(v) >= range[0] && BigInt(v) <= range[1];
  }
  if (datatype === 'BYTES') return typeof v === 'string';
  if (datatype === 'BOOL') return typeof v === 'boolean';
  return typeof v === 'number'; // FP16, FP32, FP64 (NaN and ±Infinity reach the pipeline, which names them)
}

/** The message for a datatype that is not one of the protocol's. */
export function datatypeProblem(where: string, datatype: unknown): string {
  return `${where}.datatype: one of ${V2_DATATYPES.join(', ')}, got ${valueText(datatype)}`;
}

/** One input tensor, decoded from its wire format: `data` holds the flat, row-major values. */
export interface V2Column {
  name: string;
  datatype: string;
  shape: readonly number[];
  data: readonly unknown[];
}

/** `inputs[i] (name)`: how messages name an input. */
export function inputWhere(i: number, name: unknown): string {
  return `inputs[${i}]${typeof name === 'string' && name !== '' ? ` (${name})` : ''}`;
}

/** A column holds one value per row: shape [n] or [n, 1]. */
function rowCount(shape: readonly number[]): number | undefined {
  if (shape.length === 1 || (shape.length === 2 && shape[1] === 1)) return shape[0];
  return undefined;
}

/**
 * Input tensors (one column per request field, each [n] or [n, 1]) → request rows. Every problem
 * is listed in one InvalidInputError: a missing name, an unknown datatype, a shape that does not
 * hold the data, values that do not fit the datatype, inputs of different lengths, a name given twice.
 */
export function rowsOfColumns(columns: readonly V2Column[]): OnlineRequest[] {
  if (columns.length === 0) throw new InvalidInputError('inference request', ['inputs: required, one tensor {name, datatype, shape, data} per request field']);
  const problems: string[] = [];
  let n = -1;
  const byName = new Map<string, readonly unknown[]>();
  columns.forEach((input, i) => {
    const where = inputWhere(i, input.name);
    if (typeof input.name !== 'string' || input.name === '') return void problems.push(`${where}.name: required`);
    const rows = rowCount(input.shape);
    if (rows !== input.data.length) problems.push(`${where}.shape: must be [${input.data.length}] (one value per row), got [${input.shape.join(', ')}]`);
    if (!isV2Datatype(input.datatype)) problems.push(datatypeProblem(where, input.datatype));
    else {
      const datatype = input.datatype;
      const bad = input.data.flatMap((v, k) => (fitsDatatype(datatype, v) ? [] : [`${where}.data[${k}]: expected ${datatype}, got ${valueText(v)}`]));
      problems.push(...bad.slice(0, MAX_DATA_PROBLEMS), ...(bad.length > MAX_DATA_PROBLEMS ? [`${where}.data: ${bad.length - MAX_DATA_PROBLEMS} more values that are not ${datatype}`] : []));
    }
    if (n === -1) n = input.data.length;
    else if (input.data.length !== n) problems.push(`${where}: ${input.data.length} values, the first input has ${n}`);
    if (byName.has(input.name)) problems.push(`${where}: given twice`);
    byName.set(input.name, input.data);
    return undefined;
  });
  if (n > MAX_ROWS_PER_REQUEST) problems.push(`at most ${MAX_ROWS_PER_REQUEST} rows per request (got ${n})`);
  if (problems.length > 0) throw new InvalidInputError('inference request', problems);
  return Array.from({ length: n }, (_, r) => Object.fromEntries([...byName].map(([k, v]) => [k, v[r]])));
}

/** `parameters.as_of`: judge feature freshness at this ISO 8601 time instead of now. */
export function asOfParameter(value: unknown): Date | undefined {
  if (value === undefined) return undefined;
  const at = typeof value === 'string' ? new Date(value) : undefined;
  if (!at || Number.isNaN(at.getTime())) throw new InvalidInputError('inference request', [`parameters.as_of: an ISO 8601 time, got ${valueText(value)}`]);
  return at;
}

/** Tensor metadata as the protocol describes a model's inputs and outputs. */
export interface V2TensorMetadata {
  name: string;
  datatype: V2Datatype;
  shape: number[];
}

/** What a request field of each kind is declared as (BYTES timestamps are ISO 8601; INT64 epoch ms are accepted too). */
const FIELD_DATATYPE = { numeric: 'FP64', string: 'BYTES', timestamp: 'BYTES' } as const satisfies Record<string, V2Datatype>;
/** Entity keys are declared INT64 (string keys are accepted as BYTES). */
const ENTITY_KEY_DATATYPE: V2Datatype = 'INT64';

/** The request fields a pipeline needs (entity keys, then the fields the model and its on-demand features read) and its outputs. */
export function modelTensors(p: Pipeline): { inputs: V2TensorMetadata[]; outputs: OutputMetadata[] } {
  const views = p.views;
  const fromViews = new Set(views.flatMap((v) => v.features.map((f) => outputColumnName(v.name, f.name))));
  const entities = [...new Set(views.flatMap((v) => v.entities))];
  const fields = p.plan.sourceColumns.filter((c) => !fromViews.has(c.name) && !entities.includes(c.name));
  return {
    inputs: [...entities.map((name) => ({ name, datatype: ENTITY_KEY_DATATYPE, shape: [-1] })), ...fields.map((c) => ({ name: c.name, datatype: FIELD_DATATYPE[c.kind], shape: [-1] }))],
    outputs: outputMetadata(p),
  };
}

/** The served version must be the one asked for (none asked: whichever answers). */
export function checkVersion(name: string, served: number, asked: string | undefined): void {
  if (asked !== undefined && asked !== '' && asked !== String(served)) throw new NotFoundError(`model ${name} version ${asked} is not served here (serving version ${served})`, { model: name, version: asked });
}

/** The deployment served under `name`; NotFoundError naming the names served when there is none. */
export function findDeployment<D extends { readonly name: string }>(deployments: readonly D[], name: string): D {
  const d = deployments.find((x) => x.name === name);
  if (!d) throw new NotFoundError(`model ${valueText(name)} is not served here (served: ${deployments.map((x) => x.name).join(', ')})`, { model: name });
  return d;
}

/** The pipeline answering for a deployment now; TransientError (503 / UNAVAILABLE) while no version is loaded. */
export function loadedPipeline(d: { readonly name: string; readonly current: Pipeline | undefined; readonly ready: boolean }): Pipeline {
  if (!d.ready || !d.current) throw new TransientError(`model ${d.name} is not ready: no version loaded yet; retry later`, { model: d.name });
  return d.current;
}
