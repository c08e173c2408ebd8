/**
 * The process-wide client maps (Redis clients, PostgreSQL pools, NATS connections, S3 clients:
 * one client per URL, shared by every sink, source and store of the process) and who holds them.
 *
 * Each backend module registers how to close its map when it loads, so closing loads no backend
 * the process never used. Every open `Resources` holds the maps; they close when the last holder
 * lets go, so closing one `Resources` leaves the clients another one in the same process is using
 * working.
 */
type CloseMap = () => Promise<void> | void;

const maps = new Map<string, CloseMap>();
let holders = 0;

/** Called by a backend module when it loads: `close` ends every client of its map (the next use opens new ones). */
export function registerClientMap(name: string, close: CloseMap): void {
  maps.set(name, close);
}

/** Hold the maps open. The returned function lets go (a second call does nothing) and closes every map when no holder is left. */
export function holdSharedClients(): () => Promise<void> {
  holders++;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    holders--;
    if (holders === 0) await closeSharedClients();
  };
}

/** Close every registered map now, whoever holds it (process shutdown, tests). Failures to close are ignored: the clients are gone either way. */
export async function closeSharedClients(): Promise<void> {
  await Promise.allSettled([...maps.values()].map(async (close) => close()));
}
