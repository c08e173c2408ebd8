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

/** The multi-class example (three risk tiers) and its post-processed pipeline; Python's outputs for the first 2,000 rows of transactions.parquet. */
export const RISK_TIER_MODEL_DIR = path.join(REPO_ROOT, 'examples', 'models', 'risk-tier');
export const RISK_TIER_PIPELINE = path.join(REPO_ROOT, 'examples', 'pipelines', 'risk-tier.json');
export const RISK_TIER_EXPECTED = path.join(REPO_ROOT, 'examples', 'data', 'risk_tier_expected.parquet');
/** The risk-tier pipeline's user post-processor module (register as `risk`). */
export const RISK_MODULE = path.join(REPO_ROOT, 'examples', 'features', 'risk.ts');
/** The multi-output regression example (next 7 and 30 days' spend) and Python's outputs for the first 2,000 rows. */
export const SPEND_FORECAST_MODEL_DIR = path.join(REPO_ROOT, 'examples', 'models', 'spend-forecast');
export const SPEND_FORECAST_EXPECTED = path.join(REPO_ROOT, 'examples', 'data', 'spend_forecast_expected.parquet');

/** The embedding example (an 8-float vector per transaction), its pipeline, and scikit-learn's vectors for the first 2,000 rows of transactions.parquet. */
export const EMBEDDING_MODEL_DIR = path.join(REPO_ROOT, 'examples', 'models', 'transaction-embedding');
export const EMBEDDING_PIPELINE = path.join(REPO_ROOT, 'examples', 'pipelines', 'transaction-embedding.json');
export const EMBEDDING_EXPECTED = path.join(REPO_ROOT, 'examples', 'data', 'transaction_embedding_expected.parquet');

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

/** The multi-class and multi-output regression examples (examples/train/train_multi_output.py). */
export async function registerMultiOutputExampleModels(registry: ModelRegistry, alias = 'production') {
  return {
    riskTier: await registerDir(registry, RISK_TIER_MODEL_DIR, 'risk-tier', alias),
    spendForecast: await registerDir(registry, SPEND_FORECAST_MODEL_DIR, 'spend-forecast', alias),
  };
}

/** The embedding example (examples/train/train_embedding.py). */
export async function registerEmbeddingModel(registry: ModelRegistry, alias = 'production') {
  return registerDir(registry, EMBEDDING_MODEL_DIR, 'transaction-embedding', alias);
}

export const RECOMMENDER_MODEL_DIR = path.join(REPO_ROOT, 'examples', 'models', 'recommender');
/** User × song candidate pairs of the recommender example, and Python's top-10 lists for them (examples/train/train_recommender.py). */
export const PLAYLIST_CANDIDATES = path.join(REPO_ROOT, 'examples', 'data', 'playlist_candidates.parquet');
export const PLAYLIST_EXPECTED = path.join(REPO_ROOT, 'examples', 'data', 'playlist_expected.parquet');

/** The ranking example model: candidate pairs in, a play probability per pair out. */
export async function registerRecommenderModel(registry: ModelRegistry, alias = 'production') {
  return registerDir(registry, RECOMMENDER_MODEL_DIR, 'recommender', alias);
}
