/**
 * Messages of the materializeFeatures workflow, shared with its clients (CLI, schedules,
 * tests): the input is a zod schema (lib/messages/materialize.ts). Free of Node APIs: bundled
 * into the workflow sandbox.
 */
import { defineQuery } from '@temporalio/workflow';
import type { MaterializeResult } from '../../lib/features/materialize';

export { MaterializeFeaturesInputSchema, type MaterializeFeaturesInput } from '../../lib/messages/materialize';

export const MATERIALIZE_WORKFLOW_TYPE = 'materializeFeatures';

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
