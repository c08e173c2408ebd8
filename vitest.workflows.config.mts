import { defineConfig } from 'vitest/config';

// Workflow tests: a real Temporal dev server (started by globalSetup unless one answers at
// TEMPORAL_ADDRESS), SeaweedFS for S3, real workers, real ONNX Runtime and DuckDB.
export default defineConfig({
  test: {
    include: ['test/workflows/**/*.test.ts'],
    globalSetup: ['test/helpers/build-global-setup.ts', 'test/helpers/temporal-global-setup.ts', 'test/helpers/redis-global-setup.ts', 'test/helpers/s3-global-setup.ts', 'test/helpers/postgres-global-setup.ts'],
    setupFiles: ['test/helpers/services-env.ts', 'test/helpers/s3-env.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
