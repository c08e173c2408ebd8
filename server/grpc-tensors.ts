/**
 * V2 gRPC tensor contents ↔ TensorInputs (server/v2/tensors.ts): typed `contents` (one repeated
 * field per datatype family) or `raw_input_contents` (flat little-endian bytes per input, BYTES
 * elements each a 4-byte little-endian length then the bytes), and output tensors back the
 * same way the request came. Messages name the input (`inputs[1] (customer_id)`) and what was wrong.
 */
import { InvalidInputError } from '../lib/errors';
import { REQUEST, datatypeProblem, decodeRaw, elementCount, shapeListProblem, exactInteger, inputWhere, isDatatype, utf8Text, type Datatype, type TensorInput } from './v2/tensors';
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
const CONTENTS_FIELD: Record<Datatype, ContentsField | undefined> = {
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

/**
 * The request's input tensors, from raw contents (one buffer per input, in input order) or typed
 * contents, never both. Every problem of the wire format is listed in one InvalidInputError; the
 * tensors themselves are checked by rowsOfTensors (server/v2/tensors.ts), as REST's are.
 */
export function decodeInputs(inputs: readonly GrpcInputTensor[], raw: readonly Buffer[]): TensorInput[] {
  const problems: string[] = [];
  const useRaw = raw.length > 0;
  if (useRaw && raw.length !== inputs.length) problems.push(`raw_input_contents: ${raw.length} buffers for ${inputs.length} inputs (one per input, in input order)`);
  const tensors = inputs.map((input, i): TensorInput => {
    const where = inputWhere(i, input.name);
    const shape = input.shape.map(Number);
    const column: TensorInput = { name: input.name, datatype: input.datatype, shape, values: [] };
    const typed = Object.entries(input.contents ?? {}).filter(([, v]) => Array.isArray(v) && v.length > 0) as [ContentsField, unknown[]][];
    if (!isDatatype(input.datatype)) {
      problems.push(datatypeProblem(where, input.datatype));
      return column;
    }
    const datatype = input.datatype;
    if (useRaw) {
      if (typed.length > 0) problems.push(`${where}.contents: must be empty when raw_input_contents is used`);
      const buf = raw[i];
      const count = elementCount(shape);
      if (!buf) return column;
      if (count === undefined) {
        problems.push(shapeListProblem(where, shape));
        return column;
      }
      try {
        return { ...column, values: decodeRaw(datatype, buf, count, `raw_input_contents[${i}] (${input.name})`) };
      } catch (err) {
        if (!(err instanceof InvalidInputError)) throw err;
        problems.push(...err.problems);
        return column;
      }
    }
    const field = CONTENTS_FIELD[datatype];
    if (!field) {
      problems.push(`${where}: ${datatype} values travel in raw_input_contents only`);
      return column;
    }
    const other = typed.filter(([f]) => f !== field).map(([f]) => f);
    if (other.length > 0) problems.push(`${where}.contents: a ${datatype} tensor's values go in ${field}, got ${other.join(', ')}`);
    const values = (input.contents?.[field] ?? []) as unknown[];
    const data = values.map((v) => (Buffer.isBuffer(v) ? utf8Text(v) : typeof v === 'string' ? exactInteger(BigInt(v)) : v));
    const notText = data.findIndex((v) => v === undefined);
    if (notText >= 0) problems.push(`${where}.contents.bytes_contents[${notText}]: not UTF-8 text`);
    return { ...column, values: data };
  });
  if (problems.length > 0) throw new InvalidInputError(REQUEST, problems);
  return tensors;
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
