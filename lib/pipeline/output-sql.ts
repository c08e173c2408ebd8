/**
 * Output columns (outputs.ts) into DuckDB: the typed columns a shard's temporary table is
 * appended from (numbers only: strings travel as dictionary codes, lists as one column per
 * position) and the SELECT items that turn them back into the output's columns — BIGINT, FLOAT,
 * DOUBLE, VARCHAR, FLOAT[] and VARCHAR[] — which every run sink then writes as it stores them.
 */
import type { AppendColumn } from '../io/columns';
import { ident, lit } from '../io/duckdb';
import type { OutputColumns } from './outputs';

export interface OutputSql {
  /** Columns of the temporary table, by (generated) name. */
  append: Record<string, AppendColumn>;
  /** One SQL expression per output column over the temporary table aliased `p`, without its alias. */
  items: { name: string; expr: string }[];
}

/** Strings as Int32 codes into a dictionary (-1 for null). */
function encode(values: readonly (string | null)[]): { codes: Int32Array; dictionary: string[] } {
  const index = new Map<string, number>();
  const codes = new Int32Array(values.length);
  values.forEach((v, i) => {
    if (v === null || v === undefined) codes[i] = -1;
    else {
      let c = index.get(v);
      if (c === undefined) index.set(v, (c = index.size));
      codes[i] = c;
    }
  });
  return { codes, dictionary: [...index.keys()] };
}

function decode(code: string, dictionary: readonly string[]): string {
  if (dictionary.length === 0) return 'NULL::VARCHAR';
  return `CASE WHEN ${code} < 0 THEN NULL::VARCHAR ELSE ([${dictionary.map(lit).join(', ')}]::VARCHAR[])[${code} + 1] END`;
}

/** Split one row-major list column into `width` columns. */
function positions<T extends Float32Array | Int32Array>(values: T, width: number, make: (n: number) => T): T[] {
  const rows = values.length / width;
  const out = Array.from({ length: width }, () => make(rows));
  for (let r = 0; r < rows; r++) for (let j = 0; j < width; j++) out[j]![r] = values[r * width + j]!;
  return out;
}

export function outputSql(columns: OutputColumns): OutputSql {
  const append: Record<string, AppendColumn> = {};
  const items: { name: string; expr: string }[] = [];
  let n = 0;
  for (const [name, c] of columns) {
    const key = `c${n++}`;
    const ref = (k: string) => `p.${ident(k)}`;
    switch (c.kind) {
      case 'int':
        append[key] = c.values;
        items.push({ name, expr: `${ref(key)}::BIGINT` });
        break;
      case 'float':
      case 'double':
        append[key] = c.values;
        items.push({ name, expr: ref(key) });
        break;
      case 'string': {
        const { codes, dictionary } = encode(c.values);
        append[key] = codes;
        items.push({ name, expr: decode(ref(key), dictionary) });
        break;
      }
      case 'floats': {
        const cols = positions(c.values, c.width, (k) => new Float32Array(k));
        cols.forEach((col, j) => (append[`${key}_${j}`] = col));
        items.push({ name, expr: `[${cols.map((_, j) => ref(`${key}_${j}`)).join(', ')}]::FLOAT[]` });
        break;
      }
      case 'strings': {
        const { codes, dictionary } = encode(c.values);
        const cols = positions(codes, c.width, (k) => new Int32Array(k));
        cols.forEach((col, j) => (append[`${key}_${j}`] = col));
        items.push({ name, expr: `[${cols.map((_, j) => decode(ref(`${key}_${j}`), dictionary)).join(', ')}]::VARCHAR[]` });
        break;
      }
    }
  }
  return { append, items };
}
