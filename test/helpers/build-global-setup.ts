import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../cli/examples';
import { WORKFLOW_BUNDLE_PATH } from '../../workers/worker';

/** Newest modification time of the .ts files under dir (ms). */
function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Tests that run `node bin/inferflow.js` or `npm run worker` run the compiled JavaScript in
 * dist/: build it when it is missing or older than a source file (`npm ci` built it once; this
 * catches sources edited since). The workflow bundle is the last file a build writes.
 */
export function setup(): void {
  const config = JSON.parse(readFileSync(path.join(REPO_ROOT, 'tsconfig.build.json'), 'utf8').replace(/^\s*\/\/.*$/gm, '')) as { include: string[] };
  const sources = Math.max(...config.include.map((d) => newestSource(path.join(REPO_ROOT, d))));
  // WORKFLOW_BUNDLE_PATH seen from the sources is beside the package root; the build writes it into dist/.
  const bundle = path.join(REPO_ROOT, 'dist', path.basename(WORKFLOW_BUNDLE_PATH));
  let built = 0;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    built = 0;
  }
  if (built >= sources) return;
  console.log('dist/ is older than the sources: npm run build');
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`npm run build failed (exit ${r.status ?? r.signal})`);
}
