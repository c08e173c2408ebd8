/** Stream sources, the bridge and its pieces; `openStreamSource` opens a spec's source with the process's connection settings. */
import { DEFAULT_NATS_URL, DEFAULT_REDIS_URL } from '../config/defaults';
import type { InferflowConfig } from '../config/env';
import type { StreamPipelineSpec } from '../messages/stream';
import { NatsSource } from './nats';
import { RedisSource } from './redis';
import type { StreamSourceReader } from './types';

export { StreamBridge, signalChunks, type BridgeOptions, type BridgeStats } from './bridge';
export { createDeadLetterSink, type DeadLetter, type DeadLetterSink } from './dead-letter';
export { checkMessage } from './events';
export { partitionOf } from './partition';
export { loadStreamSpec, parseStreamSpec, partitionInput, partitionsOf } from './spec';
export type { SourceMessage, StreamSourceReader } from './types';

/** The default durable consumer / consumer group of a pipeline. */
export const defaultConsumerName = (pipeline: string) => `inferflow-${pipeline}`;

/** Open the spec's source (NATS server: INFERFLOW_NATS_URL; Redis: INFERFLOW_REDIS_URL). */
export function openStreamSource(spec: StreamPipelineSpec, config: Pick<InferflowConfig, 'natsUrl' | 'redisUrl'>): Promise<StreamSourceReader> {
  const s = spec.source;
  if (s.type === 'nats') return NatsSource.open({ url: config.natsUrl ?? DEFAULT_NATS_URL, stream: s.stream, subject: s.subject, durable: s.durable ?? defaultConsumerName(spec.name), ...(s.ackWaitSeconds ? { ackWaitSeconds: s.ackWaitSeconds } : {}) });
  const group = s.group ?? defaultConsumerName(spec.name);
  return RedisSource.open({ url: config.redisUrl ?? DEFAULT_REDIS_URL, stream: s.stream, group, consumer: `${group}-bridge`, field: s.field ?? 'data', ...(s.claimIdleMs ? { claimIdleMs: s.claimIdleMs } : {}) });
}
