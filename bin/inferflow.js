#!/usr/bin/env node
// Inferflow command line: the compiled CLI in dist/ (`npm run build`, run by `npm ci` through `prepare`).
require('../dist/cli/index.js').main(process.argv);
