import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { InferflowError, InvalidInputError, InvalidValueError, NotFoundError, PermissionDeniedError, RowCountMismatchError, TransientError } from '../../lib/errors';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import type { ResolvedModel } from '../../lib/registry/manifest';
import { DISCARDED_RUNS_TABLE, PostgresSink, closePostgresPools, parseSinkSpec, postgresTypeOf, stagingLedgerName, stagingTableName } from '../../lib/sinks';
import { uniqueName } from '../helpers/env';
import { TEST_POSTGRES } from '../helpers/services';

const url = inject('postgresUrl');
const schema = `inferflow_t_${Math.random().toString(36).slice(2, 10)}`;
const role = `inferflow_nopriv_${Math.random().toString(36).slice(2, 10)}`;
let admin: pg.Pool;
let dir: string;

const model = (version: number): ResolvedModel => ({ name: 'fraud-detector', version, sha256: `${version}`.repeat(64), size: 1, uri: 'file:///m', ref: 'fraud-detector' });
const AS_OF = '2026-11-24 03:00:00.123456+00';

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: url, max: 2 });
  await admin.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-pg-'));
});

afterAll(async () => {
  await closePostgresPools();
  await admin?.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  await admin?.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
  await admin?.end();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** The sink's own part writer: shards write the CSV the stager COPYs. */
const csvParts = new PostgresSink({ table: 'parts' }, { url }).partFormat;

/**
 * A staged part with the prediction schema predictShard writes: the CSV part the sink stages,
 * written from the same rows as a Parquet file beside it (`partRows` reads that one back). Shard
 * 0 also carries the awkward values: quotes, commas, newlines, backslash-N, the empty string,
 * NULLs, and float4 extremes (smallest subnormal, largest finite, -0, 1/3).
 */
async function writePart(runId: string, shard: number, rows: number, version: number, opts: { withId?: boolean; asOf?: string } = {}): Promise<{ path: string; rows: number }> {
  const withId = opts.withId ?? true;
  const file = path.join(dir, runId, `part-${String(shard).padStart(5, '0')}.parquet`);
  const csv = file.replace(/\.parquet$/, csvParts.extension);
  await fs.mkdir(path.dirname(file), { recursive: true });
  const specials =
    shard === 0
      ? `UNION ALL SELECT * FROM (VALUES
           ('tx-"quoted", comma', 0::BIGINT, 0.1::FLOAT),
           ('tx-new' || chr(10) || 'line', 1::BIGINT, 1.401298464324817e-45::FLOAT),
           ('tx-ü-\\N', NULL::BIGINT, 3.4028234663852886e38::FLOAT),
           ('', 0::BIGINT, '-0.0'::FLOAT),
           (' tx-space ', 1::BIGINT, NULL::FLOAT),
           ('tx-third', 0::BIGINT, (1.0 / 3.0)::FLOAT)) v(transaction_id, label, score)`
      : '';
  const lineage = `'fraud-detector' AS model_name, ${version}::INTEGER AS model_version, ${lit(`${version}`.repeat(64))} AS model_sha256, ${lit(opts.asOf ?? AS_OF)}::TIMESTAMPTZ AS as_of, ${lit(runId)} AS run_id`;
  const total = rows + (shard === 0 ? 6 : 0);
  await withDuckDB(async (conn) => {
    await conn.run(`COPY (
      SELECT ${withId ? 'transaction_id, ' : ''}label, score, ${lineage}
      FROM (SELECT printf('tx-%d-%06d', ${shard}, i) AS transaction_id, (i % 2)::BIGINT AS label, random()::FLOAT AS score FROM range(${rows}) t(i) ${specials})
    ) TO ${lit(file)} (FORMAT parquet)`);
    await csvParts.write(conn, { select: `SELECT * FROM read_parquet(${lit(file)})`, lineage, path: csv, finalPath: csv, shardIndex: shard, rows: total });
  });
  return { path: csv, rows: total };
}

type Row = [id: string | null, label: string | null, score: number | null, modelName: string, version: number, sha: string, asOfMicros: string, runId: string];

async function partRows(parts: string[]): Promise<Row[]> {
  return withDuckDB(async (conn) => {
    const r = await conn.runAndReadAll(
      `SELECT transaction_id, label, score, model_name, model_version, model_sha256, epoch_us(as_of), run_id FROM read_parquet([${parts.map((p) => lit(p.replace(/\.csv$/, '.parquet'))).join(', ')}]) ORDER BY transaction_id`,
    );
    return r.getRowsJS().map((x) => [x[0] === null ? null : toText(x[0]), x[1] === null ? null : toText(x[1]), x[2] as number | null, toText(x[3]), Number(x[4]), toText(x[5]), toText(x[6]), toText(x[7])]);
  });
}

async function tableRows(table: string): Promise<Row[]> {
  // score::float8 is the float4 value exactly (no decimal rounding on the way out).
  const r = await admin.query<{ id: string | null; label: string | null; score: number | null; model_name: string; model_version: number; model_sha256: string; us: string; run_id: string }>(
    `SELECT transaction_id AS id, label, score::float8 AS score, model_name, model_version, model_sha256, (extract(epoch FROM as_of) * 1000000)::bigint AS us, run_id
       FROM ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)} ORDER BY transaction_id COLLATE "C"`,
  );
  return r.rows.map((x) => [x.id, x.label, x.score, x.model_name, x.model_version, x.model_sha256, x.us, x.run_id]);
}

function sortRows(rows: Row[]): Row[] {
  return [...rows].sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
}

async function stagingTables(): Promise<string[]> {
  const r = await admin.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'inferflow_stage_%' ORDER BY 1`, [schema]);
  return r.rows.map((x) => x.t);
}

/** 'p' (logged), 'u' (unlogged) or null when the table does not exist. */
async function persistence(table: string): Promise<string | null> {
  const r = await admin.query<{ p: string }>('SELECT relpersistence AS p FROM pg_class WHERE oid = to_regclass($1)', [`${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`]);
  return r.rows[0]?.p ?? null;
}

async function count(table: string, where = 'true'): Promise<number> {
  const r = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)} WHERE ${where}`);
  return Number(r.rows[0]!.n);
}

async function tableExists(table: string): Promise<boolean> {
  const r = await admin.query<{ reg: string | null }>('SELECT to_regclass($1)::text AS reg', [`${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`]);
  return r.rows[0]!.reg !== null;
}

/** A run: write its parts, stage them (concurrently, as shard activities do), return the commit request. */
async function stageRun(sink: PostgresSink, runId: string, sizes: number[], version: number, opts: { withId?: boolean; asOf?: string } = {}) {
  const parts = await Promise.all(sizes.map((n, i) => writePart(runId, i, n, version, opts)));
  await Promise.all(parts.map((p, i) => sink.stage({ runId, shardIndex: i, partPath: p.path, rows: p.rows, idColumn: opts.withId === false ? null : 'transaction_id' })));
  return { runId, workflowId: `wf-${runId}`, pipeline: 'fraud', model: model(version), parts: parts.map((p) => p.path), rows: parts.reduce((s, p) => s + p.rows, 0) };
}

async function failureOf(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

describe('PostgreSQL sink on a real server', () => {
  const table = uniqueName('scores').replace(/-/g, '_');
  const sink = new PostgresSink({ table, schema }, { url });
  let runA: Awaited<ReturnType<typeof stageRun>>;

  it('stages shards invisibly, then commits a run that reads back exactly (ids, labels, float4 bits, as_of, lineage, NULLs)', async () => {
    runA = await stageRun(sink, 'run-a', [1000, 1000, 500], 1);
    expect(await tableExists(table)).toBe(false); // readers see nothing before commit
    expect(await stagingTables()).toEqual([stagingTableName('run-a'), stagingLedgerName('run-a')]);
    // Lineage holds one value per run: kept once (in the staging table's comment), not in every staged row.
    const stagedColumns = await admin.query<{ name: string }>(
      `SELECT attname AS name FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [`${schema}.${stagingTableName('run-a')}`],
    );
    expect(stagedColumns.rows.map((r) => r.name)).toEqual(['transaction_id', 'label', 'score', '__shard']);
    // No target yet: staging (and its ledger, so both survive a server crash or neither) is LOGGED,
    // to be renamed into place by the commit instead of copied.
    expect([await persistence(stagingTableName('run-a')), await persistence(stagingLedgerName('run-a'))]).toEqual(['p', 'p']);
    const oid = async (name: string) => (await admin.query<{ oid: number | null }>('SELECT to_regclass($1)::oid AS oid', [`${schema}.${name}`])).rows[0]?.oid;
    const stagingOid = await oid(stagingTableName('run-a'));

    const result = await sink.commit(runA);
    expect(await oid(table)).toBe(stagingOid); // the staging table itself, renamed: no row was copied
    expect(result).toEqual({ location: `postgres://127.0.0.1:5432/${TEST_POSTGRES.database}#${schema}.${table}`, rows: 2506, created: true });

    const expected = sortRows(await partRows(runA.parts));
    const actual = sortRows(await tableRows(table));
    expect(actual.length).toBe(2506);
    expect(actual).toEqual(expected);
    // Bit-exact float4 (toEqual treats -0 and 0 alike): every score equal as a float32, -0 kept.
    expect(actual.every((r, i) => Object.is(r[2], expected[i]![2]))).toBe(true);
    expect(actual.find((r) => r[0] === '')![2]).toBe(-0);
    expect(actual.find((r) => r[0] === 'tx-new\nline')![2]).toBe(Math.fround(1.401298464324817e-45));
    expect(actual.find((r) => r[0] === ' tx-space ')![2]).toBeNull();
    expect(actual.find((r) => r[0] === 'tx-ü-\\N')![1]).toBeNull();
    expect(actual[0]![6]).toBe('1795489200123456'); // 2026-11-24T03:00:00.123456Z

    const types = await admin.query<{ name: string; type: string }>(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [`${schema}.${table}`],
    );
    expect(Object.fromEntries(types.rows.map((r) => [r.name, r.type]))).toEqual({
      transaction_id: 'text',
      label: 'bigint',
      score: 'real',
      model_name: 'text',
      model_version: 'integer',
      model_sha256: 'text',
      as_of: 'timestamp with time zone',
      run_id: 'text',
    });
    const pk = await admin.query<{ def: string }>(`SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`, [`${schema}.${table}`]);
    expect(pk.rows.map((r) => r.def)).toEqual(['PRIMARY KEY (transaction_id)']);
    expect(await persistence(table)).toBe('p');
    expect(await persistence(`${table}_pkey`)).toBe('p'); // the key's index, named as for a new table
    expect((await admin.query(`SELECT obj_description(to_regclass($1), 'pg_class') AS c`, [`${schema}.${table}`])).rows[0]).toEqual({ c: null });
    // The run's lineage is held once, in the catalog (columns added with the run's value as default,
    // the default dropped again): no column keeps a default, so a later insert behaves as in a
    // table created with every column.
    const storage = await admin.query<{ name: string; hasdef: boolean; hasmissing: boolean }>(
      `SELECT attname AS name, atthasdef AS hasdef, atthasmissing AS hasmissing FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [`${schema}.${table}`],
    );
    expect(storage.rows.filter((r) => r.hasdef)).toEqual([]);
    expect(storage.rows.filter((r) => r.hasmissing).map((r) => r.name)).toEqual(['model_name', 'model_version', 'model_sha256', 'as_of', 'run_id']);

    expect(await stagingTables()).toEqual([]);
    const runs = await admin.query(`SELECT run_id, table_name, rows::int, model_version FROM ${pg.escapeIdentifier(schema)}.inferflow_runs`);
    expect(runs.rows).toEqual([{ run_id: 'run-a', table_name: table, rows: 2506, model_version: 1 }]);
  });

  it('a second run upserts by primary key; a shard staged twice (a retry) leaves no duplicates', async () => {
    const runB = await stageRun(sink, 'run-b', [1000, 1000, 500], 2);
    expect(await persistence(stagingTableName('run-b'))).toBe('u'); // upserted from, then dropped: UNLOGGED
    // Shard 1 is staged again, as a retried activity would.
    await sink.stage({ runId: 'run-b', shardIndex: 1, partPath: runB.parts[1]!, rows: 1000, idColumn: 'transaction_id' });
    const result = await sink.commit(runB);
    expect(result).toMatchObject({ rows: 2506, created: true });
    expect(await count(table)).toBe(2506);
    expect(await count(table, `run_id = 'run-b' AND model_version = 2`)).toBe(2506);
    expect(sortRows(await tableRows(table))).toEqual(sortRows(await partRows(runB.parts)));
  });

  it('a failed run (staged, never committed, discarded) leaves the committed rows intact and no staging table', async () => {
    const runC = await stageRun(sink, 'run-c', [1000, 1000], 3);
    // Expected rows do not match what was staged (a shard is missing): permanent, nothing published.
    const err = await failureOf(sink.commit({ ...runC, parts: [...runC.parts, path.join(dir, 'missing.parquet')], rows: runC.rows + 500 }));
    expect(err).toBeInstanceOf(RowCountMismatchError);
    expect((err as InferflowError).permanent).toBe(true);
    expect(err.message).toContain('staged 2006 rows, expected 2506; shards not staged: 2');
    expect(await count(table, `run_id = 'run-b'`)).toBe(2506);

    await sink.discard('run-c');
    await sink.discard('run-c'); // idempotent
    expect(await stagingTables()).toEqual([]);
    expect(await count(table, `run_id = 'run-b'`)).toBe(2506);
    const runs = await admin.query(`SELECT run_id FROM ${pg.escapeIdentifier(schema)}.inferflow_runs ORDER BY run_id`);
    expect(runs.rows.map((r: { run_id: string }) => r.run_id)).toEqual(['run-a', 'run-b']);
    // Committing a discarded run publishes nothing.
    await expect(sink.commit(runC)).rejects.toThrow(/nothing staged/);
    expect(await count(table, `run_id = 'run-c'`)).toBe(0);
  });

  it('a first run whose target another run created meanwhile upserts into it (its staging is not renamed)', async () => {
    const t = uniqueName('race').replace(/-/g, '_');
    const s = new PostgresSink({ table: t, schema }, { url });
    const first = await stageRun(s, `${t}-first`, [300, 200], 1); // staged while the target did not exist
    expect(await persistence(stagingTableName(`${t}-first`))).toBe('p');
    const other = await stageRun(s, `${t}-other`, [300], 2, { asOf: '2026-11-20 03:00:00+00' });
    expect(await s.commit(other)).toMatchObject({ created: true });
    expect(await s.commit(first)).toMatchObject({ rows: 506, created: true });
    expect(await count(t)).toBe(506); // the other run's 306 ids upserted (this run's as_of is later), 200 inserted
    expect(await count(t, `run_id = '${t}-first' AND model_version = 1`)).toBe(506);
    expect((await stagingTables()).filter((n) => n.includes(stagingTableName(`${t}-first`).slice(-16)))).toEqual([]);
  });

  it('a shard attempt that outlives its discarded run (a stalled worker) stages nothing: no staging table comes back', async () => {
    const runId = 'run-zombie';
    const parts = await Promise.all([writePart(runId, 0, 300, 1), writePart(runId, 1, 300, 1)]);
    const stage = (i: number) => sink.stage({ runId, shardIndex: i, partPath: parts[i]!.path, rows: parts[i]!.rows, idColumn: 'transaction_id' });
    await stage(0);
    await sink.discard(runId); // the run failed
    expect(await stagingTables()).toEqual([]);
    await stage(1); // an attempt that was still running somewhere finishes
    await stage(0);
    expect(await stagingTables()).toEqual([]);
    const discarded = await admin.query<{ run_id: string }>(`SELECT run_id FROM ${pg.escapeIdentifier(schema)}.${DISCARDED_RUNS_TABLE} ORDER BY run_id`);
    expect(discarded.rows.map((r) => r.run_id)).toEqual(['run-c', runId]);
    // Discarding a published run (the workflow's clean-up after a commit) records nothing.
    await sink.discard('run-a');
    expect((await admin.query(`SELECT 1 FROM ${pg.escapeIdentifier(schema)}.${DISCARDED_RUNS_TABLE} WHERE run_id = 'run-a'`)).rowCount).toBe(0);
    expect(await count(table, `run_id = 'run-b'`)).toBe(2506);
  });

  it('the commit takes per-shard row counts from the ledger and checks them against the table: a row gone behind its back publishes nothing', async () => {
    const t = uniqueName('ledger').replace(/-/g, '_');
    const s = new PostgresSink({ table: t, schema }, { url });
    const run = await stageRun(s, `${t}-run`, [200, 300], 1);
    const q = (name: string) => `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`;
    const ledger = await admin.query<{ shard: number; rows: string }>(`SELECT shard, rows FROM ${q(stagingLedgerName(run.runId))} ORDER BY shard`);
    expect(ledger.rows.map((r) => [r.shard, Number(r.rows)])).toEqual([
      [0, 206],
      [1, 300],
    ]);
    await admin.query(`DELETE FROM ${q(stagingTableName(run.runId))} WHERE ctid = (SELECT min(ctid) FROM ${q(stagingTableName(run.runId))} WHERE __shard = 1)`);
    const err = await failureOf(s.commit(run));
    expect(err).toBeInstanceOf(RowCountMismatchError);
    expect(err.message).toMatch(/holds 505 rows, its ledger lists 506; nothing was published/);
    expect(await tableExists(t)).toBe(false);
  });

  it("a shard whose lineage differs from the run's other shards is refused, naming the column", async () => {
    const t = uniqueName('lineage').replace(/-/g, '_');
    const s = new PostgresSink({ table: t, schema }, { url });
    const runId = `${t}-run`;
    const first = await writePart(runId, 1, 50, 1);
    await s.stage({ runId, shardIndex: 0, partPath: first.path, rows: first.rows, idColumn: 'transaction_id' });
    const other = await writePart(runId, 2, 50, 2); // model_version 2 where shard 0 had 1
    const err = await failureOf(s.stage({ runId, shardIndex: 1, partPath: other.path, rows: other.rows, idColumn: 'transaction_id' }));
    expect(err.message).toContain("shard 1's predictions do not fit the run's other shards");
    expect((err as InferflowError & { problems?: string[] }).problems).toEqual([
      'column model_version: shard 1 holds "2", the run\'s other shards "1"',
      `column model_sha256: shard 1 holds "${'2'.repeat(64)}", the run's other shards "${'1'.repeat(64)}"`,
    ]);
    await s.discard(runId);
  });

  it('an older as_of (a backfill) never overwrites newer rows; the same or a later as_of does; onConflict "replace" always does', async () => {
    const t = uniqueName('asof').replace(/-/g, '_');
    const guarded = new PostgresSink({ table: t, schema }, { url });
    const scoreOf = async (table: string) => new Map((await tableRows(table)).map((r) => [r[0], [r[4], r[6]] as const]));
    await guarded.commit(await stageRun(guarded, `${t}-today`, [400], 2, { asOf: '2026-11-24 03:00:00+00' }));
    const backfill = await guarded.commit(await stageRun(guarded, `${t}-lastweek`, [400], 1, { asOf: '2026-11-17 03:00:00+00' }));
    expect(backfill.keptNewer).toBe(406);
    expect(new Set([...(await scoreOf(t)).values()].map(([v]) => v))).toEqual(new Set([2])); // today's model version everywhere
    await guarded.commit(await stageRun(guarded, `${t}-rerun`, [400], 3, { asOf: '2026-11-24 03:00:00+00' }));
    expect(new Set([...(await scoreOf(t)).values()].map(([v]) => v))).toEqual(new Set([3])); // same as_of: replaced

    const replacing = new PostgresSink({ table: t, schema, onConflict: 'replace' }, { url });
    const r = await replacing.commit(await stageRun(replacing, `${t}-old-replace`, [400], 4, { asOf: '2026-11-01 03:00:00+00' }));
    expect(r.keptNewer).toBeUndefined();
    expect(new Set([...(await scoreOf(t)).values()].map(([v]) => v))).toEqual(new Set([4]));
  });

  it('predictions that repeat a key value publish nothing, into a new table or an existing one (permanent, naming the key)', async () => {
    const t = uniqueName('dup').replace(/-/g, '_');
    const s = new PostgresSink({ table: t, schema }, { url });
    // The same part staged as two shards: every id twice.
    const stageTwice = async (runId: string) => {
      const part = await writePart(runId, 1, 200, 1);
      await Promise.all([0, 1].map((i) => s.stage({ runId, shardIndex: i, partPath: part.path, rows: part.rows, idColumn: 'transaction_id' })));
      return { runId, workflowId: `wf-${runId}`, pipeline: 'fraud', model: model(1), parts: [part.path, part.path], rows: 2 * part.rows };
    };
    const intoNew = await failureOf(s.commit(await stageTwice(`${t}-a`)));
    expect(intoNew).toBeInstanceOf(InvalidValueError);
    expect((intoNew as InferflowError).permanent).toBe(true);
    expect(intoNew.message).toMatch(/repeat primary key values \(id column\); nothing was published: .*Key \(transaction_id\)=\(tx-1-\d+\) is duplicated/);
    expect(await tableExists(t)).toBe(false); // created in the transaction that failed

    await s.commit(await stageRun(s, `${t}-ok`, [100], 1));
    const intoExisting = await failureOf(s.commit(await stageTwice(`${t}-b`)));
    expect(intoExisting).toBeInstanceOf(InvalidValueError);
    expect(intoExisting.message).toContain('repeat primary key values');
    expect(await count(t)).toBe(106);
    await s.discard(`${t}-a`);
    await s.discard(`${t}-b`);
  });

  it('creates the target with the given fillfactor; later runs upsert into it and leave its storage settings alone', async () => {
    const t = uniqueName('ff').replace(/-/g, '_');
    const options = async (table = t) => (await admin.query<{ o: string[] | null }>(`SELECT reloptions AS o FROM pg_class WHERE oid = $1::regclass`, [`${schema}.${table}`])).rows[0]?.o ?? null;
    const s = new PostgresSink({ table: t, schema, fillfactor: 50 }, { url });
    await s.commit(await stageRun(s, `${t}-1`, [300], 1, { asOf: '2026-11-24 03:00:00+00' }));
    expect(await options()).toEqual(['fillfactor=50']);
    await s.commit(await stageRun(s, `${t}-2`, [300], 2, { asOf: '2026-11-25 03:00:00+00' }));
    expect(await count(t)).toBe(306);
    expect(await options()).toEqual(['fillfactor=50']);
    // A sink without the option, on the existing table: the table keeps its setting.
    const plain = new PostgresSink({ table: t, schema }, { url });
    await plain.commit(await stageRun(plain, `${t}-3`, [300], 3, { asOf: '2026-11-26 03:00:00+00' }));
    expect(await options()).toEqual(['fillfactor=50']);
    // And one without it creates a plain table.
    const other = uniqueName('ff-none').replace(/-/g, '_');
    const fresh = new PostgresSink({ table: other, schema }, { url });
    await fresh.commit(await stageRun(fresh, `${other}-1`, [100], 1));
    expect(await options(other)).toBeNull();
  });

  it('without an id column: each commit replaces the run’s own rows, other runs’ rows stay', async () => {
    const noId = uniqueName('noid').replace(/-/g, '_');
    const s = new PostgresSink({ table: noId, schema }, { url });
    await s.commit(await stageRun(s, 'run-n1', [300], 1, { withId: false }));
    await s.commit(await stageRun(s, 'run-n2', [200], 1, { withId: false }));
    expect(await count(noId)).toBe(300 + 6 + 200 + 6);
    const pk = await admin.query(`SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`, [`${schema}.${noId}`]);
    expect(pk.rowCount).toBe(0);
  });

  it('rejects invalid table, schema and key names before any work', () => {
    for (const bad of [
      { type: 'postgres', table: 'x; drop table y' },
      { type: 'postgres', table: 'scores', schema: 'public"--' },
      { type: 'postgres', table: 'scores', primaryKey: 'id, x' },
      { type: 'postgres', table: 'a'.repeat(64) },
      { type: 'postgres', table: 'inferflow_runs' },
      { type: 'postgres', table: 'scores', url: 'postgres://u:pw@h/d' },
      { type: 'postgres', table: 'scores', fillfactor: 5 },
      { type: 'postgres', table: 'scores', fillfactor: 50.5 },
    ]) {
      expect(() => parseSinkSpec(bad), JSON.stringify(bad)).toThrow(InvalidInputError);
    }
    expect(() => parseSinkSpec({ type: 'postgres', table: 'scores', password: 'pw' })).toThrow(/INFERFLOW_POSTGRES_URL/);
    for (const own of ['inferflow_runs', DISCARDED_RUNS_TABLE, stagingTableName('r'), stagingLedgerName('r')]) {
      expect(() => parseSinkSpec({ type: 'postgres', table: own }), own).toThrow(/reserved for Inferflow/);
    }
    expect(parseSinkSpec({ type: 'postgres', table: 'scores' })).toEqual({ type: 'postgres', table: 'scores' });
    expect(() => new PostgresSink({ table: 'x"; drop' }, { url })).toThrow(InvalidInputError);
    expect(() => new PostgresSink({ table: 'scores', fillfactor: Number('50); drop table x; --') }, { url })).toThrow(/fillfactor: an integer 10–100/);
  });

  it('maps DuckDB types to PostgreSQL types', () => {
    expect(['VARCHAR', 'BIGINT', 'INTEGER', 'FLOAT', 'DOUBLE', 'TIMESTAMP WITH TIME ZONE', 'BOOLEAN', 'DECIMAL(18,3)'].map(postgresTypeOf)).toEqual([
      'text',
      'bigint',
      'integer',
      'real',
      'double precision',
      'timestamptz',
      'boolean',
      'numeric(18,3)',
    ]);
    // Lists (multi-output predictions, top-k) become arrays of the element type; nested lists and structs have no faithful mapping.
    expect(['FLOAT[]', 'VARCHAR[]', 'INTEGER[]'].map(postgresTypeOf)).toEqual(['real[]', 'text[]', 'integer[]']);
    expect(postgresTypeOf('FLOAT[][]')).toBeUndefined();
    expect(postgresTypeOf('STRUCT(a INTEGER)[]')).toBeUndefined();
  });
});

describe('PostgreSQL sink errors', () => {
  async function stageOne(s: PostgresSink): Promise<Error> {
    const part = await writePart(uniqueName('err'), 1, 10, 1);
    return failureOf(s.stage({ runId: 'run-err', shardIndex: 1, partPath: part.path, rows: part.rows, idColumn: 'transaction_id' }));
  }

  it('connection refused is transient and names host:port and database, never the password', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const err = await stageOne(new PostgresSink({ table: 'scores', schema }, { url: `postgres://postgres:sekrit-pw@127.0.0.1:${port}/${TEST_POSTGRES.database}` }));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain(`database ${TEST_POSTGRES.database}`);
    expect(err.message).toContain('ECONNREFUSED');
    expect(`${err.message} ${JSON.stringify((err as InferflowError).details)}`).not.toContain('sekrit-pw');
  });

  it('a missing database is a permanent NotFound naming the database', async () => {
    const err = await stageOne(new PostgresSink({ table: 'scores', schema }, { url: 'postgres://postgres@127.0.0.1:5432/no_such_db_inferflow' }));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as InferflowError).permanent).toBe(true);
    expect(err.message).toContain('database no_such_db_inferflow does not exist on PostgreSQL at 127.0.0.1:5432');
  });

  it('an unknown role and a missing privilege are permanent PermissionDenied errors', async () => {
    const unknown = await stageOne(new PostgresSink({ table: 'scores', schema }, { url: `postgres://no_such_role_inferflow@127.0.0.1:5432/${TEST_POSTGRES.database}` }));
    expect(unknown).toBeInstanceOf(PermissionDeniedError);
    expect(unknown.message).toContain('no_such_role_inferflow');

    await admin.query(`CREATE ROLE ${pg.escapeIdentifier(role)} LOGIN`);
    const denied = await stageOne(new PostgresSink({ table: 'scores', schema }, { url: `postgres://${role}@127.0.0.1:5432/${TEST_POSTGRES.database}` }));
    expect(denied).toBeInstanceOf(PermissionDeniedError);
    expect((denied as InferflowError).permanent).toBe(true);
    expect(denied.message).toMatch(/permission denied/);
  });

  it('discarding against a database that does not exist has nothing to do', async () => {
    await expect(new PostgresSink({ table: 'scores', schema }, { url: 'postgres://postgres@127.0.0.1:5432/no_such_db_inferflow' }).discard('run-x')).resolves.toBeUndefined();
  });
});
