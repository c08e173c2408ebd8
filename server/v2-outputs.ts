/**
 * A pipeline's output columns (lib/pipeline/outputs.ts) as KServe V2 output tensors: one tensor
 * per column, in output order; list columns (multi-output regression, embeddings, top-k) are
 * [rows, width] tensors with their data flattened row-major, as V2 lays tensors out.
 */
import { columnJson, type OutputField, type OutputKind } from '../lib/pipeline/outputs';
import { baseColumns, type Predictions } from '../lib/pipeline/post-process';

const DATATYPE: Record<OutputKind, string> = { int: 'INT64', float: 'FP32', double: 'FP64', string: 'BYTES', floats: 'FP32', strings: 'BYTES' };

/** The outputs a served pipeline answers with (model metadata: `GET /v2/models/{name}`). */
export function outputMetadata(schema: readonly OutputField[]): { name: string; datatype: string; shape: number[] }[] {
  return schema.map((f) => ({ name: f.name, datatype: DATATYPE[f.kind], shape: f.width ? [-1, f.width] : [-1] }));
}

/** The output tensors of an inference response. */
export function outputTensors(p: Predictions): { name: string; datatype: string; shape: number[]; data: unknown[] }[] {
  return [...baseColumns(p)].map(([name, c]) => {
    const data = columnJson(c);
    return 'width' in c ? { name, datatype: DATATYPE[c.kind], shape: [p.rows, c.width], data: data.flat() } : { name, datatype: DATATYPE[c.kind], shape: [p.rows], data };
  });
}
