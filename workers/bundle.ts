/**
 * `npm run build` ends with this: bundle the compiled workflow code once, into
 * dist/workflow-bundle.js, so a worker started from the compiled JavaScript loads the bundle
 * instead of running webpack on every start (about 2 s here).
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import fs from 'node:fs/promises';
import { WORKFLOW_BUNDLER_OPTIONS } from './bundle-options';
import { WORKFLOW_BUNDLE_PATH, WORKFLOWS_PATH } from './worker';

export async function writeWorkflowBundle(): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, ...WORKFLOW_BUNDLER_OPTIONS, logger: { trace() {}, debug() {}, info() {}, log() {}, warn: (m) => console.warn(m), error: (m) => console.error(m) } });
  await fs.writeFile(`${WORKFLOW_BUNDLE_PATH}.tmp`, code);
  await fs.rename(`${WORKFLOW_BUNDLE_PATH}.tmp`, WORKFLOW_BUNDLE_PATH);
  return WORKFLOW_BUNDLE_PATH;
}

if (require.main === module) {
  writeWorkflowBundle().then(
    (file) => console.log(`wrote ${file}`),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
