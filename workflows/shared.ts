/**
 * What every workflow and its clients share: the input check (one zod schema per message, from
 * lib/messages), the InvalidInput failure, search attributes and the run time. Free of Node
 * APIs: bundled into the workflow sandbox.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { z } from 'zod';
import { checkMessage, type Problem } from '../lib/messages/problems';

/** The permanent failure of a workflow started with bad input: every problem listed (in the message and as details), never retried. */
export function invalidInput(workflowType: string, problems: string[]): ApplicationFailure {
  return invalidInputFailure(`${workflowType} input`, problems);
}

/** The permanent `InvalidInput` failure of a malformed message (`invalid <subject>: <problems>`), e.g. a rejected Update. */
export function invalidInputFailure(subject: string, problems: string[]): ApplicationFailure {
  return ApplicationFailure.create({ type: 'InvalidInput', message: `invalid ${subject}: ${problems.join('; ')}`, nonRetryable: true, details: [{ problems }] });
}

/**
 * A message checked against its schema: the parsed value, or a non-retryable InvalidInput
 * failure naming `subject` and listing every problem with its path.
 */
export function checkedMessage<S extends z.ZodType>(schema: S & { rules?: (raw: unknown) => Problem[] }, raw: unknown, subject: string): z.output<S> {
  const r = checkMessage(schema, raw);
  if (r.data === undefined) throw invalidInputFailure(subject, r.problems);
  return r.data;
}

export const SEARCH_ATTRIBUTES = {
  pipeline: defineSearchAttributeKey('InferflowPipeline', SearchAttributeType.KEYWORD),
  model: defineSearchAttributeKey('InferflowModel', SearchAttributeType.KEYWORD),
  modelVersion: defineSearchAttributeKey('InferflowModelVersion', SearchAttributeType.KEYWORD),
  asOf: defineSearchAttributeKey('InferflowAsOf', SearchAttributeType.DATETIME),
} as const;

/** Set by Temporal Schedules on every run they start: the time the run was scheduled for. */
export const SCHEDULED_START_TIME = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);

/**
 * The time a run is "as of", ISO 8601: `given` when set, else the schedule's scheduled time
 * (so a backfill reproduces each scheduled run), else the run's start time. Call from workflow
 * code with `workflowInfo()`.
 */
export function runTime(given: string | undefined, info: { typedSearchAttributes: { get(key: typeof SCHEDULED_START_TIME): Date | undefined }; runStartTime: Date }): string {
  if (given !== undefined) return new Date(given).toISOString();
  return (info.typedSearchAttributes.get(SCHEDULED_START_TIME) ?? info.runStartTime).toISOString();
}
