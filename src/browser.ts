/**
 * The browser entry (`gyre/browser`, built into `dist/browser/gyre.js` by
 * `scripts/build-browser.mjs`): the whole API on the WebAssembly build. What needs Node's file
 * system (saving to or loading from a path, reading CSV or word-vector files) throws in a
 * browser, naming the in-memory call to use instead (`toBuffer`, `fromBuffer`, ...).
 */
export * from './index.js';
