/**
 * Point-in-time joins at every timestamp precision a source can hold, against pandas
 * `merge_asof` (backward, exact matches joined) on generated data: Parquet nanosecond,
 * microsecond and millisecond timestamps with and without a time zone (nanosecond ones with
 * time zone are what pandas writes for timezone-aware datetimes), a CSV with nanosecond
 * digits and a +05:30 offset, and a PostgreSQL timestamptz source. View rows sit 1–999 units
 * of the type's precision before and after each spine time, so a comparison at a coarser
 * precision joins a future value. Spine timestamps come out as they went in.
 */
import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensurePythonPackages, joinPythonPath, trainingPins } from '../../bench/python';
import { REPO_ROOT } from '../../cli/examples';
import { getHistoricalFeatures } from '../../lib/features';
import type { FeatureView } from '../../lib/features/spec';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';

interface Case {
  name: string;
  unit: 'ns' | 'us' | 'ms';
  tz: string | null;
  format: 'parquet' | 'csv' | 'postgres';
  spine: string;
  view?: string;
  viewCsv?: string;
  expected: string;
}

const postgresUrl = inject('postgresUrl');
const table = `features_precision_${randomUUID().slice(0, 8)}`;
let dir: string;
let cases: Case[];
let pool: pg.Pool;
let python: (args: string[]) => string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-precision-'));
  const packages = ensurePythonPackages({ dataDir: path.join(REPO_ROOT, '.data'), name: 'pandas-asof', requirements: trainingPins(['numpy', 'pandas', 'pyarrow']), modules: ['numpy', 'pandas', 'pyarrow'], say: console.log });
  if ('unavailable' in packages) throw new Error(packages.unavailable);
  const pythonPath = joinPythonPath(packages.pythonPath);
  python = (args) => {
    const r = spawnSync('python3', [path.join(REPO_ROOT, 'test/fixtures/point-in-time/merge_asof.py'), ...args], { encoding: 'utf8', env: { ...process.env, ...(pythonPath ? { PYTHONPATH: pythonPath } : {}) } });
    if (r.status !== 0) throw new Error(`merge_asof.py ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  python([dir]);
  cases = JSON.parse(await fs.readFile(path.join(dir, 'cases.json'), 'utf8')) as Case[];
  pool = new pg.Pool({ connectionString: postgresUrl, max: 1 });
}, 600_000);

afterAll(async () => {
  await pool?.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(table)}`);
  await pool?.end();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const view = (source: FeatureView['source']): FeatureView => ({ name: 'v', entities: ['customer_id'], timestampField: 'event_timestamp', features: [{ name: 'amount', dtype: 'float64' }], source });

async function sourceOf(c: Case): Promise<FeatureView['source']> {
  if (c.format !== 'postgres') return { type: 'file', path: c.view! };
  const client = await pool.connect();
  try {
    await client.query(`CREATE TABLE ${pg.escapeIdentifier(table)} (customer_id bigint, event_timestamp timestamptz, amount double precision)`);
    await pipeline(createReadStream(c.viewCsv!), client.query(copyFrom(`COPY ${pg.escapeIdentifier(table)} FROM STDIN (FORMAT csv, HEADER true)`)));
  } finally {
    client.release();
  }
  return { type: 'postgres', table };
}

describe('point-in-time precision', () => {
  it('joins what pandas merge_asof joins, for every timestamp type, and carries spine timestamps through unchanged', async () => {
    expect(cases.map((c) => c.name)).toHaveLength(8);
    for (const c of cases) {
      const output = path.join(dir, `${c.name}.out.parquet`);
      const result = await getHistoricalFeatures({ spine: c.spine, views: [view(await sourceOf(c))], output, postgres: { url: postgresUrl } });
      const { got, want, spineType } = await withDuckDB(async (conn) => {
        const read = async (sql: string) => (await conn.runAndReadAll(sql)).getRowObjectsJS();
        return {
          got: await read(`SELECT spine_row, v__amount AS amount FROM read_parquet(${lit(output)}) ORDER BY spine_row`),
          want: await read(`SELECT spine_row, CASE WHEN isnan(amount) THEN NULL ELSE amount END AS amount, ts_ns::VARCHAR AS ts_ns FROM read_parquet(${lit(c.expected)}) ORDER BY spine_row`),
          spineType: toText((await read(`SELECT typeof(event_timestamp) AS t FROM ${c.format === 'csv' ? `read_csv(${lit(c.spine)})` : `read_parquet(${lit(c.spine)})`} LIMIT 1`))[0]!.t),
        };
      });
      expect(got.length, c.name).toBe(want.length);
      const wrong = got.flatMap((g, i) => (g.amount === want[i]!.amount ? [] : [`${c.name} spine_row ${i}: joined ${toText(g.amount)}, merge_asof ${toText(want[i]!.amount)}`]));
      expect(wrong.slice(0, 5), c.name).toEqual([]);
      expect(got.filter((g) => g.amount !== null).length, c.name).toBeGreaterThan(got.length / 2);
      if (c.format === 'csv') {
        // A CSV spine's timestamp keeps the type DuckDB gives the text (microseconds).
        expect(result.columns.find((col) => col.name === 'event_timestamp')!.type, c.name).toBe(spineType);
        continue;
      }
      // Parquet spines: the timestamp column comes out with its Arrow type and every digit (read by pyarrow).
      const out = JSON.parse(python(['--timestamps', output, 'event_timestamp'])) as { type: string; ns: string[] };
      const input = JSON.parse(python(['--timestamps', c.spine, 'event_timestamp'])) as { type: string; ns: string[] };
      expect(out.type, c.name).toBe(input.type.replace(/\[(s|ms|us|ns)/, `[${c.unit === 'ns' ? 'ns' : 'us'}`));
      expect(out.ns, c.name).toEqual(want.map((w) => w.ts_ns));
    }
  });
});
