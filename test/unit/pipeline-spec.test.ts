import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCHEMA_FILES, SCHEMAS_DIR, renderSchema } from '../../cli/schemas';
import { FEATURES_PIPELINE, REPO_ROOT } from '../../cli/examples';
import { InvalidInputError } from '../../lib/errors';
import { loadPipelineSpec, parsePipelineSpec, toBatchInput } from '../../lib/pipeline/spec';

describe('pipeline spec files', () => {
  it('committed JSON Schemas are up to date (run `npm run schemas` after changing a zod schema)', async () => {
    for (const [file, make] of Object.entries(SCHEMA_FILES)) {
      expect(await fs.readFile(path.join(SCHEMAS_DIR, file), 'utf8'), file).toBe(renderSchema(make));
    }
  });

  it('loads the example and resolves relative paths against the spec file', async () => {
    const input = await loadPipelineSpec(FEATURES_PIPELINE);
    expect(input).not.toHaveProperty('$schema');
    expect(input.spine).toBe(path.join(REPO_ROOT, 'examples', 'data', 'card_requests.parquet'));
    expect((input.featureViews![0]!.source as { path: string }).path).toBe(path.join(REPO_ROOT, 'examples', 'data', 'customer_stats.parquet'));
    expect(input.onDemand).toEqual([{ name: 'fraud.amountRatio' }, { name: 'fraud.hourOfDay' }, { name: 'fraud.homeDistance' }]);
  });

  it('keeps absolute paths and URLs as they are', () => {
    const spec = parsePipelineSpec({ model: 'm', features: 's3://bucket/f.parquet', sink: { type: 'parquet', path: '/out' } });
    expect(toBatchInput(spec, '/specs')).toEqual({ model: 'm', features: 's3://bucket/f.parquet', sink: { type: 'parquet', path: '/out' } });
    expect(toBatchInput(parsePipelineSpec({ model: 'm', features: 'f.csv' }), '/specs').features).toBe('/specs/f.csv');
  });

  it('lists every problem with its path', () => {
    const err = (() => {
      try {
        parsePipelineSpec({ model: 'm', featureViews: [{ name: 'v', entities: [], timestampField: 'ts', source: { type: 'file', path: 'x.parquet' }, features: [{ name: 'a', dtype: 'float16' }] }], onDemand: [{ name: 'f.not-an-identifier' }, { module: 'bench/worker-child.ts', export: 'x' }], sink: { type: 'postgres', table: 'bad name' }, shardSize: 0, colour: 'red' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(InvalidInputError);
    const problems = (err as InvalidInputError).problems;
    expect(problems).toEqual(expect.arrayContaining([
      expect.stringMatching(/^featureViews\[0\]\.entities: entities must list at least one column/),
      expect.stringMatching(/^featureViews\[0\]\.features\[0\]\.dtype: /),
      expect.stringMatching(/^onDemand\[0\]\.name: required, <module>\.<export> of a feature module registered with the workers/),
      expect.stringMatching(/^onDemand\[1\]\.module: unknown field/),
      expect.stringMatching(/^onDemand\[1\]\.export: unknown field/),
      expect.stringMatching(/^sink\.table: table must match/),
      'shardSize: must be an integer between 1 and 5,000,000',
      expect.stringMatching(/^colour: unknown field \(known: \$schema, model, /),
    ]));
    // shardSize is rejected by the schema and by the workflow's checks: listed once.
    expect(problems.filter((p) => p.startsWith('shardSize'))).toHaveLength(1);
  });

  it('applies the workflow input rules to files (features or featureViews, not both)', () => {
    expect(() => parsePipelineSpec({ model: 'm' })).toThrow(/features: required \(a Parquet or CSV file path\), unless featureViews are given/);
    const view = { name: 'v', entities: ['k'], timestampField: 'ts', source: { type: 'file', path: 'x.parquet' }, features: [{ name: 'a', dtype: 'float64' }] };
    expect(() => parsePipelineSpec({ model: 'm', features: 'f.parquet', featureViews: [view] })).toThrow(/give either features .* or featureViews/);
    expect(() => parsePipelineSpec({ model: 'm', spine: 's.parquet', features: 'f.parquet' })).toThrow(/spine: only used with featureViews/);
  });

  it('names a missing file and malformed JSON', async () => {
    await expect(loadPipelineSpec('/nonexistent/spec.json')).rejects.toThrow(/pipeline spec \/nonexistent\/spec.json does not exist/);
    const bad = path.join(await fs.mkdtemp('/tmp/inferflow-spec-'), 'bad.json');
    await fs.writeFile(bad, '{"model": ');
    await expect(loadPipelineSpec(bad)).rejects.toThrow(/is not valid JSON/);
  });
});
