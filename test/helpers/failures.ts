import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { expect } from 'vitest';

/**
 * Await a run that must fail for good; return its ApplicationFailure (the workflow's own, or
 * the failed activity's), asserted non-retryable.
 */
export async function permanentFailureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  const app = cause instanceof ApplicationFailure ? cause : (cause?.cause as ApplicationFailure | undefined);
  expect(app).toBeInstanceOf(ApplicationFailure);
  expect(app!.nonRetryable).toBe(true);
  return app!;
}
