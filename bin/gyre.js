#!/usr/bin/env node
// The `gyre` command line (src/cli.ts). Run `gyre --help`.
require('../dist/cli.js').run();
