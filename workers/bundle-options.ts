/**
 * How the workflow code is bundled, wherever it is (`npm run build`, a worker run from the
 * sources, the tests' and the benchmark's bundles): the same webpack configuration everywhere.
 *
 * The reusable V8 context evaluates every module of the bundle again for each new workflow
 * execution (module state is per execution), so what the bundle holds is paid on each run's
 * first workflow task. The workflows import zod (lib/messages/) for their input checks; zod's
 * package entry also loads every locale (`z.locales`; English, the default, is loaded on its own
 * by the schemas), the schema compiler (`z.compile`) and the JSON Schema reader
 * (`z.fromJSONSchema`). No workflow uses them, so they are replaced by empty modules.
 */
import type { BundleOptions } from '@temporalio/worker';
import path from 'node:path';

const ZOD_ROOT = path.dirname(require.resolve('zod'));

/** zod modules the workflows never call, relative to the package root (CommonJS and ESM builds). */
export const ZOD_MODULES_LEFT_OUT = ['v4/locales/index', 'v4/core/compile', 'v4/classic/from-json-schema'];

export const WORKFLOW_BUNDLER_OPTIONS: Pick<BundleOptions, 'webpackConfigHook'> = {
  webpackConfigHook: (config) => {
    const leftOut = Object.fromEntries(ZOD_MODULES_LEFT_OUT.flatMap((m) => ['.cjs', '.js'].map((ext) => [path.join(ZOD_ROOT, m + ext), false as const])));
    const alias = config.resolve?.alias;
    return { ...config, resolve: { ...config.resolve, alias: Array.isArray(alias) ? [...alias, ...Object.entries(leftOut).map(([name, to]) => ({ name, alias: to }))] : { ...alias, ...leftOut } } };
  },
};
