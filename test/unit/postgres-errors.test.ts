import { describe, expect, it } from 'vitest';
import { isTransientPostgresError, postgresErrorMessage } from '../../lib/postgres/connection';

const withCode = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('PostgreSQL error classification', () => {
  it('a dropped connection or a server that cannot serve right now is transient', () => {
    for (const e of [
      withCode('57P01', 'terminating connection due to administrator command'), // pg_terminate_backend
      withCode('08006'),
      withCode('53300'),
      withCode('ECONNRESET'),
      withCode('ECONNREFUSED'),
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

  it('names both addresses when IPv4 and IPv6 are both refused', () => {
    expect(postgresErrorMessage(new AggregateError([new Error('connect ECONNREFUSED 127.0.0.1:1'), new Error('connect ECONNREFUSED ::1:1')], ''))).toBe('connect ECONNREFUSED 127.0.0.1:1; connect ECONNREFUSED ::1:1');
  });
});
