import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_FEATURE_MODULES, DEFAULT_TASK_QUEUE, EXAMPLES_DATA_DIR, loadConfig } from '../../lib/config/env';

describe('configuration from the environment', () => {
  it('has working defaults', () => {
    const c = loadConfig({}, '/srv/app');
    expect(c.temporal).toMatchObject({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: DEFAULT_TASK_QUEUE });
    expect(c.temporal.tls).toBeUndefined();
    expect(c.dataDir).toBe(path.resolve('/srv/app/.data'));
    expect(c.registry).toBe('file:///srv/app/.data/registry');
    expect(c.modelCacheDir).toBe('/srv/app/.data/cache/models');
    expect(c.ortThreads).toBe(1);
  });

  it('turns on TLS for an API key (Temporal Cloud) and keeps the key out of other fields', () => {
    const c = loadConfig({ TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'ns.acct', TEMPORAL_API_KEY: 'sekret' });
    expect(c.temporal.tls).toBeDefined();
    expect(c.temporal.apiKey).toBe('sekret');
    expect(JSON.stringify({ ...c, temporal: { ...c.temporal, apiKey: undefined } })).not.toContain('sekret');
  });

  it('reads the serve model options (alias polling, dynamic batching) with their defaults', () => {
    expect(loadConfig({}).serveModel).toEqual({ pollMs: 5_000, batching: true, maxBatchRows: 64, maxQueueDelayUs: 500 });
    expect(loadConfig({ INFERFLOW_SERVE_POLL_MS: '0', INFERFLOW_SERVE_BATCHING: 'false', INFERFLOW_SERVE_MAX_BATCH_ROWS: '8', INFERFLOW_SERVE_MAX_QUEUE_DELAY_US: '0' }).serveModel).toEqual({ pollMs: 0, batching: false, maxBatchRows: 8, maxQueueDelayUs: 0 });
    expect(() => loadConfig({ INFERFLOW_SERVE_MAX_BATCH_ROWS: '0' })).toThrow(/INFERFLOW_SERVE_MAX_BATCH_ROWS/);
    expect(() => loadConfig({ INFERFLOW_SERVE_POLL_MS: 'soon' })).toThrow(/INFERFLOW_SERVE_POLL_MS/);
  });

  it('names the variable that is wrong', () => {
    expect(() => loadConfig({ INFERFLOW_ORT_THREADS: 'many' })).toThrow(ConfigError);
    expect(() => loadConfig({ INFERFLOW_ORT_THREADS: 'many' })).toThrow(/INFERFLOW_ORT_THREADS/);
    expect(() => loadConfig({ INFERFLOW_LOG_LEVEL: 'loud' })).toThrow(/INFERFLOW_LOG_LEVEL/);
  });

  it('rejects a TEMPORAL_ADDRESS that is not host:port at load, naming the variable and the value', () => {
    for (const bad of ['nohostport', 'http://127.0.0.1:7233', 'host:0', 'host:70000', ':7233']) {
      expect(() => loadConfig({ TEMPORAL_ADDRESS: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ TEMPORAL_ADDRESS: bad })).toThrow(`TEMPORAL_ADDRESS: must be host:port (e.g. 127.0.0.1:7233), got ${JSON.stringify(bad)}`);
    }
    for (const good of ['127.0.0.1:7233', 'temporal:7233', '[::1]:7233', 'my-ns.a1b2c.tmprl.cloud:7233']) expect(loadConfig({ TEMPORAL_ADDRESS: good }).temporal.address).toBe(good);
  });
});

describe('worker confinement settings', () => {
  it('registers the example feature module by default, INFERFLOW_MODULES otherwise (none: no modules)', () => {
    expect(loadConfig({}, '/srv/app').modules).toEqual(DEFAULT_FEATURE_MODULES);
    expect(loadConfig({ INFERFLOW_MODULES: 'fraud=features/fraud.ts, geo=/opt/geo.js' }, '/srv/app').modules).toEqual([
      { name: 'fraud', path: '/srv/app/features/fraud.ts' },
      { name: 'geo', path: '/opt/geo.js' },
    ]);
    expect(loadConfig({ INFERFLOW_MODULES: 'none' }).modules).toEqual([]);
    expect(() => loadConfig({ INFERFLOW_MODULES: 'features/fraud.ts' })).toThrow(/INFERFLOW_MODULES: "features\/fraud.ts" is not NAME=PATH/);
    expect(() => loadConfig({ INFERFLOW_MODULES: 'a=x.ts,a=y.ts' })).toThrow(/module name a is given twice/);
  });

  it('allows the data, output and example data directories, plus INFERFLOW_ALLOWED_ROOTS', () => {
    expect(loadConfig({}, '/srv/app').allowedRoots).toEqual(['/srv/app/.data', '/srv/app/.data/predictions', EXAMPLES_DATA_DIR]);
    const c = loadConfig({ INFERFLOW_OUTPUT: 's3://out/predictions', INFERFLOW_ALLOWED_ROOTS: 'shared, file:///mnt/lake,s3://lake/features' }, '/srv/app');
    expect(c.allowedRoots).toEqual(['/srv/app/.data', 's3://out/predictions', EXAMPLES_DATA_DIR, '/srv/app/shared', '/mnt/lake', 's3://lake/features']);
    expect(() => loadConfig({ INFERFLOW_ALLOWED_ROOTS: 'http://x/y' })).toThrow(/INFERFLOW_ALLOWED_ROOTS: http:\/\/x\/y/);
  });
});
