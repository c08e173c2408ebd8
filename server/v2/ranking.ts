/**
 * Top-k online for a ranking spec (one with a `ranking` section): a V2 infer request names one
 * entity (an input named after the entity column, shape [1] or [1, 1]); its candidates are read
 * from the spec's candidate file, scored by the loaded pipeline, and the answer holds
 * `items` BYTES [1, n] (best first) and `scores` FP32 [1, n], n = min(k, candidates).
 *
 *   POST /v2/models/recommender/infer
 *   {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [100001]}]}
 *   → {"outputs": [{"name": "items", "datatype": "BYTES", "shape": [1, 10], "data": ["song-0178", …]},
 *                  {"name": "scores", "datatype": "FP32", "shape": [1, 10], "data": [0.7977, …]}], …}
 */
import type http from 'node:http';
import { InvalidInputError } from '../../lib/errors';
import type { RankingSpec } from '../../lib/messages/batch';
import { deploymentOf, loadedPipeline, type ServerContext } from '../context';
import { HttpError, readBody, sendJson } from '../respond';
import { HEADER_LENGTH, decodeInferRequest } from './rest-codec';

/** A served ranking: the spec's candidate file and its ranking section. */
export interface ServedRanking extends RankingSpec {
  candidates: string;
}

/** The one entity a top-k request asks for. */
function entityOf(inputs: ReturnType<typeof decodeInferRequest>['inputs'], column: string): string | number {
  const input = inputs.find((i) => i.name === column);
  if (!input || inputs.length !== 1) {
    throw new InvalidInputError(`a top-k request has one input, ${column}`, [`got ${inputs.length === 0 ? 'none' : inputs.map((i) => i.name).join(', ')}`], { field: 'inputs' });
  }
  const value = input.values[0];
  if (input.values.length !== 1 || (typeof value !== 'string' && typeof value !== 'number')) {
    throw new InvalidInputError(`inputs[0] (${column}): one entity per top-k request`, [`got ${input.values.length} values, shape [${input.shape.join(', ')}]`], { field: column });
  }
  return value;
}

/** POST …/infer of a ranking deployment. */
export async function inferTopK(ctx: ServerContext, req: http.IncomingMessage, res: http.ServerResponse, name: string, version: string | undefined, ranking: ServedRanking): Promise<void> {
  const d = deploymentOf(ctx, name, version);
  const pipeline = loadedPipeline(d);
  const headerLength = req.headers[HEADER_LENGTH];
  const request = decodeInferRequest(await readBody(req, ctx.limits.maxBodyBytes), Array.isArray(headerLength) ? headerLength[0] : headerLength);
  const entity = entityOf(request.inputs, ranking.entity);
  // Loaded by the first top-k request: ranking reads the candidates with DuckDB, which a server that ranks nothing never loads.
  const { rankCandidates, RANKING_OUTPUT_COLUMNS } = await import('../../lib/pipeline/rank.js');
  const ms = ctx.limits.deadlineMs;
  const deadline = Date.now() + ms;
  let timer: NodeJS.Timeout | undefined;
  const call = rankCandidates(pipeline, { candidates: ranking.candidates, entityColumn: ranking.entity, itemColumn: ranking.item, k: ranking.k, entity }, { deadline });
  try {
    const [list] = await Promise.race([
      call,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new HttpError(504, `model ${name} did not rank within the ${ms} ms deadline (INFERFLOW_SERVE_DEADLINE_MS)`)), ms);
      }),
    ]);
    const n = list?.items.length ?? 0;
    const { items, scores } = RANKING_OUTPUT_COLUMNS;
    sendJson(res, 200, {
      model_name: name,
      model_version: String(pipeline.model.version),
      ...(request.id !== undefined ? { id: request.id } : {}),
      parameters: { [ranking.entity]: String(entity) },
      outputs: [
        { name: items, datatype: 'BYTES', shape: [1, n], data: list?.items ?? [] },
        { name: scores, datatype: 'FP32', shape: [1, n], data: list?.scores ?? [] },
      ],
    });
  } finally {
    clearTimeout(timer);
    call.catch(() => undefined); // abandoned past the deadline
  }
}
