import type { Client, WorkflowHandle } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { startBatchInference } from '../../client';
import { predictDurably, startOnlineDeployment } from '../../client/online';
import { InvalidInputError } from '../../lib/errors';
import { BatchInferenceInputSchema, BatchPipelineSpecSchema } from '../../lib/messages/batch';
import { MaterializeFeaturesInputSchema } from '../../lib/messages/materialize';
import { OnlineInferenceInputSchema, PredictRequestSchema } from '../../lib/messages/online';
import { checkMessage } from '../../lib/messages/problems';

/** A client that must not be reached: the checks run before anything is sent. */
const unreachable = new Proxy({}, { get: () => { throw new Error('the client was used'); } }) as unknown as Client & WorkflowHandle;
const view = { name: 'stats', entities: ['customer_id'], timestampField: 'ts', source: { type: 'file' as const, path: '/data/stats.parquet' }, features: [{ name: 'avg', dtype: 'float64' as const }] };

async function rejection(p: Promise<unknown>): Promise<InvalidInputError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidInputError);
  return err as InvalidInputError;
}

describe('one schema per message, checked by the client before anything starts', () => {
  it('batch: a malformed feature view is rejected with its path, not left to a worker', async () => {
    const err = await rejection(startBatchInference(unreachable, { model: 'm', featureViews: [{ ...view, name: 'bad name', features: [{ name: 'avg', dtype: 'float16' as never }] }] }, { taskQueue: 'q' }));
    expect(err.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^featureViews\[0\]\.name: name must match/), expect.stringMatching(/^featureViews\[0\]\.features\[0\]\.dtype: /)]));
  });

  it('online: a bad store and a bad view are rejected before the deployment starts', async () => {
    const err = await rejection(startOnlineDeployment(unreachable, { model: 'm', featureViews: [{ ...view, entities: [] }], store: { type: 'memcached' } as never }, { taskQueue: 'q', workflowId: 'w' }));
    expect(err.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^featureViews\[0\]\.entities: entities must list at least one column/), expect.stringMatching(/^store\.type: /)]));
  });

  it('online: a malformed predict request is rejected before the Update is sent', async () => {
    const err = await rejection(predictDurably(unreachable, { rows: [], asOf: 'yesterday' }));
    expect(err.problems).toEqual(['rows: at least one request row', 'asOf: must be an ISO 8601 time such as "2026-11-25T03:00:00Z"']);
  });
});

describe('message schemas', () => {
  it('list every problem with its path, cross-field rules included even when fields are malformed', () => {
    const { problems } = checkMessage(BatchInferenceInputSchema, { features: 42, spine: 's.parquet', shardSize: -1, colour: 'red' });
    expect(problems).toEqual(expect.arrayContaining([
      'model: required, a model reference such as "fraud-detector@production"',
      'features: required (a Parquet or CSV file path), unless featureViews are given (or ranking.candidates, for a ranking)',
      'spine: only used with featureViews',
      'shardSize: must be an integer between 1 and 5,000,000',
      expect.stringMatching(/^colour: unknown field \(known: model, features, /),
    ]));
  });

  it('workflow input: locations must not depend on the worker; a spec file resolves them itself', () => {
    const input = { model: 'm', featureViews: [{ ...view, source: { type: 'file', path: 'data/stats.parquet' } }], spine: 'spine.parquet' };
    expect(checkMessage(BatchInferenceInputSchema, input).problems).toEqual([
      expect.stringMatching(/^spine: "spine\.parquet" is a relative path/),
      expect.stringMatching(/^featureViews\[0\]\.source\.path: "data\/stats\.parquet" is a relative path/),
    ]);
    expect(checkMessage(BatchPipelineSpecSchema, input).problems).toEqual([]);
  });

  it('ranking: k in range, entity and item differ, candidates from features or PostgreSQL, one of them', () => {
    expect(checkMessage(BatchPipelineSpecSchema, { model: 'm', features: 'c.parquet', ranking: { entity: 'user_id', item: 'user_id', k: 0 } }).problems).toEqual([
      'ranking.k: must be an integer between 1 and 1000',
      'ranking.item: must differ from entity',
    ]);
    expect(checkMessage(BatchPipelineSpecSchema, { model: 'm', featureViews: [view], ranking: { entity: 'user_id', item: 'song_id', k: 10 } }).problems).toEqual([
      'ranking: ranks the candidate pairs of features or ranking.candidates; not with featureViews',
    ]);
    expect(checkMessage(BatchPipelineSpecSchema, { model: 'm', features: 'c.parquet', ranking: { entity: 'user_id', item: 'song_id', k: 10, by: 'x' } }).problems).toEqual(['ranking.by: unknown field (known: entity, item, k, candidates)']);
    const ranking = { entity: 'user_id', item: 'song_id', k: 10 };
    expect(checkMessage(BatchPipelineSpecSchema, { model: 'm', ranking: { ...ranking, candidates: { type: 'postgres', table: 'public.pairs' } } }).problems).toEqual([]);
    expect(checkMessage(BatchPipelineSpecSchema, { model: 'm', ranking: { ...ranking, candidates: { type: 'postgres', query: 'SELECT * FROM pairs' } } }).problems).toEqual([]);
    expect(checkMessage(BatchPipelineSpecSchema, { model: 'm', features: 'c.parquet', ranking: { ...ranking, candidates: { type: 'postgres', table: 'pairs' } } }).problems).toEqual([
      'features: give either features (a candidate file) or ranking.candidates (PostgreSQL), not both',
    ]);
    expect(checkMessage(BatchPipelineSpecSchema, { model: 'm', ranking: { ...ranking, candidates: { type: 'postgres', table: 'pairs', query: 'SELECT 1' } } }).problems).toEqual([
      'ranking.candidates: a postgres candidate source needs exactly one of table and query',
    ]);
    expect(checkMessage(BatchPipelineSpecSchema, { model: 'm', ranking: { ...ranking, candidates: { type: 'postgres', table: 'pairs', password: 'x' } } }).problems).toEqual([
      'ranking.candidates: password: connection settings do not belong in a spec; set INFERFLOW_POSTGRES_URL or PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE',
    ]);
  });

  it('materialize: view names unique, start before end, start or lookback', () => {
    const { problems } = checkMessage(MaterializeFeaturesInputSchema, { views: [view, view], start: '2026-11-02T00:00:00Z', end: '2026-11-01T00:00:00Z', lookback: '2h' });
    expect(problems).toEqual(expect.arrayContaining(['views[1].name: view stats is also views[0]; view names must be unique', expect.stringMatching(/^start: must be before end/), 'lookback: give either start or lookback, not both']));
  });

  it('online: accepts what the workflow carries across continue-as-new, rejects more than 100 rows', () => {
    const pinned = { name: 'm', version: 3, sha256: 'ab', size: 10, uri: 'file:///r/m/3/model.onnx', ref: 'm@prod' };
    expect(checkMessage(OnlineInferenceInputSchema, { model: 'm@prod', pinned, servedBefore: 500, failedBefore: 1 }).problems).toEqual([]);
    expect(checkMessage(PredictRequestSchema, { rows: Array.from({ length: 101 }, () => ({})) }).problems).toEqual(['rows: at most 100 per durable prediction; use batchInference for volume']);
  });
});
