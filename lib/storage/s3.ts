import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import { s3Settings, type S3Settings } from '../config/env';
import { InferflowError, NotFoundError, PermissionDeniedError, PreconditionFailedError, TransientError, errorMessage } from '../errors';
import { registerClientMap } from '../util/shared-clients';
import { checkKey, joinKey } from './keys';
import type { ObjectInfo, ObjectStore, PutOptions } from './types';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading/trailing slashes. */
  prefix?: string;
  settings?: S3Settings;
  client?: S3Client;
  /** Files larger than this are uploaded in parts of this size (default 16 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
}

const clients = new Map<string, S3Client>();

/** One client per settings (connection reuse); credentials come from the AWS default chain. */
export function s3ClientFor(settings: S3Settings): S3Client {
  const key = JSON.stringify(settings);
  let c = clients.get(key);
  if (!c) {
    c = new S3Client({
      region: settings.region,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      forcePathStyle: settings.forcePathStyle,
      // S3-compatible servers differ in checksum support; compute/validate only when required.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
    clients.set(key, c);
  }
  return c;
}

/** Release the process's S3 clients (their sockets); the next s3ClientFor creates new ones. */
export function closeS3Clients(): void {
  const all = [...clients.values()];
  clients.clear();
  for (const c of all) c.destroy();
}
registerClientMap('s3', closeS3Clients);

/**
 * `s3://bucket/prefix` backend. Conditional writes use S3's `If-None-Match: *` (create-only)
 * and `If-Match: <etag>` (compare-and-swap). Large files upload in parts; downloads stream.
 */
export class S3ObjectStore implements ObjectStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly endpoint: string;
  private readonly partSize: number;

  constructor(o: S3StoreOptions) {
    this.bucket = o.bucket;
    this.prefix = (o.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (this.prefix) checkKey(this.prefix);
    const settings = o.settings ?? s3Settings();
    this.client = o.client ?? s3ClientFor(settings);
    this.endpoint = settings.endpoint ?? `AWS S3 (${settings.region})`;
    this.url = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.partSize = Math.max(5 * 1024 * 1024, o.partSize ?? 16 * 1024 * 1024);
  }

  private full(key: string): string {
    return joinKey(this.prefix, checkKey(key));
  }

  /** Translate SDK errors into domain errors that name the endpoint, bucket and key (never credentials). */
  private async call<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.translate(err, op, key);
    }
  }

  private translate(err: unknown, op: string, key: string): Error {
    if (err instanceof InferflowError) return err;
    const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; Code?: string };
    const status = e.$metadata?.httpStatusCode;
    const name = e.name ?? e.Code ?? '';
    const where = `${this.url}/${key} at ${this.endpoint}`;
    const details = { store: this.url, key, endpoint: this.endpoint, operation: op };
    if (name === 'NoSuchBucket') return new NotFoundError(`bucket ${this.bucket} does not exist at ${this.endpoint}`, details);
    if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return new NotFoundError(`no object ${where}`, details);
    if (name === 'PreconditionFailed' || status === 412) return new PreconditionFailedError(`${op} ${where}: object exists or changed (precondition failed)`, details);
    if (status === 401 || status === 403 || /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|InvalidToken|ExpiredToken|CredentialsProviderError/.test(name)) {
      return new PermissionDeniedError(
        `${op} ${where} was refused (${name || `HTTP ${status}`}): check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role) and the bucket policy`,
        details,
      );
    }
    if (status === undefined || status >= 500 || status === 429 || /Timeout|ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EAI_AGAIN|socket hang up/i.test(`${name} ${e.code ?? ''} ${errorMessage(err)}`)) {
      return new TransientError(`${op} ${where} failed: ${errorMessage(err)}`, details, { cause: err });
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const r = await this.call('head', key, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) })));
      return { key, size: r.ContentLength ?? 0, etag: r.ETag ?? '' };
    } catch (err) {
      if (err instanceof NotFoundError && !/bucket/.test(err.message)) return undefined;
      throw err;
    }
  }

  async getStream(key: string): Promise<Readable> {
    const r = await this.call('get', key, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key) })));
    if (!(r.Body instanceof Readable)) throw new TransientError(`get ${this.url}/${key}: no body`, { key });
    return r.Body;
  }

  async getBytes(key: string): Promise<Buffer> {
    return this.call('get', key, async () => {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
      return Buffer.from(await r.Body!.transformToByteArray());
    });
  }

  private conditions(o: PutOptions) {
    return { ...(o.ifNoneMatch ? { IfNoneMatch: '*' } : {}), ...(o.ifMatch !== undefined ? { IfMatch: o.ifMatch } : {}) };
  }

  async put(key: string, body: Buffer | string | Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const data = body instanceof Readable ? Buffer.concat(await body.toArray()) : Buffer.from(body);
    const r = await this.call('put', key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          Body: data,
          ContentLength: data.length,
          ...(options.contentType ? { ContentType: options.contentType } : {}),
          ...this.conditions(options),
        }),
      ),
    );
    return { key, size: data.length, etag: r.ETag ?? '' };
  }

  async putFile(key: string, filePath: string, options: PutOptions = {}): Promise<ObjectInfo> {
    const { size } = await fs.stat(filePath);
    if (size <= this.partSize) return this.put(key, await fs.readFile(filePath), options);
    const full = this.full(key);
    const { UploadId } = await this.call('create multipart upload', key, () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: full })));
    const handle = await fs.open(filePath, 'r');
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      const buf = Buffer.alloc(this.partSize);
      for (let offset = 0, n = 1; offset < size; offset += this.partSize, n++) {
        const { bytesRead } = await handle.read(buf, 0, Math.min(this.partSize, size - offset), offset);
        const part = await this.call('upload part', key, () =>
          this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: full, UploadId, PartNumber: n, Body: buf.subarray(0, bytesRead), ContentLength: bytesRead })),
        );
        parts.push({ ETag: part.ETag ?? '', PartNumber: n });
      }
      const done = await this.call('complete multipart upload', key, () =>
        this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: full, UploadId, MultipartUpload: { Parts: parts }, ...this.conditions(options) })),
      );
      return { key, size, etag: done.ETag ?? '' };
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: full, UploadId })).catch(() => undefined);
      throw err;
    } finally {
      await handle.close();
    }
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.prefix ? `${this.prefix}/` : '';
    const want = prefix === '' ? base : `${base}${prefix.replace(/\/+$/, '')}/`;
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.call('list', prefix, () => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: want, ContinuationToken: token })));
      for (const o of r.Contents ?? []) if (o.Key) keys.push(o.Key.slice(base.length));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async delete(key: string): Promise<void> {
    await this.call('delete', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key) })));
  }
}
