/**
 * Batch pipelines on Temporal Schedules. Each scheduled run starts `batchInference` with the
 * same input; the workflow takes the schedule's scheduled time (TemporalScheduledStartTime)
 * as its as-of time, so a backfill of last week reproduces what each day's run would have
 * produced.
 */
import { ScheduleOverlapPolicy, type Client, type ScheduleDescription, type ScheduleSummary } from '@temporalio/client';
import { MATERIALIZE_WORKFLOW_TYPE, checkMaterializeShape, type MaterializeFeaturesInput } from '../workflows/features-definitions';
import { BATCH_WORKFLOW_TYPE, SEARCH_ATTRIBUTES, checkBatchInput, type BatchInferenceInput } from '../workflows/definitions';
import { InvalidBatchInputError } from './index';

export const OVERLAP_POLICIES = {
  skip: ScheduleOverlapPolicy.SKIP,
  'buffer-one': ScheduleOverlapPolicy.BUFFER_ONE,
  'buffer-all': ScheduleOverlapPolicy.BUFFER_ALL,
  'allow-all': ScheduleOverlapPolicy.ALLOW_ALL,
  'cancel-other': ScheduleOverlapPolicy.CANCEL_OTHER,
  'terminate-other': ScheduleOverlapPolicy.TERMINATE_OTHER,
} as const;
export type OverlapName = keyof typeof OVERLAP_POLICIES;

/** When and how a schedule runs (shared by batch and materialisation schedules). */
export interface ScheduleTiming {
  /** Cron expressions (`0 3 * * *`), interpreted in `timezone`. */
  cron?: string[];
  /** Fixed intervals (`1h`, `15m`, `1d`). */
  every?: string[];
  timezone?: string;
  overlap?: OverlapName;
  /** How far back missed runs are caught up after downtime (`1h`). */
  catchupWindow?: string;
  paused?: boolean;
  note?: string;
}

/** Timing from the CLI's schedule flags (shared by `schedule create` and `features schedule`). */
export function timingFromFlags(f: { cron?: string[]; every?: string[]; timezone?: string; overlap?: OverlapName; catchup?: string; paused?: boolean }): ScheduleTiming {
  return {
    ...(f.cron ? { cron: f.cron } : {}),
    ...(f.every ? { every: f.every } : {}),
    ...(f.timezone ? { timezone: f.timezone } : {}),
    ...(f.overlap ? { overlap: f.overlap } : {}),
    ...(f.catchup ? { catchupWindow: f.catchup } : {}),
    ...(f.paused ? { paused: true } : {}),
  };
}

export interface BatchScheduleOptions extends ScheduleTiming {
  scheduleId: string;
  input: BatchInferenceInput;
  taskQueue: string;
}

export interface MaterializeScheduleOptions extends ScheduleTiming {
  scheduleId: string;
  input: MaterializeFeaturesInput;
  taskQueue: string;
}

function timingProblems(scheduleId: string, o: ScheduleTiming): string[] {
  const problems: string[] = [];
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(scheduleId)) problems.push('schedule id: letters, digits, ".", "_", "-" only');
  if (!o.cron?.length && !o.every?.length) problems.push('give --cron or --every');
  for (const e of o.every ?? []) if (!/^\d+(ms|s|m|h|d)$/.test(e)) problems.push(`every: ${e} is not a duration like 15m, 1h, 1d`);
  if (o.overlap !== undefined && !(o.overlap in OVERLAP_POLICIES)) problems.push(`overlap: one of ${Object.keys(OVERLAP_POLICIES).join(', ')}`);
  return problems;
}

export function checkScheduleOptions(o: BatchScheduleOptions): string[] {
  const problems = [...checkBatchInput(o.input), ...timingProblems(o.scheduleId, o)];
  if (o.input.asOf !== undefined) problems.push('asOf: a schedule sets the as-of time of each run to its scheduled time; remove asOf from the spec');
  return problems;
}

export function checkMaterializeScheduleOptions(o: MaterializeScheduleOptions): string[] {
  const problems = [...checkMaterializeShape(o.input), ...timingProblems(o.scheduleId, o)];
  if (o.input.end !== undefined) problems.push('end: a schedule sets the end of each run\'s window to its scheduled time; remove end');
  if (o.input.start !== undefined) problems.push('start: a fixed start makes every scheduled run re-read the same history; use lookback (e.g. 2h) or neither');
  return problems;
}

/** The schedule's spec, policies and state from its timing options. */
function scheduleParts(o: ScheduleTiming) {
  return {
    spec: {
      ...(o.cron?.length ? { cronExpressions: o.cron } : {}),
      ...(o.every?.length ? { intervals: o.every.map((every) => ({ every: every as `${number}h` })) } : {}),
      ...(o.timezone ? { timezone: o.timezone } : {}),
    },
    policies: {
      overlap: OVERLAP_POLICIES[o.overlap ?? 'skip'],
      ...(o.catchupWindow ? { catchupWindow: o.catchupWindow as `${number}h` } : {}),
    },
    state: { paused: o.paused ?? false, ...(o.note ? { note: o.note } : {}) },
  };
}

export async function createBatchSchedule(client: Client, o: BatchScheduleOptions) {
  const problems = checkScheduleOptions(o);
  if (problems.length > 0) throw new InvalidBatchInputError(problems);
  const pipeline = o.input.pipeline ?? o.input.model.split(/[:@]/)[0]!;
  const { spec, policies, state } = scheduleParts(o);
  return client.schedule.create({
    scheduleId: o.scheduleId,
    spec,
    action: {
      type: 'startWorkflow',
      workflowType: BATCH_WORKFLOW_TYPE,
      args: [o.input],
      taskQueue: o.taskQueue,
      // Temporal appends the scheduled time to this id for each run.
      workflowId: o.scheduleId,
      typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.pipeline, value: pipeline }],
    },
    policies,
    state,
  });
}

/** materializeFeatures on a schedule: each run's window ends at its scheduled time (and starts `lookback` before it, when given). */
export async function createMaterializeSchedule(client: Client, o: MaterializeScheduleOptions) {
  const problems = checkMaterializeScheduleOptions(o);
  if (problems.length > 0) throw new InvalidBatchInputError(problems, 'materializeFeatures schedule');
  const { spec, policies, state } = scheduleParts(o);
  return client.schedule.create({
    scheduleId: o.scheduleId,
    spec,
    action: { type: 'startWorkflow', workflowType: MATERIALIZE_WORKFLOW_TYPE, args: [o.input], taskQueue: o.taskQueue, workflowId: o.scheduleId },
    policies,
    state,
  });
}

/** One line per schedule for `inferflow schedule list`. */
export function describeSummary(s: ScheduleSummary): string[] {
  const next = s.info?.nextActionTimes?.[0]?.toISOString() ?? '-';
  const last = s.info?.recentActions?.at(-1)?.scheduledAt?.toISOString() ?? '-';
  const spec = [...(s.spec?.calendars?.map(() => 'calendar') ?? []), ...(s.spec?.intervals?.map((i) => `every ${String(i.every)}`) ?? [])].join(', ') || '-';
  return [s.scheduleId, s.state.paused ? 'paused' : 'active', spec, last, next];
}

export function describeDetails(d: ScheduleDescription): [string, string][] {
  const action = d.action.type === 'startWorkflow' ? d.action : undefined;
  return [
    ['schedule id', d.scheduleId],
    ['state', `${d.state.paused ? 'paused' : 'active'}${d.state.note ? ` (${d.state.note})` : ''}`],
    ['spec', JSON.stringify({ calendars: d.spec.calendars?.length ?? 0, intervals: d.spec.intervals?.map((i) => String(i.every)), timezone: d.spec.timezone })],
    ['overlap', String(d.policies.overlap)],
    ['catch-up window', `${d.policies.catchupWindow} ms`],
    ['workflow', action ? `${action.workflowType} on ${action.taskQueue}` : '-'],
    ['input', action ? JSON.stringify(action.args?.[0]) : '-'],
    ['runs so far', String(d.info.numActionsTaken)],
    ['recent runs', d.info.recentActions.map((a) => `${a.scheduledAt.toISOString()} → ${a.action.type === 'startWorkflow' ? a.action.workflow.workflowId : ''}`).join('\n') || '-'],
    ['next runs', d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()).join(', ') || '-'],
  ];
}
