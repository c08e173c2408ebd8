/**
 * The protocol-neutral V2 tensor layer (server/v2/tensors.ts) and the REST codec: raw
 * little-endian tensors of every datatype, BYTES length prefixes, shapes, output selection, the
 * binary tensor data extension's framing; MLflow's CSV.
 */
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../lib/errors';
import { rowsOfCsv, rowsOfJson } from '../../server/mlflow';
import { decodeInferRequest, encodeInferResponse } from '../../server/v2/rest-codec';
import { decodeRaw, encodeRaw, rowsOfTensors } from '../../server/v2/tensors';

const bytesElement = (s: string) => {
  const b = Buffer.from(s);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length);
  return Buffer.concat([len, b]);
};

describe('V2 tensors', () => {
  it('decodes raw little-endian tensors of each datatype', () => {
    expect(decodeRaw('INT64', Buffer.from(new BigInt64Array([17n, -(2n ** 60n)]).buffer), 2, 'x')).toEqual([17, -(2n ** 60n)]);
    expect(decodeRaw('UINT8', Buffer.from([0, 255]), 2, 'x')).toEqual([0, 255]);
    expect(decodeRaw('BOOL', Buffer.from([0, 1]), 2, 'x')).toEqual([false, true]);
    expect(decodeRaw('FP16', Buffer.from(new Uint16Array([0x3c00, 0xc000, 0x3555]).buffer), 3, 'x')).toEqual([1, -2, 0.333251953125]);
    expect(decodeRaw('FP32', Buffer.from(new Float32Array([1.5]).buffer), 1, 'x')).toEqual([1.5]);
    expect(decodeRaw('BYTES', Buffer.concat([bytesElement('travel'), bytesElement(''), bytesElement('café')]), 3, 'x')).toEqual(['travel', '', 'café']);
  });

  it('refuses raw data that does not hold the shape, naming the input', () => {
    expect(() => decodeRaw('FP64', Buffer.alloc(12), 2, 'inputs[0] (a)')).toThrow('inputs[0] (a): binary data is 12 bytes, the shape needs 2 FP64 elements (16 bytes)');
    expect(() => decodeRaw('BYTES', bytesElement('a'), 2, 'inputs[1] (b)')).toThrow('inputs[1] (b): binary data holds 1 BYTES elements in 5 of 5 bytes, the shape needs 2');
    expect(() => decodeRaw('BYTES', Buffer.from([9, 0, 0, 0, 65]), 1, 'c')).toThrow('c: BYTES element 0 says 9 bytes, 1 remain');
  });

  it('round-trips outputs through encodeRaw', () => {
    expect(decodeRaw('INT64', encodeRaw('INT64', new Float64Array([0, 1])), 2, 'x')).toEqual([0, 1]);
    expect(decodeRaw('BYTES', encodeRaw('BYTES', ['a', 'bc']), 2, 'x')).toEqual(['a', 'bc']);
  });

  it('reads columns of shape [N] or [N, 1] into rows, and names every problem', () => {
    expect(rowsOfTensors([{ name: 'a', datatype: 'FP64', shape: [2, 1], values: [1, 2] }, { name: 'b', datatype: 'BYTES', shape: [2, 1], values: ['x', 'y'] }])).toEqual({ rows: [{ a: 1, b: 'x' }, { a: 2, b: 'y' }], rank: 2 });
    const err = (() => {
      try {
        rowsOfTensors([{ name: 'a', datatype: 'FP64', shape: [2, 2], values: [1, 2, 3, 4] }, { name: 'a', datatype: 'FP64', shape: [3], values: [1, 2, 3] }]);
      } catch (e) {
        return e as InvalidInputError;
      }
      return undefined;
    })();
    expect(err?.problems).toEqual(['inputs[0] (a).shape: [2, 2] is not a column (one value per row: [N] or [N, 1])', 'inputs[1] (a): 3 rows, the first input has 4', 'inputs[1] (a): given twice']);
  });
});

describe('V2 REST codec (binary tensor data extension)', () => {
  it('splits the JSON header from the binary inputs in input order', () => {
    const json = Buffer.from(JSON.stringify({ id: 'r', inputs: [{ name: 'c', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 10 } }, { name: 'a', datatype: 'FP32', shape: [1], data: [2] }, { name: 'k', datatype: 'INT32', shape: [1], parameters: { binary_data_size: 4 } }], outputs: [{ name: 'score', parameters: { binary_data: true } }, { name: 'label' }] }));
    const body = Buffer.concat([json, bytesElement('travel'), Buffer.from(new Int32Array([7]).buffer)]);
    const r = decodeInferRequest(body, String(json.length));
    expect(r.inputs.map((i) => [i.name, i.values])).toEqual([['c', ['travel']], ['a', [2]], ['k', [7]]]);
    expect(r.outputs).toEqual(['score', 'label']);
    expect([...r.binaryOutputs]).toEqual(['score']);
    expect(() => decodeInferRequest(Buffer.concat([body, Buffer.alloc(3)]), String(json.length))).toThrow('the body has 3 bytes after the inputs\' binary data');
  });

  it('writes binary outputs after the JSON and says its length', () => {
    const { body, headers } = encodeInferResponse({ model_name: 'm' }, [{ name: 'score', datatype: 'FP32', shape: [2], column: { kind: 'float', values: new Float32Array([0.25, 0.5]) } }, { name: 'label', datatype: 'INT64', shape: [2], column: { kind: 'int', values: new Float64Array([0, 1]) } }], (n) => n === 'score');
    const length = Number(headers['inference-header-content-length']);
    expect(JSON.parse(body.subarray(0, length).toString())).toEqual({ model_name: 'm', outputs: [{ name: 'score', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } }, { name: 'label', datatype: 'INT64', shape: [2], data: [0, 1] }] });
    expect(Array.from(new Float32Array(body.buffer.slice(body.byteOffset + length, body.byteOffset + length + 8)))).toEqual([0.25, 0.5]);
    expect(headers['content-type']).toBe('application/octet-stream');
  });
});

describe('MLflow payloads', () => {
  it('reads CSV with quotes, numbers and empty cells', () => {
    expect(rowsOfCsv('a,b,c\r\n1.5,"x, ""y""",\n-2,007,"12"\n')).toEqual([
      { a: 1.5, b: 'x, "y"', c: null },
      { a: -2, b: 7, c: '12' },
    ]);
    expect(() => rowsOfCsv('a,b\n1\n')).toThrow('text/csv: row 1 has 1 cells, the header has 2');
  });

  it('reads columnar inputs and refuses columns of unequal length', () => {
    expect(rowsOfJson({ inputs: { a: [1, 2], b: ['x', 'y'] } })).toEqual([{ a: 1, b: 'x' }, { a: 2, b: 'y' }]);
    expect(() => rowsOfJson({ inputs: { a: [1, 2], b: ['x'] } })).toThrow('inputs: every column a list of the same length (b is not)');
  });
});
