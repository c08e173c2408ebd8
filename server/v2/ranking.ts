/**
 * Top-k online for a ranking spec (one with a `ranking` section), over every protocol: a request
 * names one entity (V2 REST and gRPC: an input named after the entity column, shape [1] or [1, 1];
 * MLflow: one row per entity with that field). Its candidates are scored by the loaded pipeline and
 * the answer holds `items` BYTES [1, n] (best first) and `scores` FP32 [1, n], n = min(k,
 * candidates): JSON or binary tensor data over REST, typed or raw contents over gRPC, a list of
 * `{entity, items, scores}` rows over MLflow.
 *
 * The candidate source (the spec's file, or its PostgreSQL table or query) is read once per served
 * model version, on that version's first request (or at start), and kept in memory: a request
 * reads no file and runs no query. A new version (hot swap) reads the source again, with the
 * columns its model needs.
 *
 *   POST /v2/models/recommender/infer
 *   {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [100001]}]}
 *   → {"outputs": [{"name": "items", "datatype": "BYTES", "shape": [1, 10], "data": ["song-0178", …]},
 *                  {"name": "scores", "datatype": "FP32", "shape": [1, 10], "data": [0.7977, …]}], …}
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type http from 'node:http';
import { InvalidInputError } from '../../lib/errors';
import { valueText } from '../../lib/pipeline/online';
import type { PostgresCandidates, RankingSpec } from '../../lib/messages/batch';
import type { Pipeline } from '../../lib/pipeline/pipeline';
import { RANKING_OUTPUT_COLUMNS } from '../../lib/pipeline/outputs';
import type { CandidateFile, CandidateSet, RankedList } from '../../lib/pipeline/rank';
import type { PostgresConnectionSettings } from '../../lib/postgres/connection';
import type { ResolvedModel } from '../../lib/registry/manifest';
import { deploymentOf, pipelineDeadline, settleWithin, type ServerContext } from '../context';
import type { Deployment } from '../deployment';
import { loadedPipeline } from '../lookup';
import { HttpError, readBody } from '../respond';
import { OUTPUT_DATATYPE, type V2Output } from './outputs';
import { HEADER_LENGTH, decodeInferRequest, encodeInferResponse } from './rest-codec';
import { REQUEST, type TensorInput } from './tensors';

/** Where a served ranking's candidates come from. */
export type ServedCandidates = { file: string } | { postgres: PostgresCandidates; settings: PostgresConnectionSettings; exportDir: string };

/** A served ranking: its section of the spec, its candidate source, and the candidates loaded per served version. */
export class ServedRanking {
  private readonly loaded = new WeakMap<Pipeline, Promise<CandidateSet>>();

  constructor(
    readonly spec: Pick<RankingSpec, 'entity' | 'item' | 'k'>,
    readonly source: ServedCandidates,
  ) {}

  /** The candidates for a served version, read once (a failed read is tried again by the next request). */
  candidatesFor(pipeline: Pipeline): Promise<CandidateSet> {
    let set = this.loaded.get(pipeline);
    if (!set) {
      set = this.read(pipeline);
      this.loaded.set(pipeline, set);
      set.catch(() => this.loaded.delete(pipeline));
    }
    return set;
  }

  private async read(pipeline: Pipeline): Promise<CandidateSet> {
    const columns = { entityColumn: this.spec.entity, itemColumn: this.spec.item };
    const s = this.source;
    // Ranking reads candidates with DuckDB, which a server that ranks nothing never loads.
    const { loadCandidates } = await import('../../lib/pipeline/rank.js');
    if ('file' in s) return loadCandidates(pipeline, { path: s.file, object: s.file }, columns);
    const { candidatesObject, exportPostgresCandidates } = await import('../../lib/postgres/candidates.js');
    const file: CandidateFile = { path: path.join(s.exportDir, `candidates-${randomUUID()}.parquet`), object: candidatesObject(s.postgres) };
    try {
      await exportPostgresCandidates(s.postgres, file.path, s.settings);
      return await loadCandidates(pipeline, file, columns);
    } finally {
      await fs.rm(file.path, { force: true });
    }
  }
}

/** The one entity a top-k request asks for. */
function entityOf(inputs: readonly TensorInput[], column: string): string | number {
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

/** One entity's list from the version loaded now (held until it is ranked), the pipeline's deadline `ms` from now. */
function rankEntity(d: Deployment, ranking: ServedRanking, entity: string | number, ms: number): Promise<{ model: ResolvedModel; list: RankedList }> {
  loadedPipeline(d);
  const deadline = Number.isFinite(ms) ? { deadline: pipelineDeadline(ms) } : {};
  return d.withPipeline(async (pipeline) => {
    const { rankLoaded } = await import('../../lib/pipeline/rank.js');
    return { model: pipeline.model, list: await rankLoaded(pipeline, await ranking.candidatesFor(pipeline), ranking.spec.k, entity, deadline) };
  });
}

/** A list as the two output tensors, items BYTES [1, n] and scores FP32 [1, n]. */
function topKOutputs(list: RankedList): V2Output[] {
  const n = list.items.length;
  const { items, scores } = RANKING_OUTPUT_COLUMNS;
  return [
    { name: items, datatype: OUTPUT_DATATYPE.strings, shape: [1, n], column: { kind: 'strings', width: n, values: list.items } },
    { name: scores, datatype: OUTPUT_DATATYPE.floats, shape: [1, n], column: { kind: 'floats', width: n, values: Float32Array.from(list.scores) } },
  ];
}

/** The outputs a top-k request asks for, in the order asked (none asked: both). */
function selectTopK(requested: readonly string[] | undefined, model: string): string[] {
  const names: string[] = Object.values(RANKING_OUTPUT_COLUMNS);
  const unknown = (requested ?? []).flatMap((name, i) => (names.includes(name) ? [] : [`outputs[${i}].name: model ${model} has no output ${valueText(name)} (outputs: ${names.join(', ')})`]));
  if (unknown.length > 0) throw new InvalidInputError(REQUEST, unknown);
  return requested && requested.length > 0 ? [...requested] : names;
}

/**
 * A top-k request over any protocol: the entity of its inputs, ranked within `ms` (`late()` past
 * it), answered as the selected output tensors.
 */
export async function answerTopK(d: Deployment, ranking: ServedRanking, inputs: readonly TensorInput[], requested: readonly string[] | undefined, ms: number, late: () => Error): Promise<{ model: ResolvedModel; entity: string | number; outputs: V2Output[] }> {
  const entity = entityOf(inputs, ranking.spec.entity);
  const selected = selectTopK(requested, d.name);
  const { model, list } = await settleWithin(rankEntity(d, ranking, entity, ms), ms, late);
  const outputs = topKOutputs(list);
  return { model, entity, outputs: selected.map((name) => outputs.find((o) => o.name === name)!) };
}

/** MLflow rows of a ranking: one entity per row → one `{<entity column>, items, scores}` per row, within `ms`, and the model version that ranked the last. */
export async function mlflowTopK(d: Deployment, ranking: ServedRanking, rows: readonly Record<string, unknown>[], ms: number, late: () => Error): Promise<{ model: ResolvedModel; predictions: Record<string, unknown>[] }> {
  const column = ranking.spec.entity;
  const problems = rows.flatMap((row, i) => {
    const v = row[column];
    const extra = Object.keys(row).filter((k) => k !== column);
    if (typeof v !== 'string' && typeof v !== 'number') return [`row ${i}: ${column} is required, one entity per row`];
    return extra.length > 0 ? [`row ${i}: a top-k row has only ${column} (got ${extra.join(', ')} too)`] : [];
  });
  if (problems.length > 0) throw new InvalidInputError(`a top-k request names one ${column} per row`, problems, { field: column });
  const deadline = Date.now() + ms;
  const work = (async () => {
    const predictions: Record<string, unknown>[] = [];
    let model: ResolvedModel | undefined;
    for (const row of rows) {
      const entity = row[column] as string | number;
      const ranked = await rankEntity(d, ranking, entity, deadline - Date.now());
      model = ranked.model;
      predictions.push({ [column]: entity, [RANKING_OUTPUT_COLUMNS.items]: ranked.list.items, [RANKING_OUTPUT_COLUMNS.scores]: ranked.list.scores });
    }
    return { model: model!, predictions };
  })();
  return settleWithin(work, ms, late);
}

/** The REST deadline's answer: 504 naming the model and the limit. */
export function lateRanking(name: string, ms: number): HttpError {
  return new HttpError(504, `model ${name} did not rank within the ${ms} ms deadline (INFERFLOW_SERVE_DEADLINE_MS)`);
}

/** POST …/infer of a ranking deployment (REST, JSON or binary tensor data). */
export async function inferTopK(ctx: ServerContext, req: http.IncomingMessage, res: http.ServerResponse, name: string, version: string | undefined, ranking: ServedRanking): Promise<void> {
  const d = deploymentOf(ctx, name, version);
  loadedPipeline(d);
  const headerLength = req.headers[HEADER_LENGTH];
  const request = decodeInferRequest(await readBody(req, ctx.limits.maxBodyBytes), Array.isArray(headerLength) ? headerLength[0] : headerLength);
  const ms = ctx.limits.deadlineMs;
  const { model, entity, outputs } = await answerTopK(d, ranking, request.inputs, request.outputs, ms, () => lateRanking(name, ms));
  ctx.metrics.ranked(d.name, model, 1);
  const head = { model_name: name, model_version: String(model.version), ...(request.id !== undefined ? { id: request.id } : {}), parameters: { [ranking.spec.entity]: String(entity) } };
  const { body, headers } = encodeInferResponse(head, outputs, (o) => request.binaryOutputs.has(o) || (request.binaryByDefault && !request.outputs));
  res.writeHead(200, headers);
  res.end(body);
}
