/**
 * Resolving a file location (a file, a glob or a directory; a plain path, `file://…` or an
 * object-store URL such as `s3://bucket/key`) to the local files DuckDB reads, in a fixed
 * order. Object-store files are downloaded into a temporary directory first (DuckDB's httpfs
 * is not available offline), keeping their key paths so that `key=value` partition segments
 * still become columns.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { InvalidInputError, NotFoundError } from '../errors';
import { formatOf, lit, type FileFormat } from '../io/duckdb';
import { nanosTimestampFlags, setAdjustedToUtc } from '../io/parquet-footer';
import { localPathOf, openStore } from '../storage';
import { checkFilesAllowed, checkLocationAllowed } from '../storage/roots';
import { eachLimited } from '../util/concurrency';

export interface ResolvedFiles {
  /** The location as given (for messages). */
  location: string;
  format: FileFormat;
  /** Local files, sorted by path (the source's row order is file order, then row order). */
  files: string[];
  /** CSV only: the columns in file order with their DuckDB types (no type sniffing), e.g. for an export from PostgreSQL. */
  columnTypes?: [string, string][];
  /** CSV only: columns read as TIMESTAMP_NS (offsets applied, sub-microsecond digits kept) instead of the sniffed type. */
  nanosColumns?: string[];
  /** Parquet only: `TIMESTAMP(NANOS, isAdjustedToUTC=true)` columns, read from copies whose flag is cleared (see exactParquetTimestamps). */
  utcNanosColumns?: string[];
}

const GLOB_CHARS = /[*?[]/;

/** True for `s3://…` and other non-file URL schemes served by the object store. */
export function isRemote(location: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(location) && !location.startsWith('file://');
}

/** `dir/**\/*.parquet` → a RegExp over `/`-separated paths (`**` spans directories, `*` and `?` do not). */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += body.startsWith('!') ? `[^${body.slice(1)}]` : `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function dataFormat(file: string): FileFormat | undefined {
  try {
    return formatOf(file);
  } catch {
    return undefined;
  }
}

/** Data files of a directory tree, skipping hidden and `_`-prefixed entries (`_SUCCESS`, `.tmp`…). */
async function walkDataFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || e.name.startsWith('_')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walkDataFiles(p)));
    else if (e.isFile() && dataFormat(p)) out.push(p);
  }
  return out;
}

function sameFormat(files: string[], location: string, field: string): FileFormat {
  const formats = new Set(files.map((f) => dataFormat(f)));
  if (formats.size !== 1 || formats.has(undefined)) {
    throw new InvalidInputError(`${field}: ${location} mixes file formats`, [`${field}: ${location} holds both Parquet and CSV files; keep one format per source`], { object: location });
  }
  return [...formats][0]!;
}

function byPath(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Resolve a local file, glob or directory. */
async function resolveLocal(location: string, localPath: string, field: string, expand: (pattern: string) => Promise<string[]>): Promise<ResolvedFiles> {
  if (GLOB_CHARS.test(localPath)) {
    const files = (await expand(localPath)).filter((f) => dataFormat(f) !== undefined).sort(byPath);
    if (files.length === 0) throw new NotFoundError(`${field}: no Parquet or CSV file matches ${location}`, { object: location, field });
    return { location, format: sameFormat(files, location, field), files };
  }
  let st: fs.Stats;
  try {
    st = await fsp.stat(localPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${field}: ${location} does not exist`, { object: location, field });
    throw err;
  }
  if (st.isDirectory()) {
    const files = (await walkDataFiles(localPath)).sort(byPath);
    if (files.length === 0) throw new NotFoundError(`${field}: directory ${location} holds no Parquet or CSV file`, { object: location, field });
    return { location, format: sameFormat(files, location, field), files };
  }
  const format = dataFormat(localPath);
  if (!format) throw new InvalidInputError(`${field}: unsupported file ${location}`, [`${field}: file must end in .parquet, .pq, .csv, .csv.gz or .tsv (got ${path.basename(localPath)})`], { object: location });
  return { location, format, files: [localPath] };
}

/**
 * Download the objects a remote location names (one key, a glob over keys, or every key under
 * a prefix) into `dir`, keeping their key paths; returns the same location on local disk.
 */
async function download(location: string, dir: string, field: string): Promise<string> {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/]+)\/?(.*)$/i.exec(location);
  if (!m) throw new InvalidInputError(`${field}: invalid location ${location}`, [`${field}: expected SCHEME://BUCKET/KEY`]);
  const store = openStore(m[1]!);
  const key = m[2]!;
  let keys: string[];
  let local: string;
  const globAt = key.search(GLOB_CHARS);
  if (globAt >= 0) {
    const prefix = key.slice(0, globAt).replace(/[^/]*$/, '');
    const re = globToRegExp(key);
    keys = (await store.list(prefix)).filter((k) => re.test(k));
    local = path.join(dir, key);
  } else if (key !== '' && !key.endsWith('/') && (await store.head(key))) {
    keys = [key];
    local = path.join(dir, key);
  } else {
    keys = (await store.list(key)).filter((k) => !k.split('/').some((seg) => seg.startsWith('.') || seg.startsWith('_')));
    local = path.join(dir, key);
  }
  keys = keys.filter((k) => dataFormat(k) !== undefined);
  if (keys.length === 0) throw new NotFoundError(`${field}: no Parquet or CSV object at ${location}`, { object: location, field });
  const root = path.resolve(dir);
  await eachLimited(keys, 4, async (k) => {
    const target = path.resolve(root, k);
    if (!target.startsWith(root + path.sep)) throw new InvalidInputError(`${field}: object key ${k} leaves the download directory`, [`${field}: invalid key ${k}`]);
    await fsp.mkdir(path.dirname(target), { recursive: true });
    await pipeline(await store.getStream(k), fs.createWriteStream(target));
  });
  return local;
}

export interface ResolveFilesRequest {
  /** A path, `file://…`, glob, directory or object-store URL. */
  location: string;
  /** Where remote objects are downloaded. */
  downloadDir: string;
  /** The input field the location came from (for messages). */
  field: string;
  /** Lists the local files a glob matches (DuckDB's glob). */
  expand: (pattern: string) => Promise<string[]>;
  /** Roots the location and every file it expands to must lie in (a worker's allowedRoots); unset: anywhere. */
  allowedRoots?: readonly string[] | undefined;
}

/**
 * Resolve a source or spine location to local files. Remote objects are downloaded into
 * `downloadDir` first.
 * @throws PermissionDeniedError a location (or a file it expands to, through symlinks) outside `allowedRoots`
 */
export async function resolveFiles(req: ResolveFilesRequest): Promise<ResolvedFiles> {
  const { location, downloadDir, field, expand, allowedRoots } = req;
  if (allowedRoots) checkLocationAllowed(location, allowedRoots, field);
  if (isRemote(location)) return resolveLocal(location, await download(location, downloadDir, field), field, expand);
  const resolved = await resolveLocal(location, localPathOf(location), field, expand);
  if (allowedRoots) checkFilesAllowed(resolved.files, allowedRoots, field);
  return resolved;
}

/** DuckDB table expression reading the files (columns united by name across files). */
export function scanFiles(r: ResolvedFiles): string {
  const list = `[${r.files.map(lit).join(', ')}]`;
  if (r.format === 'parquet') return `read_parquet(${list}, union_by_name = true)`;
  if (r.columnTypes) {
    // Typed CSV (a PostgreSQL export): an unquoted empty field is NULL, a quoted one the empty string.
    const columns = `{${r.columnTypes.map(([name, type]) => `${lit(name)}: ${lit(type)}`).join(', ')}}`;
    return `read_csv(${list}, header = true, columns = ${columns}, allow_quoted_nulls = false, quote = '"', escape = '"')`;
  }
  const types = r.nanosColumns?.length ? `, types = {${r.nanosColumns.map((c) => `${lit(c)}: 'TIMESTAMP_NS'`).join(', ')}}` : '';
  return `read_csv(${list}, header = true, union_by_name = true${types})`;
}

/**
 * Parquet files whose `TIMESTAMP(NANOS, isAdjustedToUTC=true)` columns DuckDB reads exactly: such
 * a file is copied into `dir` (a downloaded one, already a private copy, is changed in place) with
 * the flag cleared, so that DuckDB reads the column as TIMESTAMP_NS (UTC) instead of rounding it
 * to microseconds (lib/io/parquet-footer.ts). Other files and formats are returned unchanged.
 */
export async function exactParquetTimestamps(r: ResolvedFiles, dir: string): Promise<ResolvedFiles> {
  if (r.format !== 'parquet') return r;
  const columns = new Set<string>();
  const files = await Promise.all(
    r.files.map(async (file, i) => {
      const flags = (await nanosTimestampFlags(file)).filter((f) => f.adjustedToUtc);
      if (flags.length === 0) return file;
      let target = file;
      if (!isRemote(r.location)) {
        await fsp.mkdir(dir, { recursive: true });
        target = path.join(dir, `${i}-${path.basename(file)}`);
        await fsp.copyFile(file, target, fs.constants.COPYFILE_FICLONE);
      }
      await setAdjustedToUtc(target, flags, false);
      for (const f of flags) columns.add(f.column);
      return target;
    }),
  );
  return columns.size === 0 ? r : { ...r, files, utcNanosColumns: [...columns] };
}
