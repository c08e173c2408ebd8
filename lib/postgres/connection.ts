/**
 * PostgreSQL connections for every part of Inferflow that talks to PostgreSQL (the run and record
 * sinks, feature sources, materialisation): pool and client creation, the error listeners that keep
 * a dropped connection from crashing the process, the one classification of errors as transient,
 * and the mapping of errors to typed errors.
 *
 * A `pg` client emits 'error' when its connection ends unexpectedly (server restart,
 * `pg_terminate_backend`, network), even while a query is running; without a listener that is
 * an uncaught exception. Pools listen on idle clients only, so a checked-out client gets its
 * own listener here for as long as it is checked out. The failing query still rejects, and the
 * caller maps that to a TransientError, which Temporal retries with backoff.
 *
 * Connection settings come from the process environment, never from a spec: the URL
 * (INFERFLOW_POSTGRES_URL) or the PG* variables `pg` reads. `application_name` in the URL
 * overrides the default names below (to tell processes apart in pg_stat_activity).
 */
import pg from 'pg';
import { registerClientMap } from '../util/shared-clients';
import { InferflowError, InvalidInputError, InvalidValueError, NotFoundError, PermissionDeniedError, TransientError, errorMessage, type ErrorDetails } from '../errors';

export interface PostgresConnectionSettings {
  /** `INFERFLOW_POSTGRES_URL`; unset: `pg` reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE itself. */
  url?: string | undefined;
}

/** application_name of the sink's pooled connections (unless the URL sets one). */
export const SINK_APPLICATION_NAME = 'inferflow';
/** application_name of feature-source exports (unless the URL sets one). */
export const FEATURES_APPLICATION_NAME = 'inferflow-features';

const connectionOf = (settings: PostgresConnectionSettings) => (settings.url ? { connectionString: settings.url } : {});

// One pool per connection setting per process, shared by every activity of the worker.
const pools = new Map<string, pg.Pool>();

/** The process's pool for these settings. */
export function postgresPool(settings: PostgresConnectionSettings): pg.Pool {
  const key = settings.url ?? '';
  let pool = pools.get(key);
  if (!pool) {
    pool = new pg.Pool({
      ...connectionOf(settings),
      max: 4,
      idleTimeoutMillis: 10_000,
      connectionTimeoutMillis: 15_000,
      allowExitOnIdle: true,
      keepAlive: true,
      application_name: SINK_APPLICATION_NAME,
      client_encoding: 'UTF8',
    });
    // An idle connection that dies is dropped by the pool; the next checkout reconnects or fails with a mapped (transient) error.
    pool.on('error', () => undefined);
    pools.set(key, pool);
  }
  return pool;
}

const ignoreError = () => undefined;

/**
 * Check a client out of the process's pool for `fn`, with an error listener while it is out
 * (see above). A client whose work failed is destroyed, never reused: it may be broken or
 * mid-transaction. Errors are rethrown as they are, for the caller to map.
 */
export async function withPooledClient<T>(settings: PostgresConnectionSettings, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await postgresPool(settings).connect();
  client.on('error', ignoreError);
  let failed = false;
  try {
    return await fn(client);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    client.off('error', ignoreError);
    client.release(failed);
  }
}

/** A single (unpooled) client with an error listener; the caller connects and ends it. */
export function postgresClient(settings: PostgresConnectionSettings, applicationName: string): pg.Client {
  const client = new pg.Client({ ...connectionOf(settings), application_name: applicationName, connectionTimeoutMillis: 15_000 });
  client.on('error', ignoreError); // the running query rejects; this only keeps the event from crashing the process
  return client;
}

/** Close every pool this process opened (Resources.close() of the last open Resources, tests). */
export async function closePostgresPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.end()));
}
registerClientMap('postgres', closePostgresPools);

/**
 * Retrying helps when the connection broke or the server could not serve for a while; it never
 * helps a statement the server rejects. SQLSTATEs are judged by class (their first two
 * characters): 08 connection exception, 40 transaction rollback (serialization failure,
 * deadlock), 53 insufficient resources, 57 operator intervention (shutdown, terminated backend,
 * statement timeout) and 58 system error (I/O) are retried; every other class (22 data, 23
 * integrity, 28 authorization, 3D/3F missing database or schema, 42 syntax or access rule, 0A
 * unsupported feature, 54 program limit, P0 raised by PL/pgSQL…) is permanent, including a class
 * this list does not know. Classes that mix both keep the few retryable states named here.
 */
const RETRYABLE_SQLSTATE_CLASSES = new Set(['08', '40', '53', '57', '58']);
const RETRYABLE_SQLSTATES = new Set([
  '55P03', // lock_not_available
  '55006', // object_in_use
  'XX000', // internal_error (not data_corrupted XX001 / index_corrupted XX002)
]);
const SQLSTATE = /^[0-9A-Z]{5}$/;
const TRANSIENT_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'EAI_AGAIN', 'ENOTFOUND']);
const TRANSIENT_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|connection error|Connection ended|Client has encountered a connection error and is not queryable/i;

/** Message of an error; AggregateError (IPv4 + IPv6 both refused) has an empty one of its own. */
export function postgresErrorMessage(err: unknown): string {
  if (err instanceof AggregateError && err.message === '') return err.errors.map(errorMessage).join('; ');
  return errorMessage(err);
}

/** SQLSTATE (or Node errno) of a pg error, when it has one. */
export function postgresErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True when retrying can help: the connection broke or the server was briefly unable to serve (see RETRYABLE_SQLSTATE_CLASSES). */
export function isTransientPostgresError(err: unknown): boolean {
  const code = postgresErrorCode(err);
  // Node errnos first: EPIPE has the shape of a SQLSTATE (five capitals).
  if (code && TRANSIENT_ERRNOS.has(code)) return true;
  if (code && SQLSTATE.test(code)) return RETRYABLE_SQLSTATE_CLASSES.has(code.slice(0, 2)) || RETRYABLE_SQLSTATES.has(code);
  if (code) return TRANSIENT_ERRNOS.has(code);
  return TRANSIENT_MESSAGES.test(postgresErrorMessage(err));
}

export interface PostgresTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** Host, port, database and user `pg` will use (URL, PG* variables, defaults): for messages. Never the password. */
export function resolvePostgresTarget(settings: PostgresConnectionSettings): PostgresTarget {
  let c: pg.Client;
  try {
    c = new pg.Client(settings.url ? { connectionString: settings.url } : {}); // resolves settings, opens nothing
  } catch {
    throw new InvalidInputError('INFERFLOW_POSTGRES_URL is not a valid PostgreSQL connection URL', ['INFERFLOW_POSTGRES_URL: expected postgres://user@host:port/database']);
  }
  const user = c.user ?? '(default user)';
  return { host: c.host, port: c.port, database: c.database ?? c.user ?? '(default database)', user };
}


/** What a failed statement was doing, for the typed error it becomes. */
export interface PostgresFailureContext {
  target: PostgresTarget;
  /** What was being done (`staging shard 3 of run r`, `reading table t for view v`). */
  what: string;
  /** The schema the statement used: named when it does not exist. */
  schema?: string;
  /** The input field the statement comes from (`views[0].source`): the message starts with it and the problems name it. */
  field?: string;
  /** The object read or written (`table public.t`): named when it does not exist. */
  object?: string;
}

/**
 * THE PostgreSQL error mapping (feature source, run sink, record sink): pg / network errors →
 * typed errors naming host:port and database (never a password) and the field when there is one.
 * Transient ones (isTransientPostgresError) are retried; refused credentials or grants are
 * PermissionDenied; a missing database, schema or table NotFound; rejected values (classes 21,
 * 22, 23) InvalidValue; any other SQLSTATE, of a class known or not, a permanent InvalidInput (the
 * statement or the spec behind it is wrong: retrying cannot help). Typed errors pass through. An
 * error without a SQLSTATE (the server did not judge the statement: a client or driver fault
 * nobody listed) is a TransientError: retried with backoff, so a fault that persists fails the
 * activity when its retries run out rather than at once.
 */
export function postgresFailure(err: unknown, ctx: PostgresFailureContext): Error {
  if (err instanceof InferflowError) return err;
  const t = ctx.target;
  const sqlstate = postgresErrorCode(err);
  const msg = postgresErrorMessage(err);
  const at = ctx.field ? `${ctx.field}: ` : '';
  const where = `PostgreSQL at ${t.host}:${t.port} (database ${t.database})`;
  const details: ErrorDetails = { host: t.host, port: t.port, database: t.database, user: t.user, ...(sqlstate ? { code: sqlstate } : {}), ...(ctx.field ? { field: ctx.field } : {}), ...(ctx.object ? { object: ctx.object } : {}) };
  const cause = { cause: err };
  if (isTransientPostgresError(err)) {
    return new TransientError(`${at}${where} is unavailable while ${ctx.what}: ${msg}`, details, cause);
  }
  if (!sqlstate || !SQLSTATE.test(sqlstate)) return new TransientError(`${at}${where}: ${ctx.what} failed: ${msg}`, details, cause);
  switch (sqlstate) {
    case '28P01':
    case '28000':
      return new PermissionDeniedError(`${at}${where} refused user ${t.user} (check INFERFLOW_POSTGRES_URL / PG* credentials): ${msg}`, details, cause);
    case '42501':
      return new PermissionDeniedError(`${at}${where}: permission denied for user ${t.user} while ${ctx.what} (check the grants): ${msg}`, details, cause);
    case '3D000':
      return new NotFoundError(`${at}database ${t.database} does not exist on PostgreSQL at ${t.host}:${t.port}: ${msg}`, { ...details, object: t.database }, cause);
    case '3F000':
      return new NotFoundError(`${at}schema ${ctx.schema ?? '(of the statement)'} does not exist in ${where} while ${ctx.what}: ${msg}`, { ...details, ...(ctx.schema ? { object: ctx.schema } : {}) }, cause);
    case '42P01':
      return new NotFoundError(`${at}${ctx.object ?? 'a relation'} does not exist in ${where} while ${ctx.what}: ${msg}`, details, cause);
  }
  const problem = `${ctx.field ?? 'statement'}: ${msg} (SQLSTATE ${sqlstate})`;
  if (/^(21|22|23)/.test(sqlstate)) return new InvalidValueError(`${at}${where} rejected a value while ${ctx.what}: ${msg}`, details, cause);
  return new InvalidInputError(`${at}${where} rejected the statement while ${ctx.what}`, [problem], details);
}
