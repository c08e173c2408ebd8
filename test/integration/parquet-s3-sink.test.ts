import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import type { ResolvedModel } from '../../lib/registry';
import { createRunSink, parseSinkSpec } from '../../lib/sinks';
import { S3ObjectStore } from '../../lib/storage/s3';
import { EXAMPLE_FEATURES, tempConfig } from '../helpers/env';

let dir: string;
let cleanup: () => Promise<void>;
const model: ResolvedModel = { name: 'm', version: 1, sha256: 'a'.repeat(64), size: 1, uri: 'file:///m', ref: 'm' };

beforeAll(async () => ({ dir, cleanup } = await tempConfig()));
afterAll(() => cleanup());

async function makeParts(n: number): Promise<string[]> {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = path.join(dir, `part-${randomUUID().slice(0, 6)}-${i}.parquet`);
    await withDuckDB((c) => c.run(`COPY (SELECT transaction_id, ${i} AS shard FROM read_parquet(${lit(EXAMPLE_FEATURES)}) LIMIT 100 OFFSET ${i * 100}) TO ${lit(p)} (FORMAT parquet)`));
    parts.push(p);
  }
  return parts;
}

describe('Parquet sink on S3 (SeaweedFS)', () => {
  it('publishes parts, then manifest, then _SUCCESS; commits once; a re-run replaces the old files', async () => {
    const root = `s3://${inject('s3').bucket}/out-${randomUUID().slice(0, 8)}`;
    const sink = await createRunSink(parseSinkSpec({ type: 'parquet', path: root }), { outputDir: '/unused', dataDir: dir, allowedRoots: [root] });
    const store = new S3ObjectStore({ bucket: inject('s3').bucket, prefix: root.split('/').pop()! });

    const first = await sink.commit({ runId: 'r1', workflowId: 'wf/nightly', pipeline: 'fraud', model, parts: await makeParts(3), rows: 300 });
    expect(first).toEqual({ location: `${root}/fraud/wf_nightly`, rows: 300, created: true });
    expect(await store.list('fraud')).toEqual(['fraud/_LATEST', 'fraud/wf_nightly/_SUCCESS', 'fraud/wf_nightly/manifest.json', 'fraud/wf_nightly/part-00000.parquet', 'fraud/wf_nightly/part-00001.parquet', 'fraud/wf_nightly/part-00002.parquet']);
    expect((await sink.commit({ runId: 'r1', workflowId: 'wf/nightly', pipeline: 'fraud', model, parts: [], rows: 300 })).created).toBe(false);

    // The parts are real Parquet a reader can use.
    const local = path.join(dir, 'dl.parquet');
    await fs.writeFile(local, await store.getBytes('fraud/wf_nightly/part-00001.parquet'));
    expect(await withDuckDB(async (c) => (await c.runAndReadAll(`SELECT count(*)::INT, min(shard)::INT FROM read_parquet(${lit(local)})`)).getRowsJS())).toEqual([[100, 1]]);

    // Same workflow id, new run with fewer parts: no stale part of the old run survives.
    await sink.commit({ runId: 'r2', workflowId: 'wf/nightly', pipeline: 'fraud', model, parts: await makeParts(1), rows: 100 });
    expect(await store.list('fraud/wf_nightly')).toEqual(['fraud/wf_nightly/_SUCCESS', 'fraud/wf_nightly/manifest.json', 'fraud/wf_nightly/part-00000.parquet']);
    expect(JSON.parse((await store.getBytes('fraud/wf_nightly/manifest.json')).toString())).toMatchObject({ runId: 'r2', rows: 100, parts: 1 });
  });
});
