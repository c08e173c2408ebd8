/** `views[0].source.path`-style text for a validation issue's path (zod's `issue.path`), after `prefix`; `empty` when both are empty. */
export function formatIssuePath(path: readonly PropertyKey[], prefix = '', empty = ''): string {
  let s = prefix;
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : `${s ? '.' : ''}${String(p)}`;
  return s || empty;
}
