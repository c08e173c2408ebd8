import type { Readable } from 'node:stream';
import type { S3ObjectStore, S3StoreOptions } from './s3';
import { checkKey } from './keys';
import type { ObjectInfo, ObjectStore, PutOptions } from './types';

/** The S3 backend, loaded by the first S3 store that is used. */
let s3Module: Promise<typeof import('./s3')> | undefined;
const loadS3 = () => (s3Module ??= import('./s3.js'));

/**
 * An `s3://` store that loads the AWS SDK on its first call rather than when it is opened:
 * `openStore` is also what `inferflow models list` runs against a local registry, and the SDK
 * takes longer to load than the rest of that command.
 */
export class LazyS3ObjectStore implements ObjectStore {
  readonly url: string;
  private store?: Promise<S3ObjectStore>;

  constructor(private readonly options: S3StoreOptions) {
    const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (prefix) checkKey(prefix);
    this.url = `s3://${options.bucket}${prefix ? `/${prefix}` : ''}`;
  }

  private open(): Promise<S3ObjectStore> {
    this.store ??= loadS3().then(({ S3ObjectStore }) => new S3ObjectStore(this.options));
    return this.store;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    return (await this.open()).head(key);
  }
  async getStream(key: string): Promise<Readable> {
    return (await this.open()).getStream(key);
  }
  async getBytes(key: string): Promise<Buffer> {
    return (await this.open()).getBytes(key);
  }
  async put(key: string, body: Buffer | string | Readable, options?: PutOptions): Promise<ObjectInfo> {
    return (await this.open()).put(key, body, options);
  }
  async putFile(key: string, filePath: string, options?: PutOptions): Promise<ObjectInfo> {
    return (await this.open()).putFile(key, filePath, options);
  }
  async list(prefix: string): Promise<string[]> {
    return (await this.open()).list(prefix);
  }
  async delete(key: string): Promise<void> {
    return (await this.open()).delete(key);
  }
}
