import { describe, expect, it } from 'vitest';
import { InvalidInputError, InvalidValueError, NotFoundError, PermissionDeniedError, TransientError } from '../../lib/errors';
import { isTransientPostgresError, postgresErrorMessage, postgresFailure } from '../../lib/postgres/connection';

const withCode = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('PostgreSQL error classification', () => {
  it('a dropped connection or a server that cannot serve right now is transient', () => {
    for (const e of [
      withCode('57P01', 'terminating connection due to administrator command'), // pg_terminate_backend
      withCode('08006'),
      withCode('53300'),
      withCode('ECONNRESET'),
      withCode('ECONNREFUSED'),
      withCode('EPIPE', 'write EPIPE'), // five capitals, like a SQLSTATE: still a broken connection
      new Error('Connection terminated unexpectedly'),
      new Error('Client has encountered a connection error and is not queryable'),
      new Error('timeout exceeded when trying to connect'),
    ]) {
      expect(isTransientPostgresError(e), e.message).toBe(true);
    }
  });

  it('bad SQL, missing objects, refused credentials and bad values are not', () => {
    for (const code of ['42P01', '42703', '28P01', '42501', '23505', '22P02']) expect(isTransientPostgresError(withCode(code)), code).toBe(false);
    expect(isTransientPostgresError(new Error('something else'))).toBe(false);
  });

  it('a SQLSTATE nobody listed is judged by its class: connection, rollback, resources, operator and system classes retried, the rest permanent', () => {
    for (const code of ['08XYZ', '40XYZ', '53XYZ', '57014', '57XYZ', '58XYZ', '55P03', '55006', 'XX000']) expect(isTransientPostgresError(withCode(code)), code).toBe(true);
    for (const code of ['0A000', '21000', '22XYZ', '23XYZ', '25001', '2BXYZ', '42XYZ', '54000', '55000', 'P0001', 'XX001', 'ZZ999', 'HV000']) expect(isTransientPostgresError(withCode(code)), code).toBe(false);
  });
});

describe('postgresFailure: one mapping for the feature source and the sinks', () => {
  const target = { host: 'db.example', port: 5433, database: 'features', user: 'reader' };
  const map = (code: string, extra: { field?: string; object?: string; schema?: string } = {}) => postgresFailure(withCode(code, `server said ${code}`), { target, what: 'reading table t for view v', ...extra });

  it('a write on a connection the server closed (EPIPE) is a TransientError, not a rejected statement', () => {
    const err = postgresFailure(withCode('EPIPE', 'write EPIPE'), { target: { host: '127.0.0.1', port: 5432, database: 'd', user: 'u' }, what: 'staging shard 2' });
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe('PostgreSQL at 127.0.0.1:5432 (database d) is unavailable while staging shard 2: write EPIPE');
  });

  it('maps each class to a typed error naming the server, the field and the SQLSTATE, never retrying what cannot succeed', () => {
    const cases: [string, new (...args: never[]) => Error][] = [
      ['57P01', TransientError],
      ['08006', TransientError],
      ['40001', TransientError],
      ['XX000', TransientError],
      ['28P01', PermissionDeniedError],
      ['42501', PermissionDeniedError],
      ['3D000', NotFoundError],
      ['3F000', NotFoundError],
      ['42P01', NotFoundError],
      ['22P02', InvalidValueError],
      ['23505', InvalidValueError],
      ['21000', InvalidValueError],
      ['42601', InvalidInputError],
      ['0A000', InvalidInputError],
      ['P0001', InvalidInputError],
      ['ZZ999', InvalidInputError],
    ];
    for (const [code, type] of cases) {
      const e = map(code, { field: 'views[0].source', object: 'table t' });
      expect(e, code).toBeInstanceOf(type);
      expect(e.message, code).toMatch(/^views\[0\]\.source: /);
      expect(e.message, code).toContain(`server said ${code}`);
      expect((e as TransientError).permanent, code).toBe(type !== TransientError);
    }
    expect(map('42P01', { object: 'table t' }).message).toBe('table t does not exist in PostgreSQL at db.example:5433 (database features) while reading table t for view v: server said 42P01');
    expect(map('3F000', { schema: 'analytics' }).message).toContain('schema analytics does not exist');
    expect((map('42601', { field: 'views[2].source' }) as InvalidInputError).problems).toEqual(['views[2].source: server said 42601 (SQLSTATE 42601)']);
  });

  it('names the server, never the password, keeps typed errors, and makes an error without a SQLSTATE a typed TransientError', () => {
    const e = map('28P01');
    expect(e.message).toContain('PostgreSQL at db.example:5433 (database features) refused user reader');
    const typed = new NotFoundError('already typed');
    expect(postgresFailure(typed, { target, what: 'x' })).toBe(typed);
    const unknown = postgresFailure(Object.assign(new Error('socket hang'), { code: 'ERR_SOMETHING' }), { target, what: 'reading table t', field: 'views[1].source' });
    expect(unknown).toBeInstanceOf(TransientError);
    expect(unknown.message).toBe('views[1].source: PostgreSQL at db.example:5433 (database features): reading table t failed: socket hang');
    expect((unknown as TransientError).details).toMatchObject({ host: 'db.example', code: 'ERR_SOMETHING', field: 'views[1].source' });
    expect(postgresFailure(new Error('no code at all'), { target, what: 'x' })).toBeInstanceOf(TransientError);
    expect(postgresFailure(new Error('Connection terminated unexpectedly'), { target, what: 'x' })).toBeInstanceOf(TransientError);
  });

  it('names both addresses when IPv4 and IPv6 are both refused', () => {
    expect(postgresErrorMessage(new AggregateError([new Error('connect ECONNREFUSED 127.0.0.1:1'), new Error('connect ECONNREFUSED ::1:1')], ''))).toBe('connect ECONNREFUSED 127.0.0.1:1; connect ECONNREFUSED ::1:1');
  });
});
