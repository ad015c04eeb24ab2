// Builds gyre's browser entry into dist/browser/: gyre.js (one ES module: the TypeScript API
// on the WebAssembly build, with @napi-rs/wasm-runtime), wasi-worker-browser.mjs (the module
// each WebAssembly thread runs), and the two builds gyre.js fetches from beside itself:
// gyre.wasm32-wasi.wasm (threads, for cross-origin isolated pages) and gyre.wasm32-wasip1.wasm
// (one thread, for the others). Bundled by
// rolldown; Node's built-in modules become stubs that throw when called, naming the browser's
// way instead. Bundled from src/ (TypeScript); needs the WebAssembly build (npm run build:wasm).
//
//   node scripts/build-browser.mjs
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'browser');
const WASM = ['native/gyre.wasm32-wasi.wasm', 'native/wasip1/gyre.wasm32-wasip1.wasm'];
for (const file of ['native/gyre.wasi-browser.js', 'native/wasi-worker-browser.mjs', 'native/wasip1/gyre.wasip1-browser.js', ...WASM]) {
  if (!existsSync(path.join(root, file))) {
    console.error(`no ${file}: build the WebAssembly build first (npm run build:wasm)`);
    process.exit(1);
  }
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

/** Node's built-in modules as stubs: every export a function that throws when called. */
const nodeStubs = {
  name: 'gyre-node-stubs',
  resolveId(source) {
    const name = source.replace(/^node:/, '');
    if (builtinModules.includes(name) || builtinModules.includes(name.split('/')[0])) return `\0node-stub:${name}`;
    return null;
  },
  async load(id) {
    if (!id.startsWith('\0node-stub:')) return null;
    const name = id.slice('\0node-stub:'.length);
    const real = await import(`node:${name}`);
    const names = Object.keys(real).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n));
    const lines = [
      'function unavailable(what) {',
      `  return function () { throw new Error('gyre in a browser: ' + what + ' needs Node.js (node:${name}); in a browser use the in-memory form (toBuffer / fromBuffer, arrays instead of files)'); };`,
      '}',
      ...names.map((n) => `export const ${n} = unavailable(${JSON.stringify(n)});`),
      `export default new Proxy({}, { get: (_, key) => unavailable(String(key)) });`,
    ];
    return lines.join('\n');
  },
};

/**
 * src/binding.ts (Node's loader) → browser/binding.mjs (the WebAssembly build's browser
 * entry); csv-parse → its own browser build (which carries the Buffer it needs).
 */
const browserBinding = {
  name: 'gyre-browser-binding',
  resolveId(source, importer) {
    if (importer && source === './binding.js' && path.dirname(importer) === path.join(root, 'src')) {
      return path.join(root, 'browser', 'binding.mjs');
    }
    if (source === 'csv-parse') return path.join(root, 'node_modules', 'csv-parse', 'dist', 'esm', 'index.js');
    return null;
  },
};

const common = {
  platform: 'browser',
  plugins: [nodeStubs, browserBinding],
  // The TypeScript sources import each other as `./x.js`.
  resolve: { extensionAlias: { '.js': ['.ts', '.js'] } },
  logLevel: 'warn',
};
await build({
  ...common,
  input: path.join(root, 'src', 'browser.ts'),
  // The two WebAssembly loaders are imported dynamically (the page's isolation picks one):
  // each becomes a chunk beside gyre.js, fetched only when picked.
  output: { dir: out, entryFileNames: 'gyre.js', chunkFileNames: '[name]-[hash].js', format: 'esm', sourcemap: false },
});
await build({
  ...common,
  input: path.join(root, 'native', 'wasi-worker-browser.mjs'),
  output: { file: path.join(out, 'wasi-worker-browser.mjs'), format: 'esm' },
});
for (const file of WASM) copyFileSync(path.join(root, file), path.join(out, path.basename(file)));
console.log(`built ${path.relative(root, out)}/: gyre.js, wasi-worker-browser.mjs, ${WASM.map((f) => path.basename(f)).join(', ')}`);
