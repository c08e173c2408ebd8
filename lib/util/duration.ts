/**
 * The one duration grammar of feature specs and workflow inputs: a positive whole number of
 * one unit, `30d`, `12h`, `90m`, `3600s`. No dependencies, so the workflow bundle can use it.
 */

/** `30d`, `12h`, `90m`, `3600s`. */
export const DURATION_PATTERN = /^([1-9][0-9]{0,9})(d|h|m|s)$/;

const UNIT_MS: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 };

/** `2h` → 7,200,000; undefined for anything that does not match DURATION_PATTERN. */
export function parseDurationMs(text: string): number | undefined {
  const m = DURATION_PATTERN.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : undefined;
}
