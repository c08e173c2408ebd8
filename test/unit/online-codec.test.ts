import { describe, expect, it } from 'vitest';
import { parseKeyOption, parseStoreOption, vectorsToJson } from '../../cli/features';
import { InvalidValueError } from '../../lib/errors';
import type { FeatureView } from '../../lib/features';
import { decodeEntityKey, decodeValue, encodeEntityKey, encodeValue, toEpochUs } from '../../lib/features/online';

const view: FeatureView = { name: 'v', entities: ['a', 'b', 'c'], timestampField: 'ts', source: { type: 'file', path: 'x.parquet' }, features: [{ name: 'f', dtype: 'float64' }] };

describe('online store encoding', () => {
  it('composite keys: injective and reversible over strings full of separators and escapes', () => {
    const alphabet = ['|', '%', '7', 'C', '2', '5', 'a', ':', ''];
    let seed = 1;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const seen = new Map<string, string>();
    for (let i = 0; i < 20_000; i++) {
      const part = () => Array.from({ length: Math.floor(rand() * 5) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
      const key = { a: part(), b: part(), c: part() };
      const enc = encodeEntityKey(view, key);
      expect(decodeEntityKey(view, enc)).toEqual(key);
      const id = JSON.stringify(key);
      const before = seen.get(enc);
      if (before !== undefined) expect(before).toBe(id); // the same encoding only for the same key
      seen.set(enc, id);
    }
    expect(seen.size).toBeGreaterThan(5_000);
  });

  it('values round-trip per dtype and misfits are rejected', () => {
    expect(decodeValue('int64', encodeValue('int64', '-9223372036854775808', 'f')!)).toBe(-(2n ** 63n));
    expect(encodeValue('float64', -0, 'f')).toBe('-0');
    expect(Object.is(decodeValue('float64', '-0'), -0)).toBe(true);
    expect(decodeValue('float32', encodeValue('float32', 0.1, 'f')!)).toBe(Math.fround(0.1));
    expect(encodeValue('bool', null, 'f')).toBeNull();
    expect(() => encodeValue('int64', '99999999999999999999', 'f')).toThrow(InvalidValueError);
    expect(() => encodeValue('string', 1, 'f')).toThrow(/feature f \(string\): 1 is not a string value/);
  });

  it('event times keep microseconds from ISO strings', () => {
    expect(toEpochUs('2026-11-20T00:00:00.000001Z', 't')).toBe(Date.parse('2026-11-20T00:00:00Z') * 1000 + 1);
    expect(toEpochUs(new Date('2026-11-20T00:00:00.123Z'), 't')).toBe(Date.parse('2026-11-20T00:00:00.123Z') * 1000);
    expect(() => toEpochUs('yesterday', 'rows[0].eventTime')).toThrow(/rows\[0\]\.eventTime/);
  });
});

describe('features CLI parsing', () => {
  it('keys, stores and JSON output', () => {
    expect(parseKeyOption('42')).toBe('42');
    expect(parseKeyOption('customer_id=42,country=DE')).toEqual({ customer_id: '42', country: 'DE' });
    expect(parseKeyOption('{"a": "x,y", "b": 1}')).toEqual({ a: 'x,y', b: 1 });
    expect(() => parseKeyOption('=1')).toThrow(/COLUMN=VALUE/);
    expect(parseStoreOption('redis')).toEqual({ type: 'redis' });
    expect(parseStoreOption('redis:app:features')).toEqual({ type: 'redis', keyPrefix: 'app:features' });
    expect(parseStoreOption('sqlite')).toEqual({ type: 'sqlite' });
    expect(() => parseStoreOption('memcached')).toThrow(/sqlite\[:PATH\] or redis/);
    const t = new Date('2026-11-20T00:00:00Z');
    const json = vectorsToJson([{ key: { a: '1' }, features: { i: { value: 2n ** 60n + 1n, status: 'PRESENT', eventTime: t }, n: { value: Number.NaN, status: 'PRESENT', eventTime: t }, x: { value: null, status: 'NOT_FOUND', eventTime: null } } }]);
    expect(JSON.parse(json)).toEqual([
      { key: { a: '1' }, features: { i: { value: '1152921504606846977', status: 'PRESENT', eventTime: '2026-11-20T00:00:00.000Z' }, n: { value: 'NaN', status: 'PRESENT', eventTime: '2026-11-20T00:00:00.000Z' }, x: { value: null, status: 'NOT_FOUND', eventTime: null } } },
    ]);
  });
});
