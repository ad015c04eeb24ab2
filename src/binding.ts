/**
 * Loads gyre's compiled code in Node: the platform's native addon, or the WebAssembly build
 * where no addon fits (or `GYRE_WASM=1` asks for it). The browser build replaces this module
 * with `browser/binding.mjs`, which imports the WebAssembly build's browser entry; everything
 * else reaches the binding through `native.ts`.
 */
import { availableParallelism } from 'node:os';
import { NativeUnavailableError } from './errors.js';
import type * as Binding from '../native/binding.js';

/** The npm package that carries the binary for this platform (`gyre-linux-x64-gnu`, ...). */
function platformPackage(): string {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    return `gyre-linux-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`;
  }
  if (platform === 'win32') return `gyre-win32-${arch}-msvc`;
  return `gyre-${platform}-${arch}`;
}

/**
 * Whether the WebAssembly build is forced (`GYRE_WASM=1`), for tests and comparisons: the
 * native addon is then not tried at all.
 */
function wasmForced(): boolean {
  const value = process.env.GYRE_WASM;
  if (value === undefined || value === '' || value === '0') return false;
  if (value === '1') return true;
  throw new NativeUnavailableError(`GYRE_WASM must be 1 (use the WebAssembly build) or 0 (the default), got ${JSON.stringify(value)}.`);
}

/**
 * Runs `f` without Node's "WASI is an experimental feature" warning, which the WebAssembly
 * build would print on every start (to the stderr of every command-line run), from this thread
 * and from each worker thread the build starts meanwhile (they read `NODE_NO_WARNINGS` from the
 * environment they are given). gyre uses only the WASI calls its WebAssembly build was made for.
 */
export function withoutWasiWarning<T>(f: () => T): T {
  const emit = process.emitWarning;
  const quiet = process.env.NODE_NO_WARNINGS;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]): void {
    const text = typeof warning === 'string' ? warning : warning.message;
    const type = typeof rest[0] === 'string' ? rest[0] : ((rest[0] as { type?: string } | undefined)?.type ?? '');
    if (type === 'ExperimentalWarning' && text.includes('WASI')) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  process.env.NODE_NO_WARNINGS = '1';
  try {
    return f();
  } finally {
    process.emitWarning = emit;
    if (quiet === undefined) delete process.env.NODE_NO_WARNINGS;
    else process.env.NODE_NO_WARNINGS = quiet;
  }
}

function load(): typeof Binding {
  const forced = wasmForced();
  // The generated loader tries the platform's addon, then the WebAssembly build (`gyre-wasm32-wasi`,
  // or `native/gyre.wasi.cjs` in a clone). Its switch to skip the addon is read while it loads, and
  // only by it here: other napi-rs packages in the process (a bundler, a test runner) keep theirs.
  const saved = process.env.NAPI_RS_FORCE_WASI;
  if (forced) process.env.NAPI_RS_FORCE_WASI = 'error';
  try {
    // The package compiles to CommonJS, where the generated loader is read with require().
    return withoutWasiWarning(() => require('../native/binding.js') as typeof Binding);
  } catch (err) {
    const platform = `${process.platform}-${process.arch}`;
    if (forced) {
      throw new NativeUnavailableError(
        `GYRE_WASM=1 asks for gyre's WebAssembly build, which did not load (Node ${process.version}). Install the package ` +
          'gyre-wasm32-wasi (npm install --force gyre-wasm32-wasi: it declares the CPU wasm32), or in a git clone of gyre ' +
          'run `npm run build:wasm`.',
        { cause: err },
      );
    }
    throw new NativeUnavailableError(
      `gyre has no native binary for ${platform} (Node ${process.version}), and its WebAssembly build did not load either. ` +
        `Install the package ${platformPackage()} (npm installs it with gyre unless optional dependencies are omitted, ` +
        'e.g. by --omit=optional or a lockfile made on another platform), or the WebAssembly package gyre-wasm32-wasi ' +
        '(npm install --force gyre-wasm32-wasi), which runs anywhere Node runs, slower. Where neither fits, build gyre from ' +
        'source: in a git clone of gyre, `npm install` builds the addon with a Rust toolchain (https://rustup.rs).',
      { cause: err },
    );
  } finally {
    if (forced) {
      if (saved === undefined) delete process.env.NAPI_RS_FORCE_WASI;
      else process.env.NAPI_RS_FORCE_WASI = saved;
    }
  }
}

/** The loaded binding (the generated loader's exports). */
export const binding: typeof Binding = load();

/** Which build runs gyre's kernels: the platform's native addon, or the WebAssembly one. */
export const backend: 'native' | 'wasm' = binding.__napiBindingTarget === 'native' ? 'native' : 'wasm';

// WebAssembly cannot ask the system how many CPUs there are (the native addon does): the pool
// of the WebAssembly build gets Node's count, unless GYRE_NUM_THREADS sets it (read natively).
if (backend === 'wasm' && process.env.GYRE_NUM_THREADS === undefined) {
  withoutWasiWarning(() => binding.setNumThreads(Math.max(1, Math.min(availableParallelism(), 1024))));
}

/** Runs `f`, keeping the WebAssembly build's worker threads quiet as they start (see above). */
export const quiet: <T>(f: () => T) => T = backend === 'wasm' ? withoutWasiWarning : (f) => f();
