import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { InferflowConfig } from '../../lib/config/env';
import { createResources, type Resources } from '../../lib/pipeline/resources';
import { createLogger } from '../../lib/log';
import { WORKFLOWS_PATH, createInferflowWorker } from '../../workers/worker';
import { installTemporalRuntime } from '../../workers/runtime';
import { WORKFLOW_BUNDLER_OPTIONS } from '../../workers/bundle-options';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflow bundle, built once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  installTemporalRuntime(createLogger(process.env.TEST_TEMPORAL_LOG_LEVEL === 'WARN' ? 'warn' : 'error'));
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, ...WORKFLOW_BUNDLER_OPTIONS, logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } });
  return bundle;
}

export interface RunningWorker {
  resources: Resources;
  client: Client;
  stop(): Promise<void>;
}

/** A real worker polling `config.temporal.taskQueue` on the test server, plus a client. */
export async function startWorker(config: InferflowConfig, resources: Resources = createResources(config, { logger: createLogger('warn') })): Promise<RunningWorker> {
  installTemporalRuntime(createLogger(process.env.TEST_TEMPORAL_LOG_LEVEL === 'WARN' ? 'warn' : 'error'));
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const { worker, close } = await createInferflowWorker({ config, connection, resources, overrides: { workflowBundle: await workflowBundle() } });
  const running = worker.run();
  const clientConnection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
  return {
    resources,
    client,
    async stop() {
      worker.shutdown();
      await running;
      await close();
      await connection.close();
      await clientConnection.close();
    },
  };
}
