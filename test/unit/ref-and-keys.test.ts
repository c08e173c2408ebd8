import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../lib/errors';
import { parseModelRef, formatModelRef } from '../../lib/registry';
import { checkKey } from '../../lib/storage';
import { BatchInferenceInputSchema } from '../../lib/messages/batch';
import { checkMessage } from '../../lib/messages/problems';

const checkBatchInput = (input: unknown) => checkMessage(BatchInferenceInputSchema, input).problems;

describe('model references', () => {
  it('parses name, name:version and name@alias', () => {
    expect(parseModelRef('fraud-detector')).toEqual({ name: 'fraud-detector', kind: 'latest' });
    expect(parseModelRef('fraud-detector:3')).toEqual({ name: 'fraud-detector', kind: 'version', version: 3 });
    expect(parseModelRef('fraud-detector@production')).toEqual({ name: 'fraud-detector', kind: 'alias', alias: 'production' });
    expect(formatModelRef(parseModelRef('m:12'))).toBe('m:12');
  });

  it.each(['../etc', 'a/b', '..', 'A', '', 'x:0', 'x:-1', 'x@', 'x@../y', 'x@a/b', '%2e%2e', 'a..b', 'x:1@y'])('rejects %j', (ref) => {
    expect(() => parseModelRef(ref)).toThrow(InvalidInputError);
  });
});

describe('object keys', () => {
  it.each(['/abs', 'a/../b', 'a//b', './a', 'a\\b', 'a/%2e%2e/b', 'a/%2Fb', 'a\u0000b', ''])('rejects %j', (key) => {
    expect(() => checkKey(key)).toThrow(InvalidInputError);
  });

  it('accepts ordinary keys', () => {
    expect(checkKey('models/fraud/1/model.onnx')).toBe('models/fraud/1/model.onnx');
  });
});

describe('batchInference input checks', () => {
  it('accepts the documented input', () => {
    expect(checkBatchInput({ model: 'fraud-detector@production', features: '/data/transactions.parquet', shardSize: 10000, sink: { type: 'parquet' } })).toEqual([]);
  });

  it('lists every problem', () => {
    const problems = checkBatchInput({ model: '', shardSize: 0, maxConcurrency: 1.5, pipeline: '../x', extra: 1 });
    expect(problems).toHaveLength(6);
    for (const p of [/^model: required/, /^features: required/, /^pipeline: /, /^shardSize: /, /^maxConcurrency: /, /^extra: unknown field/]) expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(p)]));
  });

  it('rejects non-objects', () => {
    expect(checkBatchInput('fraud-detector')).toHaveLength(1);
    expect(checkBatchInput(null)).toHaveLength(1);
  });
});
