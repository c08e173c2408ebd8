import { defineConfig } from 'vitest/config';

// Integration tests: real backends (SeaweedFS for S3), started by globalSetup and stopped after.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    globalSetup: ['test/helpers/s3-global-setup.ts', 'test/helpers/postgres-global-setup.ts'],
    setupFiles: ['test/helpers/s3-env.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
