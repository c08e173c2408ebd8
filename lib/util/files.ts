import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';

/** Write `value` as JSON to `file` through a temporary name and a rename: readers see the old file or the whole new one. */
export async function writeJsonAtomically(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${randomUUID()}`;
  try {
    await fs.writeFile(tmp, JSON.stringify(value));
    await fs.rename(tmp, file);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}
