import { proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { FeatureActivities } from '../../activities/features';
import { parseDurationMs } from '../../lib/util/duration';
import { checkedMessage, invalidInputFailure, runTime } from '../shared';
import {
  MATERIALIZE_WORKFLOW_TYPE,
  MaterializeFeaturesInputSchema,
  materializeProgressQuery,
  type MaterializeFeaturesInput,
  type MaterializeFeaturesProgress,
  type MaterializeFeaturesResult,
} from './shared';

/** One view: grows with the source; liveness by heartbeat; transient faults (store or PostgreSQL down) retried with backoff for ≈ 15 min. */
const views = proxyActivities<FeatureActivities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s', maximumAttempts: 20 },
});

/**
 * Copy the latest feature values per entity with event time in (start, end] from each view's
 * offline source into the online store, one activity per view. Idempotent: re-running a window
 * changes nothing and an older window never overwrites newer values. Schedulable like batch
 * inference: `end` defaults to the scheduled time. Only counts pass through history.
 */
export async function materializeFeatures(raw: MaterializeFeaturesInput): Promise<MaterializeFeaturesResult> {
  const info = workflowInfo();
  const started = Date.now();
  const progress: MaterializeFeaturesProgress = { phase: 'validating', viewsTotal: 0, viewsDone: 0, current: null, totals: { rowsRead: 0, entities: 0, written: 0, unchanged: 0, skippedOlder: 0 } };
  setHandler(materializeProgressQuery, () => progress);

  let input;
  try {
    input = checkedMessage(MaterializeFeaturesInputSchema, raw, `${MATERIALIZE_WORKFLOW_TYPE} input`);
  } catch (err) {
    progress.phase = 'failed';
    throw err;
  }

  const end = runTime(input.end, info);
  const back = input.lookback !== undefined ? parseDurationMs(input.lookback) : undefined;
  const start = input.start !== undefined ? new Date(input.start).toISOString() : back !== undefined ? new Date(Date.parse(end) - back).toISOString() : null;
  if (start !== null && start >= end) {
    progress.phase = 'failed';
    // Only known now: the end may be the run's own time, and the start reaches back from it.
    throw invalidInputFailure(`${MATERIALIZE_WORKFLOW_TYPE} input`, [`start: ${start} must be before end ${end}`]);
  }

  progress.phase = 'materializing';
  progress.viewsTotal = input.views.length;
  const results: MaterializeFeaturesResult['views'] = [];
  try {
    for (const view of input.views) {
      progress.current = view.name;
      const r = await views.materializeFeatureView({ view, store: input.store, start: start ?? undefined, end });
      results.push(r);
      progress.viewsDone++;
      for (const k of ['rowsRead', 'entities', 'written', 'unchanged', 'skippedOlder'] as const) progress.totals[k] += r[k];
    }
  } catch (err) {
    progress.phase = 'failed';
    throw err;
  }
  progress.phase = 'done';
  progress.current = null;
  return { workflowId: info.workflowId, runId: info.runId, start, end, views: results, totals: { ...progress.totals }, durationMs: Date.now() - started };
}
