/**
 * Overlap policy names of the CLI and schedule options (`skip`, `buffer-one`, …), without the
 * Temporal client, so `inferflow --help` lists them without loading the SDK. Each name is the
 * SDK's ScheduleOverlapPolicy value in lower case with dashes (`BUFFER_ONE` → `buffer-one`).
 */
import type { ScheduleOverlapPolicy } from '@temporalio/client';

export const OVERLAP_NAMES = ['skip', 'buffer-one', 'buffer-all', 'allow-all', 'cancel-other', 'terminate-other'] as const;
export type OverlapName = (typeof OVERLAP_NAMES)[number];

export function overlapPolicy(name: OverlapName): ScheduleOverlapPolicy {
  return name.toUpperCase().replace(/-/g, '_') as ScheduleOverlapPolicy;
}

/** `BUFFER_ONE` → `buffer-one` (what describe prints). */
export function overlapName(policy: ScheduleOverlapPolicy): string {
  return String(policy).toLowerCase().replace(/_/g, '-');
}
