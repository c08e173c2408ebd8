/**
 * V2 gRPC tensor contents ↔ V2Columns (server/v2/columns.ts): typed `contents` (one repeated
 * field per datatype family) or `raw_input_contents` (flat little-endian bytes per input, BYTES
 * elements each a 4-byte little-endian length then the bytes), and output tensors back the
 * same way the request came. Messages name the input (`inputs[1] (customer_id)`) and what was wrong.
 */
import { InvalidInputError } from '../lib/errors';
import { datatypeProblem, inputWhere, isV2Datatype, type V2Column, type V2Datatype } from './v2/columns';
import { rawData, textValues, type V2Output } from './v2/outputs';

/** The typed contents of a tensor as @grpc/proto-loader decodes them (int64/uint64 as decimal strings, bytes as Buffers). */
export interface TensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: string[];
  uint_contents?: number[];
  uint64_contents?: string[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}
type ContentsField = keyof TensorContents;

export interface GrpcInputTensor {
  name: string;
  datatype: string;
  shape: string[];
  contents?: TensorContents | null;
}

/** Where each datatype's values go in typed contents (FP16 has none: raw contents only). */
const CONTENTS_FIELD: Record<V2Datatype, ContentsField | undefined> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP16: undefined,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

/** Bytes per element in raw contents (BYTES elements are length-prefixed). */
const ELEMENT_SIZE: Record<Exclude<V2Datatype, 'BYTES'>, number> = { BOOL: 1, INT8: 1, UINT8: 1, INT16: 2, UINT16: 2, FP16: 2, INT32: 4, UINT32: 4, FP32: 4, INT64: 8, UINT64: 8, FP64: 8 };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** An int64 as a number when it is exact, else a bigint (the pipeline takes both). */
function integer(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function readElement(datatype: Exclude<V2Datatype, 'BYTES'>, buf: Buffer, at: number): unknown {
  switch (datatype) {
    case 'BOOL':
      return buf[at] !== 0;
    case 'INT8':
      return buf.readInt8(at);
    case 'UINT8':
      return buf.readUInt8(at);
    case 'INT16':
      return buf.readInt16LE(at);
    case 'UINT16':
      return buf.readUInt16LE(at);
    case 'FP16':
      return halfToFloat(buf.readUInt16LE(at));
    case 'INT32':
      return buf.readInt32LE(at);
    case 'UINT32':
      return buf.readUInt32LE(at);
    case 'FP32':
      return buf.readFloatLE(at);
    case 'INT64':
      return integer(buf.readBigInt64LE(at));
    case 'UINT64':
      return integer(buf.readBigUInt64LE(at));
    case 'FP64':
      return buf.readDoubleLE(at);
  }
}

/** BYTES raw contents: elements, or the problem (a length running past the end, not UTF-8, a count other than the shape's). */
function readBytesElements(buf: Buffer, count: number, where: string): { data?: string[]; problem?: string } {
  const data: string[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 4 > buf.length) return { problem: `${where}: BYTES element ${data.length} has a truncated 4-byte length at byte ${at} of ${buf.length}` };
    const len = buf.readUInt32LE(at);
    if (at + 4 + len > buf.length) return { problem: `${where}: BYTES element ${data.length} declares ${len} bytes, ${buf.length - at - 4} remain` };
    try {
      data.push(utf8.decode(buf.subarray(at + 4, at + 4 + len)));
    } catch {
      return { problem: `${where}: BYTES element ${data.length} is not UTF-8 text` };
    }
    at += 4 + len;
  }
  if (data.length !== count) return { problem: `${where}: ${data.length} BYTES elements, shape needs ${count}` };
  return { data };
}

/** The element count of a shape, or undefined for a shape with a negative or non-integer dimension. */
function elements(shape: readonly number[]): number | undefined {
  return shape.every((d) => Number.isSafeInteger(d) && d >= 0) ? shape.reduce((a, d) => a * d, 1) : undefined;
}

/**
 * The request's input tensors as V2Columns, from raw contents (one buffer per input, in input
 * order) or typed contents, never both. Every problem is listed in one InvalidInputError.
 */
export function decodeInputs(inputs: readonly GrpcInputTensor[], raw: readonly Buffer[]): V2Column[] {
  const problems: string[] = [];
  const useRaw = raw.length > 0;
  if (useRaw && raw.length !== inputs.length) problems.push(`raw_input_contents: ${raw.length} buffers for ${inputs.length} inputs (one per input, in input order)`);
  const columns = inputs.map((input, i): V2Column => {
    const where = inputWhere(i, input.name);
    const shape = input.shape.map(Number);
    const column = { name: input.name, datatype: input.datatype, shape, data: [] as unknown[] };
    const typed = Object.entries(input.contents ?? {}).filter(([, v]) => Array.isArray(v) && v.length > 0) as [ContentsField, unknown[]][];
    if (!isV2Datatype(input.datatype)) {
      problems.push(datatypeProblem(where, input.datatype));
      return column;
    }
    const datatype = input.datatype;
    if (useRaw) {
      if (typed.length > 0) problems.push(`${where}.contents: must be empty when raw_input_contents is used`);
      const buf = raw[i];
      const count = elements(shape);
      if (!buf) return column;
      if (count === undefined) {
        problems.push(`${where}.shape: dimensions must be non-negative integers, got [${input.shape.join(', ')}]`);
        return column;
      }
      if (datatype === 'BYTES') {
        const { data, problem } = readBytesElements(buf, count, `raw_input_contents[${i}] (${input.name})`);
        if (problem) problems.push(problem);
        return { ...column, data: data ?? [] };
      }
      const size = ELEMENT_SIZE[datatype];
      if (buf.length !== count * size) {
        problems.push(`raw_input_contents[${i}] (${input.name}): ${buf.length} bytes, shape [${shape.join(', ')}] of ${datatype} needs ${count * size}`);
        return column;
      }
      return { ...column, data: Array.from({ length: count }, (_, k) => readElement(datatype, buf, k * size)) };
    }
    const field = CONTENTS_FIELD[datatype];
    if (!field) {
      problems.push(`${where}: ${datatype} values travel in raw_input_contents only`);
      return column;
    }
    const other = typed.filter(([f]) => f !== field).map(([f]) => f);
    if (other.length > 0) problems.push(`${where}.contents: a ${datatype} tensor's values go in ${field}, got ${other.join(', ')}`);
    const values = (input.contents?.[field] ?? []) as unknown[];
    const data = values.map((v) => (Buffer.isBuffer(v) ? decodeText(v) : typeof v === 'string' ? integer(BigInt(v)) : v));
    const notText = data.findIndex((v) => v === undefined);
    if (notText >= 0) problems.push(`${where}.contents.bytes_contents[${notText}]: not UTF-8 text`);
    return { ...column, data };
  });
  if (problems.length > 0) throw new InvalidInputError('inference request', problems);
  return columns;
}

function decodeText(b: Buffer): string | undefined {
  try {
    return utf8.decode(b);
  } catch {
    return undefined;
  }
}

/** An output tensor as the response carries it: typed contents, or its raw bytes beside it. */
export interface GrpcOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  contents?: TensorContents;
}

function typedOf(out: V2Output): TensorContents {
  switch (out.datatype) {
    case 'INT64':
      return { int64_contents: Array.from(out.column.values as Float64Array, (v) => String(v)) };
    case 'FP32':
      return { fp32_contents: Array.from(out.column.values as Float32Array) };
    case 'FP64':
      return { fp64_contents: Array.from(out.column.values as Float64Array) };
    case 'BYTES':
      return { bytes_contents: textValues(out).map((t) => Buffer.from(t, 'utf8')) };
  }
}

/** Output tensors in raw_output_contents (what tritonclient reads) or in typed contents. */
export function encodeOutputs(outputs: readonly V2Output[], raw: boolean): { outputs: GrpcOutputTensor[]; raw_output_contents: Buffer[] } {
  return {
    outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape, ...(raw ? {} : { contents: typedOf(o) }) })),
    raw_output_contents: raw ? outputs.map(rawData) : [],
  };
}
