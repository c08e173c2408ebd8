/** Stream fixtures: seeded transaction events for the fraud-detector example, JetStream streams of a test's own, what the sinks hold. */
import { jetstreamManager, RetentionPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';

export const NATS_URL = 'nats://127.0.0.1:4222';

export { transactionEvents } from '../../bench/stream-events';

export interface TestJetStream {
  nc: NatsConnection;
  jsm: JetStreamManager;
  /** Create a limits-retention stream on `subjects` (deleted by close). */
  stream(name: string, subjects: string[]): Promise<void>;
  /** Publish payloads (strings as they are, objects as JSON) in order. */
  publish(subject: string, payloads: readonly (string | Record<string, unknown>)[]): Promise<void>;
  /** Messages stored in a stream. */
  count(stream: string): Promise<number>;
  /** Every message of a stream, parsed. */
  read(stream: string): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export async function testJetStream(): Promise<TestJetStream> {
  const nc = await connect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  const js = jsm.jetstream();
  const created: string[] = [];
  return {
    nc,
    jsm,
    async stream(name, subjects) {
      await jsm.streams.add({ name, subjects, retention: RetentionPolicy.Limits });
      created.push(name);
    },
    async publish(subject, payloads) {
      const WINDOW = 500;
      for (let i = 0; i < payloads.length; i += WINDOW) {
        await Promise.all(payloads.slice(i, i + WINDOW).map((p) => js.publish(subject, typeof p === 'string' ? p : JSON.stringify(p))));
      }
    },
    async count(stream) {
      return (await jsm.streams.info(stream)).state.messages;
    },
    async read(stream) {
      const info = await jsm.streams.info(stream);
      const out: Record<string, unknown>[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
        if (m) out.push(m.json<Record<string, unknown>>());
      }
      return out;
    },
    async close() {
      for (const s of created) await jsm.streams.delete(s).catch(() => undefined);
      await nc.close();
    },
  };
}

/** Keys stored in a record table (with repeats, if any: the test compares against the published ids). */
export async function recordKeys(pool: pg.Pool, table: string): Promise<string[]> {
  const exists = await pool.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [table]);
  if (!exists.rows[0]?.t) return [];
  return (await pool.query<{ key: string }>(`SELECT key FROM ${pg.escapeIdentifier(table)}`)).rows.map((r) => r.key);
}
