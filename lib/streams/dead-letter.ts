/**
 * Dead letters: poison events (unparseable, missing key, wrong types, features failing the
 * model's checks) with the reason and the original payload, written idempotently by event id to
 * a JetStream subject (`Nats-Msg-Id: dead:<id>`), a Redis Stream (an entry guarded by a
 * `<stream>:seen:<id>` key) or a PostgreSQL table (`ON CONFLICT (id) DO NOTHING`).
 */
import { DEFAULT_NATS_URL, DEFAULT_REDIS_URL } from '../config/defaults';
import { TransientError, errorMessage } from '../errors';
import type { DeadLetterSpec } from '../messages/stream';
import { postgresFailure, resolvePostgresTarget, withPooledClient } from '../postgres/connection';
import { createOnce, key64, qualify, tableExists } from '../postgres/sql';
import { loadNatsBackend } from '../sinks/factory';
import { connectedRedis, redisFailure } from '../sinks/redis';
import type { SinkDefaults } from '../sinks';

export interface DeadLetter {
  /** The event id (the bus position when the event had none that could be read). */
  id: string;
  pipeline: string;
  /** Why it could not be predicted, naming the field. */
  reason: string;
  /** The original payload, as received. */
  payload: string;
  /** Where it was on the bus. */
  position: string;
  /** ISO 8601 time it was dead-lettered. */
  at: string;
}

export interface DeadLetterSink {
  /** Store the letters not stored yet; answers how many were new. */
  write(letters: readonly DeadLetter[]): Promise<number>;
}

/** How long the Redis guard key of a dead letter is kept (seconds): a redelivery later than this adds a second entry. */
const REDIS_GUARD_SECONDS = 7 * 86_400;
const REDIS_ADD_ONCE = `if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return redis.call('XADD', KEYS[1], '*', 'id', ARGV[2], 'pipeline', ARGV[3], 'reason', ARGV[4], 'payload', ARGV[5], 'position', ARGV[6], 'at', ARGV[7]) else return false end`;

const COLUMNS = [
  ['id', 'text'],
  ['pipeline', 'text'],
  ['reason', 'text'],
  ['payload', 'text'],
  ['position', 'text'],
  ['at', 'timestamptz'],
] as const;

export function createDeadLetterSink(spec: DeadLetterSpec, d: SinkDefaults): DeadLetterSink {
  if (spec.type === 'nats') {
    const url = d.natsUrl ?? DEFAULT_NATS_URL;
    return {
      async write(letters) {
        try {
          const js = await (await loadNatsBackend()).natsJetStream(url);
          const acks = await Promise.all(letters.map((l) => js.publish(spec.subject, JSON.stringify(l), { msgID: `dead:${l.id}` })));
          return acks.filter((a) => !a.duplicate).length;
        } catch (err) {
          throw new TransientError(`writing ${letters.length} dead letters to ${spec.subject} failed: ${errorMessage(err)}`, { object: spec.subject }, { cause: err });
        }
      },
    };
  }
  if (spec.type === 'redis') {
    const url = d.redisUrl ?? DEFAULT_REDIS_URL;
    return {
      async write(letters) {
        const redis = await connectedRedis(url);
        try {
          const p = redis.pipeline();
          for (const l of letters) p.eval(REDIS_ADD_ONCE, 2, spec.stream, `${spec.stream}:seen:${l.id}`, REDIS_GUARD_SECONDS, l.id, l.pipeline, l.reason, l.payload, l.position, l.at);
          const replies = (await p.exec()) ?? [];
          for (const [err] of replies) if (err) throw err;
          return replies.filter(([, r]) => r !== null).length;
        } catch (err) {
          throw redisFailure(err, `writing ${letters.length} dead letters to ${spec.stream}`, url);
        }
      },
    };
  }
  const schema = spec.schema ?? 'public';
  const settings = { url: d.postgresUrl };
  let ready = false;
  return {
    async write(letters) {
      const table = qualify(schema, spec.table);
      try {
        return await withPooledClient(settings, async (client) => {
          if (!ready && !(await tableExists(client, table))) {
            await createOnce(client, key64(`inferflow:dead-letters:${schema}.${spec.table}`), [`CREATE TABLE IF NOT EXISTS ${table} (${COLUMNS.map(([n, t]) => `${n} ${t}${n === 'id' ? ' PRIMARY KEY' : ''}`).join(', ')})`]);
          }
          ready = true;
          const names = COLUMNS.map(([n]) => n).join(', ');
          const r = await client.query(`INSERT INTO ${table} (${names}) SELECT ${names} FROM jsonb_to_recordset($1::jsonb) AS r(${COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')}) ON CONFLICT (id) DO NOTHING`, [JSON.stringify(letters)]);
          return r.rowCount ?? 0;
        });
      } catch (err) {
        throw postgresFailure(err, { target: resolvePostgresTarget(settings), schema, what: `writing ${letters.length} dead letters to ${schema}.${spec.table}` });
      }
    },
  };
}
