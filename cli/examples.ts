import fs from 'node:fs/promises';
import path from 'node:path';
import type { ModelRegistry } from '../lib/registry';
import { PACKAGE_ROOT } from '../lib/util/package-root';

export const REPO_ROOT = PACKAGE_ROOT;
export const EXAMPLE_MODEL_DIR = path.join(REPO_ROOT, 'examples', 'models', 'fraud-detector');
export const EXAMPLE_FEATURES = path.join(REPO_ROOT, 'examples', 'data', 'transactions.parquet');
/** The feature-store example: spine + point-in-time customer_stats + on-demand features + fitted transforms. */
export const FEATURES_MODEL_DIR = path.join(REPO_ROOT, 'examples', 'models', 'fraud-features');
export const FEATURES_PIPELINE = path.join(REPO_ROOT, 'examples', 'pipelines', 'fraud-features.json');
/** Python's scores for examples/data/card_requests.parquet (written by examples/train/train_fraud_features.py). */
export const FEATURES_EXPECTED = path.join(REPO_ROOT, 'examples', 'data', 'card_requests_expected.parquet');

/** Register a committed example model (idempotent: an identical artifact reuses its version). */
async function registerDir(registry: ModelRegistry, dir: string, name: string, alias: string) {
  const metadata: unknown = JSON.parse(await fs.readFile(path.join(dir, 'metadata.json'), 'utf8'));
  return registry.register(path.join(dir, 'model.onnx'), { name, metadata, alias, reuseIdentical: true });
}

/** The plain example model: a prepared feature file in, scores out. */
export async function registerExampleModel(registry: ModelRegistry, alias = 'production') {
  return registerDir(registry, EXAMPLE_MODEL_DIR, 'fraud-detector', alias);
}

/** The feature-store example model (transforms in its manifest). */
export async function registerFeaturesExampleModel(registry: ModelRegistry, alias = 'production') {
  return registerDir(registry, FEATURES_MODEL_DIR, 'fraud-features', alias);
}

export const RECOMMENDER_MODEL_DIR = path.join(REPO_ROOT, 'examples', 'models', 'recommender');
/** User × song candidate pairs of the recommender example, and Python's top-10 lists for them (examples/train/train_recommender.py). */
export const PLAYLIST_CANDIDATES = path.join(REPO_ROOT, 'examples', 'data', 'playlist_candidates.parquet');
export const PLAYLIST_EXPECTED = path.join(REPO_ROOT, 'examples', 'data', 'playlist_expected.parquet');

/** The ranking example model: candidate pairs in, a play probability per pair out. */
export async function registerRecommenderModel(registry: ModelRegistry, alias = 'production') {
  return registerDir(registry, RECOMMENDER_MODEL_DIR, 'recommender', alias);
}
