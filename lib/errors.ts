/**
 * Domain errors. `lib/` knows nothing about Temporal: the activity layer turns these into
 * `ApplicationFailure`s (see activities/failures.ts). Every error carries a stable `type`
 * (used as the failure type), whether retrying can help, and structured details that name
 * the object and fields involved.
 */

export type ErrorDetails = Record<string, unknown>;

/**
 * Every error type and the HTTP status the model server answers it with (server/http.ts). The
 * type is also the Temporal failure type, so clients see the same name on every path.
 */
export const ERROR_HTTP_STATUS = {
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
} as const satisfies Record<string, number>;

export type ErrorType = keyof typeof ERROR_HTTP_STATUS;

export abstract class InferflowError extends Error {
  /** Stable identifier, used as the Temporal failure type. */
  abstract readonly type: ErrorType;
  /** True when trying again cannot help (bad input, corrupt artifact, unknown object). */
  abstract readonly permanent: boolean;
  readonly details: ErrorDetails;

  constructor(message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.details = details;
  }

  override get name(): string {
    return this.type;
  }
}

/** The request or spec is malformed: a field is missing, of the wrong type, or out of range. */
export class InvalidInputError extends InferflowError {
  readonly type = 'InvalidInput';
  readonly permanent = true;
  readonly problems: string[];
  constructor(message: string, problems: string[] = [], details: ErrorDetails = {}) {
    super(problems.length > 0 ? `${message}: ${problems.join('; ')}` : message, { problems, ...details });
    this.problems = problems.length > 0 ? problems : [message];
  }
}

/** A named object (model, version, alias, file) does not exist. */
export class NotFoundError extends InferflowError {
  readonly type = 'NotFound';
  readonly permanent = true;
}

/** An artifact exists but cannot be used: unreadable ONNX, checksum mismatch, bad manifest. */
export class CorruptArtifactError extends InferflowError {
  readonly type = 'CorruptArtifact';
  readonly permanent = true;
}

/** The data does not fit the model: missing columns, wrong dtypes, shape mismatch. */
export class SchemaMismatchError extends InferflowError {
  readonly type = 'SchemaMismatch';
  readonly permanent = true;
  constructor(message: string, readonly problems: string[], details: ErrorDetails = {}) {
    super(`${message}: ${problems.join('; ')}`, { problems, ...details });
  }
}

/** Values that cannot be predicted on (null, NaN, ±Infinity) with no policy to handle them. */
export class InvalidValueError extends InferflowError {
  readonly type = 'InvalidValue';
  readonly permanent = true;
}

/** The input has no rows. Producing an empty output would look like a successful run. */
export class EmptyInputError extends InferflowError {
  readonly type = 'EmptyInput';
  readonly permanent = true;
}

/** Staged output does not add up to the rows predicted: publishing would expose a partial run. */
export class RowCountMismatchError extends InferflowError {
  readonly type = 'RowCountMismatch';
  readonly permanent = true;
}

/**
 * Access refused: a location outside the worker's allowed roots, or a backend that refused
 * these credentials. Retrying cannot help; the message names the object and what is allowed.
 */
export class PermissionDeniedError extends InferflowError {
  readonly type = 'PermissionDenied';
  readonly permanent = true;
}

/** A conditional write lost: the object exists (create-only) or changed (compare-and-swap). */
export class PreconditionFailedError extends InferflowError {
  readonly type = 'PreconditionFailed';
  readonly permanent = true;
}

/** A backend is briefly unavailable (file locked, connection refused, throttled). Retry. */
export class TransientError extends InferflowError {
  readonly type = 'Transient';
  readonly permanent = false;
}

/** Node errno codes that mean "try again later". */
const TRANSIENT_CODES = new Set(['EBUSY', 'EAGAIN', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EMFILE', 'ENFILE']);

export function isTransientErrno(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code);
}

/** The HTTP status for an error: its type's (ERROR_HTTP_STATUS), 500 for anything untyped. */
export function httpStatusOf(err: unknown): number {
  return err instanceof InferflowError ? ERROR_HTTP_STATUS[err.type] : 500;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
