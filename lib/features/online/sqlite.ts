/**
 * The embedded online store: one SQLite file (better-sqlite3, WAL mode), no server.
 *
 *   online_features(view, entity_key, event_time_us, vals)   PRIMARY KEY (view, entity_key)
 *
 * `vals` is a JSON object of encoded values (strings; null for NULL). Writes are an upsert whose
 * `ON CONFLICT … DO UPDATE … WHERE` only replaces a row with a later event time, or the same
 * event time and other values, so writes never go back in time; each batch is one
 * `BEGIN IMMEDIATE` transaction, so several processes can share the file. Reads are one
 * `SELECT … WHERE entity_key IN (…)` per 500 keys.
 */
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { TransientError, errorMessage } from '../../errors';
import type { OnlineStore, StoredRow, StoredWrite, WriteCounts } from './types';

export interface SqliteOnlineStoreOptions {
  /** The database file (created with its directory when missing). */
  path: string;
}

const TABLE = 'online_features';

let sqliteModule: Promise<{ default: typeof Database }> | undefined;
/** better-sqlite3, loaded by the first store that reads or writes: opening a store (Resources does for every process) loads nothing. */
const loadSqlite = () => (sqliteModule ??= import('better-sqlite3'));
const IN_CHUNK = 500;

export class SqliteOnlineStore implements OnlineStore {
  readonly type = 'sqlite';
  readonly location: string;
  private db: Database.Database | undefined;

  constructor(private readonly o: SqliteOnlineStoreOptions) {
    this.location = `sqlite:${path.resolve(o.path)}`;
  }

  private open(Sqlite: typeof Database): Database.Database {
    if (this.db) return this.db;
    fs.mkdirSync(path.dirname(path.resolve(this.o.path)), { recursive: true });
    const db = new Sqlite(this.o.path, { timeout: 10_000 });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (
      view TEXT NOT NULL,
      entity_key TEXT NOT NULL,
      event_time_us INTEGER NOT NULL,
      vals TEXT NOT NULL,
      PRIMARY KEY (view, entity_key)
    ) WITHOUT ROWID`);
    this.db = db;
    return db;
  }

  /** SQLite reports a busy database (another writer holds the lock past the timeout) as SQLITE_BUSY: retryable. */
  private async guard<T>(op: string, fn: (db: Database.Database) => T): Promise<T> {
    const { default: Sqlite } = await loadSqlite();
    try {
      return fn(this.open(Sqlite));
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new TransientError(`${op} on ${this.location}: database busy (${errorMessage(err)})`, { store: 'sqlite', location: this.location }, { cause: err });
      throw err;
    }
  }

  get(view: string, features: readonly string[], keys: readonly string[]): Promise<(StoredRow | null)[]> {
    return this.guard(`reading ${view}`, (db) => {
      const found = new Map<string, { event_time_us: number; vals: string }>();
      for (let i = 0; i < keys.length; i += IN_CHUNK) {
        const chunk = keys.slice(i, i + IN_CHUNK);
        const rows = db
          .prepare(`SELECT entity_key, event_time_us, vals FROM ${TABLE} WHERE view = ? AND entity_key IN (${chunk.map(() => '?').join(', ')})`)
          .all(view, ...chunk) as { entity_key: string; event_time_us: number; vals: string }[];
        for (const r of rows) found.set(r.entity_key, r);
      }
      return keys.map((k) => {
        const r = found.get(k);
        if (!r) return null;
        const all = JSON.parse(r.vals) as Record<string, string | null>;
        const values: Record<string, string | null> = {};
        for (const f of features) values[f] = all[f] ?? null;
        return { eventTimeUs: Number(r.event_time_us), values };
      });
    });
  }

  put(view: string, rows: readonly StoredWrite[]): Promise<WriteCounts> {
    return this.guard(`writing ${view}`, (db) => {
      const counts: WriteCounts = { written: 0, unchanged: 0, skippedOlder: 0 };
      const current = db.prepare(`SELECT event_time_us, vals FROM ${TABLE} WHERE view = ? AND entity_key = ?`);
      // The WHERE of the upsert is the rule itself; the SELECT before it only classifies what happened.
      const upsert = db.prepare(
        `INSERT INTO ${TABLE} (view, entity_key, event_time_us, vals) VALUES (?, ?, ?, ?)
         ON CONFLICT (view, entity_key) DO UPDATE SET event_time_us = excluded.event_time_us, vals = excluded.vals
         WHERE excluded.event_time_us > ${TABLE}.event_time_us
            OR (excluded.event_time_us = ${TABLE}.event_time_us AND excluded.vals IS NOT ${TABLE}.vals)`,
      );
      const apply = db.transaction((batch: readonly StoredWrite[]) => {
        for (const r of batch) {
          const vals = canonicalJson(r.values);
          const changed = upsert.run(view, r.key, r.eventTimeUs, vals).changes;
          if (changed > 0) counts.written++;
          else {
            const old = current.get(view, r.key) as { event_time_us: number; vals: string } | undefined;
            if (old && Number(old.event_time_us) > r.eventTimeUs) counts.skippedOlder++;
            else counts.unchanged++;
          }
        }
      });
      apply.immediate(rows);
      return counts;
    });
  }

  deleteView(view: string): Promise<number> {
    return this.guard(`deleting ${view}`, (db) => db.prepare(`DELETE FROM ${TABLE} WHERE view = ?`).run(view).changes);
  }

  close(): Promise<void> {
    this.db?.close();
    this.db = undefined;
    return Promise.resolve();
  }
}

/** JSON with keys sorted, so equal values give equal text (the upsert compares it). */
function canonicalJson(values: Record<string, string | null>): string {
  return JSON.stringify(Object.fromEntries(Object.keys(values).sort().map((k) => [k, values[k]])));
}
