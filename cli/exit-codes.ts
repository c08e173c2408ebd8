/**
 * The CLI's exit codes and the one line it prints for an error: the only place that decides
 * either (docs/cli.md lists the codes). Temporal's errors are recognised by name, so this
 * module loads no SDK and `inferflow --help` stays fast.
 */
import { InferflowError, isTransientErrno } from '../lib/errors';

export const EXIT_CODES = {
  /** The command did what it was asked. */
  ok: 0,
  /** Anything not classified below (a bug: please report it). */
  error: 1,
  /** Bad input: unknown option, invalid argument, spec, environment variable or data. */
  badInput: 2,
  /** A named object does not exist: model, version, alias, workflow, schedule, file. */
  notFound: 3,
  /** A server did not answer: Temporal, PostgreSQL, Redis, S3. Trying again later may help. */
  unavailable: 4,
  /** The workflow run itself failed, was cancelled, terminated or timed out. */
  runFailed: 5,
} as const;

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

/** gRPC status codes Temporal's ServiceError carries. */
const GRPC_NOT_FOUND = 5;
const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;

interface Classified {
  code: ExitCode;
  message: string;
}

function grpcCode(err: Error): number | undefined {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  const code = (err as { code?: unknown }).code ?? cause?.code;
  return typeof code === 'number' ? code : undefined;
}

/** The exit code and the message for an error a command threw. */
export function classifyError(err: unknown): Classified {
  if (!(err instanceof Error)) return { code: EXIT_CODES.error, message: `error: ${String(err)}` };
  if (err instanceof InferflowError) {
    const code = err.type === 'NotFound' ? EXIT_CODES.notFound : err.permanent ? EXIT_CODES.badInput : EXIT_CODES.unavailable;
    return { code, message: `${err.type}: ${err.message}` };
  }
  switch (err.name) {
    case 'WorkflowFailedError': {
      const cause = ((err.cause as Error | undefined)?.cause ?? err.cause) as Error | undefined;
      return { code: EXIT_CODES.runFailed, message: `run failed: ${cause?.message ?? err.message}` };
    }
    case 'WorkflowUpdateFailedError': {
      // A rejected or failed durable prediction: bad input (non-retryable, typed) is exit 2, anything else a failed run.
      const cause = err.cause as (Error & { type?: string; nonRetryable?: boolean }) | undefined;
      const message = `${cause?.type ?? 'update failed'}: ${cause?.message ?? err.message}`;
      return { code: cause?.nonRetryable ? EXIT_CODES.badInput : EXIT_CODES.runFailed, message };
    }
    case 'WorkflowNotFoundError':
      return { code: EXIT_CODES.notFound, message: `no such workflow: ${(err as Error & { workflowId?: string }).workflowId ?? err.message}` };
    case 'ScheduleNotFoundError':
      return { code: EXIT_CODES.notFound, message: `no such schedule: ${(err as Error & { scheduleId?: string }).scheduleId ?? err.message}` };
    case 'ConfigError':
      return { code: EXIT_CODES.badInput, message: `error: ${err.message}` };
    case 'CommanderError':
    case 'InvalidArgumentError':
      return { code: EXIT_CODES.badInput, message: `error: ${err.message}` };
  }
  const grpc = grpcCode(err);
  if (err.name === 'ServiceError' && grpc === GRPC_NOT_FOUND) return { code: EXIT_CODES.notFound, message: `not found: ${err.message}` };
  if (err.name === 'ServiceError' && (grpc === GRPC_UNAVAILABLE || grpc === GRPC_DEADLINE_EXCEEDED)) return { code: EXIT_CODES.unavailable, message: `unavailable: ${err.message}` };
  if (isTransientErrno(err) || (err as NodeJS.ErrnoException).code === 'ENOTFOUND') return { code: EXIT_CODES.unavailable, message: `unavailable: ${err.message}` };
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { code: EXIT_CODES.notFound, message: `not found: ${err.message}` };
  return { code: EXIT_CODES.error, message: `error: ${err.message}` };
}
