import { heartbeat } from '@temporalio/activity';

/** How often `keepAlive` heartbeats: well inside the activities' 30 s heartbeat timeouts. */
export const KEEP_ALIVE_MS = 10_000;

/**
 * Heartbeat every `everyMs` while a long step runs: a snapshot COPY, a sink's commit, or a slow
 * model's inference call (a shard heartbeats after each call, and one call of a large model can
 * outlast the heartbeat timeout). A dead worker is still noticed by the timeout; a live one is
 * not timed out. `details` returns the latest progress, so a timer heartbeat repeats it instead
 * of clearing what a retry resumes from. Use with `using`.
 */
export function keepAlive(details: () => unknown = () => undefined, everyMs = KEEP_ALIVE_MS): Disposable {
  const timer = setInterval(() => heartbeat(details()), everyMs);
  return { [Symbol.dispose]: () => clearInterval(timer) };
}
