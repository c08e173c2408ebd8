import { defineConfig } from 'vitest/config';

// Unit tests: lib/ and pure code, no services.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    setupFiles: ['test/helpers/services-env.ts'],
    pool: 'forks',
    testTimeout: 30_000,
  },
});
