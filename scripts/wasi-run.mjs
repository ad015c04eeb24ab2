// Runs a WebAssembly (wasm32-wasip1) command module under Node's WASI: cargo's runner for the
// Rust tests built for WebAssembly (`npm run test:wasm`). Usage: node scripts/wasi-run.mjs file.wasm [args...]
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: process.env, preopens: { '/': '/' }, returnOnExit: true });
const module = await WebAssembly.compile(readFileSync(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
