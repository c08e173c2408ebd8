import { defineConfig } from 'vitest/config';

// Integration tests: real backends (Redis, SeaweedFS for S3, PostgreSQL), started by globalSetup when down and stopped after.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    globalSetup: ['test/helpers/build-global-setup.ts', 'test/helpers/redis-global-setup.ts', 'test/helpers/s3-global-setup.ts', 'test/helpers/postgres-global-setup.ts', 'test/helpers/python-global-setup.ts'],
    setupFiles: ['test/helpers/services-env.ts', 'test/helpers/s3-env.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
