import { ApplicationFailure, allHandlersFinished, condition, continueAsNew, proxyActivities, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import type { InferflowActivities } from '../../activities';
import { checkedMessage } from '../shared';
import {
  DEFAULT_BATCH_MAX_DELAY_MS,
  DEFAULT_BATCH_SIZE,
  DEFAULT_MAX_EVENTS_PER_RUN,
  STREAM_BATCH_HEARTBEAT_TIMEOUT_MS,
  STREAM_WORKFLOW_TYPE,
  StreamingInferenceInputSchema,
  eventsSignal,
  pauseSignal,
  resumeSignal,
  statsQuery,
  type StreamEvent,
  type StreamStats,
  type StreamingInferenceInput,
} from './shared';

/**
 * Transient faults (sink or store down) are retried without end: the partition waits, the
 * bridge's back-pressure holds the events on the bus. A dead worker's batch is retried once the
 * heartbeat timeout passes, not after the whole start-to-close timeout.
 */
const steps = proxyActivities<InferflowActivities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: STREAM_BATCH_HEARTBEAT_TIMEOUT_MS,
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

function details(s: StreamStats, input: { pipeline: string; partition: number }): string {
  const model = s.model ? `${s.model.name}:${s.model.version}` : 'not resolved yet';
  return [
    `**${input.pipeline}** partition ${input.partition}${s.paused ? ' — **paused**' : ''}`,
    `events in ${s.eventsIn} · predictions out ${s.predictionsOut} · dead letters ${s.deadLetters} · duplicates ${s.duplicates} · buffered ${s.buffered}`,
    `model ${model} · lag ${s.lagMs ?? '–'} ms · last flush ${s.lastFlush ?? 'never'} · run ${s.runs}`,
    ...(s.lastError ? [`last error: ${s.lastError}`] : []),
  ].join('\n\n');
}

/**
 * One partition of a stream pipeline: buffers the events the bridge signals, flushes a
 * micro-batch on size or time through the predictStreamBatch activity (predictions written by
 * event id, poison rows dead-lettered), and continues as new after maxEventsPerRun events,
 * carrying its counters and the events not flushed yet. Runs until cancelled.
 */
export async function streamingInference(raw: StreamingInferenceInput): Promise<never> {
  const input = checkedMessage(StreamingInferenceInputSchema, raw, `${STREAM_WORKFLOW_TYPE} input`);
  const size = input.batch?.size ?? DEFAULT_BATCH_SIZE;
  const maxDelayMs = input.batch?.maxDelayMs ?? DEFAULT_BATCH_MAX_DELAY_MS;
  const maxEventsPerRun = input.maxEventsPerRun ?? DEFAULT_MAX_EVENTS_PER_RUN;
  const buffer: StreamEvent[] = [...(input.carried?.events ?? [])];
  const carried = input.carried?.stats;
  const stats: StreamStats = carried
    ? { ...carried, runs: carried.runs + 1, buffered: buffer.length }
    : { eventsIn: 0, predictionsOut: 0, deadLetters: 0, duplicates: 0, buffered: 0, lagMs: null, lastFlush: null, model: null, paused: false, lastError: null, runs: 1 };
  let eventsThisRun = 0;
  const show = () => setCurrentDetails(details(stats, input));

  // Handlers never throw: the bridge validated the events; a malformed signal is ignored.
  setHandler(eventsSignal, (signal) => {
    const events = Array.isArray(signal?.events) ? signal.events : [];
    buffer.push(...events);
    stats.eventsIn += events.length;
    stats.buffered = buffer.length;
    eventsThisRun += events.length;
  });
  setHandler(pauseSignal, () => {
    stats.paused = true;
    show();
  });
  setHandler(resumeSignal, () => {
    stats.paused = false;
    stats.lastError = null;
    show();
  });
  setHandler(statsQuery, () => ({ ...stats }));
  show();

  const rolling = () => eventsThisRun >= maxEventsPerRun || workflowInfo().continueAsNewSuggested;

  // The parsed input holds no undefined values and JSON leaves absent ones out: the activity gets exactly the fields the spec set.
  const { pipeline, partition, model, featureViews, onDemand, store, idColumn, postProcess, sink, deadLetter } = input;
  const predict = (events: StreamEvent[]) => steps.predictStreamBatch({ pipeline, partition, model, featureViews, onDemand, store, idColumn, postProcess, sink, deadLetter, events });

  async function flush(): Promise<void> {
    const batch = buffer.slice(0, size);
    try {
      const r = input.push
        ? await steps.pushStreamFeatures({ pipeline: input.pipeline, partition: input.partition, push: input.push, ...(input.store ? { store: input.store } : {}), deadLetter: input.deadLetter, events: batch })
        : await predict(batch);
      buffer.splice(0, batch.length);
      stats.predictionsOut += r.predictions;
      stats.duplicates += r.duplicates;
      stats.deadLetters += r.deadLetters;
      stats.model = r.model;
      stats.lagMs = r.lagMs;
      stats.lastFlush = r.flushedAt;
    } catch (err) {
      // A permanent failure (unknown model, a sink refusing the records): keep the events, pause, say why.
      stats.paused = true;
      stats.lastError = err instanceof ApplicationFailure && err.cause ? `${err.message}: ${err.cause.message}` : err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}` : String(err);
    }
    stats.buffered = buffer.length;
    show();
  }

  for (;;) {
    await condition(() => (!stats.paused && buffer.length > 0) || rolling());
    if (rolling()) break;
    // Wait for a full batch, at most maxDelayMs after the first buffered event.
    if (buffer.length < size) await condition(() => buffer.length >= size || stats.paused, maxDelayMs);
    if (stats.paused) continue;
    await flush();
  }
  // Flush what is buffered now (events keep arriving: whatever comes meanwhile is carried over).
  for (let left = buffer.length; left > 0 && !stats.paused; left -= size) await flush();
  await condition(allHandlersFinished);
  return continueAsNew<typeof streamingInference>({ ...input, carried: { stats: { ...stats, buffered: buffer.length }, events: buffer } });
}
