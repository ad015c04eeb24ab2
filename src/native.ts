/**
 * The one module that loads the native addon. Every other module calls the functions exported
 * here, which convert native errors into {@link GyreError}s.
 */
import { availableParallelism } from 'node:os';
import { fromNative, NativeUnavailableError } from './errors.js';
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

const binding = load();

/** Which build runs gyre's kernels: the platform's native addon, or the WebAssembly one. */
export const backend: 'native' | 'wasm' = binding.__napiBindingTarget === 'native' ? 'native' : 'wasm';

// WebAssembly cannot ask the system how many CPUs there are (the native addon does): the pool
// of the WebAssembly build gets Node's count, unless GYRE_NUM_THREADS sets it (read natively).
if (backend === 'wasm' && process.env.GYRE_NUM_THREADS === undefined) {
  withoutWasiWarning(() => binding.setNumThreads(Math.max(1, Math.min(availableParallelism(), 1024))));
}

function guarded<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args: A): R => guard(() => fn(...args));
}

/** Runs a native call, converting what it throws into a GyreError. */
export function guard<R>(call: () => R): R {
  try {
    // The WebAssembly build starts its worker threads inside calls (a task's first queueing).
    return backend === 'wasm' ? withoutWasiWarning(call) : call();
  } catch (err) {
    throw fromNative(err);
  }
}

/** Awaits a native Promise, converting its rejection into a GyreError. */
export async function settle<R>(promise: Promise<R>): Promise<R> {
  try {
    return await promise;
  } catch (err) {
    throw fromNative(err);
  }
}

export const NativeModel = binding.NativeModel;
export type NativeModel = Binding.NativeModel;
export type StreamState = Binding.StreamState;
export const NativeSeq2Seq = binding.NativeSeq2Seq;
export type NativeSeq2Seq = Binding.NativeSeq2Seq;
export type NativeSeq2SeqStream = Binding.NativeSeq2SeqStream;
export const NativeGraph = binding.NativeGraph;
export type NativeGraph = Binding.NativeGraph;
export type GraphDataArgs = Binding.GraphDataArgs;
/** Sets the pool's size (in the WebAssembly build, its new worker threads start quietly). */
export const setNumThreads = (threads: number): void => withoutWasiWarning(() => binding.setNumThreads(threads));
export const getNumThreads = binding.getNumThreads;
export const simdLevel = binding.simdLevel;
export const firstNonFinite = binding.firstNonFinite;

export type {
  DataArgs,
  FitOptions,
  FitSettings,
  BatchResult,
  ProgressEvent,
  FitHistory,
  EvaluationResult,
  MetricsOptions,
  PredictResult,
  LayerState,
  RecurrentSpec,
  RecurrentTensorsF32,
  RecurrentTensorsF64,
  ForwardResultF32,
  ForwardResultF64,
  BackwardResultF32,
  BackwardResultF64,
  AttentionSpec,
  AttentionTensorsF32,
  AttentionTensorsF64,
  DecoderCallSpec,
  DecoderTensorsF32,
  DecoderTensorsF64,
  BeamCallOptions,
} from '../native/binding.js';

export const recurrentForwardF32 = guarded(binding.recurrentForwardF32);
export const recurrentForwardF64 = guarded(binding.recurrentForwardF64);
export const recurrentBackwardF32 = guarded(binding.recurrentBackwardF32);
export const recurrentBackwardF64 = guarded(binding.recurrentBackwardF64);
export const attentionForwardF32 = guarded(binding.attentionForwardF32);
export const attentionForwardF64 = guarded(binding.attentionForwardF64);
export const attentionBackwardF32 = guarded(binding.attentionBackwardF32);
export const attentionBackwardF64 = guarded(binding.attentionBackwardF64);
export const decoderForwardF32 = guarded(binding.decoderForwardF32);
export const decoderForwardF64 = guarded(binding.decoderForwardF64);
export const decoderBackwardF32 = guarded(binding.decoderBackwardF32);
export const decoderBackwardF64 = guarded(binding.decoderBackwardF64);
export const decoderStepF32 = guarded(binding.decoderStepF32);
export const decoderStepF64 = guarded(binding.decoderStepF64);
export const beamSearchF32 = guarded(binding.beamSearchF32);
export const beamSearchF64 = guarded(binding.beamSearchF64);
