import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';

export interface StartedProcess {
  child: ChildProcess;
  /** Everything it printed so far, stdout and stderr interleaved. */
  output: () => string;
}

/**
 * Start a long-running command (a worker, a server) and resolve once its output matches
 * `ready`; fails with the output when it exits first or after 60 s. The child is pushed onto
 * `children` so the test file's afterAll can kill whatever is left.
 */
export async function startProcess(args: { command: string; argv: string[]; env: NodeJS.ProcessEnv; cwd: string; ready: RegExp; children: ChildProcess[] }): Promise<StartedProcess> {
  const child = spawn(args.command, args.argv, { env: args.env, cwd: args.cwd });
  args.children.push(child);
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  await expect.poll(() => (child.exitCode !== null ? `exited ${child.exitCode}: ${out}` : out), { timeout: 60_000, interval: 200 }).toMatch(args.ready);
  return { child, output: () => out };
}
