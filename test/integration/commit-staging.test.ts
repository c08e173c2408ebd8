/**
 * commitPredictions with shared run staging (S3) on a worker that ran none of the run's shards:
 * a sink that stages each shard as it is predicted (PostgreSQL) commits from its own staging
 * table and never downloads a part; a missing part still stops the commit. Real S3 (SeaweedFS)
 * and a real PostgreSQL server; the activity runs in the SDK's activity test environment.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createActivities, type CommitInput } from '../../activities';
import { createResources } from '../../lib/pipeline/resources';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { createLogger } from '../../lib/log';
import { RunStaging } from '../../lib/pipeline/staging';
import type { ResolvedModel } from '../../lib/registry/manifest';
import { PostgresSink, closePostgresPools } from '../../lib/sinks';
import { stagingLedgerName, stagingTableName } from '../../lib/postgres/staging';
import { openStore } from '../../lib/storage';
import { tempConfig, uniqueName } from '../helpers/env';

const url = inject('postgresUrl');
const table = uniqueName('commit_staging').replace(/-/g, '_');
const model: ResolvedModel = { name: 'fraud', version: 1, sha256: 'a'.repeat(64), size: 1, uri: 'file:///registry/fraud/1/model.onnx', ref: 'fraud@production' };
let env: Awaited<ReturnType<typeof tempConfig>>;
let stagingUrl: string;
let admin: pg.Client;

beforeAll(async () => {
  stagingUrl = `s3://${inject('s3').bucket}/${uniqueName('staging')}`;
  env = await tempConfig({ INFERFLOW_STAGING: stagingUrl, INFERFLOW_POSTGRES_URL: url });
  admin = new pg.Client({ connectionString: url });
  await admin.connect();
});
afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS public.${pg.escapeIdentifier(table)}`);
  await admin.end();
  await closePostgresPools();
  await env.cleanup();
});

/** A shard's part as the PostgreSQL sink has shards write it (CSV, `PostgresSink.partFormat`), 100 rows, staged into the sink. */
async function stagedPart(runId: string, shard: number, part: string): Promise<void> {
  const sink = new PostgresSink({ table }, { url });
  const lineage = `'fraud' AS model_name, 1 AS model_version, ${lit('a'.repeat(64))} AS model_sha256, TIMESTAMPTZ '2026-11-26 03:00:00+00' AS as_of, ${lit(runId)} AS run_id`;
  const select = `SELECT 'tx-${shard}-' || r AS transaction_id, (r % 2)::BIGINT AS label, (r / 1000.0)::FLOAT AS score, ${lineage} FROM range(100) t(r)`;
  await fs.mkdir(path.dirname(part), { recursive: true });
  await withDuckDB((conn) => sink.partFormat.write(conn, { select, lineage, path: part, finalPath: part, shardIndex: shard, rows: 100 }));
  await sink.stage({ runId, shardIndex: shard, partPath: part, rows: 100, idColumn: 'transaction_id' });
}

/** What the shard activities on another machine leave: parts published to shared staging and staged into PostgreSQL. */
async function runStagedElsewhere(runId: string, shards: number, publish: number): Promise<number> {
  const staging = new RunStaging(openStore(stagingUrl));
  for (let i = 0; i < shards; i++) {
    const part = path.join(env.dir, 'machine-a', runId, `part-${String(i).padStart(5, '0')}.csv`);
    await stagedPart(runId, i, part);
    if (i < publish) await staging.publish(runId, `parts/${path.basename(part)}`, part);
  }
  return shards * 100;
}

describe('commitPredictions with shared staging, on a worker that ran no shard', () => {
  const commit = async (runId: string, shardCount: number, rows: number) => {
    const acts = createActivities(createResources(env.config, { logger: createLogger('warn') }));
    const input: CommitInput = { runId, workflowId: `wf-${runId}`, pipeline: 'fraud', model, sink: { type: 'postgres', table }, shardCount, rows };
    return new MockActivityEnvironment().run((i: CommitInput) => acts.commitPredictions(i), input);
  };
  const committedRows = async (runId: string) =>
    Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM public.${pg.escapeIdentifier(table)} WHERE run_id = $1`, [runId])).rows[0]!.n);

  it('PostgreSQL commits from its staging table without downloading the parts', async () => {
    const runId = uniqueName('run');
    const rows = await runStagedElsewhere(runId, 3, 3);
    const result = await commit(runId, 3, rows);
    expect(result).toMatchObject({ rows: 300, created: true });
    expect(await committedRows(runId)).toBe(300);
    // Nothing came down to this worker's run directory.
    await expect(fs.readdir(path.join(env.config.dataDir, 'runs', runId, 'parts'))).rejects.toThrow(/ENOENT/);
  });

  it('the commit also removes what the run staged (shared staging, local files)', async () => {
    const runId = uniqueName('run');
    const rows = await runStagedElsewhere(runId, 2, 2);
    const local = path.join(env.config.dataDir, 'runs', runId);
    const shared = new RunStaging(openStore(stagingUrl));
    await fs.mkdir(local, { recursive: true });
    expect((await shared.list(runId)).length).toBe(2);
    expect(await commit(runId, 2, rows)).toMatchObject({ rows: 200, created: true });
    expect(await shared.list(runId)).toEqual([]);
    await expect(fs.access(local)).rejects.toThrow(/ENOENT/);
    expect(await committedRows(runId)).toBe(200);
    // The sink's own staging went with the commit.
    const tables = await admin.query('SELECT 1 FROM pg_class WHERE relname = ANY($1)', [[stagingTableName(runId), stagingLedgerName(runId)]]);
    expect(tables.rowCount).toBe(0);
  });

  it('a part missing from shared staging still stops the commit, naming it; nothing is published', async () => {
    const runId = uniqueName('run');
    const rows = await runStagedElsewhere(runId, 2, 1);
    // Named as the sink's own format names it.
    await expect(commit(runId, 2, rows)).rejects.toThrow(/missing staged parts: part-00001\.csv/);
    expect(await committedRows(runId)).toBe(0);
  });
});

describe('commitPredictions without shared staging: parts in the worker’s own run directory', () => {
  let local: Awaited<ReturnType<typeof tempConfig>>;
  beforeAll(async () => {
    local = await tempConfig({ INFERFLOW_POSTGRES_URL: url });
  });
  afterAll(async () => {
    await local.cleanup();
  });

  /** Parts of shards predicted on this machine, staged into PostgreSQL. */
  async function partsHere(runId: string, shards: number[]): Promise<void> {
    for (const i of shards) await stagedPart(runId, i, path.join(local.config.dataDir, 'runs', runId, 'parts', `part-${String(i).padStart(5, '0')}.csv`));
  }
  const commit = async (runId: string) => {
    const acts = createActivities(createResources(local.config, { logger: createLogger('warn') }));
    const input: CommitInput = { runId, workflowId: `wf-${runId}`, pipeline: 'fraud', model, sink: { type: 'postgres', table }, shardCount: 2, rows: 200 };
    return new MockActivityEnvironment().run((i: CommitInput) => acts.commitPredictions(i), input);
  };

  it('commits the parts in its own run directory', async () => {
    const runId = uniqueName('run');
    await partsHere(runId, [0, 1]);
    expect(await commit(runId)).toMatchObject({ rows: 200, created: true });
  });

  it('a shard without its part stops the commit, naming the part as the sink names it; nothing is published', async () => {
    const runId = uniqueName('run');
    await partsHere(runId, [0]);
    await expect(commit(runId)).rejects.toThrow(/missing staged parts: part-00001\.csv$/);
    const n = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM public.${pg.escapeIdentifier(table)} WHERE run_id = $1`, [runId]);
    expect(Number(n.rows[0]!.n)).toBe(0);
  });
});

describe('commitPredictions retried after its commit and clean-up finished (the worker died before reporting)', () => {
  let here: Awaited<ReturnType<typeof tempConfig>>;
  beforeAll(async () => {
    here = await tempConfig({ INFERFLOW_POSTGRES_URL: url });
  });
  afterAll(async () => {
    await here.cleanup();
  });

  const commit = async (runId: string, sink: CommitInput['sink'], shardCount: number, rows: number) => {
    const acts = createActivities(createResources(here.config, { logger: createLogger('warn') }));
    const input: CommitInput = { runId, workflowId: `wf-${runId}`, pipeline: 'fraud', model, sink, shardCount, rows };
    return new MockActivityEnvironment().run((i: CommitInput) => acts.commitPredictions(i), input);
  };
  const runFiles = (runId: string) => path.join(here.config.dataDir, 'runs', runId);

  it('Parquet: the second call finds no parts, answers the published run with created: false', async () => {
    const runId = uniqueName('run');
    const part = path.join(runFiles(runId), 'parts', 'part-00000.parquet');
    await fs.mkdir(path.dirname(part), { recursive: true });
    await withDuckDB((conn) =>
      conn.run(`COPY (SELECT 'tx-' || r AS transaction_id, (r % 2)::BIGINT AS label, 0.5::FLOAT AS score FROM range(50) t(r)) TO ${lit(part)} (FORMAT parquet)`),
    );
    expect(await commit(runId, { type: 'parquet' }, 1, 50)).toMatchObject({ rows: 50, created: true });
    await expect(fs.access(runFiles(runId))).rejects.toThrow(/ENOENT/);
    expect(await commit(runId, { type: 'parquet' }, 1, 50)).toMatchObject({ rows: 50, created: false });
  });

  it('PostgreSQL: the second call finds no parts and no staging table, answers the published run with created: false', async () => {
    const runId = uniqueName('run');
    await stagedPart(runId, 0, path.join(runFiles(runId), 'parts', 'part-00000.csv'));
    expect(await commit(runId, { type: 'postgres', table }, 1, 100)).toMatchObject({ rows: 100, created: true });
    await expect(fs.access(runFiles(runId))).rejects.toThrow(/ENOENT/);
    expect(await commit(runId, { type: 'postgres', table }, 1, 100)).toMatchObject({ rows: 100, created: false });
    const n = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM public.${pg.escapeIdentifier(table)} WHERE run_id = $1`, [runId]);
    expect(Number(n.rows[0]!.n)).toBe(100);
  });
});
