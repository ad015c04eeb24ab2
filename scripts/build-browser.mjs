// Builds gyre's browser entry into dist/browser/: gyre.js (one ES module: the TypeScript API
// on the WebAssembly build, with @napi-rs/wasm-runtime), wasi-worker-browser.mjs (the module
// each WebAssembly thread runs) and gyre.wasm32-wasi.wasm, fetched next to gyre.js. Bundled by
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
for (const file of ['native/gyre.wasi-browser.js', 'native/wasi-worker-browser.mjs', 'native/gyre.wasm32-wasi.wasm']) {
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
  // One file: the WebAssembly binding is imported dynamically (after the isolation check) but
  // kept inside it.
  output: { file: path.join(out, 'gyre.js'), format: 'esm', sourcemap: false, codeSplitting: false },
});
await build({
  ...common,
  input: path.join(root, 'native', 'wasi-worker-browser.mjs'),
  output: { file: path.join(out, 'wasi-worker-browser.mjs'), format: 'esm' },
});
copyFileSync(path.join(root, 'native', 'gyre.wasm32-wasi.wasm'), path.join(out, 'gyre.wasm32-wasi.wasm'));
console.log(`built ${path.relative(root, out)}/: gyre.js, wasi-worker-browser.mjs, gyre.wasm32-wasi.wasm`);
