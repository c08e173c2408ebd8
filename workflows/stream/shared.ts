/**
 * Messages of the streamingInference workflow (one partition of a stream pipeline), shared by
 * the workflow, the bridge and the CLI: the input schema (lib/messages/stream.ts), the `events`,
 * `pause` and `resume` signals and the `stats` query. Free of Node APIs: bundled into the
 * workflow sandbox.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { EventsSignal, StreamStats } from '../../lib/messages/stream';

export {
  DEFAULT_BATCH_MAX_DELAY_MS,
  DEFAULT_BATCH_SIZE,
  DEFAULT_MAX_EVENTS_PER_RUN,
  STREAM_BATCH_HEARTBEAT_TIMEOUT_MS,
  StreamingInferenceInputSchema,
  partitionWorkflowId,
  type EventsSignal,
  type StreamEvent,
  type StreamStats,
  type StreamingInferenceInput,
} from '../../lib/messages/stream';

export const STREAM_WORKFLOW_TYPE = 'streamingInference';

/** A bounded batch of validated events, in bus order (the bridge checked them: the handler never rejects). */
export const eventsSignal = defineSignal<[EventsSignal]>('events');
/** Stop flushing (events keep being buffered up to the bridge's back-pressure limit). */
export const pauseSignal = defineSignal('pause');
/** Flush again (also after a permanent failure paused the partition). */
export const resumeSignal = defineSignal('resume');
export const statsQuery = defineQuery<StreamStats>('stats');
