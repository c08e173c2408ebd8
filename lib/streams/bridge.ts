/**
 * The bridge: pulls events from a stream source, checks each (bad ones → dead letter), spreads
 * them by key hash over the pipeline's N streamingInference workflows with signal-with-start
 * (bounded batches, in bus order per partition), and acknowledges a pulled batch on the bus only
 * once Temporal accepted every signal covering it. A crash before the ack redelivers the batch;
 * the sink stores one record per event id, so a redelivered event is never predicted twice into it.
 *
 * Back-pressure: the bridge knows how many events each partition holds unflushed (what it
 * signalled, corrected by the partitions' `stats` queries) and stops pulling while one holds more
 * than maxOutstandingPerPartition; a sink that is down stops the flushes, so the bridge stops too
 * and the events wait on the bus. Memory stays bounded by one pull.
 */
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { errorMessage } from '../errors';
import { DEFAULT_BATCH_SIZE, DEFAULT_MAX_OUTSTANDING_BATCHES, MAX_EVENTS_PER_SIGNAL, MAX_SIGNAL_BYTES, partitionWorkflowId, type StreamEvent, type StreamPipelineSpec, type StreamStats } from '../messages/stream';
import type { DeadLetter, DeadLetterSink } from './dead-letter';
import { checkMessage } from './events';
import { partitionOf } from './partition';
import { partitionInput, partitionsOf } from './spec';
import type { SourceMessage, StreamSourceReader } from './types';

/** The workflow type and its messages by name: the bridge does not load workflow code. */
const WORKFLOW_TYPE = 'streamingInference';
const EVENTS_SIGNAL = 'events';
const STATS_QUERY = 'stats';

export interface BridgeOptions {
  client: Client;
  taskQueue: string;
  spec: StreamPipelineSpec;
  source: StreamSourceReader;
  deadLetters: DeadLetterSink;
  logger: Logger;
  /** Messages per pull. Default 500. */
  pullSize?: number;
  /** How long one pull waits for messages (ms). Default 1,000. */
  pullWaitMs?: number;
}

export interface BridgeStats {
  pulled: number;
  signalled: number;
  signals: number;
  deadLettered: number;
  acked: number;
  /** Times the bridge stopped pulling because a partition held too many unflushed events. */
  backPressureWaits: number;
  /** Most unflushed events one partition held, as the bridge saw it. */
  peakOutstanding: number;
  /** Wall time (ms) the bridge's loop spent in each phase: where a run's time went. */
  ms: { pull: number; check: number; signal: number; ack: number; stats: number; backPressure: number };
}

/** Wait `ms`, or less when `signal` aborts; the abort listener is removed when the timer fires (a long run adds one per wait). */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** Split a partition's events into signals of at most MAX_EVENTS_PER_SIGNAL events and MAX_SIGNAL_BYTES bytes, in order. */
export function signalChunks(events: readonly StreamEvent[]): StreamEvent[][] {
  const chunks: StreamEvent[][] = [];
  let current: StreamEvent[] = [];
  let bytes = 0;
  for (const e of events) {
    const size = JSON.stringify(e).length;
    if (current.length > 0 && (current.length >= MAX_EVENTS_PER_SIGNAL || bytes + size > MAX_SIGNAL_BYTES)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export class StreamBridge {
  readonly stats: BridgeStats = { pulled: 0, signalled: 0, signals: 0, deadLettered: 0, acked: 0, backPressureWaits: 0, peakOutstanding: 0, ms: { pull: 0, check: 0, signal: 0, ack: 0, stats: 0, backPressure: 0 } };
  private readonly partitions: number;
  private readonly maxOutstanding: number;
  /** Per partition: events signalled and (as far as the bridge knows) not flushed. */
  private readonly outstanding: number[];

  constructor(private readonly o: BridgeOptions) {
    this.partitions = partitionsOf(o.spec);
    this.maxOutstanding = o.spec.maxOutstandingPerPartition ?? DEFAULT_MAX_OUTSTANDING_BATCHES * (o.spec.batch?.size ?? DEFAULT_BATCH_SIZE);
    this.outstanding = new Array<number>(this.partitions).fill(0);
  }

  workflowId(partition: number): string {
    return partitionWorkflowId(this.o.spec.name, partition);
  }

  /** Retry `fn` until it succeeds or the bridge stops (false then); every failure logged. */
  private async retrying(what: string, signal: AbortSignal, fn: () => Promise<void>): Promise<boolean> {
    for (let attempt = 1, delay = 200; !signal.aborted; attempt++, delay = Math.min(delay * 2, 5_000)) {
      try {
        await fn();
        return true;
      } catch (err) {
        this.o.logger.warn({ err: errorMessage(err), attempt }, `${what} failed; retrying in ${delay} ms`);
        await sleep(delay, signal);
      }
    }
    return false;
  }

  /** Refresh the outstanding counts of the partitions that hold events, from their `stats` queries. */
  private async refreshOutstanding(): Promise<void> {
    const t = performance.now();
    await Promise.all(
      this.outstanding.map(async (n, p) => {
        if (n === 0) return;
        try {
          const s = await this.o.client.workflow.getHandle(this.workflowId(p)).query<StreamStats>(STATS_QUERY);
          this.outstanding[p] = s.paused ? Math.max(s.buffered, this.maxOutstanding) : s.buffered;
        } catch (err) {
          this.o.logger.debug({ partition: p, err: errorMessage(err) }, 'stats query failed; keeping the last count');
        }
      }),
    );
    this.stats.ms.stats += performance.now() - t;
  }

  private async waitForRoom(signal: AbortSignal): Promise<void> {
    let waited = false;
    while (!signal.aborted && this.outstanding.some((n) => n >= this.maxOutstanding)) {
      if (!waited) {
        this.stats.backPressureWaits++;
        this.o.logger.info({ outstanding: this.outstanding, max: this.maxOutstanding }, 'back-pressure: a partition is behind; not pulling');
        waited = true;
      }
      const t = performance.now();
      await sleep(200, signal);
      this.stats.ms.backPressure += performance.now() - t;
      await this.refreshOutstanding();
    }
  }

  private async signal(partition: number, events: StreamEvent[]): Promise<void> {
    await this.o.client.workflow.signalWithStart(WORKFLOW_TYPE, {
      workflowId: this.workflowId(partition),
      taskQueue: this.o.taskQueue,
      args: [partitionInput(this.o.spec, partition)],
      signal: EVENTS_SIGNAL,
      signalArgs: [{ events }],
    });
  }

  /** One pulled batch: dead letters written, every partition's events signalled, then the batch acknowledged. False when stopped before the ack. */
  private async handle(messages: SourceMessage[], signal: AbortSignal): Promise<boolean> {
    let t = performance.now();
    const dead: DeadLetter[] = [];
    const byPartition = new Map<number, StreamEvent[]>();
    for (const m of messages) {
      const c = checkMessage(m, this.o.spec);
      if ('dead' in c) dead.push(c.dead);
      else {
        const p = partitionOf(c.event.key, this.partitions);
        let list = byPartition.get(p);
        if (!list) byPartition.set(p, (list = []));
        list.push(c.event);
      }
    }
    this.stats.ms.check += performance.now() - t;
    if (dead.length > 0) {
      if (!(await this.retrying(`writing ${dead.length} dead letters`, signal, async () => void (await this.o.deadLetters.write(dead))))) return false;
      this.stats.deadLettered += dead.length;
      this.o.logger.warn({ count: dead.length, first: dead[0]!.reason }, 'events dead-lettered by the bridge');
    }
    t = performance.now();
    const results = await Promise.all(
      [...byPartition].map(async ([p, events]) => {
        for (const chunk of signalChunks(events)) {
          if (!(await this.retrying(`signalling ${this.workflowId(p)}`, signal, () => this.signal(p, chunk)))) return false;
          this.stats.signals++;
          this.stats.signalled += chunk.length;
          this.outstanding[p]! += chunk.length;
          this.stats.peakOutstanding = Math.max(this.stats.peakOutstanding, this.outstanding[p]!);
        }
        return true;
      }),
    );
    this.stats.ms.signal += performance.now() - t;
    if (results.includes(false)) return false;
    // Temporal holds every signal covering the batch: only now may the bus forget it.
    t = performance.now();
    if (!(await this.retrying('acknowledging on the bus', signal, () => this.o.source.ack(messages)))) return false;
    this.stats.ms.ack += performance.now() - t;
    this.stats.acked += messages.length;
    return true;
  }

  /** Run until `signal` aborts: the batch in hand is finished or left unacknowledged (redelivered later), never half-acknowledged. */
  async run(signal: AbortSignal): Promise<BridgeStats> {
    const { logger } = this.o;
    logger.info({ pipeline: this.o.spec.name, source: this.o.source.description, partitions: this.partitions, maxOutstanding: this.maxOutstanding }, 'stream bridge started');
    let lastRefresh = 0;
    while (!signal.aborted) {
      if (Date.now() - lastRefresh > 500) {
        await this.refreshOutstanding();
        lastRefresh = Date.now();
      }
      await this.waitForRoom(signal);
      if (signal.aborted) break;
      let messages: SourceMessage[];
      const t = performance.now();
      try {
        messages = await this.o.source.pull(this.o.pullSize ?? 500, this.o.pullWaitMs ?? 1_000);
        this.stats.ms.pull += performance.now() - t;
      } catch (err) {
        logger.warn({ err: errorMessage(err) }, 'pulling from the bus failed; retrying');
        await sleep(1_000, signal);
        continue;
      }
      if (messages.length === 0) continue;
      this.stats.pulled += messages.length;
      if (!(await this.handle(messages, signal))) break;
    }
    logger.info({ pipeline: this.o.spec.name, ...this.stats }, 'stream bridge stopped');
    return this.stats;
  }
}
