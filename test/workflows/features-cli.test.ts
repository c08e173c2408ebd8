/**
 * `inferflow features …` as a user runs it (a child process through bin/inferflow.js) against a
 * real worker on the Temporal dev server, the real Redis and the example data.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXIT_CODES } from '../../cli/exit-codes';
import type { InferflowConfig } from '../../lib/config/env';
import { openOnlineStore } from '../../lib/features';
import { lit, withDuckDB } from '../../lib/io/duckdb';
import { REPO_ROOT, tempConfig, uniqueName } from '../helpers/env';
import { startWorker, type RunningWorker } from '../helpers/worker';
import { TEST_REDIS_URL } from '../helpers/services';

const run = promisify(execFile);
const SPEC = path.join(REPO_ROOT, 'examples/pipelines/fraud-features.json');
const STATS = path.join(REPO_ROOT, 'examples/data/customer_stats.parquet');
const SPINE = path.join(REPO_ROOT, 'examples/data/card_requests.parquet');
const END = '2026-10-14T00:00:00Z';
const redisPrefix = `inferflow-test-cli-${randomUUID().slice(0, 8)}`;
let config: InferflowConfig;
let dir: string;
let cleanup: () => Promise<void>;
let w: RunningWorker;

beforeAll(async () => {
  ({ config, dir, cleanup } = await tempConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), INFERFLOW_TASK_QUEUE: uniqueName('test-cli-features') }));
  w = await startWorker(config);
});
afterAll(async () => {
  await w?.stop();
  const redis = openOnlineStore({ type: 'redis', keyPrefix: redisPrefix }, { redisUrl: TEST_REDIS_URL, dataDir: dir });
  await redis.deleteView('customer_stats');
  await redis.close();
  await cleanup?.();
});

const cli = (...args: string[]) =>
  run(process.execPath, [path.join(REPO_ROOT, 'bin/inferflow.js'), 'features', ...args], {
    env: { ...process.env, TEMPORAL_ADDRESS: config.temporal.address, INFERFLOW_TASK_QUEUE: config.temporal.taskQueue, INFERFLOW_DATA_DIR: dir },
    cwd: REPO_ROOT,
  });
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: { code: number; stderr: string }) => e);

/** The latest row of each customer with event time ≤ END, straight from the example Parquet. */
async function latest(ids: number[]): Promise<Map<number, { ts: string; avg: number; count: bigint }>> {
  return withDuckDB(async (c) => {
    const r = await c.runAndReadAll(
      `SELECT customer_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ'), avg_amount_30d, txn_count_7d FROM read_parquet(${lit(STATS)})
       WHERE event_timestamp <= TIMESTAMPTZ '${END}' AND customer_id IN (${ids.join(', ')})
       QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY event_timestamp DESC) = 1`,
    );
    return new Map(r.getRowsJS().map((x) => [Number(x[0]), { ts: x[1] as string, avg: x[2] as number, count: x[3] as bigint }]));
  });
}

describe('inferflow features (CLI)', () => {
  it('historical: spine in, point-in-time joined Parquet out; --as-of gives one row per entity', async () => {
    const out = path.join(dir, 'training.parquet');
    const { stdout } = await cli('historical', '--view', SPEC, '--spine', SPINE, '-o', out);
    expect(stdout).toMatch(new RegExp(`wrote 20,000 rows to ${out}`));
    expect(stdout).toMatch(/customer_stats__txn_count_7d\s+BIGINT/);
    // No row gets a value from after its timestamp (checked against the source itself).
    const future = await withDuckDB(async (c) =>
      Number(
        (
          await c.runAndReadAll(
            `SELECT count(*) FROM read_parquet(${lit(out)}) t WHERE customer_stats__avg_amount_30d IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM read_parquet(${lit(STATS)}) s WHERE s.customer_id = t.customer_id AND s.event_timestamp <= t.event_timestamp AND s.avg_amount_30d = t.customer_stats__avg_amount_30d)`,
          )
        ).getRowsJS()[0]![0],
      ),
    );
    expect(future).toBe(0);
    const snap = await cli('historical', '--view', SPEC, '--as-of', '2026-10-15T00:00:00Z', '-o', path.join(dir, 'snap.parquet'));
    expect(snap.stdout).toContain('wrote 1,000 rows');
  });

  it('materialize --wait into the embedded store and into Redis, then online lookups give the latest values with statuses', async () => {
    const sqlitePath = path.join(dir, 'cli-online.sqlite');
    const m1 = await cli('materialize', '--view', SPEC, '--store', `sqlite:${sqlitePath}`, '--end', END, '--wait');
    expect(m1.stdout).toMatch(/started materialize-/);
    expect(m1.stdout).toMatch(/materialised 1 view\(s\), event times \(-∞, 2026-10-14T00:00:00.000Z\]/);
    expect(m1.stdout).toMatch(new RegExp(`customer_stats\\s+sqlite:${sqlitePath}\\s+[\\d,]+\\s+1,000\\s+1,000\\s+0\\s+0`));
    const m2 = await cli('materialize', '--view', SPEC, '--store', `redis:${redisPrefix}`, '--end', END, '--wait', '--workflow-id', uniqueName('cli-mat'));
    expect(m2.stdout).toMatch(new RegExp(`customer_stats\\s+${TEST_REDIS_URL.replace(/[./]/g, '\\$&')} .*\\s+1,000\\s+1,000\\s+0\\s+0`));

    const want = await latest([17, 42]);
    for (const store of [`sqlite:${sqlitePath}`, `redis:${redisPrefix}`]) {
      const { stdout } = await cli('online', '--view', SPEC, '--store', store, '--key', '17', '--key', '42', '--key', '424242', '--now', '2026-10-14T12:00:00Z', '--json');
      const vectors = JSON.parse(stdout) as { key: { customer_id: string }; features: Record<string, { value: unknown; status: string; eventTime: string | null }> }[];
      expect(vectors.map((v) => v.key.customer_id)).toEqual(['17', '42', '424242']);
      for (const [i, id] of [17, 42].entries()) {
        const f = vectors[i]!.features;
        expect(f.avg_amount_30d).toEqual({ value: want.get(id)!.avg, status: 'PRESENT', eventTime: want.get(id)!.ts });
        expect(f.txn_count_7d).toEqual({ value: String(want.get(id)!.count), status: 'PRESENT', eventTime: want.get(id)!.ts }); // int64 as a string
      }
      expect(vectors[2]!.features.home_lat).toEqual({ value: null, status: 'NOT_FOUND', eventTime: null });
      // A week later the 2-day TTL has expired: STALE, value withheld.
      const later = JSON.parse((await cli('online', '--view', SPEC, '--store', store, '--key', 'customer_id=17', '--now', '2026-10-21T00:00:00Z', '--json')).stdout) as typeof vectors;
      expect(later[0]!.features.avg_amount_30d).toEqual({ value: null, status: 'STALE', eventTime: want.get(17)!.ts });
    }
  });

  it('bad input exits 2 with a typed message; every command shows examples in --help', async () => {
    const badKey = await failure(cli('online', '--view', SPEC, '--key', 'nope=1'));
    expect(badKey?.code).toBe(EXIT_CODES.badInput);
    expect(badKey?.stderr).toContain('InvalidInput: invalid entity keys for view customer_stats: keys[0].customer_id: missing; keys[0].nope: not an entity column');
    const noSpine = await failure(cli('historical', '--view', SPEC, '-o', path.join(dir, 'x.parquet')));
    expect(noSpine?.stderr).toContain('give exactly one of --spine and --as-of');
    for (const cmd of ['historical', 'online', 'materialize']) {
      const { stdout } = await cli(cmd, '--help');
      expect(stdout).toMatch(new RegExp(`Examples:\\n  inferflow features ${cmd} --view examples/pipelines/fraud-features.json`));
    }
  });
});
