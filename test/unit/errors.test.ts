import { describe, expect, it } from 'vitest';
import * as errors from '../../lib/errors';
import { ERROR_HTTP_STATUS, InferflowError, httpStatusOf } from '../../lib/errors';

/** Every concrete error class lib/errors.ts exports, one instance each. */
type ErrorClass = new (message: string, problems: never) => InferflowError;
const instances: InferflowError[] = (Object.values(errors) as unknown[])
  .filter((v) => typeof v === 'function' && (v as { prototype: unknown }).prototype instanceof InferflowError)
  .map((C) => new (C as ErrorClass)('m', [] as never));

describe('one error vocabulary', () => {
  it('every error type has the HTTP status the server answers it with, and every status in the table has a class', () => {
    expect(instances.length).toBe(Object.keys(ERROR_HTTP_STATUS).length);
    expect(Object.fromEntries(instances.map((e) => [e.type, httpStatusOf(e)]))).toEqual({
      InvalidInput: 400,
      SchemaMismatch: 400,
      InvalidValue: 400,
      EmptyInput: 400,
      PermissionDenied: 403,
      NotFound: 404,
      PreconditionFailed: 409,
      CorruptArtifact: 500,
      RowCountMismatch: 500,
      Transient: 503,
    });
  });

  it('an untyped error is a 500; only Transient is retryable', () => {
    expect(httpStatusOf(new Error('x'))).toBe(500);
    expect(instances.filter((e) => !e.permanent).map((e) => e.type)).toEqual(['Transient']);
  });
});
