/**
 * Feature views: a named set of feature columns read from one source, keyed by entity
 * columns and stamped with an event time. See docs/features.md.
 *
 * Point-in-time rule (implemented in offline.ts, stated here once):
 *
 *   For a spine row with entity key K and timestamp T, a view contributes the values of the
 *   row of its source with key K whose event time E is the latest with E ≤ T (equal
 *   timestamps qualify) and, when the view has a `ttl`, E ≥ T − ttl. If no row qualifies, the
 *   view's features are null. A value with E > T is never returned.
 *
 *   Several rows with the same key and the same event time are reduced to one first
 *   (the "tie-break"):
 *     - with `createdField`: the row with the greatest created value wins; a null created
 *       value loses to any non-null one; rows whose created values are equal (or both null)
 *       are decided as below;
 *     - otherwise (and among equal created values): the row that comes later in the source
 *       wins. "Later" means: later in the file; for a source of several files (a glob or a
 *       directory), files are ordered by their path, lexicographically, and every row of a
 *       later file is later than every row of an earlier one.
 *   `createdField` is a tie-break only, never a filter: a row created after T (arriving
 *   late) still counts when its event time is ≤ T. Retrieval answers "what was the value at
 *   event time T, as the source says today", not "what had been written by T".
 *
 *   Rows with a null event time or a null entity column are never returned; a spine row
 *   with a null timestamp or a null entity column gets nulls. A winning row's null feature
 *   value is returned as null (no fall-back to an older row).
 */
import { InvalidInputError } from '../errors';
import { checkMessage } from '../messages/problems';
import { FeatureViewSchema, type FeatureView } from '../messages/feature-view';
import { parseDurationMs } from '../util/duration';

export * from '../messages/feature-view';

/** Validate one view spec. Returns the view, or every problem as `path: message` (`prefix` goes in front of each path). */
export function checkFeatureView(input: unknown, prefix = ''): { view: FeatureView; problems: [] } | { view: undefined; problems: string[] } {
  const r = checkMessage(FeatureViewSchema, input, prefix);
  return r.data ? { view: r.data, problems: [] } : { view: undefined, problems: r.problems };
}

/**
 * Validate a list of view specs: each view (paths `views[i]…`) and that names are unique (a name
 * is a view's identity in output columns and online keys). Returns the valid views with their index.
 */
export function checkFeatureViews(input: readonly unknown[]): { views: { view: FeatureView; index: number }[]; problems: string[] } {
  const problems: string[] = [];
  const views: { view: FeatureView; index: number }[] = [];
  const byName = new Map<string, number>();
  input.forEach((raw, index) => {
    const r = checkFeatureView(raw, `views[${index}]`);
    if (!r.view) {
      problems.push(...r.problems);
      return;
    }
    const first = byName.get(r.view.name);
    if (first !== undefined) problems.push(`views[${index}].name: view ${r.view.name} is also views[${first}]; view names must be unique`);
    else byName.set(r.view.name, index);
    views.push({ view: r.view, index });
  });
  return { views, problems };
}

/** Validate one feature view. @throws InvalidInputError listing every problem with its path (`prefix` in front of each). */
export function parseFeatureView(input: unknown, prefix = ''): FeatureView {
  const r = checkFeatureView(input, prefix);
  if (r.view === undefined) throw new InvalidInputError('invalid feature view', r.problems);
  return r.view;
}

/** `30d` → 2,592,000 seconds. @throws Error on a string that does not match DURATION_PATTERN (validate the view first). */
export function durationSeconds(ttl: string): number {
  const ms = parseDurationMs(ttl);
  if (ms === undefined) throw new Error(`invalid duration ${ttl}`);
  return ms / 1000;
}

/** Output column of a view's feature: `<view>__<feature>`. */
export function outputColumnName(view: string, feature: string): string {
  return `${view}__${feature}`;
}
