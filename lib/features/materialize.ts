/**
 * Materialisation: copy the latest row per entity with event time in (start, end] from a
 * view's offline source into an online store.
 *
 * DuckDB reads the source exactly as offline retrieval does (offline.ts's readViewSource: the
 * same file / object-store / PostgreSQL resolution, column checks, casts and tie-break between
 * rows with equal event times), keeps the latest event time per entity, and streams the result
 * to JavaScript in chunks that are written to the store one batch at a time — memory stays
 * bounded by the chunk size, not the source. The store's write rule makes a run idempotent:
 * re-running a window changes nothing, and an older window run after a newer one never
 * overwrites newer values (those rows are counted as skippedOlder).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InvalidInputError } from '../errors';
import { ident, lit, withDuckDB } from '../io/duckdb';
import { readViewSource, VIEW_TABLE_COLUMNS } from './offline';
import type { PostgresSourceSettings } from '../postgres/features';
import { checkFeatureView, outputColumnName, type FeatureView } from './spec';
import { storedWrite, type OnlineStore, type StoredWrite } from './online';

export interface MaterializeRequest {
  /** The feature view spec (validated here). */
  view: unknown;
  store: OnlineStore;
  /** Exclusive lower bound of event times; absent: everything up to `end`. */
  start?: Date;
  /** Inclusive upper bound of event times. */
  end: Date;
  /** Entities written per store batch (and the most held in memory at once). Default 10,000. */
  chunkRows?: number;
  /** Connection for PostgreSQL sources (INFERFLOW_POSTGRES_URL); unset: the PG* variables. */
  postgres?: PostgresSourceSettings;
  /** Roots a file source must lie in (a worker's allowedRoots); unset: anywhere. */
  allowedRoots?: readonly string[];
  /** DuckDB threads. Default: the machine's available parallelism. */
  threads?: number;
  /** Parent of the temporary directory (downloads, exports, DuckDB spill files). Default: the OS temp dir. */
  tempDir?: string;
  /** Called after each batch is written (heartbeats, progress). */
  onProgress?: (p: MaterializeProgress) => void;
}

export interface MaterializeProgress {
  /** Source rows inside the window (with a key and an event time). */
  rowsRead: number;
  /** Entities in the window (one row each: its latest). */
  entities: number;
  /** Entities handled so far. */
  entitiesDone: number;
}

export interface MaterializeResult {
  view: string;
  /** Where the rows went (no credentials). */
  store: string;
  /** ISO times of the window: (start, end]; start null = from the beginning. */
  start: string | null;
  end: string;
  rowsRead: number;
  /** Entities in the window = written + unchanged + skippedOlder. */
  entities: number;
  /** Entities stored (new, later event time, or a correction at the same event time). */
  written: number;
  /** Entities the store already had with this event time and these values. */
  unchanged: number;
  /** Entities the store already had with a later event time: left alone. */
  skippedOlder: number;
  durationMs: number;
}

/**
 * Materialise one view into an online store.
 * @throws InvalidInputError an invalid view or window
 * @throws SchemaMismatchError / NotFoundError the source does not fit the view or does not exist (as in getHistoricalFeatures)
 * @throws TransientError the store or PostgreSQL stayed unreachable through its retries
 */
export async function materializeView(req: MaterializeRequest): Promise<MaterializeResult> {
  const started = Date.now();
  const checked = checkFeatureView(req.view, 'view');
  const problems = [...checked.problems];
  if (!(req.end instanceof Date) || Number.isNaN(req.end.getTime())) problems.push('end: must be a valid time');
  if (req.start !== undefined && (!(req.start instanceof Date) || Number.isNaN(req.start.getTime()))) problems.push('start: must be a valid time');
  else if (req.start !== undefined && req.start.getTime() >= req.end.getTime()) problems.push(`start: ${req.start.toISOString()} must be before end ${req.end.toISOString()}`);
  if (req.chunkRows !== undefined && (!Number.isInteger(req.chunkRows) || req.chunkRows < 1)) problems.push('chunkRows: must be a positive integer');
  if (problems.length > 0 || !checked.view) throw new InvalidInputError('invalid materialisation request', problems);
  const view: FeatureView = checked.view;
  const window = { ...(req.start ? { start: req.start } : {}), end: req.end };
  const chunkRows = req.chunkRows ?? 10_000;

  const tmp = await fs.mkdtemp(path.join(req.tempDir ?? os.tmpdir(), 'inferflow-materialize-'));
  try {
    return await withDuckDB(
      async (conn) => {
        await conn.run(`SET temp_directory = ${lit(path.join(tmp, 'duckdb'))}`);
        const { prepared, rowsRead } = await readViewSource(conn, { view, tmp, postgres: req.postgres ?? {}, allowedRoots: req.allowedRoots, window });
        const keys = view.entities.map((_, i) => ident(VIEW_TABLE_COLUMNS.key(i)));
        const ts = ident(VIEW_TABLE_COLUMNS.ts);
        // The latest (already tie-broken) row per entity; event time in whole microseconds (floor).
        await conn.run(
          `CREATE TEMP TABLE __inferflow_latest AS
             SELECT * FROM ${prepared.table}
             QUALIFY row_number() OVER (PARTITION BY ${keys.join(', ')} ORDER BY ${ts} DESC) = 1`,
        );
        await conn.run(`DROP TABLE ${prepared.table}`);
        const entities = Number((await conn.runAndReadAll('SELECT count(*) FROM __inferflow_latest')).getRowsJS()[0]![0]);
        const select = [
          ...keys.map((k) => `CAST(${k} AS VARCHAR)`),
          `CASE WHEN ${ts} >= 0 THEN ${ts} // 1000 ELSE -((-${ts} + 999) // 1000) END`,
          ...view.features.map((f) => ident(outputColumnName(view.name, f.name))),
        ];
        const result = await conn.stream(`SELECT ${select.join(', ')} FROM __inferflow_latest`);
        const counts = { written: 0, unchanged: 0, skippedOlder: 0 };
        let done = 0;
        let batch: StoredWrite[] = [];
        const flush = async () => {
          if (batch.length === 0) return;
          const c = await req.store.put(view.name, batch);
          counts.written += c.written;
          counts.unchanged += c.unchanged;
          counts.skippedOlder += c.skippedOlder;
          done += batch.length;
          batch = [];
          req.onProgress?.({ rowsRead, entities, entitiesDone: done });
        };
        const nk = view.entities.length;
        for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
          for (const row of chunk.getRows()) {
            const key = Object.fromEntries(view.entities.map((e, i) => [e, row[i] as string]));
            const values = Object.fromEntries(view.features.map((f, i) => [f.name, row[nk + 1 + i]]));
            batch.push(storedWrite(view, key, Number(row[nk]), values));
            if (batch.length >= chunkRows) await flush();
          }
        }
        await flush();
        return {
          view: view.name,
          store: req.store.location,
          start: req.start ? req.start.toISOString() : null,
          end: req.end.toISOString(),
          rowsRead,
          entities,
          ...counts,
          durationMs: Date.now() - started,
        };
      },
      { threads: req.threads ?? os.availableParallelism() },
    );
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
