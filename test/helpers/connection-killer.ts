import type { Redis } from 'ioredis';
import pg from 'pg';

/** One connection a killer dropped: the phase it was in and what it was running. */
export interface Kill {
  phase: string;
  what: string;
}

export interface Killer {
  readonly kills: Kill[];
  /** Stop killing; resolves once the loop has ended. */
  stop(): Promise<Kill[]>;
}

function loop(intervalMs: number, step: () => Promise<void>): { stop(): Promise<void> } {
  let running = true;
  const done = (async () => {
    while (running) {
      await step().catch(() => undefined);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/**
 * Terminate (`pg_terminate_backend`) the connections of `applicationName` while they are busy
 * (a query running, or inside a transaction): what a database restart or a network cut does to
 * a connection checked out of a pool. `phaseOf` names the phase from the connection's query
 * (undefined: leave it alone); each phase loses at most `perPhase` connections, so the run can
 * still finish with Temporal's retries.
 */
export async function killPostgresConnections(o: { url: string; applicationName: string; phaseOf: (query: string) => string | undefined; perPhase: number; intervalMs?: number }): Promise<Killer> {
  const admin = new pg.Client({ connectionString: o.url, application_name: `${o.applicationName}-killer` });
  admin.on('error', () => undefined);
  await admin.connect();
  const kills: Kill[] = [];
  const counts = new Map<string, number>();
  const l = loop(o.intervalMs ?? 10, async () => {
    const busy = await admin.query<{ pid: number; query: string }>(
      "SELECT pid, query FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')",
      [o.applicationName],
    );
    for (const { pid, query } of busy.rows) {
      const phase = o.phaseOf(query);
      if (phase === undefined || (counts.get(phase) ?? 0) >= o.perPhase) continue;
      const r = await admin.query<{ killed: boolean }>('SELECT pg_terminate_backend($1) AS killed', [pid]);
      if (r.rows[0]?.killed) {
        counts.set(phase, (counts.get(phase) ?? 0) + 1);
        kills.push({ phase, what: query.slice(0, 120) });
      }
    }
  });
  return {
    kills,
    stop: async () => {
      await l.stop();
      await admin.end();
      return kills;
    },
  };
}

/**
 * `CLIENT KILL` the Redis connections named `connectionName` (ioredis `connectionName`, set in
 * the URL the process under test uses), at most `max` times, at least `gapMs` apart.
 */
export function killRedisConnections(o: { admin: Redis; connectionName: string; max: number; gapMs: number }): Killer {
  const kills: Kill[] = [];
  let last = 0;
  const l = loop(20, async () => {
    if (kills.length >= o.max || Date.now() - last < o.gapMs) return;
    const list = (await o.admin.call('CLIENT', 'LIST')) as string;
    for (const line of list.split('\n')) {
      const fields = Object.fromEntries(line.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      if (fields.name !== o.connectionName || kills.length >= o.max) continue;
      await o.admin.call('CLIENT', 'KILL', 'ID', fields.id!);
      last = Date.now();
      kills.push({ phase: 'redis', what: `id=${fields.id} cmd=${fields.cmd}` });
    }
  });
  return {
    kills,
    stop: async () => {
      await l.stop();
      return kills;
    },
  };
}
