export * from './manifest';
export * from './ref';
export { ModelRegistry, checkMetadataAgainstSignature, type RegisterOptions } from './registry';
export { ModelCache, type CacheEvent, type EnsureResult } from './cache';
