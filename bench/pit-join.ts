/**
 * Point-in-time join benchmark (lib/features getHistoricalFeatures), not a test.
 *
 *   npx tsx bench/pit-join.ts [--rows 1000000] [--feature-rows N] [--entities N] [--threads N] [--repeat 3] [--seed 42]
 *
 * Generates seeded synthetic Parquet data with DuckDB (values derive from hash(row, seed), so
 * the same arguments give the same files on any machine and thread count): a spine of
 * `--rows` (customer_id, event_timestamp, label) rows and one feature view of `--feature-rows`
 * rows (default 5 × rows) over `--entities` customers (default rows / 5) spread over 90 days,
 * with a created time (so duplicate event times go through the tie-break; ~1 row in 50 shares
 * its entity and event time with another), four features (DOUBLE, BIGINT, FLOAT, VARCHAR) and
 * a 30-day TTL. Then times getHistoricalFeatures end to end (read both files, dedupe, ASOF
 * join, write the output Parquet) `--repeat` times and reports spine rows per second.
 * Writes bench/results/pit-join-<YYYY-MM-DD>.json.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getHistoricalFeatures, type FeatureViewInput } from '../lib/features';
import { lit, scalar, withDuckDB } from '../lib/io/duckdb';
import { hostInfo, loadAverage, packageVersion, sourceState, writeDailyResults } from './machine';
import { median } from './stats';
import { REPO_ROOT } from '../cli/examples';


function intArg(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min} (got ${value})`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string' },
      'feature-rows': { type: 'string' },
      entities: { type: 'string' },
      threads: { type: 'string' },
      repeat: { type: 'string' },
      seed: { type: 'string' },
      keep: { type: 'boolean' },
    },
  });
  const rows = intArg('rows', values.rows, 1_000_000);
  const featureRows = intArg('feature-rows', values['feature-rows'], rows * 5);
  const entities = intArg('entities', values.entities, Math.max(1, Math.floor(rows / 5)));
  const threads = intArg('threads', values.threads, os.availableParallelism());
  const repeat = intArg('repeat', values.repeat, 3);
  const seed = intArg('seed', values.seed, 42, 0);

  const loadBefore = loadAverage();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-pit-bench-'));
  const spinePath = path.join(dir, 'spine.parquet');
  const featuresPath = path.join(dir, 'customer_features.parquet');
  const output = path.join(dir, 'training.parquet');
  const base = '2026-01-01 00:00:00';
  const spanSeconds = 90 * 86_400;
  try {
    // Data: every value is a function of (row number, seed), independent of thread scheduling.
    const t0 = performance.now();
    await withDuckDB(
      async (c) => {
        const h = (i: string, salt: number) => `hash(${i}, ${seed * 1000 + salt})`;
        // About 1 row in 50 copies the entity and event time of the row before it (a duplicate event time).
        await c.run(`COPY (
            SELECT (${h('k', 1)} % ${entities})::BIGINT AS customer_id,
                   ts AS event_ts,
                   ts + to_seconds((${h('i', 3)} % 7200)::BIGINT) AS created_ts,
                   ((${h('i', 4)} % 1000000)::DOUBLE / 100) AS amount_30d,
                   (${h('i', 5)} % 500)::BIGINT AS txn_count_30d,
                   ((${h('i', 6)} % 10000)::FLOAT / 10000) AS risk_score,
                   'segment_' || (${h('i', 7)} % 8)::VARCHAR AS segment
            FROM (SELECT i, k, TIMESTAMP ${lit(base)} + to_seconds((${h('k', 2)} % ${spanSeconds})::BIGINT) AS ts
                  FROM (SELECT range AS i, CASE WHEN range > 0 AND ${h('range', 8)} % 50 = 0 THEN range - 1 ELSE range END AS k FROM range(${featureRows})))
            ORDER BY i
          ) TO ${lit(featuresPath)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)`);
        await c.run(`COPY (
            SELECT (${h('range', 11)} % ${entities})::BIGINT AS customer_id,
                   TIMESTAMP ${lit(base)} + to_seconds((${h('range', 12)} % ${spanSeconds})::BIGINT) AS event_timestamp,
                   (${h('range', 13)} % 2)::INTEGER AS label
            FROM range(${rows})
          ) TO ${lit(spinePath)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)`);
      },
      { threads },
    );
    const generateSeconds = (performance.now() - t0) / 1000;

    const view: FeatureViewInput = {
      name: 'customer',
      entities: ['customer_id'],
      timestampField: 'event_ts',
      createdField: 'created_ts',
      source: { type: 'file', path: featuresPath },
      features: [
        { name: 'amount_30d', dtype: 'float64' },
        { name: 'txn_count_30d', dtype: 'int64' },
        { name: 'risk_score', dtype: 'float32' },
        { name: 'segment', dtype: 'string' },
      ],
      ttl: '30d',
    };

    console.log(`spine ${rows.toLocaleString('en-US')} rows, feature view ${featureRows.toLocaleString('en-US')} rows over ${entities.toLocaleString('en-US')} entities; data generated in ${generateSeconds.toFixed(1)} s; DuckDB threads ${threads}`);
    const runs: { seconds: number; rowsPerSecond: number }[] = [];
    let columns: string[] = [];
    for (let r = 0; r < repeat; r++) {
      await fs.rm(output, { force: true });
      const t = performance.now();
      const res = await getHistoricalFeatures({ spine: spinePath, views: [view], output, threads });
      const seconds = (performance.now() - t) / 1000;
      if (res.rows !== rows) throw new Error(`expected ${rows} output rows, got ${res.rows}`);
      columns = res.columns.map((c) => `${c.name} ${c.type}`);
      runs.push({ seconds, rowsPerSecond: Math.round(rows / seconds) });
      console.log(`run ${r + 1}/${repeat}: ${seconds.toFixed(2)} s, ${Math.round(rows / seconds).toLocaleString('en-US')} spine rows/s`);
    }

    const stats = await withDuckDB(async (c) => ({
      matched: Number(await scalar(c, `SELECT count(customer__amount_30d) FROM read_parquet(${lit(output)})`)),
      distinctFeatureKeys: Number(await scalar(c, `SELECT count(*) FROM (SELECT DISTINCT customer_id, event_ts FROM read_parquet(${lit(featuresPath)}))`)),
    }));
    const [spineBytes, featureBytes, outputBytes] = await Promise.all([spinePath, featuresPath, output].map(async (p) => (await fs.stat(p)).size));
    const best = Math.min(...runs.map((r) => r.seconds));
    const med = median(runs.map((r) => r.seconds));
    for (const r of runs) r.seconds = Number(r.seconds.toFixed(3));
    const date = new Date();
    const result = {
      benchmark: 'pit-join',
      schema: 1,
      date: date.toISOString(),
      command: `npx tsx bench/pit-join.ts ${process.argv.slice(2).join(' ')}`.trim(),
      machine: {
        ...hostInfo(),
        duckdbNodeApi: packageVersion('@duckdb/node-api'),
        /** 1/5/15-minute load averages before and after: the machine may be shared. */
        loadAverageBefore: loadBefore,
        loadAverageAfter: loadAverage(),
      },
      source: sourceState(REPO_ROOT, ['lib/features', 'lib/io', 'bench/pit-join.ts']),
      settings: { spineRows: rows, featureRows, entities, threads, repeat, seed, ttl: view.ttl, features: view.features.length, spanDays: 90 },
      data: {
        generateSeconds: Number(generateSeconds.toFixed(3)),
        spineBytes,
        featureBytes,
        outputBytes,
        featureRowsAfterDedupe: stats.distinctFeatureKeys,
        duplicateEventTimes: featureRows - stats.distinctFeatureKeys,
      },
      outputColumns: columns,
      matchedRows: stats.matched,
      matchedFraction: Number((stats.matched / rows).toFixed(4)),
      runs,
      bestSeconds: Number(best.toFixed(3)),
      medianSeconds: Number(med.toFixed(3)),
      rowsPerSecondBest: Math.round(rows / best),
      rowsPerSecondMedian: Math.round(rows / med),
      note: 'End to end getHistoricalFeatures: read spine and source Parquet, dedupe the source per (entity, event time), ASOF LEFT JOIN, TTL, write the output Parquet. Rows/s counts spine rows.',
    };
    const written = await writeDailyResults('pit-join', date, result);
    console.log(
      `median ${med.toFixed(2)} s → ${result.rowsPerSecondMedian.toLocaleString('en-US')} spine rows/s (best ${result.rowsPerSecondBest.toLocaleString('en-US')}); ${(result.matchedFraction * 100).toFixed(1)}% of spine rows matched a feature row; wrote ${written}`,
    );
  } finally {
    if (!values.keep) await fs.rm(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
