import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NotFoundError, TransientError, isTransientErrno } from '../errors';
import { PreconditionFailedError } from '../errors';
import { checkKey } from './keys';
import type { ObjectInfo, ObjectStore, PutOptions } from './types';

/**
 * `file://` backend: a directory. Writes go to a temporary file in the same directory and
 * are renamed into place, so readers never see a partial object. Conditional writes are
 * serialised through a lock directory per key (mkdir is atomic).
 */
export class FileObjectStore implements ObjectStore {
  readonly root: string;
  readonly url: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.url = `file://${this.root}`;
  }

  /** Absolute path of a key; guaranteed to stay inside the root. */
  pathOf(key: string): string {
    checkKey(key);
    const p = path.resolve(this.root, key);
    if (!p.startsWith(this.root + path.sep)) throw new NotFoundError(`key ${JSON.stringify(key)} escapes ${this.url}`, { key });
    return p;
  }

  /** Like pathOf, and also refuses a path that leaves the root through a symbolic link. */
  private async realPathOf(key: string): Promise<string> {
    const p = this.pathOf(key);
    const realRoot = await fs.realpath(this.root).catch(() => this.root);
    const real = await fs.realpath(p).catch(() => p);
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw new NotFoundError(`key ${JSON.stringify(key)} leaves ${this.url} through a link`, { key });
    return real;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await fs.lstat(this.pathOf(key));
      if (!st.isFile()) return undefined;
      return { key, size: st.size, etag: `${st.size}-${st.mtimeMs}-${st.ino}` };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw wrap(err, key, this.url);
    }
  }

  async getStream(key: string): Promise<Readable> {
    const p = await this.realPathOf(key);
    const handle = await fs.open(p, 'r').catch((err: unknown) => {
      throw wrap(err, key, this.url);
    });
    return handle.createReadStream();
  }

  async getBytes(key: string): Promise<Buffer> {
    try {
      return await fs.readFile(await this.realPathOf(key));
    } catch (err) {
      throw wrap(err, key, this.url);
    }
  }

  async put(key: string, body: Buffer | string | Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const target = this.pathOf(key);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${randomUUID()}`;
    try {
      if (body instanceof Readable) await pipeline(body, createWriteStream(tmp));
      else await fs.writeFile(tmp, body);
      await this.commit(key, tmp, options);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    const info = await this.head(key);
    if (!info) throw new TransientError(`object ${key} vanished after write in ${this.url}`, { key });
    return info;
  }

  async putFile(key: string, filePath: string, options: PutOptions = {}): Promise<ObjectInfo> {
    return this.put(key, createReadStream(filePath), options);
  }

  private async commit(key: string, tmp: string, options: PutOptions): Promise<void> {
    const target = this.pathOf(key);
    if (options.ifNoneMatch === undefined && options.ifMatch === undefined) {
      await fs.rename(tmp, target);
      return;
    }
    await withLock(`${target}.lock`, async () => {
      const current = await this.head(key);
      if (options.ifNoneMatch && current) {
        throw new PreconditionFailedError(`object ${key} already exists in ${this.url}`, { key });
      }
      if (options.ifMatch !== undefined && current?.etag !== options.ifMatch) {
        throw new PreconditionFailedError(`object ${key} changed since it was read in ${this.url}`, { key });
      }
      await fs.rename(tmp, target);
    });
  }

  async list(prefix: string): Promise<string[]> {
    const base = prefix === '' ? this.root : this.pathOf(prefix.replace(/\/+$/, ''));
    const out: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw err;
      }
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile() && !e.name.includes('.tmp-') && !e.name.endsWith('.lock')) out.push(path.relative(this.root, p).split(path.sep).join('/'));
      }
    };
    await walk(base);
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.pathOf(key), { force: true });
  }
}

async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await fs.mkdir(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock older than 30 s belongs to a crashed writer.
      const st = await fs.stat(lockDir).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 30_000) await fs.rm(lockDir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new TransientError(`timed out waiting for lock ${lockDir}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockDir, { recursive: true, force: true });
  }
}

function wrap(err: unknown, key: string, url: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new NotFoundError(`no object ${JSON.stringify(key)} in ${url}`, { key, store: url });
  if (isTransientErrno(err)) return new TransientError(`${code} reading ${key} in ${url}`, { key, store: url }, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

export async function sha256File(filePath: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(filePath)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}
