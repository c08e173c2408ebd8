/**
 * Problems of a message (workflow input, Update payload, spec file) as `path: message` lines,
 * from its zod schema plus its cross-field rules. Pure (zod only): the workflow bundle uses it.
 */
import type { z } from 'zod';
import { formatIssuePath } from '../util/issues';

/** A problem found by a cross-field rule, at `path` within the message. */
export interface Problem {
  path: readonly PropertyKey[];
  message: string;
}

/** Prefix of the message a strict object gives an unknown key (see `unknownKeyError`). */
const UNKNOWN_FIELD = 'unknown field';

/** The error option of a strict object: an unknown key is `<key>: unknown field (known: …)`. */
export function unknownKeyError(shape: Record<string, unknown>) {
  const known = Object.keys(shape).join(', ');
  return (issue: { code?: string | undefined }) => (issue.code === 'unrecognized_keys' ? `${UNKNOWN_FIELD} (known: ${known})` : undefined);
}

/** One line per problem (an unknown key each on its own line, named by its path), in order, without repeats. */
export function formatProblems(issues: readonly z.core.$ZodIssue[], extra: readonly Problem[] = [], prefix = ''): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const message = issue.message.startsWith('Unrecognized key') ? UNKNOWN_FIELD : issue.message;
      if (message.startsWith(UNKNOWN_FIELD)) {
        for (const key of issue.keys) lines.push(`${formatIssuePath([...issue.path, key], prefix)}: ${message}`);
        continue;
      }
    }
    const where = formatIssuePath(issue.path, prefix);
    lines.push(where ? `${where}: ${issue.message}` : issue.message);
  }
  for (const p of extra) lines.push(`${formatIssuePath(p.path, prefix)}: ${p.message}`);
  return [...new Set(lines)];
}

/**
 * Attach cross-field rules to a schema, so a parse of well-formed fields reports them. zod skips
 * refinements once a field has the wrong type: `checkMessage` runs the same rules over the raw
 * value as well, so every problem is listed at once.
 */
export function withRules<S extends z.ZodType>(schema: S, rules: (raw: unknown) => Problem[]): S & { rules: (raw: unknown) => Problem[] } {
  const refined = schema.superRefine((value, ctx) => {
    for (const p of rules(value)) ctx.addIssue({ code: 'custom', path: [...p.path] as PropertyKey[], message: p.message });
  });
  return Object.assign(refined, { rules });
}

/** Parse a message: its data, or every problem as `path: message`. */
export function checkMessage<S extends z.ZodType>(schema: S & { rules?: (raw: unknown) => Problem[] }, raw: unknown, prefix = ''): { data: z.output<S>; problems: [] } | { data: undefined; problems: string[] } {
  const r = schema.safeParse(raw);
  if (r.success) return { data: r.data, problems: [] };
  return { data: undefined, problems: formatProblems(r.error.issues, schema.rules?.(raw) ?? [], prefix) };
}
