import type * as ort from 'onnxruntime-node';
import { CorruptArtifactError, errorMessage } from '../errors';
import type { ModelSignature, TensorSignature } from '../registry/manifest';

export interface SessionOptions {
  /** Intra-op threads. 1 keeps ONNX Runtime from competing with DuckDB/Temporal on small machines. */
  intraOpThreads: number;
}

let ortModule: Promise<typeof ort> | undefined;

/**
 * onnxruntime-node, loaded by the first call: loading its native binding takes a large part of a
 * second, which a process that never loads a model (the CLI's registry and feature commands, a
 * Resources that only resolves models) should not pay.
 */
export function loadOrt(): Promise<typeof ort> {
  return (ortModule ??= import('onnxruntime-node'));
}

export const DEFAULT_SESSION_OPTIONS: SessionOptions = { intraOpThreads: 1 };

export function toOrtOptions(o: SessionOptions): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: o.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Idle threads spin by default and burn CPU next to the rest of the worker.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/** Load an ONNX model; anything ONNX Runtime cannot load is a CorruptArtifactError naming the source. */
export async function loadSession(source: string | Uint8Array, label: string, options = DEFAULT_SESSION_OPTIONS): Promise<ort.InferenceSession> {
  const { InferenceSession } = await loadOrt();
  try {
    return typeof source === 'string'
      ? await InferenceSession.create(source, toOrtOptions(options))
      : await InferenceSession.create(source, toOrtOptions(options));
  } catch (err) {
    throw new CorruptArtifactError(`${label} is not a loadable ONNX model: ${errorMessage(err)}`, { object: label });
  }
}

function toSignature(meta: readonly ort.InferenceSession.ValueMetadata[]): TensorSignature[] {
  return meta.map((m) =>
    m.isTensor
      ? { name: m.name, elementType: String(m.type), shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : null)) }
      : { name: m.name, elementType: 'non-tensor', shape: [] },
  );
}

export function signatureOf(session: ort.InferenceSession): ModelSignature {
  return { inputs: toSignature(session.inputMetadata), outputs: toSignature(session.outputMetadata) };
}

