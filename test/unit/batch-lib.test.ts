import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmptyInputError, SchemaMismatchError } from '../../lib/errors';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { planShards, predictShard, stageSnapshot } from '../../lib/pipeline/batch';
import { ModelRegistry, type ModelManifest, type ResolvedModel } from '../../lib/registry';
import { DuckDBSink, ParquetSink } from '../../lib/sinks';
import { FileObjectStore } from '../../lib/storage';
import { referenceScores, writeVariant } from '../helpers/data';
import type { Pipeline } from '../../lib/pipeline/pipeline';
import type { Resources } from '../../lib/pipeline/resources';
import { openExamplePipeline, registerExample, tempConfig } from '../helpers/env';

let dir: string;
let cleanup: () => Promise<void>;
let manifest: ModelManifest;
let model: ResolvedModel;
let pipeline: Pipeline;
let resources: Resources;

beforeAll(async () => {
  let config;
  ({ config, dir, cleanup } = await tempConfig());
  const registry = new ModelRegistry(new FileObjectStore(path.join(dir, 'registry')));
  await registerExample(registry);
  ({ manifest, resolved: model } = await registry.resolve('fraud-detector'));
  ({ pipeline, resources } = await openExamplePipeline(config, registry));
});
afterAll(async () => {
  await resources?.close();
  await cleanup();
});

describe('shard planning', () => {
  it('covers every row once', () => {
    expect(planShards(25, 10)).toEqual([
      { index: 0, start: 0, end: 10 },
      { index: 1, start: 10, end: 20 },
      { index: 2, start: 20, end: 25 },
    ]);
    expect(planShards(10, 10)).toHaveLength(1);
  });
});

describe('snapshot, shard prediction and sinks', () => {
  it('stages, predicts shards equal to ONNX Runtime, and re-running a shard overwrites its part', async () => {
    const input = await writeVariant(dir, 'in.parquet', '*', 'true', 2_500);
    const snapshotPath = path.join(dir, 'run', 'snapshot.parquet');
    const plan = await stageSnapshot({ featuresPath: input, snapshotPath, manifest, idColumn: null, shardSize: 1_000 });
    expect(plan).toMatchObject({ rowsIn: 2_500, idColumn: 'transaction_id' });
    expect(plan.shards).toHaveLength(3);

    const parts: string[] = [];
    for (const shard of plan.shards) {
      const partPath = path.join(dir, 'run', 'parts', `p${shard.index}.parquet`);
      const r = await predictShard({ pipeline, snapshotPath: plan.snapshotPath, inPlace: plan.inPlace, idColumn: plan.idColumn, shard, partPath, lineage: { runId: 'r1', model, asOf: '2026-11-24T03:00:00Z' }, chunkRows: 300 });
      expect(r.rows).toBe(shard.end - shard.start);
      parts.push(partPath);
    }
    // A retried shard (same inputs) produces the same single part.
    const rowsOf = (p: string) => withDuckDB(async (c) => (await c.runAndReadAll(`SELECT transaction_id, label, score FROM read_parquet(${lit(p)}) ORDER BY 1`)).getRowsJS());
    const before = await rowsOf(parts[1]!);
    await predictShard({ pipeline, snapshotPath: plan.snapshotPath, inPlace: plan.inPlace, idColumn: plan.idColumn, shard: plan.shards[1]!, partPath: parts[1]!, lineage: { runId: 'r1', model, asOf: '2026-11-24T03:00:00Z' } });
    expect((await fs.readdir(path.join(dir, 'run', 'parts'))).sort()).toEqual(['p0.parquet', 'p1.parquet', 'p2.parquet']);
    expect(await rowsOf(parts[1]!)).toEqual(before);

    const ref = await referenceScores(input);
    const all = (await Promise.all(parts.map(rowsOf))).flat();
    expect(all).toHaveLength(2_500);
    expect(all.filter(([id, label, score]) => ref.get(toText(id))?.score !== score || ref.get(toText(id))?.label !== Number(label))).toEqual([]);

    // Lineage: plain string / integer / timestamp columns in the file (the strings are written from one-value ENUMs), one value per run.
    const schema = await withDuckDB(async (c) => (await c.runAndReadAll(`SELECT name, type, converted_type FROM parquet_schema(${lit(parts[0]!)}) WHERE name <> 'duckdb_schema'`)).getRowsJS());
    expect(schema.map((r) => r.map((v) => (v === null ? '-' : toText(v))).join(' '))).toEqual([
      'transaction_id BYTE_ARRAY UTF8',
      'label INT64 INT_64',
      'score FLOAT -',
      'model_name BYTE_ARRAY UTF8',
      'model_version INT32 INT_32',
      'model_sha256 BYTE_ARRAY UTF8',
      'as_of INT64 TIMESTAMP_MICROS',
      'run_id BYTE_ARRAY UTF8',
    ]);
    const lineage = await withDuckDB(async (c) =>
      (
        await c.runAndReadAll(
          `SELECT DISTINCT typeof(model_name), model_name, model_version, model_sha256, strftime(as_of AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), typeof(run_id), run_id FROM read_parquet(${lit(parts[0]!)})`,
        )
      )
        .getRowsJS()
        .map((r) => r.map(toText)),
    );
    expect(lineage).toEqual([['VARCHAR', model.name, String(model.version), model.sha256, '2026-11-24T03:00:00Z', 'VARCHAR', 'r1']]);

    // Parquet sink: whole run appears at once; committing again is a no-op.
    const sink = new ParquetSink(path.join(dir, 'out'));
    const req = { runId: 'r1', workflowId: 'wf/1', pipeline: 'fraud', model, parts, rows: 2_500 };
    const c1 = await sink.commit(req);
    expect(c1.created).toBe(true);
    expect((await fs.readdir(c1.location)).sort()).toEqual(['_SUCCESS', 'manifest.json', 'part-00000.parquet', 'part-00001.parquet', 'part-00002.parquet']);
    expect(path.basename(c1.location)).toBe('wf_1');
    expect((await sink.commit(req)).created).toBe(false);
    expect((await fs.readFile(path.join(dir, 'out', 'fraud', '_LATEST'), 'utf8')).trim()).toBe('wf_1');

    // DuckDB sink: committing the same run twice leaves no duplicates.
    const db = new DuckDBSink(path.join(dir, 'db.duckdb'), 'scores');
    await db.commit(req);
    await db.commit({ ...req });
    await db.commit({ ...req, runId: 'r2' });
    const counts = await withDuckDB(async (c) => (await c.runAndReadAll('SELECT run_id, count(*)::INT FROM scores GROUP BY 1 ORDER BY 1')).getRowsJS(), { path: path.join(dir, 'db.duckdb') });
    expect(counts).toEqual([['r1', 2_500], ['r2', 2_500]]);
  });

  it('a large shard is written in segments, and a retry resumes after the segments already written', async () => {
    const input = await writeVariant(dir, 'seg.parquet', '*', 'true', 2_500);
    const snapshotPath = path.join(dir, 'seg', 'snapshot.parquet');
    const plan = await stageSnapshot({ featuresPath: input, snapshotPath, manifest, idColumn: null, shardSize: 2_500 });
    const common = { pipeline, snapshotPath: plan.snapshotPath, inPlace: plan.inPlace, idColumn: plan.idColumn, shard: plan.shards[0]!, lineage: { runId: 'r1', model, asOf: '2026-11-24T03:00:00Z' }, segmentRows: 600 };
    const rowsOf = (p: string) => withDuckDB(async (c) => (await c.runAndReadAll(`SELECT transaction_id, label, score FROM read_parquet(${lit(p)})`)).getRowsJS());

    const clean = path.join(dir, 'seg', 'clean.parquet');
    expect((await predictShard({ ...common, partPath: clean })).segmentsComputed).toBe(5);

    // First attempt dies after its third segment (the heartbeat said 3).
    const part = path.join(dir, 'seg', 'part.parquet');
    let heartbeat = 0;
    const crash = await predictShard({ ...common, partPath: part, onSegment: (done) => {
      heartbeat = done;
      if (done === 3) throw new Error('worker killed');
    } }).catch((e: unknown) => e);
    expect(crash).toBeInstanceOf(Error);
    await expect(fs.access(part)).rejects.toThrow();
    // The retry computes only segments 4 and 5, and the part equals a clean run's, row for row.
    const retried = await predictShard({ ...common, partPath: part, resumeFromSegment: heartbeat });
    expect(retried).toMatchObject({ rows: 2_500, segmentsComputed: 2 });
    expect(await rowsOf(part)).toEqual(await rowsOf(clean));
    expect((await fs.readdir(path.join(dir, 'seg'))).filter((f) => f.includes('.seg-'))).toEqual([]);
    // A heartbeat ahead of what is on disk is not trusted.
    await fs.rm(part);
    expect((await predictShard({ ...common, partPath: part, resumeFromSegment: 4 })).segmentsComputed).toBe(5);
  });

  it('reads a Parquet input in place (no copy) and refuses it once it changed; CSV inputs are staged as a snapshot', async () => {
    const input = await writeVariant(dir, 'inplace.parquet', '*', 'true', 1_000);
    const plan = await stageSnapshot({ featuresPath: input, snapshotPath: path.join(dir, 'inplace', 'snapshot.parquet'), manifest, idColumn: null, shardSize: 400 });
    expect(plan.snapshotPath).toBe(input);
    expect(plan.inPlace?.size).toBe((await fs.stat(input)).size);
    await expect(fs.access(path.join(dir, 'inplace', 'snapshot.parquet'))).rejects.toThrow();
    const args = { pipeline, snapshotPath: plan.snapshotPath, inPlace: plan.inPlace, idColumn: plan.idColumn, shard: plan.shards[2]!, partPath: path.join(dir, 'inplace', 'p2.parquet'), lineage: { runId: 'r', model, asOf: '2026-11-24T03:00:00Z' } };
    expect((await predictShard(args)).rows).toBe(200);
    const ids = await withDuckDB(async (c) => (await c.runAndReadAll(`SELECT transaction_id FROM read_parquet(${lit(args.partPath)})`)).getRowsJS().map((r) => toText(r[0])));
    const expected = await withDuckDB(async (c) => (await c.runAndReadAll(`SELECT transaction_id FROM read_parquet(${lit(input)}) LIMIT 200 OFFSET 800`)).getRowsJS().map((r) => toText(r[0])));
    expect(ids).toEqual(expected);
    // The file is replaced mid-run: shards refuse to read it.
    await writeVariant(dir, 'inplace.parquet', '*', 'true', 999);
    await expect(predictShard(args)).rejects.toThrow(/changed or disappeared during the run/);

    const csv = await writeVariant(dir, 'snap.csv', '*', 'true', 100);
    const csvPlan = await stageSnapshot({ featuresPath: csv, snapshotPath: path.join(dir, 'csv', 'snapshot.parquet'), manifest, idColumn: null, shardSize: 400 });
    expect(csvPlan.inPlace).toBeUndefined();
    expect(csvPlan.snapshotPath).toBe(path.join(dir, 'csv', 'snapshot.parquet'));
  });

  it('lists every schema problem at once', async () => {
    const input = await writeVariant(dir, 'bad.parquet', "* EXCLUDE (amount) REPLACE ('x' AS hour_of_day)", 'true', 10);
    const err = await stageSnapshot({ featuresPath: input, snapshotPath: path.join(dir, 's2.parquet'), manifest, idColumn: 'nope', shardSize: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaMismatchError);
    expect((err as SchemaMismatchError).problems).toEqual([
      'column amount is missing (model fraud-detector:1 input features needs it)',
      'column hour_of_day is VARCHAR, model input features needs a number',
      'id column nope is missing',
    ]);
  });

  it('refuses empty input and leaves no snapshot', async () => {
    const input = await writeVariant(dir, 'empty.parquet', '*', 'false');
    const snap = path.join(dir, 'empty-snap.parquet');
    await expect(stageSnapshot({ featuresPath: input, snapshotPath: snap, manifest, idColumn: null, shardSize: 10 })).rejects.toThrow(EmptyInputError);
    await expect(fs.access(snap)).rejects.toThrow();
  });
});
