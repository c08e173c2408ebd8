import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { InvalidInputError } from '../errors';
import { FileObjectStore } from './file';
import { LazyS3ObjectStore } from './lazy-s3';
import type { ObjectStore } from './types';

export type { ObjectInfo, ObjectStore, PutOptions } from './types';
export { FileObjectStore, sha256File } from './file';
export { checkKey, joinKey } from './keys';

type StoreFactory = (url: URL, raw: string) => ObjectStore;

/** One factory per URL scheme. S3 stores load the AWS SDK on first use (lib/storage/s3.ts: S3ObjectStore, s3ClientFor). */
const factories: Record<string, StoreFactory> = {
  'file:': (_url, raw) => new FileObjectStore(localPathOf(raw)),
  's3:': (url) => {
    if (!url.hostname) throw new InvalidInputError(`invalid S3 location ${url.href}`, ['expected s3://BUCKET[/PREFIX]']);
    return new LazyS3ObjectStore({ bucket: url.hostname, prefix: decodeURIComponent(url.pathname) });
  },
};

export function registerStoreScheme(scheme: string, factory: StoreFactory): void {
  factories[scheme] = factory;
}

/** `file:///abs`, `file://rel/dir` (relative to cwd) or a bare path. */
export function localPathOf(location: string): string {
  if (!location.startsWith('file://')) return path.resolve(location);
  if (location.startsWith('file:///')) return fileURLToPath(location);
  return path.resolve(location.slice('file://'.length));
}

/** Open the object store a location URL points at (`file://…`, a plain path, or `s3://…`). */
export function openStore(location: string): ObjectStore {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) return new FileObjectStore(path.resolve(location));
  const url = new URL(location);
  const factory = factories[url.protocol];
  if (!factory) {
    throw new InvalidInputError(`unsupported storage location ${location}`, [
      `scheme ${url.protocol} is not one of ${Object.keys(factories).join(', ')}`,
    ]);
  }
  return factory(url, location);
}
