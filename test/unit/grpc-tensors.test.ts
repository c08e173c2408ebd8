/**
 * V2 tensors independent of the wire (server/v2/columns.ts) and the gRPC contents codec
 * (server/grpc-tensors.ts): every datatype from raw and typed contents, and each malformed
 * tensor refused with the input named.
 */
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../lib/errors';
import { decodeInputs, encodeOutputs, type GrpcInputTensor } from '../../server/grpc-tensors';
import { fitsDatatype, rowsOfTensors } from '../../server/v2/tensors';
import { outputTensors } from '../../server/v2/outputs';

const tensor = (name: string, datatype: string, shape: number[], contents?: GrpcInputTensor['contents']): GrpcInputTensor => ({ name, datatype, shape: shape.map(String), ...(contents ? { contents } : {}) });

function le(write: (b: Buffer, at: number, v: never) => unknown, size: number, values: unknown[]): Buffer {
  const b = Buffer.alloc(size * values.length);
  values.forEach((v, k) => write(b, k * size, v as never));
  return b;
}

function bytesTensor(values: string[]): Buffer {
  return Buffer.concat(values.flatMap((v) => [le((b, at, n: number) => b.writeUInt32LE(n, at), 4, [Buffer.byteLength(v)]), Buffer.from(v)]));
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError);
    return (err as InvalidInputError).problems;
  }
  throw new Error('expected an InvalidInputError');
}

describe('gRPC raw_input_contents', () => {
  it('decodes every datatype little-endian, int64 beyond 2^53 as bigint, BYTES length-prefixed', () => {
    const cols = decodeInputs(
      [
        tensor('b', 'BOOL', [2]),
        tensor('i8', 'INT8', [2]),
        tensor('u16', 'UINT16', [2]),
        tensor('i32', 'INT32', [2]),
        tensor('u32', 'UINT32', [2]),
        tensor('i64', 'INT64', [2]),
        tensor('u64', 'UINT64', [2]),
        tensor('h', 'FP16', [2]),
        tensor('f', 'FP32', [2]),
        tensor('d', 'FP64', [2, 1]),
        tensor('s', 'BYTES', [2]),
      ],
      [
        Buffer.from([1, 0]),
        Buffer.from([0xff, 0x7f]),
        le((b, at, v: number) => b.writeUInt16LE(v, at), 2, [65535, 1]),
        le((b, at, v: number) => b.writeInt32LE(v, at), 4, [-5, 2 ** 31 - 1]),
        le((b, at, v: number) => b.writeUInt32LE(v, at), 4, [2 ** 32 - 1, 0]),
        le((b, at, v: bigint) => b.writeBigInt64LE(v, at), 8, [-17n, 2n ** 62n]),
        le((b, at, v: bigint) => b.writeBigUInt64LE(v, at), 8, [2n ** 64n - 1n, 3n]),
        le((b, at, v: number) => b.writeUInt16LE(v, at), 2, [0x3c00, 0xc000]),
        le((b, at, v: number) => b.writeFloatLE(v, at), 4, [1.5, NaN]),
        le((b, at, v: number) => b.writeDoubleLE(v, at), 8, [120.5, -Infinity]),
        bytesTensor(['travel', 'grüße']),
      ],
    );
    expect(Object.fromEntries(cols.map((c) => [c.name, c.values]))).toEqual({
      b: [true, false],
      i8: [-1, 127],
      u16: [65535, 1],
      i32: [-5, 2 ** 31 - 1],
      u32: [2 ** 32 - 1, 0],
      i64: [-17, 2n ** 62n],
      u64: [2n ** 64n - 1n, 3],
      h: [1, -2],
      f: [1.5, NaN],
      d: [120.5, -Infinity],
      s: ['travel', 'grüße'],
    });
    expect(rowsOfTensors(cols).rows[1]).toMatchObject({ i64: 2n ** 62n, s: 'grüße', d: -Infinity });
  });

  it('refuses raw contents that disagree with the shape, truncated BYTES, a buffer count other than the inputs, contents beside raw', () => {
    expect(problemsOf(() => decodeInputs([tensor('id', 'INT64', [2])], [Buffer.alloc(8)]))).toEqual(['raw_input_contents[0] (id): binary data is 8 bytes, the shape needs 2 INT64 elements (16 bytes)']);
    expect(problemsOf(() => decodeInputs([tensor('s', 'BYTES', [1])], [bytesTensor(['abc']).subarray(0, 5)]))).toEqual(['raw_input_contents[0] (s): BYTES element 0 says 3 bytes, 1 remain']);
    expect(problemsOf(() => decodeInputs([tensor('s', 'BYTES', [2])], [bytesTensor(['abc'])]))).toEqual(['raw_input_contents[0] (s): binary data holds 1 BYTES elements in 7 of 7 bytes, the shape needs 2']);
    expect(problemsOf(() => decodeInputs([tensor('s', 'BYTES', [1])], [Buffer.from([2, 0, 0, 0, 0xc3, 0x28])]))).toEqual(['raw_input_contents[0] (s): BYTES element 0 is not UTF-8 text']);
    expect(problemsOf(() => decodeInputs([tensor('a', 'FP64', [1]), tensor('b', 'FP64', [1])], [Buffer.alloc(8)]))).toEqual(['raw_input_contents: 1 buffers for 2 inputs (one per input, in input order)']);
    expect(problemsOf(() => decodeInputs([tensor('a', 'FP64', [1], { fp64_contents: [1] })], [Buffer.alloc(8)]))).toEqual(['inputs[0] (a).contents: must be empty when raw_input_contents is used']);
    expect(problemsOf(() => decodeInputs([tensor('a', 'FP64', [-1])], [Buffer.alloc(8)]))).toEqual(['inputs[0] (a).shape: required, a list of non-negative integers, got [-1]']);
  });
});

describe('gRPC typed contents', () => {
  it('reads each datatype from its field (int64 and uint64 arrive as decimal strings)', () => {
    const cols = decodeInputs(
      [
        tensor('id', 'INT64', [2], { int64_contents: ['17', '9007199254740993'] }),
        tensor('n', 'UINT64', [1, 1], { uint64_contents: ['3'] }),
        tensor('s', 'BYTES', [1], { bytes_contents: [Buffer.from('travel')] }),
        tensor('ok', 'BOOL', [1], { bool_contents: [true] }),
      ],
      [],
    );
    expect(cols.map((c) => c.values)).toEqual([[17, 9007199254740993n], [3], ['travel'], [true]]);
  });

  it('refuses values in another datatype\'s field and FP16 outside raw contents', () => {
    expect(problemsOf(() => decodeInputs([tensor('id', 'INT64', [1], { int64_contents: ['1'], fp64_contents: [1] })], []))).toEqual(["inputs[0] (id).contents: a INT64 tensor's values go in int64_contents, got fp64_contents"]);
    expect(problemsOf(() => decodeInputs([tensor('h', 'FP16', [1], { fp32_contents: [1] })], []))).toEqual(['inputs[0] (h): FP16 values travel in raw_input_contents only']);
  });
});

describe('V2 tensors → rows', () => {
  it('lists every problem: shape, datatype, values out of range, lengths, duplicates', () => {
    expect(
      problemsOf(() =>
        rowsOfTensors([
          { name: 'a', datatype: 'INT8', shape: [2], values: [1, 300] },
          { name: 'b', datatype: 'FLOAT', shape: [2], values: [1, 2] },
          { name: 'a', datatype: 'FP64', shape: [3], values: [1, 2, 3] },
          { name: 'c', datatype: 'FP64', shape: [2, 2], values: [1, 2] },
        ]),
      ),
    ).toEqual([
      'inputs[0] (a).data[1]: expected INT8, got 300',
      'inputs[1] (b).datatype: one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES, got "FLOAT"',
      'inputs[2] (a): 3 rows, the first input has 2',
      'inputs[2] (a): given twice',
      'inputs[3] (c).shape: [2, 2] is not a column (one value per row: [N] or [N, 1])',
    ]);
    expect(problemsOf(() => rowsOfTensors([{ name: 'id', datatype: 'INT64', shape: [2], values: [NaN, Infinity] }]))).toEqual(['inputs[0] (id).data[0]: expected INT64, got NaN', 'inputs[0] (id).data[1]: expected INT64, got Infinity']);
    expect(problemsOf(() => rowsOfTensors([]))).toEqual(['inputs: required, one tensor {name, datatype, shape, data} per request field']);
  });

  it('checks integer ranges exactly, bigint included', () => {
    expect(fitsDatatype('UINT64', 2n ** 64n - 1n)).toBe(true);
    expect(fitsDatatype('UINT64', -1)).toBe(false);
    expect(fitsDatatype('INT64', 2n ** 63n)).toBe(false);
    expect(fitsDatatype('INT32', 1.5)).toBe(false);
    expect(fitsDatatype('FP64', NaN)).toBe(true);
  });
});

describe('gRPC outputs', () => {
  const predictions = { rows: 2, label: Float64Array.from([0, 1]), score: Float32Array.from([0.25, 0.75]) };
  it('encodes raw little-endian INT64 labels and FP32 scores, or typed contents', () => {
    const selected = outputTensors(predictions, ['score', 'label']);
    const raw = encodeOutputs(selected, true);
    expect(raw.outputs).toEqual([
      { name: 'score', datatype: 'FP32', shape: [2] },
      { name: 'label', datatype: 'INT64', shape: [2] },
    ]);
    expect(Array.from(new Float32Array(new Uint8Array(raw.raw_output_contents[0]!).buffer))).toEqual([0.25, 0.75]);
    expect(raw.raw_output_contents[1]!.readBigInt64LE(8)).toBe(1n);
    const typed = encodeOutputs(selected, false);
    expect(typed.raw_output_contents).toEqual([]);
    expect(typed.outputs.map((o) => o.contents)).toEqual([{ fp32_contents: [0.25, 0.75] }, { int64_contents: ['0', '1'] }]);
  });
});
