import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildProgram } from '../../cli/index';
import { DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, DEFAULT_TEMPORAL_ADDRESS, TEMPORAL_CLI_VERSION, loadConfig } from '../../lib/config/env';
import { SEARCH_ATTRIBUTE_FLAGS } from '../../devservices/temporal';
import { SEAWEEDFS_VERSION } from '../../devservices/seaweedfs';
import { REPO_ROOT } from '../helpers/env';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

/** The services that run Inferflow itself (the image built from the Dockerfile). */
const INFERFLOW_SERVICES = ['worker', 'serve'];

describe('docker-compose.yml stays in step with the project configuration', async () => {
  const text = await fs.readFile(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
  const compose = parse(text) as { services: Record<string, Service> };
  const s = compose.services;
  const pkg = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };

  it('has the whole stack', () => {
    expect(Object.keys(s).sort()).toEqual(['nats', 'postgres', 'redis', 'seaweedfs', 'serve', 'temporal', 'worker']);
  });

  it('runs the pinned Temporal CLI with the default ports and our search attributes', () => {
    expect(s.temporal!.image).toBe(`temporalio/temporal:${TEMPORAL_CLI_VERSION}`);
    const port = DEFAULT_TEMPORAL_ADDRESS.split(':')[1];
    expect(s.temporal!.ports).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^"?${port}:${port}`)), expect.stringMatching(/^"?8233:8233/)]));
    const cmd = s.temporal!.command!;
    for (const flag of SEARCH_ATTRIBUTE_FLAGS) expect(cmd[cmd.indexOf(flag) - 1]).toBe('--search-attribute');
  });

  it('runs SeaweedFS at the version the tests use', () => {
    expect(s.seaweedfs!.image).toBe(`chrislusf/seaweedfs:${SEAWEEDFS_VERSION}`);
  });

  it('gives every backend an Inferflow process waits for a healthcheck', () => {
    for (const name of ['temporal', 'postgres', 'redis', 'seaweedfs']) expect(s[name]!.healthcheck?.test.length, name).toBeGreaterThan(1);
  });

  it('runs worker and serve through the package bin entry, the CLI commands that exist', () => {
    const program = buildProgram();
    for (const name of INFERFLOW_SERVICES) {
      const cmd = s[name]!.command!;
      expect(s[name]!.build).toBe('.');
      expect(cmd.slice(0, 2)).toEqual(['node', pkg.bin.inferflow]);
      expect(program.commands.map((c) => c.name())).toContain(cmd[2]);
    }
    expect(s.worker!.command![2]).toBe('worker');
    expect(s.serve!.command![2]).toBe('serve');
    expect(s.serve!.ports).toContain('8080:8080');
  });

  it('points worker and serve at the compose services, waiting until they are healthy', () => {
    expect(s.serve!.environment).toEqual(s.worker!.environment);
    for (const name of INFERFLOW_SERVICES) {
      const env = s[name]!.environment!;
      expect(env.TEMPORAL_ADDRESS).toBe(`temporal:${DEFAULT_TEMPORAL_ADDRESS.split(':')[1]}`);
      expect(env.INFERFLOW_TASK_QUEUE).toBe(DEFAULT_TASK_QUEUE);
      expect(env.TEMPORAL_NAMESPACE).toBe(DEFAULT_NAMESPACE);
      expect(env.AWS_ENDPOINT_URL_S3).toMatch(/^http:\/\/seaweedfs:\d+$/);
      expect(new URL(env.INFERFLOW_REDIS_URL!).hostname).toBe('redis');
      expect(new URL(env.INFERFLOW_POSTGRES_URL!).hostname).toBe('postgres');
      const config = loadConfig(env, '/app');
      expect(config.redisUrl).toBe(env.INFERFLOW_REDIS_URL);
      expect(config.postgresUrl).toBe(env.INFERFLOW_POSTGRES_URL);
      for (const dep of ['temporal', 'postgres', 'redis', 'seaweedfs']) expect(s[name]!.depends_on?.[dep]?.condition, `${name} → ${dep}`).toBe('service_healthy');
    }
  });

  it('exposes services on the ports the tests and docs use', () => {
    expect(s.postgres!.ports).toContain('5432:5432');
    expect(s.redis!.ports).toContain('6379:6379');
    expect(s.nats!.ports).toContain('4222:4222');
    expect(s.nats!.command).toContain('-js');
  });

  it('the docker compose lines of docs/operations.md name services and CLI commands that exist', async () => {
    const readme = await fs.readFile(path.join(REPO_ROOT, 'docs', 'operations.md'), 'utf8');
    const lines = readme.split('\n').filter((l) => l.startsWith('docker compose '));
    expect(lines.length).toBeGreaterThan(0);
    const program = buildProgram();
    for (const line of lines) {
      const run = /^docker compose run --rm (\S+) node bin\/inferflow\.js (\S+)/.exec(line);
      if (!run) continue;
      expect(Object.keys(s), line).toContain(run[1]);
      expect(program.commands.map((c) => c.name()), line).toContain(run[2]);
    }
  });

  // .ci/run installs docker-compose where it can; elsewhere the checks above are what runs.
  const hasCompose = !spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).error;
  it.skipIf(!hasCompose)('is a valid compose file (docker-compose config)', () => {
    const r = spawnSync('docker-compose', ['-f', path.join(REPO_ROOT, 'docker-compose.yml'), 'config', '-q'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
