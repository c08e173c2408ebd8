/**
 * NATS JetStream source: a durable pull consumer (explicit acks) on a stream with limits
 * retention. A message not acknowledged within the ack wait is delivered again, so a bridge that
 * dies between signalling and acknowledging only causes a redelivery (the sink de-duplicates by
 * event id).
 */
import { AckPolicy, DeliverPolicy, RetentionPolicy, jetstream, jetstreamManager, type Consumer, type JsMsg } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { InvalidInputError, NotFoundError, TransientError, errorMessage } from '../errors';
import type { SourceMessage, StreamSourceReader } from './types';

export interface NatsSourceOptions {
  url: string;
  stream: string;
  subject?: string | undefined;
  durable: string;
  /** Seconds JetStream waits for an acknowledgement before delivering a message again. */
  ackWaitSeconds?: number;
}

/** Messages delivered and not acknowledged at most (JetStream stops delivering beyond it). */
const MAX_ACK_PENDING = 100_000;
const DEFAULT_ACK_WAIT_SECONDS = 30;
const decoder = new TextDecoder();

export class NatsSource implements StreamSourceReader {
  readonly description: string;
  private readonly pending = new Map<string, JsMsg>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly consumer: Consumer,
    private readonly o: NatsSourceOptions,
  ) {
    this.description = `nats stream ${o.stream}${o.subject ? ` subject ${o.subject}` : ''} (durable ${o.durable})`;
  }

  /**
   * Connect, check the stream keeps messages after acknowledgement (limits retention) and create
   * the durable consumer when missing.
   * @throws NotFoundError no such stream; InvalidInputError a work-queue or interest stream
   */
  static async open(o: NatsSourceOptions): Promise<NatsSource> {
    const host = new URL(o.url).host;
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: o.url, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
    } catch (err) {
      throw new TransientError(`cannot connect to nats ${host}: ${errorMessage(err)}`, { endpoint: host }, { cause: err });
    }
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(o.stream).catch((err: unknown) => {
        throw new NotFoundError(`JetStream stream ${o.stream} does not exist on nats ${host} (create it with limits retention, e.g. nats stream add ${o.stream} --subjects '${o.subject ?? 'events.>'}' --retention limits): ${errorMessage(err)}`, { object: o.stream });
      });
      if (info.config.retention !== RetentionPolicy.Limits) {
        throw new InvalidInputError(`JetStream stream ${o.stream} has ${info.config.retention} retention`, [`source.stream: needs limits retention (events must stay readable after acknowledgement), got ${info.config.retention}`], { object: o.stream });
      }
      const existing = await jsm.consumers.info(o.stream, o.durable).catch(() => undefined);
      if (!existing) {
        await jsm.consumers.add(o.stream, {
          durable_name: o.durable,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos((o.ackWaitSeconds ?? DEFAULT_ACK_WAIT_SECONDS) * 1000),
          max_ack_pending: MAX_ACK_PENDING,
          ...(o.subject ? { filter_subject: o.subject } : {}),
        });
      }
      const consumer = await jetstream(nc).consumers.get(o.stream, o.durable);
      return new NatsSource(nc, consumer, o);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  async pull(max: number, waitMs: number): Promise<SourceMessage[]> {
    const out: SourceMessage[] = [];
    const batch = await this.consumer.fetch({ max_messages: max, expires: Math.max(1_000, waitMs) });
    for await (const m of batch) {
      const position = `${this.o.stream}:${m.seq}`;
      this.pending.set(position, m);
      out.push({ position, payload: decoder.decode(m.data), publishedAt: new Date(Math.floor(Number(m.info.timestampNanos) / 1e6)) });
    }
    return out;
  }

  /** Acknowledge and wait for the server to confirm each (so a crash after this returns cannot redeliver them). */
  async ack(messages: readonly SourceMessage[]): Promise<void> {
    await Promise.all(
      messages.map(async (msg) => {
        const m = this.pending.get(msg.position);
        if (!m) return;
        this.pending.delete(msg.position);
        await m.ackAck();
      }),
    );
  }

  async close(): Promise<void> {
    this.pending.clear();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
