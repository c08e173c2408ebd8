import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../lib/config/env';
import { ensureTemporalCli, freePort, startDevServer, temporalAnswers, type DevServer } from '../../devservices/temporal';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalCli: string;
  }
}

let server: DevServer | undefined;

/** Use the Temporal server at TEMPORAL_ADDRESS if one answers; otherwise start an in-memory dev server on a free port. */
export async function setup(project: TestProject): Promise<void> {
  const config = loadConfig();
  const cli = ensureTemporalCli(config.temporalCli, (m) => console.log(m), config.dataDir);
  let address = config.temporal.address;
  if (!(await temporalAnswers(address))) {
    address = `127.0.0.1:${await freePort()}`;
    server = await startDevServer({ cli, address, uiPort: null });
    console.log(`started Temporal dev server for tests at ${address}`);
  } else {
    console.log(`using the Temporal server at ${address}`);
  }
  project.provide('temporalAddress', address);
  project.provide('temporalCli', cli);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
