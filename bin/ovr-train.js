#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/cli/index.js (built by `npm run build`, run by `npm ci` via "prepare").
import { runAndExit } from '../dist/cli/index.js';

await runAndExit(process.argv.slice(2));
