/**
 * The isAdjustedToUTC flag of Parquet TIMESTAMP(NANOS) columns, found and changed in a footer
 * DuckDB wrote (nested columns before and after, other timestamp units beside).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptArtifactError } from '../../lib/errors';
import { lit, toText, withDuckDB } from '../../lib/io/duckdb';
import { nanosTimestampFlags, setAdjustedToUtc } from '../../lib/io/parquet-footer';

let dir: string;
let file: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-footer-'));
  file = path.join(dir, 'nested.parquet');
  await withDuckDB((c) =>
    c.run(
      `COPY (SELECT {'a': 1, 'inner_ns': TIMESTAMP_NS '2026-01-01 00:00:00.000000001'} AS s, [1, 2] AS l,
                    TIMESTAMP_NS '2026-01-01 00:00:00.000000123' AS t_ns, TIMESTAMP '2026-01-01 00:00:00.000001' AS t_us,
                    TIMESTAMPTZ '2026-01-01 00:00:00+00' AS t_tz, MAP {'k': 1} AS m, TIMESTAMP_NS '2026-01-02 00:00:00.000000999' AS last_ns
            FROM range(3)) TO ${lit(file)} (FORMAT parquet)`,
    ),
  );
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const types = (f: string) => withDuckDB(async (c) => Object.fromEntries((await c.runAndReadAll(`DESCRIBE SELECT t_ns, last_ns FROM read_parquet(${lit(f)})`)).getRowObjectsJS().map((r) => [toText(r.column_name), toText(r.column_type)])));
const nanos = (f: string) => withDuckDB(async (c) => (await c.runAndReadAll(`SELECT epoch_ns(t_ns)::VARCHAR, epoch_ns(last_ns)::VARCHAR FROM read_parquet(${lit(f)}) LIMIT 1`)).getRowsJS()[0]);

describe('Parquet footer timestamp flags', () => {
  it('finds the top-level TIMESTAMP(NANOS) columns only, and flips their flag in place both ways', async () => {
    const flags = await nanosTimestampFlags(file);
    expect(flags.map((f) => [f.column, f.adjustedToUtc])).toEqual([
      ['t_ns', false],
      ['last_ns', false],
    ]);
    const size = (await fs.stat(file)).size;
    await setAdjustedToUtc(file, flags, true);
    expect((await nanosTimestampFlags(file)).map((f) => f.adjustedToUtc)).toEqual([true, true]);
    expect(await types(file)).toEqual({ t_ns: 'TIMESTAMP WITH TIME ZONE', last_ns: 'TIMESTAMP WITH TIME ZONE' });
    await setAdjustedToUtc(file, flags, false);
    expect(await types(file)).toEqual({ t_ns: 'TIMESTAMP_NS', last_ns: 'TIMESTAMP_NS' });
    expect(await nanos(file)).toEqual(['1767225600000000123', '1767312000000000999']);
    expect((await fs.stat(file)).size).toBe(size);
  });

  it('refuses a file without a Parquet footer', async () => {
    const bad = path.join(dir, 'bad.parquet');
    await fs.writeFile(bad, 'not parquet at all');
    await expect(nanosTimestampFlags(bad)).rejects.toBeInstanceOf(CorruptArtifactError);
  });
});
