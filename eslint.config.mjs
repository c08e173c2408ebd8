// Lint rules. Type-aware rules run over all TypeScript; workflow files additionally may not
// import Node built-ins or the domain layer (they run in Temporal's deterministic sandbox), and the
// message schemas they share with lib/ (lib/messages) import only zod and pure modules.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'assert', 'buffer', 'child_process', 'cluster', 'crypto', 'dgram', 'dns', 'events', 'fs',
  'fs/promises', 'http', 'http2', 'https', 'net', 'os', 'path', 'perf_hooks', 'process',
  'readline', 'stream', 'timers', 'tls', 'url', 'util', 'v8', 'vm', 'worker_threads', 'zlib',
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', 'coverage/**', 'dist/**', 'bin/**', 'examples/**/*.py'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.mjs', 'scripts/*.mjs'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      'no-console': 'off',
      // The compiled CommonJS (dist/) refers to the module's own exports as `exports.NAME`: a local of that name silently breaks it.
      'id-denylist': ['error', 'exports'],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeBuiltins.flatMap((m) => [m, `node:${m}`]).map((name) => ({ name, message: 'Workflow code runs in a deterministic sandbox: no Node built-ins.' })),
        // Values from lib/ only from the pure modules: lib/messages (the message schemas) and lib/util/duration.
        patterns: [{ regex: '^(\\.\\./)+lib/(?!messages/[a-z-]+$|util/duration$)', allowTypeImports: true, message: 'Workflows may import only types from lib/ (values: lib/messages/*, lib/util/duration).' }],
      }],
    },
  },
  {
    // The domain layer knows nothing about Temporal workflows: what both share lives in lib/messages.
    files: ['lib/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(\\.\\./)+workflows(/|$)', message: 'lib/ may not import workflows/ (shared message schemas live in lib/messages).' }] }],
    },
  },
  {
    // The message schemas are bundled into the workflow sandbox: zod and pure modules only.
    files: ['lib/messages/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '^(?!zod$|\\./[a-z-]+$|\\.\\./util/(duration|issues)$|\\.\\./sinks/spec$)', allowTypeImports: true, message: 'lib/messages is bundled into workflows: import only zod, lib/messages, lib/util/{duration,issues} and lib/sinks/spec (zod only).' }],
      }],
    },
  },
  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked, languageOptions: { globals: { console: 'readonly', process: 'readonly' } } },
);
