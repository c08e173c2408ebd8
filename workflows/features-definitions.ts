/**
 * Messages and payloads of the materializeFeatures workflow, shared with its clients (CLI,
 * tests). Free of Node APIs: bundled into the workflow sandbox.
 */
import { defineQuery } from '@temporalio/workflow';
import type { FeatureViewInput } from '../lib/features/spec';
import type { OnlineStoreSpec } from '../lib/features/online/index';
import type { MaterializeResult } from '../lib/features/materialize';
import { parseDurationMs } from '../lib/util/duration';

export const MATERIALIZE_WORKFLOW_TYPE = 'materializeFeatures';

/** Input of `materializeFeatures`: one JSON object (the same from code, the CLI, a schedule and the Temporal UI). */
export interface MaterializeFeaturesInput {
  /** Feature view specs (docs/features.md), inline. Each view is one activity. */
  views: FeatureViewInput[];
  /** `{"type": "redis", "keyPrefix"?: …}` or `{"type": "sqlite", "path"?: …}`. Default: the embedded SQLite store under the worker's data dir. */
  store?: OnlineStoreSpec;
  /** ISO 8601, exclusive: only rows with a later event time. Default: from the beginning. */
  start?: string;
  /** ISO 8601, inclusive. Default: the schedule's scheduled time for scheduled runs, else the workflow start time. */
  end?: string;
  /**
   * Instead of `start`: a window reaching this far back from `end` (`2h`, `1d`, `90m`, `3600s`).
   * For schedules: `--every 1h` with lookback `2h` copies each hour's new rows (with an hour of
   * overlap for late data; re-copying is harmless), instead of re-reading all history each run.
   */
  lookback?: string;
}

/** Counts of one view (no rows: they travel through the store, not through history). */
export type MaterializeViewSummary = MaterializeResult;

export interface MaterializeFeaturesResult {
  workflowId: string;
  runId: string;
  start: string | null;
  end: string;
  views: MaterializeViewSummary[];
  totals: { rowsRead: number; entities: number; written: number; unchanged: number; skippedOlder: number };
  durationMs: number;
}

export interface MaterializeFeaturesProgress {
  phase: 'validating' | 'materializing' | 'done' | 'failed';
  viewsTotal: number;
  viewsDone: number;
  /** The view being materialised now. */
  current: string | null;
  totals: MaterializeFeaturesResult['totals'];
}

export const materializeProgressQuery = defineQuery<MaterializeFeaturesProgress>('progress');

const KNOWN = new Set(['views', 'store', 'start', 'end', 'lookback']);

/** Problems that need no I/O and no schema library (the view specs themselves are checked by an activity). */
export function checkMaterializeShape(input: unknown): string[] {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return ['input must be a JSON object like {"views": [ … feature view specs … ], "store": {"type": "redis"}}'];
  const i = input as Record<string, unknown>;
  const problems: string[] = [];
  if (!Array.isArray(i.views) || i.views.length === 0) problems.push('views: must be a non-empty list of feature view specs');
  else if (i.views.length > 100) problems.push('views: at most 100 views per run');
  const time = (k: 'start' | 'end') => {
    const v = i[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) {
      problems.push(`${k}: must be an ISO 8601 time such as "2026-11-25T03:00:00Z"`);
      return undefined;
    }
    return Date.parse(v);
  };
  const start = time('start');
  const end = time('end');
  if (start !== undefined && end !== undefined && start >= end) problems.push(`start: must be before end (${String(i.start)} ≥ ${String(i.end)})`);
  if (i.lookback !== undefined) {
    if (typeof i.lookback !== 'string' || parseDurationMs(i.lookback) === undefined) problems.push('lookback: a duration such as 2h, 1d, 90m or 3600s');
    if (i.start !== undefined) problems.push('lookback: give either start or lookback, not both');
  }
  if (i.store !== undefined && (typeof i.store !== 'object' || i.store === null || Array.isArray(i.store))) problems.push('store: must be an object with a "type" ("redis" or "sqlite")');
  for (const k of Object.keys(i)) if (!KNOWN.has(k)) problems.push(`${k}: unknown field (known: ${[...KNOWN].join(', ')})`);
  return problems;
}
