// The browser build's binding (it replaces src/binding.ts in dist/browser/gyre.js): gyre's
// WebAssembly build through its browser entry, which fetches gyre.wasm32-wasi.wasm next to the
// bundle and instantiates it (top-level await). Its threads are Web Workers sharing the
// module's memory, which browsers allow only in cross-origin isolated pages (served with
// Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp);
// elsewhere importing gyre fails with an error that says so.
if (globalThis.crossOriginIsolated !== true) {
  throw new Error(
    "gyre's WebAssembly build needs a cross-origin isolated page for its shared memory: serve the page with the headers " +
      'Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp (see gyre\'s README, "In the browser")',
  );
}
const wasm = await import('../native/gyre.wasi-browser.js');

/** The loaded binding. */
export const binding = wasm;

/** Always the WebAssembly build here. */
export const backend = 'wasm';

/** Nothing to keep quiet in a browser. */
export const quiet = (f) => f();

// As many threads as the browser reports cores.
binding.setNumThreads(Math.max(1, Math.min(globalThis.navigator?.hardwareConcurrency ?? 1, 64)));
