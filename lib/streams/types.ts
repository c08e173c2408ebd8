/**
 * A stream source: pull a bounded batch of messages from a durable cursor, acknowledge them
 * once whatever covers them is durable elsewhere. Unacknowledged messages come back after a
 * crash (JetStream redelivers after the ack wait; Redis Streams keep them pending until a
 * consumer claims them).
 */
export interface SourceMessage {
  /** The message's position on the bus, unique per message: `<stream>:<sequence>` or `<stream>:<entry id>`. */
  position: string;
  /** The raw payload as text (an event should be a JSON object). */
  payload: string;
  /** When the bus stored it. */
  publishedAt: Date;
}

export interface StreamSourceReader {
  /** Where it reads, for logs and messages. */
  readonly description: string;
  /** Up to `max` messages, waiting at most `waitMs` for the first; [] when none came. */
  pull(max: number, waitMs: number): Promise<SourceMessage[]>;
  /** Acknowledge messages pulled by this reader (they will not be delivered again). */
  ack(messages: readonly SourceMessage[]): Promise<void>;
  close(): Promise<void>;
}
