import { describe, expect, it } from 'vitest';
import { appendColumns, readColumns, readMatrices, RowOrderError } from '../../lib/io/columns';
import { withDuckDB } from '../../lib/io/duckdb';

// 5,000 rows: several DuckDB chunks (2,048 rows each), nulls, NaN and strings.
const ROWS = 5_000;
const TABLE = `CREATE TABLE t AS SELECT i,
  CASE WHEN i % 7 = 0 THEN NULL WHEN i % 11 = 0 THEN 'NaN'::DOUBLE ELSE i * 1.1::DOUBLE END AS x,
  CASE WHEN i % 5 = 0 THEN NULL ELSE 'id' || i END AS s,
  (i % 3)::BIGINT AS k,
  (i * 0.1)::DECIMAL(10, 1) AS d
  FROM range(${ROWS}) t(i)`;
const expectedX = (i: number) => (i % 7 === 0 || i % 11 === 0 ? NaN : i * 1.1);

describe('typed column reading', () => {
  it('reads numbers (null → NaN) and strings, column by column, checking row order', async () => {
    await withDuckDB(async (conn) => {
      await conn.run(TABLE);
      const [x, s, k, d] = await readColumns(conn, 'SELECT i::DOUBLE, CAST(x AS DOUBLE), CAST(s AS VARCHAR), CAST(k AS DOUBLE), CAST(d AS DOUBLE) FROM t ORDER BY i', ['float64', 'string', 'float32', 'float64'], ROWS, {
        rowColumn: { index: 0, firstRow: 0 },
      });
      expect(x).toBeInstanceOf(Float64Array);
      expect(k).toBeInstanceOf(Float32Array);
      for (let i = 0; i < ROWS; i++) {
        expect((x as Float64Array)[i]).toBe(expectedX(i));
        expect((s as (string | null)[])[i]).toBe(i % 5 === 0 ? null : `id${i}`);
        expect((k as Float32Array)[i]).toBe(i % 3);
        expect((d as Float64Array)[i]).toBe(Number((i * 0.1).toFixed(1)));
      }
    });
  });

  it('reads row-major float32 matrices rounded like a Float32Array assignment', async () => {
    await withDuckDB(async (conn) => {
      await conn.run(TABLE);
      const [a, b] = await readMatrices(conn, 'SELECT i::DOUBLE, CAST(x AS DOUBLE), CAST(k AS DOUBLE), CAST(d AS DOUBLE) FROM t ORDER BY i', [2, 1], ROWS, { rowColumn: { index: 0, firstRow: 0 } });
      for (let i = 0; i < ROWS; i++) {
        expect(a![i * 2]).toBe(Math.fround(expectedX(i)));
        expect(a![i * 2 + 1]).toBe(i % 3);
        expect(b![i]).toBe(Math.fround(Number((i * 0.1).toFixed(1))));
      }
    });
  });

  it('fails on rows out of order and on a wrong row count', async () => {
    await withDuckDB(async (conn) => {
      await conn.run(TABLE);
      await expect(readColumns(conn, 'SELECT i::DOUBLE, CAST(x AS DOUBLE) FROM t ORDER BY i DESC', ['float64'], ROWS, { rowColumn: { index: 0, firstRow: 0 } })).rejects.toThrow(RowOrderError);
      await expect(readColumns(conn, 'SELECT CAST(x AS DOUBLE) FROM t', ['float64'], ROWS + 1)).rejects.toThrow(/returned 5000 rows, expected 5001/);
      await expect(readMatrices(conn, 'SELECT CAST(x AS DOUBLE) FROM t', [1], ROWS - 1)).rejects.toThrow(/more than the expected/);
    });
  });
});

describe('typed column appending', () => {
  it('appends typed arrays in order (rowid = index), NaN kept', async () => {
    await withDuckDB(async (conn) => {
      await conn.run('CREATE TABLE o (a DOUBLE, b FLOAT, c INTEGER)');
      const a = new Float64Array(ROWS).map((_, i) => i + 0.5);
      const b = new Float32Array(ROWS).map((_, i) => i / 3);
      const c = new Int32Array(ROWS).map((_, i) => -i);
      a[3] = NaN;
      await appendColumns(conn, 'o', [a, b, c]);
      const [stats] = (await conn.runAndReadAll('SELECT count(*)::INTEGER, sum((a = rowid + 0.5)::INTEGER)::INTEGER, sum((c = -rowid)::INTEGER)::INTEGER, sum(isnan(a)::INTEGER)::INTEGER, count(a)::INTEGER FROM o')).getRowsJS();
      expect(stats).toEqual([ROWS, ROWS - 1, ROWS, 1, ROWS]);
      const [back] = await readColumns(conn, 'SELECT b::DOUBLE FROM o ORDER BY rowid', ['float32'], ROWS);
      expect(Array.from(back as Float32Array)).toEqual(Array.from(b));
    });
  });

  it('refuses columns of different lengths', async () => {
    await withDuckDB(async (conn) => {
      await conn.run('CREATE TABLE o (a DOUBLE, b FLOAT)');
      await expect(appendColumns(conn, 'o', [new Float64Array(3), new Float32Array(2)])).rejects.toThrow(/differ in length/);
    });
  });
});
