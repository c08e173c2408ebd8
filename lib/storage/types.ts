import type { Readable } from 'node:stream';

export interface ObjectInfo {
  key: string;
  size: number;
  /** Opaque version tag: changes whenever the object changes (used for conditional writes). */
  etag: string;
}

export interface PutOptions {
  /** Only write if no object exists at the key (create-only). */
  ifNoneMatch?: boolean;
  /** Only write if the current object's etag equals this value (compare-and-swap). */
  ifMatch?: string;
  contentType?: string;
}

/**
 * A small object-storage interface: keys are `/`-separated relative paths under the store's
 * root (a directory for `file://`, a bucket + prefix for `s3://`).
 */
export interface ObjectStore {
  /** Where this store points, for messages (never contains credentials). */
  readonly url: string;
  head(key: string): Promise<ObjectInfo | undefined>;
  getStream(key: string): Promise<Readable>;
  getBytes(key: string): Promise<Buffer>;
  /** Write an object. Throws `PreconditionFailedError` when a condition does not hold. */
  put(key: string, body: Buffer | string | Readable, options?: PutOptions): Promise<ObjectInfo>;
  /** Upload a local file (streams; multipart for large files where the backend supports it). */
  putFile(key: string, filePath: string, options?: PutOptions): Promise<ObjectInfo>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}
