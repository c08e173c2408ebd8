import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type InferflowConfig } from '../../lib/config/env';
import { ModelRegistry } from '../../lib/registry';
import { openStore } from '../../lib/storage';
import { registerExampleModel } from '../../cli/examples';
import { createLogger } from '../../lib/log';
import { openPipeline, type Pipeline } from '../../lib/pipeline/pipeline';
import { createResources, type Resources } from '../../lib/pipeline/resources';
import { TEST_POSTGRES_URL, TEST_REDIS_URL } from './services';

export { EXAMPLE_FEATURES, EXAMPLE_MODEL_DIR, REPO_ROOT } from '../../cli/examples';

/** A throwaway data dir (registry, cache, outputs) and a config pointing at it and at the test Redis and PostgreSQL databases (test/helpers/services.ts). */
export async function tempConfig(env: Record<string, string> = {}): Promise<{ config: InferflowConfig; dir: string; cleanup: () => Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inferflow-test-'));
  const config = loadConfig({ INFERFLOW_DATA_DIR: dir, INFERFLOW_LOG_LEVEL: 'warn', INFERFLOW_REDIS_URL: TEST_REDIS_URL, INFERFLOW_POSTGRES_URL: TEST_POSTGRES_URL, ...env });
  return { config, dir, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}

export { registerExampleModel as registerExample } from '../../cli/examples';

export async function exampleRegistry(config: InferflowConfig): Promise<ModelRegistry> {
  const registry = new ModelRegistry(openStore(config.registry));
  await registerExampleModel(registry);
  return registry;
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/**
 * The example model's pipeline, opened with its session from real Resources over `config` and
 * `registry` (the model registered there). Close the resources when done.
 */
export async function openExamplePipeline(config: InferflowConfig, registry: ModelRegistry): Promise<{ pipeline: Pipeline; resources: Resources }> {
  const resources = createResources(config, { registry, logger: createLogger('warn') });
  const { resolved } = await registry.resolve('fraud-detector');
  return { pipeline: await openPipeline({ model: resolved }, resources), resources };
}

/** The environment for python3 running a tritonclient script (test/helpers/python-global-setup.ts provides its PYTHONPATH). */
export function tritonClientEnv(pythonPath: string): NodeJS.ProcessEnv {
  return pythonPath ? { ...process.env, PYTHONPATH: pythonPath } : { ...process.env };
}
