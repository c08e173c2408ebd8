/**
 * The V2 REST inference request and response bodies: JSON, or JSON followed by raw tensors (the
 * binary tensor data extension). With the extension the JSON's length is in the
 * `Inference-Header-Content-Length` header, each binary input says its byte length in
 * `parameters.binary_data_size`, and the tensors follow the JSON in input order; outputs asked
 * for with `parameters.binary_data` (or all of them, with the request's
 * `parameters.binary_data_output`) come back the same way.
 */
import { InvalidInputError } from '../../lib/errors';
import { HttpError, parseJson } from '../respond';
import { jsonData, rawData, type V2Output } from './outputs';
import { REQUEST, datatypeProblem, decodeRaw, elementCount, shapeListProblem, inputWhere, isDatatype, nonFiniteProblems, type TensorInput } from './tensors';

export const HEADER_LENGTH = 'inference-header-content-length';

export interface V2Request {
  id?: string;
  inputs: TensorInput[];
  /** Output names asked for, in order (undefined: all). */
  outputs?: string[];
  /** Outputs to send as raw bytes. */
  binaryOutputs: Set<string>;
  /** True when every output not named in `outputs` with binary_data goes as raw bytes. */
  binaryByDefault: boolean;
  parameters: Record<string, unknown>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A V2 REST inference request body → inputs decoded (JSON `data`, nested or flat, or binary).
 *
 * @throws HttpError 400 a header length that does not fit the body, JSON that does not parse
 * @throws InvalidInputError every problem of the inputs and outputs, each naming the input
 */
export function decodeInferRequest(body: Buffer, headerLength: string | undefined): V2Request {
  let jsonEnd = body.length;
  if (headerLength !== undefined) {
    jsonEnd = Number(headerLength);
    if (!Number.isSafeInteger(jsonEnd) || jsonEnd < 0 || jsonEnd > body.length) throw new HttpError(400, `Inference-Header-Content-Length: ${JSON.stringify(headerLength)} is not a length within the ${body.length}-byte body`);
  }
  const b = parseJson(body.subarray(0, jsonEnd).toString('utf8'));
  if (!isObject(b) || !Array.isArray(b.inputs) || b.inputs.length === 0) throw new InvalidInputError('inputs: required, a list of {name, datatype, shape, data}');
  const problems: string[] = [];
  const inputs: TensorInput[] = [];
  let offset = jsonEnd;
  b.inputs.forEach((input: unknown, i) => {
    const where = inputWhere(i, isObject(input) ? input.name : undefined);
    if (!isObject(input)) return void problems.push(`${where}: an object {name, datatype, shape, data}`);
    const { datatype, shape } = input;
    const count = elementCount(shape);
    const params = isObject(input.parameters) ? input.parameters : {};
    const size = params.binary_data_size;
    if (size !== undefined) {
      if (!Number.isSafeInteger(size) || (size as number) < 0) return void problems.push(`${where}.parameters.binary_data_size: a byte count`);
      if (headerLength === undefined) return void problems.push(`${where}: binary_data_size without the Inference-Header-Content-Length header`);
      const end = offset + (size as number);
      if (end > body.length) return void problems.push(`${where}: binary_data_size ${size as number} bytes, only ${body.length - offset} bytes of binary data remain in the body`);
      const raw = body.subarray(offset, end);
      offset = end;
      if (!isDatatype(datatype)) return void problems.push(datatypeProblem(where, datatype));
      if (count === undefined) return void problems.push(shapeListProblem(where, shape));
      try {
        const values = decodeRaw(datatype, raw, count, where);
        problems.push(...nonFiniteProblems(where, values));
        inputs.push({ name: input.name as string, datatype, shape: shape as number[], values });
      } catch (err) {
        if (!(err instanceof InvalidInputError)) throw err;
        problems.push(...err.problems);
      }
      return undefined;
    }
    if (!Array.isArray(input.data)) return void problems.push(`${where}.data: required, a list of values (or binary data with parameters.binary_data_size)`);
    inputs.push({ name: input.name as string, datatype: datatype as string, shape: Array.isArray(shape) ? (shape as number[]) : [shape as number], values: (input.data as unknown[]).flat(Infinity) });
    return undefined;
  });
  if (problems.length === 0 && offset !== body.length) problems.push(`the body has ${body.length - offset} bytes after the inputs' binary data`);
  let outputs: string[] | undefined;
  const binaryOutputs = new Set<string>();
  if (b.outputs !== undefined) {
    if (!Array.isArray(b.outputs)) problems.push('outputs: a list of {name, parameters}');
    else {
      outputs = [];
      b.outputs.forEach((o: unknown, i) => {
        if (!isObject(o) || typeof o.name !== 'string') return void problems.push(`outputs[${i}].name: required`);
        outputs!.push(o.name);
        if (isObject(o.parameters) && o.parameters.binary_data === true) binaryOutputs.add(o.name);
      });
    }
  }
  const parameters = isObject(b.parameters) ? b.parameters : {};
  if (b.parameters !== undefined && !isObject(b.parameters)) problems.push('parameters: an object');
  if (problems.length > 0) throw new InvalidInputError(REQUEST, problems);
  const binaryByDefault = parameters.binary_data_output === true;
  // An output named with binary_data false stays JSON even under binary_data_output.
  if (binaryByDefault && Array.isArray(b.outputs)) {
    for (const o of b.outputs as Record<string, unknown>[]) if (!(isObject(o.parameters) && o.parameters.binary_data === false)) binaryOutputs.add(o.name as string);
  }
  return { ...(typeof b.id === 'string' ? { id: b.id } : {}), inputs, ...(outputs ? { outputs } : {}), binaryOutputs, binaryByDefault, parameters };
}

/** The response body and its content headers: plain JSON, or JSON then raw tensors when any output goes binary. */
export function encodeInferResponse(head: Record<string, unknown>, outputs: readonly V2Output[], binary: (name: string) => boolean): { body: Buffer; headers: Record<string, string | number> } {
  const raws: Buffer[] = [];
  const described = outputs.map((o) => {
    if (!binary(o.name)) return { name: o.name, datatype: o.datatype, shape: o.shape, data: jsonData(o) };
    const raw = rawData(o);
    raws.push(raw);
    return { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: raw.length } };
  });
  const json = Buffer.from(JSON.stringify({ ...head, outputs: described }));
  if (raws.length === 0) return { body: json, headers: { 'content-type': 'application/json', 'content-length': json.length } };
  const body = Buffer.concat([json, ...raws]);
  return { body, headers: { 'content-type': 'application/octet-stream', 'content-length': body.length, [HEADER_LENGTH]: json.length } };
}
