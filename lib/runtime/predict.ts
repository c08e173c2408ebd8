import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type * as ortTypes from 'onnxruntime-node';
import { InvalidValueError, SchemaMismatchError } from '../errors';
import type { ModelManifest } from '../registry/manifest';
import { loadOrt } from './onnx';
import { offloadOf } from './pool';

/** Rows per `session.run` call on the calling thread: long enough for near-peak throughput, short enough to keep the event loop responsive. */
export const DEFAULT_CHUNK_ROWS = 4096;
/**
 * Rows per call on an inference pool thread (the event loop is not blocked there; fewer, larger
 * calls cost less): the raw baseline's batch size. Measured on the tree ensemble, 1M rows in 4
 * blocks on 2 threads: 0.93–0.99 s CPU at 65,536 rows against 0.97–1.26 s at 16,384.
 */
export const DEFAULT_OFFLOAD_CHUNK_ROWS = 65_536;
/** Blocks smaller than this stay on the calling thread even when a pool is available (a round trip costs more). */
export const MIN_OFFLOAD_ROWS = 1024;

/** A block of rows as one row-major float32 matrix per model input. */
export interface FeatureBlock {
  rows: number;
  /** input name → row-major values, `rows × columns.length` */
  inputs: Record<string, Float32Array>;
  /** Identifies each row in error messages (entity key / id), when known. */
  rowLabel?: (row: number) => string;
  /** True when a column's value in a row was missing (null) where it came from: messages then say `null`, not `NaN`. */
  missing?: (row: number, column: string) => boolean;
  /** The raw and on-demand columns the block was assembled from (read by post-processing steps). */
  columns?: Record<string, Float64Array | (string | null)[]>;
}

export interface PredictOptions {
  /** Rows per call (default DEFAULT_CHUNK_ROWS on the calling thread, DEFAULT_OFFLOAD_CHUNK_ROWS on a pool). */
  chunkRows?: number;
  onChunk?: (rowsDone: number) => void;
  /** false: never use the session's inference pool (see pool.ts). */
  offload?: boolean;
}

/** One output tensor of a `session.run` call (on the calling thread or from a pool thread). */
export interface OutputTensor {
  data: unknown;
  dims: readonly number[];
  dispose?: () => void;
}

/** One chunk's outputs by output name. */
export type ChunkOutputs = Record<string, OutputTensor>;

/**
 * Receives each chunk's outputs, in row order, for rows [start, start + n) of the block; the
 * tensors are released after it returns (lib/pipeline/post-process.ts turns them into predictions).
 */
export type CollectOutputs = (outputs: ChunkOutputs, start: number, n: number) => void;

/** Feature columns per input, in the order the model expects them. */
export function inputColumns(manifest: ModelManifest): { name: string; columns: string[] }[] {
  return manifest.metadata.inputs.map((i) => ({ name: i.name, columns: i.columns }));
}

/** The first `limit` NaN/±Infinity values of a block: row, column, value. */
export function nonFiniteValues(manifest: ModelManifest, block: FeatureBlock, limit = 10): { row: number; column: string; value: number }[] {
  const found: { row: number; column: string; value: number }[] = [];
  for (const input of inputColumns(manifest)) {
    const data = block.inputs[input.name];
    if (!data) throw new SchemaMismatchError('feature block does not fit the model', [`input ${input.name} is missing`]);
    const width = input.columns.length;
    for (let i = nextNonFinite(data, 0); i >= 0 && found.length < limit; i = nextNonFinite(data, i + 1)) {
      found.push({ row: Math.floor(i / width), column: input.columns[i % width]!, value: data[i]! });
    }
  }
  return found;
}

/** Index of the first NaN/±Infinity at or after `from`, or -1 (x - x is 0 only for finite x; a tight monomorphic loop). */
function nextNonFinite(data: Float32Array, from: number): number {
  for (let i = from; i < data.length; i++) {
    const x = data[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}

/**
 * The first `n` labels as numbers: int64 outputs are read through their 32-bit halves instead of
 * one BigInt → Number per row (14-43 ms per 1M labels that way, measured on 2 cores).
 */
export function labelsAsNumbers(data: unknown, n: number): ArrayLike<number> {
  if (data instanceof BigInt64Array) {
    const halves = new Int32Array(data.buffer, data.byteOffset, n * 2);
    const out = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      const hi = halves[2 * r + 1]!;
      const lo = halves[2 * r]! >>> 0;
      // Exact below 2^53 in magnitude (class labels); beyond that, the BigInt path.
      out[r] = hi >= -0x200000 && hi < 0x200000 ? hi * 4294967296 + lo : Number(data[r]!);
    }
    return out;
  }
  if (data instanceof Float64Array || data instanceof Float32Array || data instanceof Int32Array) return data;
  const arr = data as ArrayLike<number | bigint>;
  return Float64Array.from({ length: n }, (_, r) => Number(arr[r]));
}

export function checkFinite(manifest: ModelManifest, block: FeatureBlock): void {
  const found = nonFiniteValues(manifest, block).map((b) => ({ ...b, text: block.missing?.(b.row, b.column) ? 'null' : String(b.value) }));
  if (found.length > 0) {
    const bad = found.map((b) => `${block.rowLabel?.(b.row) ?? `row ${b.row}`}: ${b.column} = ${b.text}`);
    // Name what was found: a missing value the model has no imputer for, NaN, or ±Infinity.
    const kinds = [...new Set(found.map((b) => (b.text === 'null' ? 'null (not imputed by the model)' : b.text === 'NaN' ? 'NaN' : 'infinite')))];
    throw new InvalidValueError(`features contain ${kinds.join(' or ')} values (${bad.length}${bad.length === 10 ? '+' : ''}): ${bad.join('; ')}`, {
      problems: bad,
    });
  }
}

/**
 * Run the model over an assembled feature block in chunks, handing each chunk's outputs to
 * `collect` (the post-processing step). onnxruntime-node computes on the calling thread: when the
 * session belongs to an inference pool (SessionCache, pool.ts) and the block has at least
 * MIN_OFFLOAD_ROWS rows, chunks run on the pool's threads (one in flight per thread) and the event
 * loop stays free; otherwise they run here, yielding to the event loop between chunks. Either way
 * the results are the same, bit for bit.
 */
export async function runModel(session: ortTypes.InferenceSession, manifest: ModelManifest, block: FeatureBlock, collectOutputs: CollectOutputs, options: PredictOptions = {}): Promise<void> {
  checkFinite(manifest, block);
  const inputs = inputColumns(manifest);
  const offload = options.offload === false || block.rows < MIN_OFFLOAD_ROWS ? undefined : offloadOf(session);
  const chunkRows = Math.max(1, options.chunkRows ?? (offload ? DEFAULT_OFFLOAD_CHUNK_ROWS : DEFAULT_CHUNK_ROWS));
  const { Tensor } = await loadOrt();
  const feedsFor = (start: number, n: number) => {
    const feeds: Record<string, ortTypes.Tensor> = {};
    for (const input of inputs) {
      const width = input.columns.length;
      feeds[input.name] = new Tensor('float32', block.inputs[input.name]!.subarray(start * width, (start + n) * width), [n, width]);
    }
    return feeds;
  };
  const collect = (result: ChunkOutputs, start: number, n: number) => {
    try {
      collectOutputs(result, start, n);
    } finally {
      for (const t of Object.values(result)) t.dispose?.();
    }
  };
  if (!offload) {
    for (let start = 0; start < block.rows; start += chunkRows) {
      const n = Math.min(chunkRows, block.rows - start);
      collect(await session.run(feedsFor(start, n)), start, n);
      options.onChunk?.(start + n);
      if (start + n < block.rows) await yieldToEventLoop();
    }
    return;
  }

  // On the pool: keep up to one chunk per pool thread in flight, collect in order.
  const window = Math.max(1, offload.pool.size);
  const inFlight: { start: number; n: number; result: Promise<Record<string, OutputTensor>> }[] = [];
  let next = 0;
  const submit = () => {
    const n = Math.min(chunkRows, block.rows - next);
    const result = offload.pool.run(offload.key, offload.modelPath, offload.options, feedsFor(next, n));
    result.catch(() => undefined); // awaited below, or abandoned after an earlier failure/cancellation
    inFlight.push({ start: next, n, result });
    next += n;
  };
  while (next < block.rows && inFlight.length < window) submit();
  while (inFlight.length > 0) {
    const c = inFlight.shift()!;
    collect(await c.result, c.start, c.n);
    options.onChunk?.(c.start + c.n);
    if (next < block.rows) submit();
  }
}

