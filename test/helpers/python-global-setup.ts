/**
 * The Python clients the protocol tests call (tritonclient's gRPC and HTTP clients, for the V2
 * conformance, gRPC and top-k tests): the machine's own when python3 imports them, else the
 * pinned wheels installed once under .data/tools (bench/python.ts). Provides the PYTHONPATH
 * those tests hand to python3; a machine without them and without PyPI fails here, naming what
 * to install.
 */
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensurePythonPackages, joinPythonPath } from '../../bench/python';
import { REPO_ROOT } from '../../cli/examples';

declare module 'vitest' {
  export interface ProvidedContext {
    /** PYTHONPATH for python3 to import tritonclient ('' when the machine's own python3 does). */
    tritonPythonPath: string;
  }
}

/** tritonclient with the gRPC and HTTP extras (grpcio, numpy, geventhttpclient). */
export const TRITON_CLIENT_REQUIREMENTS = ['tritonclient[grpc,http]==2.73.0'];

export function setup(project: TestProject): void {
  const packages = ensurePythonPackages({
    dataDir: path.join(REPO_ROOT, '.data'),
    name: 'tritonclient',
    requirements: TRITON_CLIENT_REQUIREMENTS,
    modules: ['tritonclient.grpc', 'tritonclient.http', 'numpy'],
    say: console.log,
  });
  if ('unavailable' in packages) throw new Error(packages.unavailable);
  project.provide('tritonPythonPath', joinPythonPath(packages.pythonPath) ?? '');
}
