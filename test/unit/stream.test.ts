/** The stream pipeline spec, the bridge's per-message check, partitioning and signal chunking (no services). */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCHEMA_FILES, SCHEMAS_DIR, renderSchema } from '../../cli/schemas';
import { REPO_ROOT } from '../../cli/examples';
import { InvalidInputError } from '../../lib/errors';
import { MAX_EVENTS_PER_SIGNAL, MAX_SIGNAL_BYTES, type StreamEvent } from '../../lib/messages/stream';
import { checkMessage, loadStreamSpec, parseStreamSpec, partitionInput, partitionOf, signalChunks } from '../../lib/streams';
import type { SourceMessage } from '../../lib/streams';

const base = {
  name: 'fraud',
  source: { type: 'nats', stream: 'TXNS', subject: 'txns.new' },
  key: 'customer_id',
  model: 'fraud-detector@production',
  sink: { type: 'postgres', table: 'scores' },
  deadLetter: { type: 'nats', subject: 'txns.dead' },
};

const msg = (payload: string): SourceMessage => ({ position: 'TXNS:7', payload, publishedAt: new Date('2026-12-01T00:00:00Z') });

describe('stream pipeline spec', () => {
  it('lists every problem with its path', () => {
    let err: unknown;
    try {
      parseStreamSpec({ ...base, name: 'has space', key: undefined, partitions: 0, source: { type: 'kafka' }, batch: { size: 0, extra: 1 } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidInputError);
    const problems = (err as InvalidInputError).problems.join('\n');
    expect(problems).toMatch(/^name: /m);
    expect(problems).toMatch(/^key: required/m);
    expect(problems).toMatch(/^partitions: an integer from 1 to 256/m);
    expect(problems).toMatch(/^source.type: source must be/m);
    expect(problems).toMatch(/^batch.size: /m);
    expect(problems).toMatch(/^batch.extra: unknown field/m);
  });

  it('keeps connection settings out of the sink and the bridge settings out of workflow input', () => {
    expect(() => parseStreamSpec({ ...base, sink: { type: 'postgres', table: 's', url: 'postgres://u:p@h/d' } })).toThrow(/connection settings do not belong/);
    const input = partitionInput(parseStreamSpec({ ...base, partitions: 3, idField: 'transaction_id' }), 2);
    expect(input).toMatchObject({ pipeline: 'fraud', partition: 2, model: 'fraud-detector@production' });
    expect(input).not.toHaveProperty('source');
    expect(input).not.toHaveProperty('key');
  });

  it('carries post-processing steps into the workflow input; refuses them with push and a bad step, naming the field', () => {
    const steps = [{ type: 'threshold', threshold: 0.3 }, { type: 'rule', feature: 'amount', op: '>', value: 2000, set: 'review' }];
    expect(partitionInput(parseStreamSpec({ ...base, postProcess: steps }), 0).postProcess).toEqual(steps);
    expect(() => parseStreamSpec({ ...base, postProcess: [{ type: 'threshold', threshold: 1.5 }] })).toThrow(/postProcess\[0\]\.threshold: must be a number between 0 and 1/);
    const push = { featureView: { name: 'v', entities: ['customer_id'], timestampField: 't', source: { type: 'file', path: '/x.parquet' }, features: [{ name: 'a', dtype: 'float64' }] } };
    const { model: _m, sink: _s, ...pushBase } = base;
    expect(() => parseStreamSpec({ ...pushBase, push, postProcess: steps })).toThrow(/postProcess: not used with push/);
  });
});

describe("the bridge's check of a message", () => {
  const spec = { name: 'fraud', key: 'customer_id', idField: 'transaction_id', timeField: 'ts' };
  it('turns a good event into an event with its id, key and time', () => {
    expect(checkMessage(msg('{"transaction_id": "t1", "customer_id": 5, "ts": "2026-12-01T10:00:00Z", "amount": 1}'), spec)).toEqual({
      event: { id: 't1', key: '5', time: '2026-12-01T10:00:00.000Z', data: { transaction_id: 't1', customer_id: 5, ts: '2026-12-01T10:00:00Z', amount: 1 } },
    });
  });
  it.each([
    ['{"customer_id": 5,', /not valid JSON/],
    ['{"customer_id": NaN}', /not valid JSON/],
    ['"text"', /must be a JSON object, got string/],
    ['{"transaction_id": "t", "ts": 1}', /key field customer_id is missing/],
    ['{"transaction_id": "t", "customer_id": {"a": 1}, "ts": 1}', /key field customer_id must be a string or a number/],
    ['{"customer_id": 5, "ts": 1}', /id field transaction_id must be/],
    ['{"transaction_id": "t", "customer_id": 5, "ts": "yesterday"}', /time field ts must be/],
  ])('dead-letters %s with the reason and the payload', (payload, reason) => {
    const r = checkMessage(msg(payload), spec);
    expect('dead' in r && r.dead.reason).toMatch(reason);
    expect('dead' in r && r.dead.payload).toBe(payload);
  });
});

describe('partitioning and signal chunks', () => {
  it('sends a key to the same partition every time and spreads keys over all partitions', () => {
    expect(partitionOf('customer-17', 4)).toBe(partitionOf('customer-17', 4));
    const seen = new Set(Array.from({ length: 1_000 }, (_, i) => partitionOf(String(i), 4)));
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
  });
  it('cuts signals at the event count and byte limits, in order', () => {
    const events: StreamEvent[] = Array.from({ length: 1_000 }, (_, i) => ({ id: String(i), key: 'k', time: '2026-12-01T00:00:00.000Z', data: { pad: 'x'.repeat(i % 3 === 0 ? 2_000 : 10) } }));
    const chunks = signalChunks(events);
    expect(chunks.flat().map((e) => e.id)).toEqual(events.map((e) => e.id));
    for (const c of chunks) {
      expect(c.length).toBeLessThanOrEqual(MAX_EVENTS_PER_SIGNAL);
      expect(JSON.stringify(c).length).toBeLessThanOrEqual(MAX_SIGNAL_BYTES + c.length + 2);
    }
  });
});

describe('the stream pipeline spec\'s JSON Schema', () => {
  const FILE = 'stream-pipeline.schema.json';

  it('is committed up to date (run `npm run schemas` after changing lib/messages/stream.ts)', async () => {
    expect(SCHEMA_FILES[FILE], `${FILE} is not in cli/schemas.ts`).toBeDefined();
    expect(await fs.readFile(path.join(SCHEMAS_DIR, FILE), 'utf8')).toBe(renderSchema(SCHEMA_FILES[FILE]!));
  });

  it('describes every top-level field of the spec, and the example spec names it', async () => {
    const schema = JSON.parse(await fs.readFile(path.join(SCHEMAS_DIR, FILE), 'utf8')) as { properties: Record<string, unknown>; required: string[] };
    for (const field of ['name', 'source', 'key', 'partitions', 'batch', 'model', 'push', 'postProcess', 'sink', 'deadLetter']) expect(Object.keys(schema.properties)).toContain(field);
    expect(schema.required).toEqual(expect.arrayContaining(['name', 'source', 'key', 'deadLetter']));
    const example = path.join(REPO_ROOT, 'examples', 'pipelines', 'fraud-stream.json');
    const raw = JSON.parse(await fs.readFile(example, 'utf8')) as { $schema: string };
    expect(path.resolve(path.dirname(example), raw.$schema)).toBe(path.join(SCHEMAS_DIR, FILE));
    expect((await loadStreamSpec(example)).name).toBe('fraud-stream');
  });
});
