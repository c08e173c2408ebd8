import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { InferflowError, NotFoundError, PermissionDeniedError, TransientError, errorMessage } from '../errors';
import { registerClientMap } from '../util/shared-clients';
import { checkRecords, type PredictionRecord, type RecordSink, type RecordWriteOptions, type RecordWriteResult } from './records';

export interface NatsRecordSinkOptions {
  /** nats://host:port from the worker's environment (INFERFLOW_NATS_URL); never from workflow input. */
  url: string;
  /** Subject each record is published on; a JetStream stream must take it. */
  subject: string;
}

/** Publishes in flight at once per write. */
const PUBLISH_WINDOW = 256;

const connections = new Map<string, Promise<NatsConnection>>();

/** The process's connection for `url` (one per URL), opened on first use. */
export function natsConnection(url: string): Promise<NatsConnection> {
  let c = connections.get(url);
  if (!c) {
    // Fail fast while the server is away: Temporal retries the activity.
    c = connect({ servers: url, reconnect: false, timeout: 3_000 });
    c.catch(() => connections.delete(url));
    connections.set(url, c);
  }
  return c;
}

/** Close every NATS connection this process opened (Resources.close() of the last open Resources, tests). */
export async function closeNatsConnections(): Promise<void> {
  const all = [...connections.values()];
  connections.clear();
  await Promise.allSettled(all.map(async (c) => (await c).close()));
}
registerClientMap('nats', closeNatsConnections);

/** A JetStream client on the process's connection for `url`. */
export async function natsJetStream(url: string): Promise<JetStreamClient> {
  return jetstream(await natsConnection(url));
}

/**
 * The NATS JetStream record sink: each record is published as JSON on `subject` with the
 * `Nats-Msg-Id` header set to its key, so JetStream stores a key once within the stream's
 * duplicate window (`duplicate_window`, 2 minutes unless the stream sets more): set the window
 * to cover how late a retry can come. The stream is the operator's (retention, replicas), not
 * created here.
 */
export class NatsRecordSink implements RecordSink {
  readonly type = 'nats';

  constructor(readonly o: NatsRecordSinkOptions) {}

  private where(): string {
    const u = new URL(this.o.url);
    return `nats ${u.hostname}:${u.port || 4222}`;
  }

  private failure(err: unknown): Error {
    if (err instanceof InferflowError) return err;
    const name = (err as { name?: unknown } | null)?.name;
    const msg = errorMessage(err);
    if (name === 'JetStreamNotEnabled' || name === 'NoRespondersError') {
      return new NotFoundError(`no JetStream stream takes subject ${this.o.subject} on ${this.where()}: ${msg}`, { object: this.o.subject, endpoint: this.where() });
    }
    if (name === 'AuthorizationError' || name === 'PermissionViolationError') return new PermissionDeniedError(`${this.where()} refused publishing on ${this.o.subject}: ${msg}`, { object: this.o.subject, endpoint: this.where() });
    return new TransientError(`publishing records on ${this.o.subject} to ${this.where()} failed: ${msg}`, { object: this.o.subject, endpoint: this.where() }, { cause: err });
  }

  async write(records: readonly PredictionRecord[], options: RecordWriteOptions): Promise<RecordWriteResult> {
    const unique = checkRecords(records, options);
    let js: JetStreamClient;
    try {
      js = await natsJetStream(this.o.url);
    } catch (err) {
      throw this.failure(err);
    }
    let written = 0;
    try {
      for (let i = 0; i < unique.length; i += PUBLISH_WINDOW) {
        const acks = await Promise.all(unique.slice(i, i + PUBLISH_WINDOW).map((r) => js.publish(this.o.subject, JSON.stringify({ ...r, writeKey: options.idempotencyKey }), { msgID: r.key })));
        written += acks.filter((a) => !a.duplicate).length;
      }
    } catch (err) {
      throw this.failure(err);
    }
    return { written, duplicates: records.length - written };
  }

  /** Nothing of its own: the connection is the process's for the URL (closeNatsConnections). */
  async close(): Promise<void> {}
}
