/**
 * What a deployment's model takes and answers, in V2 terms (REST and gRPC model metadata): one
 * input per request field the pipeline reads (entity keys of its feature views, the fields its
 * model and on-demand features need), each with the V2 datatype to send it as, and the
 * pipeline's output columns (server/v2/outputs.ts).
 */
import { outputColumnName } from '../../lib/features/spec';
import type { Pipeline } from '../../lib/pipeline/pipeline';
import { outputMetadata, type OutputMetadata } from './outputs';
import type { Datatype } from './tensors';

export interface TensorMetadata {
  name: string;
  datatype: Datatype;
  shape: number[];
}

export interface ModelTensors {
  inputs: TensorMetadata[];
  outputs: OutputMetadata[];
}

/** The datatype to declare for a request field: entity keys INT64 (BYTES also accepted), times BYTES (ISO 8601; INT64 epoch ms also accepted), numbers FP64. */
const DECLARED: Record<'entityKey' | 'numeric' | 'string' | 'timestamp', Datatype> = { entityKey: 'INT64', numeric: 'FP64', string: 'BYTES', timestamp: 'BYTES' };

const known = new WeakMap<Pipeline, ModelTensors>();

/** The request fields a pipeline needs (entity keys, then the fields the model and its on-demand features read) and its outputs. */
export function modelTensors(p: Pipeline): ModelTensors {
  const cached = known.get(p);
  if (cached) return cached;
  const fromViews = new Set(p.views.flatMap((v) => v.features.map((f) => outputColumnName(v.name, f.name))));
  const entities = [...new Set(p.views.flatMap((v) => v.entities))];
  const fields = p.plan.sourceColumns.filter((c) => !fromViews.has(c.name) && !entities.includes(c.name));
  const column = (name: string, datatype: Datatype): TensorMetadata => ({ name, datatype, shape: [-1] });
  const tensors: ModelTensors = {
    inputs: [...entities.map((e) => column(e, DECLARED.entityKey)), ...fields.map((c) => column(c.name, DECLARED[c.kind]))],
    outputs: outputMetadata(p),
  };
  known.set(p, tensors);
  return tensors;
}
