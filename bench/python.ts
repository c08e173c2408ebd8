/**
 * Python packages for the benchmark's pandas baseline, pinned and installed on demand: none
 * needed when the system python3 already imports them; else `<data dir>/tools/<name>-<hash>`,
 * pip-installed there (`pip install --target`, which works where the system Python is
 * "externally managed", PEP 668). A fresh machine therefore runs the same baseline as a
 * prepared one. Returns the reason instead when they cannot be installed (offline machine).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../cli/examples';
import { toolsDirFor } from '../devservices/tools';

export type PythonPath = { pythonPath?: string } | { unavailable: string };

/** `name==version` pins from examples/train/requirements.txt (one source of versions for training and the baseline). */
export function trainingPins(names: readonly string[]): string[] {
  const file = path.join(REPO_ROOT, 'examples', 'train', 'requirements.txt');
  const pins = new Map(
    readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter(Boolean)
      .map((l) => [l.split('==')[0]!.toLowerCase(), l] as const),
  );
  return names.map((n) => {
    const pin = pins.get(n.toLowerCase());
    if (!pin) throw new Error(`${file} pins no version of ${n}`);
    return pin;
  });
}

/**
 * A PYTHONPATH entry under which python3 can `import` every module in `modules`, installing
 * `requirements` (pip specifiers) under the project's tools directory when needed.
 */
export function ensurePythonPackages(o: { dataDir: string; name: string; requirements: readonly string[]; modules: readonly string[]; say: (m: string) => void }): PythonPath {
  const probe = o.modules.map((m) => `import ${m}`).join('; ');
  const importable = (pythonPath?: string) =>
    spawnSync('python3', ['-c', probe], { encoding: 'utf8', env: { ...process.env, ...(pythonPath ? { PYTHONPATH: pythonPath } : {}) } }).status === 0;
  if (importable()) return {};
  const target = toolsDirFor(o.dataDir, o.name, createHash('sha256').update(o.requirements.join('\n')).digest('hex').slice(0, 12));
  if (importable(target)) return { pythonPath: target };
  o.say(`${o.name}: python3 cannot import ${o.modules.join(', ')}; installing ${o.requirements.join(' ')} into ${target}…`);
  const r = spawnSync('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', target, ...o.requirements], { encoding: 'utf8' });
  if (importable(target)) return { pythonPath: target };
  return { unavailable: `${o.modules.join(', ')} could not be installed (pip exit ${r.status}: ${(r.stderr || r.error?.message || '').trim().slice(-300)}); install them with 'pip install ${o.requirements.map((q) => `"${q}"`).join(' ')}'` };
}

/** PYTHONPATH value joining the given entries and the caller's own. */
export function joinPythonPath(...entries: (string | undefined)[]): string | undefined {
  const all = [...entries, process.env.PYTHONPATH].filter((e): e is string => !!e);
  return all.length > 0 ? all.join(path.delimiter) : undefined;
}
