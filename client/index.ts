/**
 * Typed client helpers: start, await and watch `batchInference` from code.
 *
 *   const client = await connectClient(loadConfig().temporal);
 *   const handle = await startBatchInference(client, { model: 'fraud-detector', features: path.resolve('examples/data/transactions.parquet') });
 *   const summary = await handle.result();
 */
import { Client, Connection, WorkflowHandle, type ConnectionOptions } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { randomUUID } from 'node:crypto';
import type { TemporalConfig } from '../lib/config/env';
import { InvalidInputError } from '../lib/errors';
import { connectOrExplain, connectionOptions } from '../workers/connection';
import { checkMessage } from '../lib/messages/problems';
import type { batchInference } from '../workflows/batch/workflow';
import { BATCH_WORKFLOW_TYPE, BatchInferenceInputSchema, batchSummary, progressQuery, type BatchInferenceInput, type BatchProgress } from '../workflows/batch/shared';
import { SEARCH_ATTRIBUTES } from '../workflows/shared';

export * from '../workflows/batch/shared';
export { SEARCH_ATTRIBUTES, runTime } from '../workflows/shared';
export { checkMessage } from '../lib/messages/problems';

/** A client of the configured server; an unreachable server fails within seconds with its address named (TransientError). */
export async function connectClient(t: TemporalConfig, options: Pick<ConnectionOptions, 'interceptors'> = {}): Promise<Client> {
  const connection = await connectOrExplain(t.address, () => Connection.connect({ ...connectionOptions(t), ...options }));
  return new Client({ connection, namespace: t.namespace });
}

/** `<prefix>-<UTC time, compact>-<8 random hex>`: unique, sortable, readable in the Temporal UI. */
export function defaultWorkflowId(prefix: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${prefix}-${stamp}-${randomUUID().slice(0, 8)}`;
}

export interface StartOptions {
  taskQueue: string;
  /** Default: `batch-<pipeline>-<timestamp>-<random>`. */
  workflowId?: string;
}

/** A workflow input or schedule that fails validation before anything is started: every problem listed (exit code 2 in the CLI). */
export class InvalidBatchInputError extends InvalidInputError {
  constructor(problems: string[], what = 'batchInference input') {
    super(`invalid ${what}`, problems);
  }
}

export async function startBatchInference(client: Client, input: BatchInferenceInput, options: StartOptions): Promise<WorkflowHandle<typeof batchInference>> {
  const { problems } = checkMessage(BatchInferenceInputSchema, input);
  if (problems.length > 0) throw new InvalidBatchInputError(problems);
  const pipeline = input.pipeline ?? input.model.split(/[:@]/)[0]!;
  return client.workflow.start<typeof batchInference>(BATCH_WORKFLOW_TYPE, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? defaultWorkflowId(`batch-${pipeline}`),
    args: [input],
    typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.pipeline, value: pipeline }],
    // The Web UI shows these on the run page (and the summary in the list); progress is in the current details.
    staticSummary: batchSummary(input),
    staticDetails: batchDetails(input),
  });
}

/** Markdown for the run page: what the run reads and where it writes (paths and names only, never credentials). */
export function batchDetails(input: BatchInferenceInput): string {
  const source = input.features ?? (input.spine ? `spine ${input.spine}` : `${input.featureViews?.length ?? 0} feature view(s)`);
  return [`**model** ${input.model}`, `**features** ${source}`, `**sink** ${input.sink ? JSON.stringify(input.sink) : 'parquet (default)'}`, ...(input.asOf ? [`**as of** ${input.asOf}`] : [])].join('\n\n');
}

export async function queryProgress(handle: WorkflowHandle): Promise<BatchProgress | undefined> {
  try {
    return await handle.query(progressQuery);
  } catch {
    return undefined; // not yet started by a worker, or already closed
  }
}

/** Register the search attributes on an existing server (idempotent; ignored where not permitted, e.g. Temporal Cloud). */
export async function ensureSearchAttributes(client: Client, namespace: string): Promise<'ok' | 'skipped'> {
  try {
    const existing = await client.connection.operatorService.listSearchAttributes({ namespace });
    const missing = Object.values(SEARCH_ATTRIBUTES).filter((k) => !(k.name in (existing.customAttributes ?? {})));
    if (missing.length === 0) return 'ok';
    await client.connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(
        missing.map((k) => [k.name, k.type === 'DATETIME' ? temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME : temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
      ),
    });
    return 'ok';
  } catch {
    return 'skipped';
  }
}

