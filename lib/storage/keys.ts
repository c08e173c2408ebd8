import { InvalidInputError } from '../errors';

/**
 * Validate an object key: relative, `/`-separated, no empty, `.` or `..` segments, no
 * backslashes, no percent-encoded separators, no control characters. Keys built from
 * user-supplied names go through this before they reach a filesystem or a bucket.
 */
export function checkKey(key: string): string {
  const problems: string[] = [];
  if (key.length === 0) problems.push('key is empty');
  if (key.startsWith('/')) problems.push('key is absolute');
  if (key.includes('\\')) problems.push('key contains a backslash');
  if (/%2f|%5c|%2e/i.test(key)) problems.push('key contains an encoded separator or dot');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) problems.push('key contains a control character');
  for (const seg of key.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') {
      problems.push(`key has an empty, '.' or '..' segment`);
      break;
    }
  }
  if (problems.length > 0) throw new InvalidInputError(`invalid object key ${JSON.stringify(key)}`, problems, { key });
  return key;
}

export function joinKey(...parts: string[]): string {
  return parts.filter((p) => p.length > 0).join('/');
}
