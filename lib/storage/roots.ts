/**
 * Confinement of file sources and file sinks to the roots configured on the worker
 * (InferflowConfig.allowedRoots): local directories and `s3://bucket[/prefix]` URIs. A local
 * path is resolved to its real path first (the deepest part that exists, through symlinks), so
 * neither `..` nor a symlink leads out of a root.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PermissionDeniedError } from '../errors';
import { localPathOf } from './index';

/** Characters that start a glob pattern in a location. */
const GLOB_START = /[*?[]/;
const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/** Real path of `p`: its deepest existing ancestor resolved through symlinks, the rest appended. */
export function realPathOf(p: string): string {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let at = abs;
  for (;;) {
    try {
      return path.join(fs.realpathSync.native(at), ...rest.reverse());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      const parent = path.dirname(at);
      if (parent === at) return abs;
      rest.push(path.basename(at));
      at = parent;
    }
  }
}

function within(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/** `s3://bucket/key` → bucket and key (no leading slash). */
function splitS3(location: string): { bucket: string; key: string } | undefined {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  return m ? { bucket: m[1]!, key: m[2]! } : undefined;
}

function s3Within(location: string, root: string): boolean {
  const l = splitS3(location);
  const r = splitS3(root);
  if (!l || !r || l.bucket !== r.bucket) return false;
  const prefix = r.key.replace(/\/+$/, '');
  return prefix === '' || l.key === prefix || l.key.startsWith(`${prefix}/`);
}

/**
 * Check that a location (a path, `file://…`, a glob, or `s3://…`) lies inside one of `roots`.
 * For a glob, the directory before the first wildcard is checked (and each matched file by
 * checkFilesAllowed once expanded).
 * @throws PermissionDeniedError naming the field, the location and the allowed roots
 */
export function checkLocationAllowed(location: string, roots: readonly string[], field: string): void {
  let ok: boolean;
  if (location.startsWith('s3://')) {
    ok = roots.some((r) => r.startsWith('s3://') && s3Within(location, r));
  } else if (URL_SCHEME.test(location) && !location.startsWith('file://')) {
    ok = false;
  } else {
    const local = localPathOf(location);
    const globAt = local.search(GLOB_START);
    const fixed = globAt >= 0 ? path.dirname(local.slice(0, globAt + 1)) : local;
    const real = realPathOf(fixed);
    ok = roots.some((r) => !URL_SCHEME.test(r) && within(real, realPathOf(r)));
  }
  if (!ok) throw deny(location, roots, field);
}

/** Each local file (after glob or directory expansion) through its real path. @throws PermissionDeniedError */
export function checkFilesAllowed(files: readonly string[], roots: readonly string[], field: string): void {
  const local = roots.filter((r) => !URL_SCHEME.test(r)).map(realPathOf);
  for (const f of files) {
    const real = realPathOf(f);
    if (!local.some((r) => within(real, r))) throw deny(f, roots, field);
  }
}

function deny(location: string, roots: readonly string[], field: string): PermissionDeniedError {
  return new PermissionDeniedError(
    `${field}: ${location} is outside the locations this worker may read and write (allowed: ${roots.join(', ') || 'none'}; add more with INFERFLOW_ALLOWED_ROOTS)`,
    { object: location, field, allowedRoots: [...roots] },
  );
}
