/**
 * The durable path's floor (bench/online-durable.ts): a workflow whose Update does nothing, on
 * the same server, through the same client. Bundled only by the benchmark's own worker.
 */
import { condition, defineUpdate, setHandler } from '@temporalio/workflow';

export const noopUpdate = defineUpdate<number, [number]>('noop');

export async function updateFloor(): Promise<void> {
  setHandler(noopUpdate, (n) => n);
  await condition(() => false);
}
