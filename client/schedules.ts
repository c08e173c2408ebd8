/**
 * Batch pipelines on Temporal Schedules. Each scheduled run starts `batchInference` with the
 * same input; the workflow takes the schedule's scheduled time (TemporalScheduledStartTime)
 * as its as-of time, so a backfill of last week reproduces what each day's run would have
 * produced.
 */
import { DAYS_OF_WEEK, MONTHS, type CalendarSpecDescription, type Client, type Range, type ScheduleDescription, type ScheduleOverlapPolicy, type ScheduleSummary } from '@temporalio/client';
import { OVERLAP_NAMES, overlapName, overlapPolicy, type OverlapName } from './overlap';
import { checkMessage } from '../lib/messages/problems';
import { MATERIALIZE_WORKFLOW_TYPE, MaterializeFeaturesInputSchema, type MaterializeFeaturesInput } from '../workflows/features/shared';
import { BATCH_WORKFLOW_TYPE, BatchInferenceInputSchema, batchSummary, type BatchInferenceInput } from '../workflows/batch/shared';
import { SEARCH_ATTRIBUTES } from '../workflows/shared';
import { InvalidBatchInputError } from './index';

/** Each overlap name (client/overlap.ts) with the SDK's policy. */
export const OVERLAP_POLICIES = Object.fromEntries(OVERLAP_NAMES.map((n) => [n, overlapPolicy(n)])) as Record<OverlapName, ScheduleOverlapPolicy>;
export type { OverlapName } from './overlap';

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
  const problems = [...checkMessage(BatchInferenceInputSchema, o.input).problems, ...timingProblems(o.scheduleId, o)];
  if (o.input.asOf !== undefined) problems.push('asOf: a schedule sets the as-of time of each run to its scheduled time; remove asOf from the spec');
  return problems;
}

export function checkMaterializeScheduleOptions(o: MaterializeScheduleOptions): string[] {
  const problems = [...checkMessage(MaterializeFeaturesInputSchema, o.input).problems, ...timingProblems(o.scheduleId, o)];
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
      staticSummary: `${batchSummary(o.input)} · schedule ${o.scheduleId}`,
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

/** Calendar fields in cron order, with the range that "*" stands for. */
const CRON_FIELDS = [
  ['minute', 0, 59],
  ['hour', 0, 23],
  ['dayOfMonth', 1, 31],
  ['month', 1, 12],
  ['dayOfWeek', 0, 6],
] as const;

function cronValue(v: number | string): number {
  if (typeof v === 'number') return v;
  const month = (MONTHS as readonly string[]).indexOf(v);
  return month >= 0 ? month + 1 : (DAYS_OF_WEEK as readonly string[]).indexOf(v);
}

function cronField(ranges: readonly Range<number | string>[] | undefined, min: number, max: number): string {
  if (!ranges || ranges.length === 0) return '*';
  return ranges
    .map((r) => {
      const [start, end, step] = [cronValue(r.start), cronValue(r.end ?? r.start), r.step ?? 1];
      const every = step > 1 ? `/${step}` : '';
      if (start === min && end === max) return `*${every}`;
      return start === end && !every ? String(start) : `${start}-${end}${every}`;
    })
    .join(',');
}

/**
 * A calendar as the cron expression it came from (`0 3 * * *`): the server keeps cron strings
 * only as structured calendars. Seconds other than 0 are shown as a sixth, leading field.
 */
export function calendarToCron(c: CalendarSpecDescription): string {
  const fields = CRON_FIELDS.map(([name, min, max]) => cronField(c[name] as Range<number | string>[] | undefined, min, max));
  const second = cronField(c.second, 0, 59);
  return [...(second === '0' ? [] : [second]), ...fields].join(' ');
}

/** A duration in the largest whole units: 21,600,000 ms → `6h`, 5,400,000 → `1h30m`, 1,500 → `1.5s`. */
export function humanDuration(ms: number): string {
  if (ms === 0) return '0s';
  const units: [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000]];
  let rest = ms;
  let out = '';
  for (const [unit, size] of units) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return rest > 0 ? `${out}${rest / 1000}s` : out;
}

type SpecLike = Pick<ScheduleDescription['spec'], 'calendars' | 'intervals' | 'timezone'>;

/** The schedule's times as flags would give them: `cron 0 3 * * *`, `every 1h`. */
export function specParts(spec: SpecLike): string[] {
  return [
    ...(spec.calendars ?? []).map((c) => `cron ${calendarToCron(c)}`),
    ...(spec.intervals ?? []).map((i) => `every ${humanDuration(Number(i.every))}${i.offset ? ` (offset ${humanDuration(Number(i.offset))})` : ''}`),
  ];
}

/** What `inferflow schedule list --json` prints per schedule. */
export function scheduleSummaryJson(s: ScheduleSummary) {
  return {
    scheduleId: s.scheduleId,
    state: s.state.paused ? 'paused' : 'active',
    cron: (s.spec?.calendars ?? []).map(calendarToCron),
    every: (s.spec?.intervals ?? []).map((i) => humanDuration(Number(i.every))),
    ...(s.spec?.timezone ? { timezone: s.spec.timezone } : {}),
    workflowType: s.action?.type === 'startWorkflow' ? s.action.workflowType : null,
    lastRun: s.info?.recentActions?.at(-1)?.scheduledAt?.toISOString() ?? null,
    nextRun: s.info?.nextActionTimes?.[0]?.toISOString() ?? null,
  };
}

/** One line per schedule for `inferflow schedule list`. */
export function describeSummary(s: ScheduleSummary): string[] {
  const j = scheduleSummaryJson(s);
  const spec = s.spec ? specParts(s.spec).join(', ') : '';
  return [j.scheduleId, j.state, `${spec || '-'}${j.timezone ? ` (${j.timezone})` : ''}`, j.lastRun ?? '-', j.nextRun ?? '-'];
}

/** What `inferflow schedule describe --json` prints. */
export function scheduleDetailsJson(d: ScheduleDescription) {
  const action = d.action.type === 'startWorkflow' ? d.action : undefined;
  return {
    scheduleId: d.scheduleId,
    state: d.state.paused ? 'paused' : 'active',
    note: d.state.note ?? null,
    cron: (d.spec.calendars ?? []).map(calendarToCron),
    every: (d.spec.intervals ?? []).map((i) => humanDuration(Number(i.every))),
    timezone: d.spec.timezone ?? 'UTC',
    overlap: overlapName(d.policies.overlap),
    catchupWindow: humanDuration(Number(d.policies.catchupWindow)),
    workflowType: action ? String(action.workflowType) : null,
    taskQueue: action?.taskQueue ?? null,
    input: (action?.args?.[0] as unknown) ?? null,
    runsSoFar: d.info.numActionsTaken,
    recentRuns: d.info.recentActions.map((a) => ({ scheduledAt: a.scheduledAt.toISOString(), workflowId: a.action.type === 'startWorkflow' ? a.action.workflow.workflowId : null })),
    nextRuns: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
  };
}

export function describeDetails(d: ScheduleDescription): [string, string][] {
  const j = scheduleDetailsJson(d);
  return [
    ['schedule id', j.scheduleId],
    ['state', `${j.state}${j.note ? ` (${j.note})` : ''}`],
    ['spec', `${specParts(d.spec).join(', ') || '-'} (${j.timezone})`],
    ['overlap', j.overlap],
    ['catch-up window', j.catchupWindow],
    ['workflow', j.workflowType ? `${j.workflowType} on ${j.taskQueue}` : '-'],
    ['input', j.input ? JSON.stringify(j.input) : '-'],
    ['runs so far', String(j.runsSoFar)],
    ['recent runs', j.recentRuns.map((r) => `${r.scheduledAt} → ${r.workflowId ?? ''}`).join('\n') || '-'],
    ['next runs', j.nextRuns.join(', ') || '-'],
  ];
}
