/**
 * The bridge's check of one bus message: a JSON object with its key (and id / time fields when
 * the spec names them) becomes a StreamEvent; anything else becomes a dead letter naming the
 * reason. Nothing unchecked reaches a workflow, so its signal handler never has to reject.
 */
import { MAX_EVENT_BYTES, type StreamEvent, type StreamPipelineSpec } from '../messages/stream';
import type { DeadLetter } from './dead-letter';
import type { SourceMessage } from './types';

export type Checked = { event: StreamEvent } | { dead: DeadLetter };

const isKeyValue = (v: unknown): v is string | number => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

function instant(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Date.parse(v);
  return NaN;
}

/** A message → a validated event, or a dead letter with the reason and the original payload. */
export function checkMessage(msg: SourceMessage, spec: Pick<StreamPipelineSpec, 'name' | 'key' | 'idField' | 'timeField'>, now: Date = new Date()): Checked {
  const dead = (reason: string, id = msg.position): Checked => ({ dead: { id, pipeline: spec.name, reason, payload: msg.payload, position: msg.position, at: now.toISOString() } });
  if (Buffer.byteLength(msg.payload) > MAX_EVENT_BYTES) return dead(`payload is ${Buffer.byteLength(msg.payload)} bytes, more than the ${MAX_EVENT_BYTES} an event may have`);
  let data: unknown;
  try {
    data = JSON.parse(msg.payload);
  } catch (err) {
    return dead(`payload is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return dead(`payload must be a JSON object, got ${Array.isArray(data) ? 'an array' : data === null ? 'null' : typeof data}`);
  const fields = data as Record<string, unknown>;
  const key = fields[spec.key];
  if (key === undefined || key === null) return dead(`key field ${spec.key} is missing`);
  if (!isKeyValue(key)) return dead(`key field ${spec.key} must be a string or a number, got ${JSON.stringify(key)}`);
  let id = msg.position;
  if (spec.idField) {
    const v = fields[spec.idField];
    if (!isKeyValue(v) || String(v) === '' || String(v).length > 512) return dead(`id field ${spec.idField} must be a non-empty string or a number, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
    id = String(v);
  }
  let time = msg.publishedAt.toISOString();
  if (spec.timeField) {
    const t = instant(fields[spec.timeField]);
    if (!Number.isFinite(t)) return dead(`time field ${spec.timeField} must be an ISO 8601 time or epoch milliseconds, got ${fields[spec.timeField] === undefined ? 'nothing' : JSON.stringify(fields[spec.timeField])}`, id);
    time = new Date(t).toISOString();
  }
  return { event: { id, key: String(key), time, data: fields } };
}
