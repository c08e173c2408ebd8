import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SchemaMismatchError } from '../../lib/errors';
import { planShards, predictShard, stageSnapshot, type ShardDescriptor } from '../../lib/pipeline/batch';
import { ModelRegistry, type ModelManifest, type ResolvedModel } from '../../lib/registry';
import type { Pipeline } from '../../lib/pipeline/pipeline';
import type { Resources } from '../../lib/pipeline/resources';
import { PostgresSink, closePostgresPools } from '../../lib/sinks';
import { FileObjectStore } from '../../lib/storage';
import { writeVariant } from '../helpers/data';
import { openExamplePipeline, registerExample, tempConfig, uniqueName } from '../helpers/env';
import { lit, withDuckDB } from '../../lib/io/duckdb';

/**
 * PostgreSQL shards write CSV parts straight from their predictions (`PostgresSink.partFormat`)
 * and the stager COPYs them as they are. They must commit exactly the rows the predictions hold.
 */
const url = inject('postgresUrl');
const schema = `inferflow_csv_${Math.random().toString(36).slice(2, 10)}`;
const AS_OF = '2026-11-24T03:00:00.123456Z';
let dir: string;
let cleanup: () => Promise<void>;
let admin: pg.Pool;
let model: ResolvedModel;
let manifest: ModelManifest;
let pipeline: Pipeline;
let resources: Resources;
let snapshot: { snapshotPath: string; inPlace?: Awaited<ReturnType<typeof stageSnapshot>>['inPlace'] };
let shards: ShardDescriptor[];

beforeAll(async () => {
  const { config, ...temp } = await tempConfig();
  ({ dir, cleanup } = temp);
  admin = new pg.Pool({ connectionString: url, max: 2 });
  await admin.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
  const registry = new ModelRegistry(new FileObjectStore(path.join(dir, 'registry')));
  await registerExample(registry);
  ({ manifest, resolved: model } = await registry.resolve('fraud-detector'));
  const input = await writeVariant(dir, 'in.parquet', '*', 'true', 3_000);
  const plan = await stageSnapshot({ featuresPath: input, snapshotPath: path.join(dir, 'snap.parquet'), manifest, idColumn: 'transaction_id', shardSize: 1_000 });
  snapshot = { snapshotPath: plan.snapshotPath, ...(plan.inPlace ? { inPlace: plan.inPlace } : {}) };
  shards = planShards(plan.rowsIn, 1_000);
  ({ pipeline, resources } = await openExamplePipeline(config, registry));
});

afterAll(async () => {
  await resources?.close();
  await closePostgresPools();
  await admin?.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  await admin?.end();
  await cleanup?.();
});

/** Predict a shard into a part of the given kind (the lineage names run `x`, as one run's shards would). */
async function part(sink: PostgresSink, shard: ShardDescriptor, kind: 'parquet' | 'csv', name: string, segmentRows?: number): Promise<string> {
  const partPath = path.join(dir, name, `part-${String(shard.index).padStart(5, '0')}.${kind}`);
  await predictShard({
    pipeline,
    ...snapshot,
    idColumn: 'transaction_id',
    shard,
    partPath,
    lineage: { runId: 'x', model, asOf: AS_OF },
    ...(kind === 'csv' ? { partFormat: sink.partFormat } : {}),
    ...(segmentRows !== undefined ? { segmentRows } : {}),
  });
  return partPath;
}

/** Stage the parts as one run and commit it. */
async function publish(sink: PostgresSink, parts: string[]): Promise<void> {
  const runId = uniqueName('run');
  const rows = shards.reduce((n, s) => n + (s.end - s.start), 0);
  await Promise.all(parts.map((p, i) => sink.stage({ runId, shardIndex: i, partPath: p, rows: shards[i]!.end - shards[i]!.start, idColumn: 'transaction_id' })));
  expect(await sink.commit({ runId, workflowId: `wf-${runId}`, pipeline: 'fraud', model, parts, rows })).toMatchObject({ rows, created: true });
}

/** Every row of a table, float4 scores as their exact float8 value, ordered by id. */
async function rowsOf(table: string): Promise<Record<string, unknown>[]> {
  const r = await admin.query<Record<string, unknown>>(
    `SELECT transaction_id, label, score::float8 AS score, model_name, model_version, model_sha256, (extract(epoch FROM as_of) * 1000000)::bigint::text AS as_of_us, run_id
       FROM ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)} ORDER BY transaction_id COLLATE "C"`,
  );
  return r.rows;
}

const sinkFor = (table: string) => new PostgresSink({ table, schema }, { url });

/** The rows of Parquet parts in the form `rowsOf` gives them (PostgreSQL returns bigint as text). */
async function parquetRows(parts: string[]): Promise<Record<string, unknown>[]> {
  return withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(
      `SELECT transaction_id, CAST(label AS VARCHAR) AS label, CAST(score AS DOUBLE) AS score, CAST(model_name AS VARCHAR) AS model_name, model_version, model_sha256,
              CAST(epoch_us(as_of) AS VARCHAR) AS as_of_us, run_id
         FROM read_parquet([${parts.map((p) => lit(p)).join(', ')}]) ORDER BY transaction_id`,
    );
    return r.getRowObjectsJS();
  });
}

describe('PostgreSQL CSV parts (real server)', () => {
  let expected: Record<string, unknown>[];

  beforeAll(async () => {
    // The same shards predicted into Parquet parts, as the Parquet sink gets them: the reference.
    expected = await parquetRows(await Promise.all(shards.map((s) => part(sinkFor('reference'), s, 'parquet', 'reference'))));
    expect(expected).toHaveLength(3_000);
  });

  it('shards write CSV parts (per-row columns and the shard index; the lineage once, in the layout file) that commit exactly the rows the Parquet parts hold', async () => {
    const sink = sinkFor('from_csv');
    const parts = await Promise.all(shards.map((s) => part(sink, s, 'csv', 'csv')));
    const csv = await fs.readFile(parts[1]!, 'utf8');
    const lines = csv.trimEnd().split('\n');
    expect(lines).toHaveLength(1_000);
    expect(lines[0]!.split(',')).toHaveLength(4); // id, label, score, shard
    expect(lines.every((l) => l.endsWith(',1'))).toBe(true);
    const layout = JSON.parse(await fs.readFile(`${parts[1]!}.layout.json`, 'utf8')) as { rows: number; stored: string[]; constants: { name: string; value: string }[] };
    expect(layout.rows).toBe(1_000);
    expect(layout.stored).toEqual(['transaction_id', 'label', 'score']);
    expect(Object.fromEntries(layout.constants.map((c) => [c.name, c.value]))).toMatchObject({ model_name: 'fraud-detector', run_id: 'x', as_of: '2026-11-24 03:00:00.123456+00' });
    await publish(sink, parts);
    expect(await rowsOf('from_csv')).toEqual(expected);
  });

  it('a shard predicted in segments joins them into one CSV part', async () => {
    const sink = sinkFor('from_segments');
    const parts = await Promise.all(shards.map((s) => part(sink, s, 'csv', 'segments', 400)));
    const layout = JSON.parse(await fs.readFile(`${parts[0]!}.layout.json`, 'utf8')) as { rows: number };
    expect(layout.rows).toBe(1_000);
    await publish(sink, parts);
    expect(await rowsOf('from_segments')).toEqual(expected);
  });

  it('a CSV part without its layout file is refused, naming the file', async () => {
    const sink = sinkFor('no_layout');
    const p = await part(sink, shards[0]!, 'csv', 'no-layout');
    await fs.rm(`${p}.layout.json`);
    const err = await sink.stage({ runId: uniqueName('run'), shardIndex: 0, partPath: p, rows: 1_000, idColumn: 'transaction_id' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaMismatchError);
    expect(String(err)).toMatch(/has no readable layout file.*part-00000\.csv\.layout\.json/s);
  });

  it("types PostgreSQL has no mapping for in DuckDB's form are laid out as a Parquet part gave them back (seconds timestamps as TIMESTAMP, the ENUM lineage as VARCHAR)", async () => {
    const sink = sinkFor('typed');
    const p = path.join(dir, 'typed', 'part-00000.csv');
    await fs.mkdir(path.dirname(p), { recursive: true });
    const lineage = `'fraud-detector'::ENUM('fraud-detector') AS model_name, 1::INTEGER AS model_version, 'abc' AS model_sha256, TIMESTAMPTZ '2026-11-24 03:00:00+00' AS as_of, 'x' AS run_id`;
    const select = `SELECT (TIMESTAMP '2026-11-24 03:00:00' + to_seconds(r))::TIMESTAMP_S AS event_time, (r % 2)::BIGINT AS label, 0.5::FLOAT AS score, ${lineage} FROM range(3) t(r)`;
    await withDuckDB((conn) => sink.partFormat.write(conn, { select, lineage, path: p, finalPath: p, shardIndex: 0, rows: 3 }));
    const layout = JSON.parse(await fs.readFile(`${p}.layout.json`, 'utf8')) as { columns: { name: string; duckType: string }[] };
    expect(Object.fromEntries(layout.columns.map((c) => [c.name, c.duckType]))).toEqual({
      event_time: 'TIMESTAMP',
      label: 'BIGINT',
      score: 'FLOAT',
      model_name: 'VARCHAR',
      model_version: 'INTEGER',
      model_sha256: 'VARCHAR',
      as_of: 'TIMESTAMP WITH TIME ZONE',
      run_id: 'VARCHAR',
    });
    expect((await fs.readFile(p, 'utf8')).trimEnd().split('\n')).toEqual(['2026-11-24 03:00:00,0,0.5,0', '2026-11-24 03:00:01,1,0.5,0', '2026-11-24 03:00:02,0,0.5,0']);
    const runId = uniqueName('run');
    await sink.stage({ runId, shardIndex: 0, partPath: p, rows: 3, idColumn: 'event_time' });
    await sink.commit({ runId, workflowId: `wf-${runId}`, pipeline: 'fraud', model, parts: [p], rows: 3 });
    const types = await admin.query<{ column_name: string; data_type: string }>(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'typed' AND column_name IN ('event_time', 'model_name') ORDER BY 1`,
      [schema],
    );
    expect(types.rows).toEqual([
      { column_name: 'event_time', data_type: 'timestamp without time zone' },
      { column_name: 'model_name', data_type: 'text' },
    ]);
  });
});
