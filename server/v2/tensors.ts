/**
 * Open Inference Protocol (KServe V2) tensors, independent of the transport: the datatypes,
 * tensor values from JSON `data` or from raw little-endian bytes (the REST binary extension and
 * gRPC's `raw_input_contents` share that layout), request inputs → request rows, and
 * predictions → the requested output tensors.
 *
 * A request carries one input per request field, each a column of N values with shape [N] or
 * [N, 1]; rows are read across the inputs. Every front end decodes its wire format (REST JSON or
 * binary: rest-codec.ts; gRPC typed or raw contents: server/grpc-tensors.ts) into `TensorInput`s
 * and calls `rowsOfTensors`, so a request gets the same validation messages whichever protocol it came by.
 */
import { InvalidInputError } from '../../lib/errors';
import type { OnlineRequest } from '../../lib/pipeline/online';
import { valueText } from '../../lib/pipeline/online';

/** How messages about a request's tensors begin. */
export const REQUEST = 'inference request';

/** Bytes per element of each fixed-size V2 datatype; BYTES elements are each a 4-byte little-endian length, then the bytes. */
export const FIXED_SIZE = { BOOL: 1, UINT8: 1, UINT16: 2, UINT32: 4, UINT64: 8, INT8: 1, INT16: 2, INT32: 4, INT64: 8, FP16: 2, FP32: 4, FP64: 8 } as const;

export type FixedDatatype = keyof typeof FIXED_SIZE;
export type Datatype = FixedDatatype | 'BYTES';
/** The protocol's tensor datatypes, in its order. */
export const DATATYPES: readonly Datatype[] = [...(Object.keys(FIXED_SIZE) as FixedDatatype[]), 'BYTES'];

export function isDatatype(d: unknown): d is Datatype {
  return typeof d === 'string' && (DATATYPES as readonly string[]).includes(d);
}

/** The message for a datatype that is not one of the protocol's. */
export function datatypeProblem(where: string, datatype: unknown): string {
  return `${where}.datatype: one of ${DATATYPES.join(', ')}, got ${valueText(datatype)}`;
}

/** `inputs[i] (name)`: how messages name an input. */
export function inputWhere(i: number, name: unknown): string {
  return `inputs[${i}]${typeof name === 'string' && name !== '' ? ` (${name})` : ''}`;
}

const INTEGER_RANGE: Partial<Record<Datatype, readonly [bigint, bigint]>> = {
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
export function fitsDatatype(datatype: Datatype, v: unknown): boolean {
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

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 bytes as text, or undefined when they are not UTF-8. */
export function utf8Text(b: Uint8Array): string | undefined {
  try {
    return utf8.decode(b);
  } catch {
    return undefined;
  }
}

/** A 64-bit integer as a number when it is exact, else as a bigint (entity keys keep every digit). */
export const exactInteger = (b: bigint): number | bigint => (b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);

const READ: Record<FixedDatatype, (v: DataView, at: number) => unknown> = {
  BOOL: (v, at) => v.getUint8(at) !== 0,
  INT8: (v, at) => v.getInt8(at),
  INT16: (v, at) => v.getInt16(at, true),
  INT32: (v, at) => v.getInt32(at, true),
  INT64: (v, at) => exactInteger(v.getBigInt64(at, true)),
  UINT8: (v, at) => v.getUint8(at),
  UINT16: (v, at) => v.getUint16(at, true),
  UINT32: (v, at) => v.getUint32(at, true),
  UINT64: (v, at) => exactInteger(v.getBigUint64(at, true)),
  FP16: (v, at) => halfToNumber(v.getUint16(at, true)),
  FP32: (v, at) => v.getFloat32(at, true),
  FP64: (v, at) => v.getFloat64(at, true),
};

/**
 * Decode `count` elements of `datatype` from raw little-endian bytes. `where` names the input in errors.
 *
 * @throws InvalidInputError the bytes are fewer or more than `count` elements need
 */
export function decodeRaw(datatype: Datatype, raw: Uint8Array, count: number, where: string): unknown[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (datatype === 'BYTES') {
    const out: string[] = [];
    let at = 0;
    while (at < raw.byteLength && out.length < count) {
      if (at + 4 > raw.byteLength) break;
      const len = view.getUint32(at, true);
      if (at + 4 + len > raw.byteLength) throw new InvalidInputError(`${where}: BYTES element ${out.length} says ${len} bytes, ${raw.byteLength - at - 4} remain`);
      const text = utf8Text(raw.subarray(at + 4, at + 4 + len));
      if (text === undefined) throw new InvalidInputError(`${where}: BYTES element ${out.length} is not UTF-8 text`);
      out.push(text);
      at += 4 + len;
    }
    if (out.length !== count || at !== raw.byteLength) throw new InvalidInputError(`${where}: binary data holds ${out.length} BYTES elements in ${at} of ${raw.byteLength} bytes, the shape needs ${count}`);
    return out;
  }
  const size = FIXED_SIZE[datatype];
  if (raw.byteLength !== count * size) throw new InvalidInputError(`${where}: binary data is ${raw.byteLength} bytes, the shape needs ${count} ${datatype} elements (${count * size} bytes)`);
  const read = READ[datatype];
  return Array.from({ length: count }, (_, i) => read(view, i * size));
}

/** Raw little-endian bytes of values of `datatype` (BYTES: length-prefixed UTF-8). */
export function encodeRaw(datatype: Datatype, values: ArrayLike<number> | readonly string[]): Buffer {
  if (datatype === 'BYTES') {
    return Buffer.concat(
      Array.from(values as readonly string[], (s) => {
        const b = Buffer.from(String(s), 'utf8');
        const len = Buffer.alloc(4);
        len.writeUInt32LE(b.length);
        return Buffer.concat([len, b]);
      }),
    );
  }
  const nums = values as ArrayLike<number>;
  if (datatype === 'FP32') return Buffer.from(Float32Array.from(nums).buffer);
  if (datatype === 'FP64') return Buffer.from(Float64Array.from(nums).buffer);
  if (datatype === 'INT64') return Buffer.from(BigInt64Array.from(Array.from(nums, (n) => BigInt(n))).buffer);
  throw new TypeError(`encodeRaw: ${datatype} outputs are not produced`);
}

/** One decoded request input: its elements flattened row-major (the datatype as the request gave it). */
export interface TensorInput {
  name: string;
  datatype: string;
  shape: readonly number[];
  values: readonly unknown[];
}

/** Most rows one request may carry. */
export const MAX_ROWS_PER_REQUEST = 10_000;

/** Elements a shape holds, or undefined when it is not a list of non-negative integers. */
export function elementCount(shape: unknown): number | undefined {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) return undefined;
  return (shape as number[]).reduce((a, b) => a * b, 1);
}

/** Wrong values named per input at most. */
const MAX_DATA_PROBLEMS = 5;

/** Problems of one input's elements against its datatype (each `where.data[k]: expected …`). */
export function valueProblems(where: string, datatype: Datatype, values: readonly unknown[]): string[] {
  const bad: string[] = [];
  let count = 0;
  values.forEach((v, k) => {
    if (fitsDatatype(datatype, v)) return;
    count++;
    if (bad.length < MAX_DATA_PROBLEMS) bad.push(`${where}.data[${k}]: expected ${datatype}, got ${valueText(v)}`);
  });
  if (count > MAX_DATA_PROBLEMS) bad.push(`${where}.data: ${count - MAX_DATA_PROBLEMS} more values that are not ${datatype}`);
  return bad;
}

/** Floating-point elements that are not finite (a binary tensor can carry them; a prediction cannot use them). */
export function nonFiniteProblems(where: string, values: readonly unknown[]): string[] {
  const k = values.findIndex((v) => typeof v === 'number' && !Number.isFinite(v));
  return k < 0 ? [] : [`${where}.data[${k}]: ${String(values[k])} is not a value (send a missing value as null in JSON)`];
}

/** The message for a shape that is not a list of non-negative integers. */
export function shapeListProblem(where: string, shape: unknown): string {
  return `${where}.shape: required, a list of non-negative integers, got ${Array.isArray(shape) ? `[${shape.map(valueText).join(', ')}]` : valueText(shape)}`;
}

/** The problem of an input's shape: not a list of non-negative integers, not a column ([N] or [N, 1]), or not holding the data. */
function shapeProblem(where: string, shape: readonly unknown[], values: number): string | undefined {
  const count = elementCount(shape);
  if (count === undefined) return shapeListProblem(where, shape);
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1))) return `${where}.shape: [${shape.join(', ')}] is not a column (one value per row: [N] or [N, 1])`;
  if (count !== values) return `${where}: shape [${shape.join(', ')}] holds ${count} values, data has ${values}`;
  return undefined;
}

/**
 * Inputs → one request row per element: every input named, of a V2 datatype its values fit,
 * of shape [N] or [N, 1] holding its data, with the same N, and no name twice.
 *
 * @throws InvalidInputError every problem listed, each naming the input
 */
export function rowsOfTensors(inputs: readonly TensorInput[]): { rows: OnlineRequest[]; rank: number } {
  if (inputs.length === 0) throw new InvalidInputError(REQUEST, ['inputs: required, one tensor {name, datatype, shape, data} per request field']);
  const problems: string[] = [];
  let n = -1;
  const columns = new Map<string, readonly unknown[]>();
  inputs.forEach((input, i) => {
    const at = inputWhere(i, input.name);
    if (typeof input.name !== 'string' || input.name === '') return void problems.push(`${at}.name: required`);
    if (!isDatatype(input.datatype)) problems.push(datatypeProblem(at, input.datatype));
    else problems.push(...valueProblems(at, input.datatype, input.values));
    const shape = shapeProblem(at, input.shape, input.values.length);
    if (shape) problems.push(shape);
    if (n === -1) n = input.values.length;
    else if (input.values.length !== n) problems.push(`${at}: ${input.values.length} rows, the first input has ${n}`);
    if (columns.has(input.name)) problems.push(`${at}: given twice`);
    columns.set(input.name, input.values);
    return undefined;
  });
  if (n > MAX_ROWS_PER_REQUEST) problems.push(`at most ${MAX_ROWS_PER_REQUEST} rows per request (got ${n})`);
  if (problems.length > 0) throw new InvalidInputError(REQUEST, problems);
  const rows: OnlineRequest[] = Array.from({ length: n }, (_, r) => Object.fromEntries([...columns].map(([k, v]) => [k, v[r]])));
  return { rows, rank: inputs[0]!.shape.length };
}

/** `parameters.as_of`: judge feature freshness at this ISO 8601 time instead of now. */
export function asOfParameter(value: unknown): Date | undefined {
  if (value === undefined) return undefined;
  const at = typeof value === 'string' ? new Date(value) : undefined;
  if (!at || Number.isNaN(at.getTime())) throw new InvalidInputError(REQUEST, [`parameters.as_of: an ISO 8601 time, got ${valueText(value)}`]);
  return at;
}
