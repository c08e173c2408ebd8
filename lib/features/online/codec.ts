/**
 * Encoding shared by every online-store backend: feature values as strings typed by the
 * view's dtypes, and entity keys (one or several columns) as one unambiguous string.
 *
 * Values: float64/float32 → the shortest decimal that round-trips (`NaN`, `Infinity`,
 * `-Infinity`, `-0` kept); int64 → decimal digits (exact beyond 2^53; read back as bigint);
 * string → as is; bool → `1`/`0`. NULL is a missing value, never an encoded one.
 *
 * Entity keys: each column's value as text (integers as decimal digits, strings as is), with
 * `%` and `|` percent-escaped, joined by `|` in the view's entity order. `1` and `"1"` are the
 * same entity (a source column has one type); `("a|b", "c")` and `("a", "b|c")` are not.
 */
import { InvalidInputError, InvalidValueError } from '../../errors';
import type { FeatureDtype, FeatureView } from '../spec';

/** A typed feature value: float64/float32 → number, int64 → bigint, string → string, bool → boolean. */
export type FeatureValue = number | bigint | string | boolean | null;

/** One entity column's value. */
export type EntityKeyPart = string | number | bigint;

/** An entity key: a value per entity column, or the bare value for a view with one entity column. */
export type EntityKeyInput = EntityKeyPart | Readonly<Record<string, EntityKeyPart>>;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Encode a value for a dtype. Accepts what DuckDB and JSON produce: numbers for floats; bigint,
 * a safe integer number or a decimal string for int64; booleans for bool.
 * @throws InvalidValueError naming the feature when the value does not fit the dtype.
 */
export function encodeValue(dtype: FeatureDtype, value: unknown, feature: string): string | null {
  if (value === null || value === undefined) return null;
  const bad = (): never => {
    throw new InvalidValueError(`feature ${feature} (${dtype}): ${typeof value === 'bigint' ? `${value}n` : JSON.stringify(value)} is not a ${dtype} value`, { feature, dtype });
  };
  switch (dtype) {
    case 'float64':
    case 'float32': {
      const n = typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : bad();
      const v = dtype === 'float32' ? Math.fround(n) : n;
      return Object.is(v, -0) ? '-0' : String(v);
    }
    case 'int64': {
      let b: bigint;
      if (typeof value === 'bigint') b = value;
      else if (typeof value === 'number' && Number.isSafeInteger(value)) b = BigInt(value);
      else if (typeof value === 'string' && /^-?\d{1,19}$/.test(value)) b = BigInt(value);
      else return bad();
      if (b < INT64_MIN || b > INT64_MAX) bad();
      return b.toString();
    }
    case 'string':
      return typeof value === 'string' ? value : bad();
    case 'bool':
      return typeof value === 'boolean' ? (value ? '1' : '0') : bad();
  }
}

/** Decode a stored value (see encodeValue). */
export function decodeValue(dtype: FeatureDtype, raw: string): FeatureValue {
  switch (dtype) {
    case 'float64':
      return Number(raw);
    case 'float32':
      return Math.fround(Number(raw));
    case 'int64':
      return BigInt(raw);
    case 'string':
      return raw;
    case 'bool':
      return raw === '1';
  }
}

function keyPartText(view: FeatureView, column: string, v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  throw new InvalidInputError(`invalid entity key for view ${view.name}`, [`${column}: ${typeof v === 'number' ? `${v} is not a safe integer (pass integers beyond 2^53 as bigint or string)` : `expected a string or an integer, got ${v === null ? 'null' : typeof v}`}`]);
}

const escapePart = (s: string) => s.replace(/%/g, '%25').replace(/\|/g, '%7C');

/**
 * The store key of an entity of a view.
 * @throws InvalidInputError when a column is missing, extra, null or not a string/integer.
 */
export function encodeEntityKey(view: FeatureView, key: unknown): string {
  if (typeof key !== 'object' || key === null) {
    if (view.entities.length !== 1) throw new InvalidInputError(`invalid entity key for view ${view.name}`, [`view ${view.name} has entity columns [${view.entities.join(', ')}]: pass an object with each of them`]);
    return escapePart(keyPartText(view, view.entities[0]!, key));
  }
  const obj = key as Record<string, unknown>;
  const problems: string[] = [];
  for (const e of view.entities) if (obj[e] === undefined || obj[e] === null) problems.push(`${e}: ${obj[e] === null ? 'null (a null key has no features to look up)' : 'missing'}`);
  for (const k of Object.keys(obj)) if (!view.entities.includes(k)) problems.push(`${k}: not an entity column of view ${view.name} (entities: ${view.entities.join(', ')})`);
  if (problems.length > 0) throw new InvalidInputError(`invalid entity key for view ${view.name}`, problems);
  return view.entities.map((e) => escapePart(keyPartText(view, e, obj[e]))).join('|');
}

/** The entity columns of an encoded key, as text. */
export function decodeEntityKey(view: FeatureView, encoded: string): Record<string, string> {
  const parts = encoded.split('|').map((p) => p.replace(/%7C/g, '|').replace(/%25/g, '%'));
  return Object.fromEntries(view.entities.map((e, i) => [e, parts[i] ?? '']));
}

/** Epoch microseconds of a Date or an ISO 8601 string. @throws InvalidInputError on an invalid time. */
export function toEpochUs(t: Date | string, field: string): number {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) throw new InvalidInputError(`invalid time ${String(t)}`, [`${field}: expected an ISO 8601 time`]);
  // ISO strings may carry microseconds: keep them.
  const m = typeof t === 'string' ? /\.\d{3}(\d{1,3})/.exec(t) : null;
  return d.getTime() * 1000 + (m ? Number(m[1]!.padEnd(3, '0')) : 0);
}
