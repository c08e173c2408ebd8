/**
 * The online store: the latest feature values per entity, for low-latency lookup by key.
 *
 * A backend (Redis, SQLite) stores opaque rows — an event time and one encoded string (or
 * null) per feature — under (view name, encoded entity key), and applies one write rule
 * atomically: a row replaces the stored one only when its event time is later, or equal
 * with different values; an older row is ignored. Everything else (typed values, statuses,
 * TTL, key encoding) lives once in ./index.ts, so every backend behaves the same.
 */

/** What a backend stores per entity per view. */
export interface StoredRow {
  /** Event time as epoch microseconds (exact as a double until the year 2255). */
  eventTimeUs: number;
  /** Encoded value per feature name (see codec.ts); null for a NULL value. */
  values: Record<string, string | null>;
}

/** A row to write: an encoded entity key (see encodeEntityKey) and its stored row. */
export interface StoredWrite extends StoredRow {
  key: string;
}

/** What a batch of writes did. `written + unchanged + skippedOlder` = rows given. */
export interface WriteCounts {
  /** Rows stored: a new entity, a later event time, or the same event time with other values. */
  written: number;
  /** Rows with the stored event time and the same values: nothing changed. */
  unchanged: number;
  /** Rows older than what the store holds for the entity: ignored (writes never go back in time). */
  skippedOlder: number;
}

export interface OnlineStore {
  readonly type: 'redis' | 'sqlite';
  /** Where the data lives, for messages and summaries (never credentials). */
  readonly location: string;
  /**
   * Rows for `keys` (encoded, no duplicates needed), in the same order; null when the store
   * has no row for a key. Only `features` need to be returned.
   */
  get(view: string, features: readonly string[], keys: readonly string[]): Promise<(StoredRow | null)[]>;
  /**
   * Upsert rows atomically per row with the write rule (later event time wins; equal event
   * time and other values replaces; older is ignored). Rows are applied in order.
   */
  put(view: string, rows: readonly StoredWrite[]): Promise<WriteCounts>;
  /** Remove every row of a view (tests, re-materialisation from scratch). Returns rows removed. */
  deleteView(view: string): Promise<number>;
  close(): Promise<void>;
}
