#!/usr/bin/env node
// The `gyre` command line (src/cli/cli.ts). Run `gyre --help`.
require('../dist/cli/cli.js').run();
