import { spawn, type ChildProcess } from 'node:child_process';
import { portOpen } from '../../devservices/tools';

let started: ChildProcess | undefined;

/** Redis on 127.0.0.1:6379: use the running one, else start `redis-server` (no persistence) and stop it afterwards. */
export async function setup(): Promise<void> {
  if (await portOpen('127.0.0.1', 6379)) return;
  started = spawn('redis-server', ['--port', '6379', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  started.once('error', (err) => console.error(`could not start redis-server: ${err.message} (install Redis or start it on 127.0.0.1:6379)`));
  for (let i = 0; i < 50 && !(await portOpen('127.0.0.1', 6379)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await portOpen('127.0.0.1', 6379))) throw new Error('Redis is not running on 127.0.0.1:6379 and redis-server could not be started');
  console.log('started redis-server for tests on 127.0.0.1:6379');
}

export function teardown(): void {
  started?.kill('SIGTERM');
}
