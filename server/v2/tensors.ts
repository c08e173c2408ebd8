/**
 * Open Inference Protocol (KServe V2) tensors, independent of the transport: the datatypes,
 * tensor values from JSON `data` or from raw little-endian bytes (the REST binary extension and
 * gRPC's `raw_input_contents` share that layout), request inputs → request rows, and
 * predictions → the requested output tensors.
 *
 * A request carries one input per request field, each a column of N values with shape [N] or
 * [N, 1]; rows are read across the inputs.
 */
import { InvalidInputError } from '../../lib/errors';
import type { OnlineRequest } from '../../lib/pipeline/online';
import { valueText } from '../../lib/pipeline/online';

/** Bytes per element of each fixed-size V2 datatype; BYTES elements are each a 4-byte little-endian length, then the bytes. */
export const FIXED_SIZE = {
  BOOL: 1,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
} as const;

export type FixedDatatype = keyof typeof FIXED_SIZE;
export type Datatype = FixedDatatype | 'BYTES';
export const DATATYPES: readonly Datatype[] = [...(Object.keys(FIXED_SIZE) as FixedDatatype[]), 'BYTES'];

export function isDatatype(d: unknown): d is Datatype {
  return typeof d === 'string' && (DATATYPES as readonly string[]).includes(d);
}

const INT_RANGE: Partial<Record<Datatype, [number, number]>> = {
  INT8: [-(2 ** 7), 2 ** 7 - 1],
  INT16: [-(2 ** 15), 2 ** 15 - 1],
  INT32: [-(2 ** 31), 2 ** 31 - 1],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT8: [0, 2 ** 8 - 1],
  UINT16: [0, 2 ** 16 - 1],
  UINT32: [0, 2 ** 32 - 1],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

/** Whether a JSON value is an element of the datatype (null, a missing value, fits every datatype). */
export function jsonFits(datatype: Datatype, v: unknown): boolean {
  if (v === null) return true;
  if (datatype === 'BOOL') return typeof v === 'boolean';
  if (datatype === 'BYTES') return typeof v === 'string';
  if (typeof v !== 'number') return false;
  const range = INT_RANGE[datatype];
  return range ? Number.isInteger(v) && v >= range[0] && v <= range[1] : true;
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** A 64-bit integer as a number when it is exact, else as a bigint (entity keys keep every digit). */
const exact = (b: bigint): number | bigint => (b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);

const READ: Record<FixedDatatype, (v: DataView, at: number) => unknown> = {
  BOOL: (v, at) => v.getUint8(at) !== 0,
  INT8: (v, at) => v.getInt8(at),
  INT16: (v, at) => v.getInt16(at, true),
  INT32: (v, at) => v.getInt32(at, true),
  INT64: (v, at) => exact(v.getBigInt64(at, true)),
  UINT8: (v, at) => v.getUint8(at),
  UINT16: (v, at) => v.getUint16(at, true),
  UINT32: (v, at) => v.getUint32(at, true),
  UINT64: (v, at) => exact(v.getBigUint64(at, true)),
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
      out.push(Buffer.from(raw.buffer, raw.byteOffset + at + 4, len).toString('utf8'));
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

/** One decoded request input: its elements flattened row-major. */
export interface TensorInput {
  name: string;
  datatype: Datatype;
  shape: number[];
  values: unknown[];
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

/** Problems of one input's JSON elements against its datatype (each `where.data[k]: expected …`). */
export function jsonValueProblems(where: string, datatype: Datatype, values: readonly unknown[]): string[] {
  const bad: string[] = [];
  let count = 0;
  values.forEach((v, k) => {
    if (jsonFits(datatype, v)) return;
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

/**
 * Inputs → one request row per element: every input must have shape [N] or [N, 1] with the
 * same N, and no name twice.
 *
 * @throws InvalidInputError every problem listed, each naming the input
 */
export function tensorsToRows(inputs: readonly TensorInput[], where: (i: number) => string): { rows: OnlineRequest[]; rank: number } {
  const problems: string[] = [];
  let n = -1;
  let rank = 1;
  const columns = new Map<string, unknown[]>();
  inputs.forEach((input, i) => {
    const at = where(i);
    const rows = input.shape[0] ?? 0;
    if (!(input.shape.length === 1 || (input.shape.length === 2 && input.shape[1] === 1))) problems.push(`${at}.shape: [${input.shape.join(', ')}] is not a column (one value per row: [N] or [N, 1])`);
    else if (input.values.length !== rows) problems.push(`${at}: shape [${input.shape.join(', ')}] needs ${rows} values, data has ${input.values.length}`);
    if (i === 0) rank = input.shape.length;
    if (n === -1) n = rows;
    else if (rows !== n) problems.push(`${at}: ${rows} rows, the first input has ${n}`);
    if (columns.has(input.name)) problems.push(`${at}: input ${input.name} given twice`);
    columns.set(input.name, input.values);
  });
  if (n > MAX_ROWS_PER_REQUEST) problems.push(`at most ${MAX_ROWS_PER_REQUEST} rows per request (got ${n})`);
  if (problems.length > 0) throw new InvalidInputError('inputs do not fit the protocol', problems);
  const rows: OnlineRequest[] = Array.from({ length: n }, (_, r) => Object.fromEntries([...columns].map(([k, v]) => [k, v[r]])));
  return { rows, rank };
}
