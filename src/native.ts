/**
 * The one module every other module calls the compiled code through (the binding itself is
 * loaded by `binding.ts`): its functions convert native errors into {@link GyreError}s.
 */
import { backend, binding, quiet } from './binding.js';
import { fromNative } from './errors.js';
import type * as Binding from '../native/binding.js';

export { backend };

function guarded<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args: A): R => guard(() => fn(...args));
}

/** Runs a native call, converting what it throws into a GyreError. */
export function guard<R>(call: () => R): R {
  try {
    // The WebAssembly build starts its worker threads inside calls (a task's first queueing).
    return quiet(call);
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
export const setNumThreads = binding.setNumThreads;
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
