import { defaultPayloadConverter } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { rowsInFlight } from '../../cli/watch';

const details = (value: unknown) => ({ payloads: [defaultPayloadConverter.toPayload(value)] });

describe('rowsInFlight (the live bar between shard completions)', () => {
  it('sums rowsDone from the last heartbeat of each running predictShard, ignoring everything else', () => {
    expect(
      rowsInFlight([
        { activityType: { name: 'predictShard' }, heartbeatDetails: details({ rowsDone: 65_536, segmentsDone: 0 }) },
        { activityType: { name: 'predictShard' }, heartbeatDetails: details({ rowsDone: 131_072, segmentsDone: 0 }) },
        { activityType: { name: 'predictShard' }, heartbeatDetails: details({ segmentsDone: 1 }) }, // no rows reported yet
        { activityType: { name: 'predictShard' } }, // no heartbeat yet
        { activityType: { name: 'commitPredictions' }, heartbeatDetails: details({ rowsDone: 999 }) },
        { activityType: { name: 'predictShard' }, heartbeatDetails: { payloads: [{ metadata: { encoding: new TextEncoder().encode('binary/unknown') }, data: new Uint8Array([1]) }] } },
        { activityType: { name: 'predictShard' }, heartbeatDetails: details({ rowsDone: 'many' }) },
      ]),
    ).toBe(196_608);
    expect(rowsInFlight(undefined)).toBe(0);
    expect(rowsInFlight([])).toBe(0);
  });
});
