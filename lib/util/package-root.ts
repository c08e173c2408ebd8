import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The package's root directory: the nearest directory above this module that holds
 * package.json. The same answer from the TypeScript sources (lib/util/) and from the
 * compiled JavaScript (dist/lib/util/), so examples/, schemas/ and the prebuilt workflow
 * bundle are found from either.
 */
function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(start, '..', '..');
  }
}

export const PACKAGE_ROOT = findPackageRoot(__dirname);

/** `version` from package.json (what `inferflow --version` prints). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}
