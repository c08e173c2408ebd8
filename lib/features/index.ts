/**
 * Feature views and point-in-time correct offline retrieval (see docs/features.md).
 *
 *   const r = await getHistoricalFeatures({ spine: 'labels.parquet', views: [view], output: 'training.parquet' });
 */
export { getHistoricalFeatures, dtypeAccepts, DEFAULT_ENTITY_TIMESTAMP_FIELD, DEFAULT_ROW_NUMBER_COLUMN, DUCKDB_TYPE_OF } from './offline';
export type { AllEntitiesSpine, HistoricalFeaturesRequest, HistoricalFeaturesResult } from './offline';
export { FeatureViewSchema, FeatureSourceSchema, FileSourceSchema, PostgresSourceSchema, FeatureSchema, FEATURE_DTYPES, checkFeatureView, checkFeatureViews, parseFeatureView, durationSeconds, outputColumnName } from './spec';
export type { Feature, FeatureDtype, FeatureSource, FeatureView, FeatureViewInput } from './spec';
export { materializeView } from './materialize';
export type { MaterializeRequest, MaterializeResult, MaterializeProgress } from './materialize';
export type { PostgresSourceSettings, EventTimeWindow } from '../postgres/features';
export {
  getOnlineFeatures,
  writeOnlineFeatures,
  openOnlineStore,
  parseOnlineStoreSpec,
  defaultSqlitePath,
  OnlineStoreSpecSchema,
  DEFAULT_ONLINE_STORE,
  RedisOnlineStore,
  SqliteOnlineStore,
} from './online';
export type { OnlineStore, OnlineStoreSpec, OnlineStoreContext, OnlineFeatureVector, OnlineFeatureValue, FeatureStatus, OnlineWriteRow, EntityKeyInput, FeatureValue, WriteCounts } from './online';
