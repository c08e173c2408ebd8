import { InvalidInputError } from '../errors';

/** Model names: lowercase letters, digits, `-`, `_`, `.`; start with a letter or digit; ≤ 64 chars. */
export const MODEL_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const ALIAS_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

export type ModelRef =
  | { name: string; kind: 'latest' }
  | { name: string; kind: 'version'; version: number }
  | { name: string; kind: 'alias'; alias: string };

export function checkModelName(name: string, field = 'name'): string {
  if (!MODEL_NAME_PATTERN.test(name) || name.includes('..')) {
    throw new InvalidInputError(`invalid model ${field} ${JSON.stringify(name)}`, [
      `${field} must match ${MODEL_NAME_PATTERN.source} and contain no '..'`,
    ]);
  }
  return name;
}

export function checkAlias(alias: string): string {
  if (!ALIAS_PATTERN.test(alias)) {
    throw new InvalidInputError(`invalid alias ${JSON.stringify(alias)}`, [`alias must match ${ALIAS_PATTERN.source}`]);
  }
  return alias;
}

/** Parse `name` (latest version), `name:3` (a version) or `name@production` (an alias). */
export function parseModelRef(ref: string): ModelRef {
  const m = /^([^:@]+)(?::(\d+)|@(.+))?$/.exec(ref.trim());
  if (!m) throw new InvalidInputError(`invalid model reference ${JSON.stringify(ref)}`, ['expected name, name:VERSION or name@ALIAS']);
  const name = checkModelName(m[1]!, 'name in model reference');
  if (m[2] !== undefined) {
    const version = Number(m[2]);
    if (!Number.isSafeInteger(version) || version < 1) {
      throw new InvalidInputError(`invalid model version in ${JSON.stringify(ref)}`, ['version must be a positive integer']);
    }
    return { name, kind: 'version', version };
  }
  if (m[3] !== undefined) return { name, kind: 'alias', alias: checkAlias(m[3]) };
  return { name, kind: 'latest' };
}

export function formatModelRef(ref: ModelRef): string {
  if (ref.kind === 'version') return `${ref.name}:${ref.version}`;
  if (ref.kind === 'alias') return `${ref.name}@${ref.alias}`;
  return ref.name;
}
