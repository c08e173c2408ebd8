import fs from 'node:fs/promises';
import path from 'node:path';
import type { ModelRegistry } from '../lib/registry';

export const REPO_ROOT = path.resolve(__dirname, '..');
export const EXAMPLE_MODEL_DIR = path.join(REPO_ROOT, 'examples', 'models', 'fraud-detector');
export const EXAMPLE_FEATURES = path.join(REPO_ROOT, 'examples', 'data', 'transactions.parquet');

/** Register the committed example model (idempotent: an identical artifact reuses its version). */
export async function registerExampleModel(registry: ModelRegistry, alias = 'production') {
  const metadata: unknown = JSON.parse(await fs.readFile(path.join(EXAMPLE_MODEL_DIR, 'metadata.json'), 'utf8'));
  return registry.register(path.join(EXAMPLE_MODEL_DIR, 'model.onnx'), { name: 'fraud-detector', metadata, alias, reuseIdentical: true });
}
