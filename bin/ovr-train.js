#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/cli/index.js (built by `npm run build`, run by `npm ci` via "prepare").
import { main } from '../dist/cli/index.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code ?? 0;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
