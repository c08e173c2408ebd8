import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, DEFAULT_TEMPORAL_ADDRESS, TEMPORAL_CLI_VERSION } from '../../lib/config/env';
import { SEARCH_ATTRIBUTE_FLAGS } from '../../devservices/temporal';
import { REPO_ROOT } from '../helpers/env';

interface Service {
  image?: string;
  command?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, unknown>;
}

describe('docker-compose.yml stays in step with the project configuration', async () => {
  const compose = parse(await fs.readFile(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };
  const s = compose.services;

  it('has the whole stack', () => {
    expect(Object.keys(s).sort()).toEqual(['nats', 'postgres', 'redis', 'seaweedfs', 'temporal', 'worker']);
  });

  it('runs the pinned Temporal CLI with the default ports and our search attributes', () => {
    expect(s.temporal!.image).toBe(`temporalio/temporal:${TEMPORAL_CLI_VERSION}`);
    const port = DEFAULT_TEMPORAL_ADDRESS.split(':')[1];
    expect(s.temporal!.ports).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^"?${port}:${port}`)), expect.stringMatching(/^"?8233:8233/)]));
    const cmd = s.temporal!.command!;
    for (const flag of SEARCH_ATTRIBUTE_FLAGS) expect(cmd[cmd.indexOf(flag) - 1]).toBe('--search-attribute');
  });

  it('points the worker at the temporal service with the default task queue and namespace', () => {
    const env = s.worker!.environment!;
    expect(env.TEMPORAL_ADDRESS).toBe(`temporal:${DEFAULT_TEMPORAL_ADDRESS.split(':')[1]}`);
    expect(env.INFERFLOW_TASK_QUEUE).toBe(DEFAULT_TASK_QUEUE);
    expect(env.TEMPORAL_NAMESPACE).toBe(DEFAULT_NAMESPACE);
    expect(s.worker!.depends_on).toHaveProperty('temporal');
    expect(env.AWS_ENDPOINT_URL_S3).toMatch(/^http:\/\/seaweedfs:\d+$/);
  });

  it('exposes services on the ports the tests and docs use', () => {
    expect(s.postgres!.ports).toContain('5432:5432');
    expect(s.redis!.ports).toContain('6379:6379');
    expect(s.nats!.ports).toContain('4222:4222');
    expect(s.nats!.command).toContain('-js');
  });
});
