import { ApplicationFailure } from '@temporalio/common';
import { InferflowError, errorMessage, isTransientErrno } from '../lib/errors';

/**
 * Translate domain errors into Temporal failures: permanent problems become non-retryable
 * `ApplicationFailure`s carrying the error type and structured details; transient ones are
 * retried by the activity's retry policy.
 */
export function toFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof InferflowError) {
    return ApplicationFailure.create({
      type: err.type,
      message: err.message,
      nonRetryable: err.permanent,
      details: [err.details],
      cause: err.cause instanceof Error ? err.cause : undefined,
    });
  }
  if (isTransientErrno(err)) return ApplicationFailure.retryable(errorMessage(err), 'Transient');
  return err;
}

/** Wrap every function of an activity object so thrown domain errors become typed failures. */
export function withFailureMapping<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw toFailure(err);
      }
    };
  }
  return wrapped as T;
}
