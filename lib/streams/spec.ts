/**
 * Stream pipeline spec files (`inferflow stream run <spec>`): read, validate (every problem with
 * its path) and turn into each partition's streamingInference input.
 */
import fs from 'node:fs/promises';
import { InvalidInputError, NotFoundError } from '../errors';
import { checkMessage } from '../messages/problems';
import { DEFAULT_PARTITIONS, StreamPipelineSpecSchema, type StreamPipelineSpec, type StreamingInferenceInput } from '../messages/stream';

/** @throws InvalidInputError listing every problem with its path */
export function parseStreamSpec(raw: unknown, object = 'stream pipeline spec'): StreamPipelineSpec {
  const r = checkMessage(StreamPipelineSpecSchema, raw);
  if (r.data === undefined) throw new InvalidInputError(`invalid ${object}`, r.problems, { object });
  return r.data;
}

/** @throws NotFoundError a missing file; InvalidInputError malformed JSON or an invalid spec */
export async function loadStreamSpec(file: string): Promise<StreamPipelineSpec> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`stream pipeline spec ${file} does not exist`, { object: file });
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidInputError(`stream pipeline spec ${file} is not valid JSON`, [(err as Error).message], { object: file });
  }
  return parseStreamSpec(raw, `stream pipeline spec ${file}`);
}

export const partitionsOf = (spec: StreamPipelineSpec): number => spec.partitions ?? DEFAULT_PARTITIONS;

/** One partition's workflow input: the pipeline part of the spec (the bridge's own settings stay out of history). */
export function partitionInput(spec: StreamPipelineSpec, partition: number): StreamingInferenceInput {
  const { $schema: _s, name, source: _source, key: _key, idField: _id, timeField: _time, partitions: _p, maxOutstandingPerPartition: _m, ...pipeline } = spec;
  return { ...pipeline, pipeline: name, partition };
}
