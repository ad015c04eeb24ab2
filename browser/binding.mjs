// The browser build's binding (it replaces src/binding.ts in dist/browser/gyre.js): gyre's
// WebAssembly build through its browser entry, which fetches its .wasm file from beside the
// bundle and instantiates it (top-level await). In a cross-origin isolated page (served with
// Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp) that
// is the threaded build (gyre.wasm32-wasi.wasm), whose threads are Web Workers sharing its
// memory; browsers give shared memory to isolated pages only, so elsewhere it is the build
// without threads (gyre.wasm32-wasip1.wasm), which runs every call on the page's thread.
const isolated = globalThis.crossOriginIsolated === true;

// gyre yields to the event loop between training steps with Node's setImmediate.
globalThis.setImmediate ??= (callback, ...args) => setTimeout(callback, 0, ...args);

const wasm = isolated ? await import('../native/gyre.wasi-browser.js') : await import('../native/wasip1/gyre.wasip1-browser.js');

/** The loaded binding. */
export const binding = wasm;

/** Always the WebAssembly build here. */
export const backend = 'wasm';

/** Nothing to keep quiet in a browser. */
export const quiet = (f) => f();

// As many threads as the browser reports cores, where there are threads.
if (isolated) binding.setNumThreads(Math.max(1, Math.min(globalThis.navigator?.hardwareConcurrency ?? 1, 64)));
