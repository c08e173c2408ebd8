#!/usr/bin/env node
// Inferflow command line. Runs the TypeScript sources through tsx (no build step).
require('tsx/cjs');
require('../cli/index.ts').main(process.argv);
