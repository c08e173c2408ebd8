/**
 * What a run leaves in Temporal: the event history as the `temporal` CLI prints it
 * (`temporal workflow show --output json --no-json-shorthand-payloads`), so payloads keep their
 * raw base64 form. Payload size = bytes of the base64-decoded `data` of each payload object
 * (workflow input/result, activity inputs/results, markers, search attributes): what the
 * server stores and what the 2 MB payload / 50 MB history limits apply to.
 */
import { spawnSync } from 'node:child_process';

export interface PhaseTimes {
  /** Scheduled → completed of resolveModel, planBatch, commitPredictions, discardRun (ms). */
  resolveMs: number;
  planMs: number;
  commitMs: number;
  discardMs: number;
  /** First predictShard scheduled → last predictShard completed (ms). */
  predictSpanMs: number;
  /** Sum over shards of scheduled → completed (ms): shard time including queueing. */
  predictShardSumMs: number;
  /** First event → last event (ms). */
  workflowMs: number;
  /** Workflow started → its first workflow task completed (ms): a cold worker creates its workflow sandbox here. Absent in older results. */
  firstTaskMs?: number;
  /**
   * The run's fixed cost: workflowMs minus the shards' span (resolve, plan, commit, cleanup and the
   * workflow tasks between them). Absent in older results.
   */
  outsideShardsMs?: number;
}

export interface HistoryStats {
  /** Events in the run's own (top-level) history. */
  events: number;
  /** The run's workflow and its child workflows (large runs fan out through children). */
  workflows: number;
  /** Events over all of them, and the longest single history. */
  eventsAllWorkflows: number;
  largestHistoryEvents: number;
  /** Largest single payload, base64-decoded bytes, and where it was. */
  largestPayloadBytes: number;
  largestPayloadAt: string;
  /** All payload bytes of the run. */
  totalPayloadBytes: number;
  /** The history as the CLI prints it (JSON, base64 payloads). */
  historyJsonBytes: number;
  /** JSON size of the biggest event (for comparison with the payload size). */
  largestEventJsonBytes: number;
  activityTasks: Record<string, number>;
  /** Activity attempts > 1 seen in started events (retries during the run). */
  retries: number;
  phases: PhaseTimes;
}

export interface RunHistory {
  workflowId: string;
  events: HistoryEvent[];
}

interface HistoryEvent {
  eventId: string;
  eventTime: string;
  eventType: string;
  [attributes: string]: unknown;
}

interface Payload {
  metadata: Record<string, string>;
  data?: string;
}

function isPayload(v: unknown): v is Payload {
  return typeof v === 'object' && v !== null && typeof (v as { metadata?: unknown }).metadata === 'object' && (v as { metadata?: unknown }).metadata !== null && ('data' in v || Object.keys(v).length === 1);
}

/** Every payload in a value, with a path for the report. */
function* payloadsIn(v: unknown, at: string): Generator<{ at: string; bytes: number }> {
  if (isPayload(v)) {
    yield { at, bytes: v.data ? Buffer.from(v.data, 'base64').length : 0 };
    return;
  }
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) yield* payloadsIn(x, `${at}[${i}]`);
  } else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) yield* payloadsIn(x, at ? `${at}.${k}` : k);
  }
}

function attributesOf(e: HistoryEvent): Record<string, unknown> {
  const key = Object.keys(e).find((k) => k.endsWith('EventAttributes'));
  return key ? (e[key] as Record<string, unknown>) : {};
}

function shortType(eventType: string): string {
  return eventType
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .replace(/(^|_)([a-z])/g, (_m, _s: string, c: string) => c.toUpperCase());
}

export function fetchHistory(cli: string, address: string, workflowId: string): HistoryEvent[] {
  const r = spawnSync(cli, ['workflow', 'show', '--workflow-id', workflowId, '--address', address, '--output', 'json', '--no-json-shorthand-payloads'], {
    encoding: 'utf8',
    maxBuffer: 1024 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`temporal workflow show ${workflowId} failed (exit ${r.status}): ${(r.stderr || r.error?.message || '').trim().slice(-1000)}`);
  const parsed = JSON.parse(r.stdout) as { events?: HistoryEvent[] };
  if (!Array.isArray(parsed.events)) throw new Error(`temporal workflow show ${workflowId}: no events in its output`);
  return parsed.events;
}

/**
 * The history as lines of `+ms since the previous event, ms since the first, event type`
 * (activity events carry their activity type): where a run's time between steps goes.
 * Printed by the benchmark when BENCH_TIMELINE is set.
 */
export function timeline(events: HistoryEvent[]): string {
  const t0 = Date.parse(events[0]?.eventTime ?? '');
  const types = new Map<string, string>();
  let prev = t0;
  return events
    .map((e) => {
      const at = Date.parse(e.eventTime);
      const attrs = attributesOf(e);
      const name = (attrs.activityType as { name?: string } | undefined)?.name;
      if (name) types.set(e.eventId, name);
      const scheduled = attrs.scheduledEventId;
      const of = typeof scheduled === 'string' || typeof scheduled === 'number' ? types.get(String(scheduled)) : undefined;
      const line = `    +${String(at - prev).padStart(4)} ${String(at - t0).padStart(6)} ms  ${shortType(e.eventType)}${name ?? of ? ` ${name ?? of}` : ''}`;
      prev = at;
      return line;
    })
    .join('\n');
}

/** Child workflows a history started (their ids). */
function childrenOf(events: HistoryEvent[]): string[] {
  const ids: string[] = [];
  for (const e of events) {
    if (e.eventType !== 'EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED') continue;
    const id = attributesOf(e).workflowId;
    if (typeof id === 'string') ids.push(id);
  }
  return ids;
}

/** The run's history and, recursively, those of the child workflows it started. */
export function fetchRunHistories(cli: string, address: string, workflowId: string): RunHistory[] {
  const out: RunHistory[] = [];
  const queue = [workflowId];
  while (queue.length > 0) {
    const id = queue.shift()!;
    const events = fetchHistory(cli, address, id);
    out.push({ workflowId: id, events });
    queue.push(...childrenOf(events));
  }
  return out;
}

export function analyseHistories(histories: RunHistory[]): HistoryStats {
  if (histories.length === 0) throw new Error('no history to analyse');
  const spans: Record<string, { first: number; last: number; sum: number; n: number }> = {};
  let largest = { bytes: 0, at: '' };
  let total = 0;
  let largestEvent = 0;
  let retries = 0;
  let historyJsonBytes = 0;
  let times: number[] = [];
  let firstTaskMs: number | undefined;
  for (const [i, h] of histories.entries()) {
    const one = analyseOne(h.events);
    for (const [type, s] of Object.entries(one.spans)) {
      const acc = (spans[type] ??= { first: s.first, last: s.last, sum: 0, n: 0 });
      acc.first = Math.min(acc.first, s.first);
      acc.last = Math.max(acc.last, s.last);
      acc.sum += s.sum;
      acc.n += s.n;
    }
    if (one.largest.bytes > largest.bytes) largest = { bytes: one.largest.bytes, at: i === 0 ? one.largest.at : `child ${h.workflowId}: ${one.largest.at}` };
    total += one.total;
    largestEvent = Math.max(largestEvent, one.largestEvent);
    retries += one.retries;
    if (i === 0) {
      historyJsonBytes = one.historyJsonBytes;
      firstTaskMs = one.firstTaskMs;
      times = h.events.map((e) => Date.parse(e.eventTime));
    }
  }
  const span = (type: string) => spans[type] ?? { first: 0, last: 0, sum: 0, n: 0 };
  const workflowMs = times.length ? Math.max(...times) - Math.min(...times) : 0;
  return {
    events: histories[0]!.events.length,
    workflows: histories.length,
    eventsAllWorkflows: histories.reduce((n, h) => n + h.events.length, 0),
    largestHistoryEvents: Math.max(...histories.map((h) => h.events.length)),
    largestPayloadBytes: largest.bytes,
    largestPayloadAt: largest.at,
    totalPayloadBytes: total,
    historyJsonBytes,
    largestEventJsonBytes: largestEvent,
    activityTasks: Object.fromEntries(Object.entries(spans).map(([k, v]) => [k, v.n])),
    retries,
    phases: {
      resolveMs: span('resolveModel').sum,
      planMs: span('planBatch').sum,
      commitMs: span('commitPredictions').sum,
      discardMs: span('discardRun').sum,
      predictSpanMs: span('predictShard').last - span('predictShard').first,
      predictShardSumMs: span('predictShard').sum,
      workflowMs,
      ...(firstTaskMs !== undefined ? { firstTaskMs } : {}),
      ...(span('predictShard').n > 0 ? { outsideShardsMs: workflowMs - (span('predictShard').last - span('predictShard').first) } : {}),
    },
  };
}

/** One history: activity spans by type, payload sizes, JSON sizes, retries. */
function analyseOne(events: HistoryEvent[]) {
  const scheduled = new Map<string, { type: string; at: number }>();
  const spans: Record<string, { first: number; last: number; sum: number; n: number }> = {};
  let largest = { bytes: 0, at: '' };
  let total = 0;
  let largestEvent = 0;
  let retries = 0;
  let startedAt: number | undefined;
  let firstTaskAt: number | undefined;
  let historyJsonBytes = 2; // {"events":[ … ]} framing, roughly
  for (const e of events) {
    const json = JSON.stringify(e).length;
    historyJsonBytes += json + 1;
    largestEvent = Math.max(largestEvent, json);
    const attrs = attributesOf(e);
    const t = Date.parse(e.eventTime);
    const kind = shortType(e.eventType);
    let label = kind;
    startedAt ??= t;
    if (kind === 'WorkflowTaskCompleted') firstTaskAt ??= t;
    if (kind === 'ActivityTaskScheduled') {
      const name = (attrs.activityType as { name?: string } | undefined)?.name ?? '?';
      scheduled.set(e.eventId, { type: name, at: t });
      label = `${kind}(${name})`;
    } else if (kind === 'ActivityTaskStarted') {
      if (Number(attrs.attempt ?? 1) > 1) retries++;
    } else if (kind === 'ActivityTaskCompleted') {
      const s = scheduled.get(String(attrs.scheduledEventId));
      if (s) {
        const span = (spans[s.type] ??= { first: s.at, last: t, sum: 0, n: 0 });
        span.first = Math.min(span.first, s.at);
        span.last = Math.max(span.last, t);
        span.sum += t - s.at;
        span.n++;
        label = `${kind}(${s.type})`;
      }
    }
    for (const p of payloadsIn(attrs, '')) {
      total += p.bytes;
      if (p.bytes > largest.bytes) largest = { bytes: p.bytes, at: `event ${e.eventId} ${label} ${p.at}` };
    }
  }
  return { spans, largest, total, largestEvent, retries, historyJsonBytes, firstTaskMs: startedAt !== undefined && firstTaskAt !== undefined ? firstTaskAt - startedAt : undefined };
}
