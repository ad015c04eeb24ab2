/**
 * Bad input across the public API. Every case asserts (1) a thrown or rejected `GyreError` with
 * its stable `code` and a message naming the argument, (2) no crash: everything runs in this
 * process, so a native abort would take the whole file down, and (3) nothing changed: the
 * model's parameters (and a prediction), or the caller's arrays, are compared before and after.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backend,
  fromBuffer,
  GyreError,
  gruBackward,
  gruForward,
  importTfjs,
  loadModel,
  loadTfjs,
  lstmBackward,
  lstmForward,
  rnnBackward,
  rnnForward,
  saveOnnx,
  sequential,
  setNumThreads,
  toOnnx,
  type GyreErrorCode,
  type Model,
  type ModelSpec,
} from 'gyre';

// ---------------------------------------------------------------------------------------------
// Helpers

/** The WebAssembly build, whose sizes are 32-bit: a size past 4 GiB is refused as unrepresentable. */
const wasm32 = backend() === 'wasm';

function assertGyre(err: unknown, code: GyreErrorCode, fragments: readonly string[]): void {
  expect(err, 'a GyreError is thrown').toBeInstanceOf(GyreError);
  const e = err as GyreError;
  expect(e.code).toBe(code);
  expect(e.name).not.toBe('Error');
  for (const f of fragments) expect(e.message).toContain(f);
}

/** `call` throws synchronously a GyreError with `code` whose message contains every fragment. */
function throwsGyre(call: () => unknown, code: GyreErrorCode, ...fragments: string[]): GyreError {
  let err: unknown;
  try {
    call();
  } catch (e) {
    err = e;
  }
  assertGyre(err, code, fragments);
  return err as GyreError;
}

/** `call` returns a Promise that rejects with a GyreError (a synchronous throw is accepted too). */
async function rejectsGyre(call: () => unknown, code: GyreErrorCode, ...fragments: string[]): Promise<GyreError> {
  let err: unknown;
  try {
    await call();
  } catch (e) {
    err = e;
  }
  assertGyre(err, code, fragments);
  return err as GyreError;
}

type Weights = Record<string, { shape: number[]; data: number[] }>;

/** Every parameter, by value. */
function weights(model: Model): Weights {
  return Object.fromEntries(Object.entries(model.parameters()).map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.data) }]));
}

/** What a model computes on a fixed input: compared before and after every failed call. */
function fingerprint(model: Model): { weights: Weights; prediction: number[] } {
  const cfg = model.config;
  const tokens = 'vocabSize' in cfg.input;
  const features = 'features' in cfg.input ? cfg.input.features : 0;
  const x = tokens
    ? [[1, 0, 2], [3]]
    : [
        [Array.from({ length: features }, (_, f) => 0.1 * (f + 1))],
        [Array.from({ length: features }, () => -0.2), Array.from({ length: features }, () => 0.3)],
      ];
  return { weights: weights(model), prediction: Array.from(model.predictSync(x as never).data) };
}

function failsUnchanged(model: Model, call: () => unknown, code: GyreErrorCode, ...fragments: string[]): GyreError {
  const before = fingerprint(model);
  const err = throwsGyre(call, code, ...fragments);
  expect(fingerprint(model)).toEqual(before);
  return err;
}

async function rejectsUnchanged(model: Model, call: () => unknown, code: GyreErrorCode, ...fragments: string[]): Promise<GyreError> {
  const before = fingerprint(model);
  const err = await rejectsGyre(call, code, ...fragments);
  expect(fingerprint(model)).toEqual(before);
  return err;
}

/** Detaches a typed array's buffer the way a worker transfer does; the view then has length 0. */
function detach<T extends ArrayBufferView>(a: T, how: 'structuredClone' | 'postMessage' = 'structuredClone'): T {
  if (how === 'structuredClone') {
    structuredClone(a, { transfer: [a.buffer as ArrayBuffer] });
  } else {
    const channel = new MessageChannel();
    channel.port1.postMessage(a, [a.buffer as ArrayBuffer]);
    channel.port1.close();
    channel.port2.close();
  }
  expect(a.byteLength).toBe(0);
  return a;
}

// ---------------------------------------------------------------------------------------------
// The functional API

const B = 2;
const T = 3;
const I = 2;
const H = 3;
const GATES = { rnn: 1, lstm: 4, gru: 3 } as const;
type Cell = keyof typeof GATES;
type Dtype = typeof Float32Array | typeof Float64Array;

function fargs(cell: Cell, dtype: Dtype = Float32Array): Record<string, unknown> & { weights: Record<string, unknown> } {
  const f = (n: number, k: number) => {
    const out = new dtype(n);
    for (let i = 0; i < n; i++) out[i] = Math.sin(i * 0.7 + k) * 0.3;
    return out;
  };
  const G = GATES[cell];
  return {
    input: f(B * T * I, 1),
    batch: B,
    steps: T,
    inputSize: I,
    hiddenSize: H,
    weights: { weight_ih_l0: f(G * H * I, 2), weight_hh_l0: f(G * H * H, 3), bias_ih_l0: f(G * H, 4), bias_hh_l0: f(G * H, 5) },
  };
}

const FNS = { rnnForward, rnnBackward, lstmForward, lstmBackward, gruForward, gruBackward } as const;
type FnName = keyof typeof FNS;
const cellOf = (fn: FnName): Cell => (fn.startsWith('rnn') ? 'rnn' : fn.startsWith('lstm') ? 'lstm' : 'gru');

/** Every typed array reachable from the arguments, by value. */
function arrays(a: Record<string, unknown>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const walk = (prefix: string, v: unknown) => {
    if (ArrayBuffer.isView(v)) out[prefix] = v.byteLength === 0 ? [] : Array.from(v as Float32Array);
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(`${prefix}.${k}`, x);
  };
  walk('', a);
  return out;
}

type Edit = (a: ReturnType<typeof fargs>) => unknown;
const set =
  (key: string, v: unknown): Edit =>
  (a) => ({ ...a, [key]: v });
const setW =
  (key: string, v: unknown): Edit =>
  (a) => ({ ...a, weights: { ...a.weights, [key]: v } });
const dropW =
  (key: string): Edit =>
  (a) => {
    const w = { ...a.weights };
    delete w[key];
    return { ...a, weights: w };
  };

const functionalCases: [string, FnName, Edit, GyreErrorCode, string[]][] = [
  // wrong lengths of every tensor
  [
    'input too long',
    'lstmForward',
    set('input', new Float32Array(B * T * I + 1)),
    'GYRE_SHAPE_MISMATCH',
    ['lstmForward', 'input', '[2, 3, 2]', 'got 13 values'],
  ],
  [
    'weight_ih_l0 too short',
    'rnnForward',
    setW('weight_ih_l0', new Float32Array(5)),
    'GYRE_SHAPE_MISMATCH',
    ['rnnForward', 'weight_ih_l0', '[3, 2] (6 values)', 'got 5 values'],
  ],
  [
    'weight_hh_l0 of an LSTM handed to a GRU',
    'gruForward',
    setW('weight_hh_l0', new Float32Array(4 * H * H)),
    'GYRE_SHAPE_MISMATCH',
    ['gruForward', 'weight_hh_l0', '[9, 3]', 'got 36 values'],
  ],
  [
    'bias_ih_l0 too short',
    'lstmForward',
    setW('bias_ih_l0', new Float32Array(4 * H - 1)),
    'GYRE_SHAPE_MISMATCH',
    ['bias_ih_l0', '[12]', 'got 11 values'],
  ],
  [
    'bias_hh_l0 too long',
    'rnnBackward',
    setW('bias_hh_l0', new Float32Array(H + 1)),
    'GYRE_SHAPE_MISMATCH',
    ['rnnBackward', 'bias_hh_l0', 'got 4 values'],
  ],
  ['h0 too short', 'gruForward', set('h0', new Float32Array(B * H - 1)), 'GYRE_SHAPE_MISMATCH', ['h0', '[2, 3]', 'got 5 values']],
  ['c0 too short', 'lstmForward', set('c0', new Float32Array(1)), 'GYRE_SHAPE_MISMATCH', ['c0', '[2, 3]', 'got 1 values']],
  [
    'gradOutput too short',
    'lstmBackward',
    set('gradOutput', new Float32Array(5)),
    'GYRE_SHAPE_MISMATCH',
    ['lstmBackward', 'grad_output', '[2, 3, 3]', 'got 5 values'],
  ],
  [
    'gradHN too short',
    'gruBackward',
    set('gradHN', new Float32Array(5)),
    'GYRE_SHAPE_MISMATCH',
    ['gruBackward', 'grad_h_n', 'got 5 values'],
  ],
  ['gradCN too long', 'lstmBackward', set('gradCN', new Float32Array(7)), 'GYRE_SHAPE_MISMATCH', ['grad_c_n', 'got 7 values']],
  [
    'input of the wrong length in backward',
    'rnnBackward',
    set('steps', 4),
    'GYRE_SHAPE_MISMATCH',
    ['rnnBackward', 'input', '[2, 4, 2]', 'got 12 values'],
  ],
  // dtypes
  [
    'Float64 h0 with a Float32 input',
    'lstmForward',
    set('h0', new Float64Array(B * H)),
    'GYRE_INVALID_ARGUMENT',
    ['h0 must be a Float32Array like input', 'Float64Array'],
  ],
  [
    'Float32 weights with a Float64 input',
    'gruForward',
    set('input', new Float64Array(B * T * I)),
    'GYRE_INVALID_ARGUMENT',
    ['weights.weight_ih_l0 must be a Float64Array like input', 'Float32Array'],
  ],
  [
    'Int32Array input',
    'rnnForward',
    set('input', new Int32Array(B * T * I)),
    'GYRE_INVALID_ARGUMENT',
    ['input must be a Float32Array or Float64Array', 'Int32Array'],
  ],
  [
    'plain array input',
    'lstmForward',
    set(
      'input',
      Array.from({ length: B * T * I }, () => 0),
    ),
    'GYRE_INVALID_ARGUMENT',
    ['input', 'an array of length 12'],
  ],
  [
    'plain array weight',
    'gruBackward',
    setW(
      'weight_hh_l0',
      Array.from({ length: 3 * H * H }, () => 0),
    ),
    'GYRE_INVALID_ARGUMENT',
    ['weights.weight_hh_l0', 'an array of length 27'],
  ],
  [
    'Int32Array gradOutput',
    'rnnBackward',
    set('gradOutput', new Int32Array(B * T * H)),
    'GYRE_INVALID_ARGUMENT',
    ['gradOutput must be a Float32Array', 'Int32Array'],
  ],
  [
    'a Float32Array as the weights object',
    'lstmForward',
    set('weights', new Float32Array(4)),
    'GYRE_INVALID_ARGUMENT',
    ['weights must be an object of tensors'],
  ],
  // missing weights
  ['no weights', 'rnnForward', set('weights', undefined), 'GYRE_MISSING_ARGUMENT', ['rnnForward', 'weights is required']],
  ['no weight_hh_l0', 'gruForward', dropW('weight_hh_l0'), 'GYRE_MISSING_ARGUMENT', ['weights.weight_hh_l0 is required']],
  ['no bias_ih_l0', 'lstmBackward', dropW('bias_ih_l0'), 'GYRE_MISSING_ARGUMENT', ['lstmBackward', 'weights.bias_ih_l0 is required']],
  // unknown options
  ['unknown option dropout', 'lstmForward', set('dropout', 0.5), 'GYRE_INVALID_ARGUMENT', ['unknown option dropout']],
  [
    'unknown weight weight_ih_l1',
    'rnnForward',
    setW('weight_ih_l1', new Float32Array(6)),
    'GYRE_INVALID_ARGUMENT',
    ['unknown option weights.weight_ih_l1'],
  ],
  ['c0 on an RNN', 'rnnForward', set('c0', new Float32Array(B * H)), 'GYRE_INVALID_ARGUMENT', ['unknown option c0']],
  ['gradCN on a GRU', 'gruBackward', set('gradCN', new Float32Array(B * H)), 'GYRE_INVALID_ARGUMENT', ['unknown option gradCN']],
  ['nonlinearity sigmoid', 'rnnBackward', set('nonlinearity', 'sigmoid'), 'GYRE_INVALID_ARGUMENT', ['nonlinearity', '"sigmoid"']],
  ['resetAfter "yes"', 'gruForward', set('resetAfter', 'yes'), 'GYRE_INVALID_ARGUMENT', ['resetAfter must be a boolean', '"yes"']],
  // sizes
  ['NaN batch', 'lstmForward', set('batch', Number.NaN), 'GYRE_INVALID_ARGUMENT', ['batch must be a positive integer', 'NaN']],
  ['negative steps', 'gruBackward', set('steps', -3), 'GYRE_INVALID_ARGUMENT', ['steps must be a positive integer', '-3']],
  ['fractional inputSize', 'rnnForward', set('inputSize', 1.5), 'GYRE_INVALID_ARGUMENT', ['inputSize', '1.5']],
  ['zero hiddenSize', 'lstmBackward', set('hiddenSize', 0), 'GYRE_INVALID_ARGUMENT', ['hiddenSize', 'got 0']],
  ['string hiddenSize', 'gruForward', set('hiddenSize', '3'), 'GYRE_INVALID_ARGUMENT', ['hiddenSize', '"3"']],
  ['infinite batch', 'rnnBackward', set('batch', Number.POSITIVE_INFINITY), 'GYRE_INVALID_ARGUMENT', ['batch', 'Infinity']],
  ['hiddenSize beyond 32 bits', 'lstmForward', set('hiddenSize', 2 ** 33), 'GYRE_INVALID_ARGUMENT', ['hiddenSize', '8589934592']],
  [
    'sizes whose product would need 32 GiB',
    'rnnForward',
    (a) => ({ ...a, batch: 65536, steps: 65536 }),
    wasm32 ? 'GYRE_INVALID_ARGUMENT' : 'GYRE_SHAPE_MISMATCH',
    wasm32 ? ['representable in memory', '[65536, 65536, 2]'] : ['input', '[65536, 65536, 2]', 'got 12 values'],
  ],
  // detached buffers (length 0 now)
  [
    'a detached input',
    'lstmForward',
    (a) => ({ ...a, input: detach(a.input as Float32Array) }),
    'GYRE_SHAPE_MISMATCH',
    ['input', 'got 0 values'],
  ],
  [
    'a weight detached by postMessage',
    'gruForward',
    (a) => setW('weight_hh_l0', detach(a.weights.weight_hh_l0 as Float32Array, 'postMessage'))(a),
    'GYRE_SHAPE_MISMATCH',
    ['weight_hh_l0', 'got 0 values'],
  ],
  ['a detached h0', 'rnnBackward', (a) => ({ ...a, h0: detach(new Float32Array(B * H)) }), 'GYRE_SHAPE_MISMATCH', ['h0', 'got 0 values']],
  [
    'a detached Float64 gradOutput',
    'lstmBackward',
    (a) => ({
      ...a,
      input: new Float64Array(B * T * I),
      weights: fargs('lstm', Float64Array).weights,
      gradOutput: detach(new Float64Array(B * T * H)),
    }),
    'GYRE_SHAPE_MISMATCH',
    ['grad_output', 'got 0 values'],
  ],
];

describe('functional API: bad arguments', () => {
  it.each(functionalCases)('%s (%s)', (_label, fn, edit, code, fragments) => {
    const args = edit(fargs(cellOf(fn))) as Record<string, unknown>;
    const before = arrays(args);
    throwsGyre(() => FNS[fn](args as never), code, ...fragments);
    expect(arrays(args), 'the caller’s arrays are left as they were').toEqual(before);
  });

  it.each([null, undefined, 3, 'input'])('rejects %s instead of an options object', (bad) => {
    throwsGyre(() => lstmForward(bad as never), 'GYRE_INVALID_ARGUMENT', 'lstmForward');
  });

  it('accepts a Float32Array view over a SharedArrayBuffer and computes the same as a plain one', () => {
    const args = fargs('lstm');
    const input = args.input as Float32Array;
    const shared = new Float32Array(new SharedArrayBuffer(input.byteLength));
    shared.set(input);
    const plain = lstmForward(args as never);
    const viaShared = lstmForward({ ...args, input: shared } as never);
    expect(Array.from(viaShared.output)).toEqual(Array.from(plain.output));
    expect(Array.from(viaShared.cN)).toEqual(Array.from(plain.cN));
    expect(Array.from(shared)).toEqual(Array.from(input));
  });
});

// ---------------------------------------------------------------------------------------------
// Model specs

const featureSpec = (layers: unknown[], extra: Record<string, unknown> = {}): unknown => ({ input: { features: 2 }, layers, ...extra });
const tokenSpec = (layers: unknown[]): unknown => ({ input: { vocabSize: 5 }, layers });

const specCases: [string, unknown, GyreErrorCode, string[]][] = [
  [
    'an unknown layer type',
    featureSpec([{ type: 'transformer', hiddenSize: 3 }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].type', '"transformer"'],
  ],
  [
    'a layer without a type',
    featureSpec([{ hiddenSize: 3 }]),
    'GYRE_MISSING_ARGUMENT',
    ["layers[0].type is required (one of 'embedding', 'rnn', 'lstm', 'gru', 'dense')"],
  ],
  [
    'misspelled hiddensize',
    featureSpec([{ type: 'lstm', hiddensize: 3 }]),
    'GYRE_INVALID_ARGUMENT',
    ['unknown option layers[0].hiddensize'],
  ],
  [
    'misspelled top-level key',
    { input: { features: 2 }, layer: [{ type: 'lstm', hiddenSize: 3 }] },
    'GYRE_INVALID_ARGUMENT',
    ['unknown option layer'],
  ],
  [
    'misspelled input key',
    { input: { feature: 2 }, layers: [{ type: 'lstm', hiddenSize: 3 }] },
    'GYRE_MISSING_ARGUMENT',
    ['input.features or input.vocabSize is required (floats per step, or token ids)'],
  ],
  [
    'resetAfter on an LSTM',
    featureSpec([{ type: 'lstm', hiddenSize: 3, resetAfter: true }]),
    'GYRE_INVALID_ARGUMENT',
    ['unknown option layers[0].resetAfter'],
  ],
  ['no hiddenSize', featureSpec([{ type: 'gru' }]), 'GYRE_MISSING_ARGUMENT', ['layers[0].hiddenSize is required']],
  [
    'no embedding dim',
    tokenSpec([{ type: 'embedding' }, { type: 'lstm', hiddenSize: 3 }]),
    'GYRE_MISSING_ARGUMENT',
    ['layers[0].dim is required'],
  ],
  [
    'no dense units',
    featureSpec([{ type: 'lstm', hiddenSize: 3 }, { type: 'dense' }]),
    'GYRE_MISSING_ARGUMENT',
    ['layers[1].units is required'],
  ],
  ['fractional hiddenSize', featureSpec([{ type: 'gru', hiddenSize: 2.5 }]), 'GYRE_INVALID_ARGUMENT', ['layers[0].hiddenSize', '2.5']],
  ['negative hiddenSize', featureSpec([{ type: 'rnn', hiddenSize: -4 }]), 'GYRE_INVALID_ARGUMENT', ['layers[0].hiddenSize', '-4']],
  ['NaN units', featureSpec([{ type: 'dense', units: Number.NaN }]), 'GYRE_INVALID_ARGUMENT', ['layers[0].units', 'NaN']],
  [
    'zero numLayers',
    featureSpec([{ type: 'lstm', hiddenSize: 3, numLayers: 0 }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].numLayers', 'got 0'],
  ],
  [
    'hiddenSize 1e6 (16 TB of weights)',
    featureSpec([{ type: 'lstm', hiddenSize: 1e6 }]),
    'GYRE_INVALID_ARGUMENT',
    ['model size', '268435456'],
  ],
  [
    'hiddenSize 2^40',
    featureSpec([{ type: 'gru', hiddenSize: 2 ** 40 }]),
    'GYRE_INVALID_ARGUMENT',
    wasm32 ? ['hiddenSize', '1099511627776'] : ['model size'],
  ],
  ['numLayers 1e6', featureSpec([{ type: 'lstm', hiddenSize: 64, numLayers: 1e6 }]), 'GYRE_INVALID_ARGUMENT', ['model size']],
  ['dense units 1e9', featureSpec([{ type: 'dense', units: 1e9 }]), 'GYRE_INVALID_ARGUMENT', ['model size']],
  ['input features 1e9', { input: { features: 1e9 }, layers: [{ type: 'dense', units: 4 }] }, 'GYRE_INVALID_ARGUMENT', ['model size']],
  [
    'vocabSize 1e9 × dim 1000',
    { input: { vocabSize: 1e9 }, layers: [{ type: 'embedding', dim: 1000 }] },
    'GYRE_INVALID_ARGUMENT',
    ['model size'],
  ],
  [
    '100000 dense layers',
    featureSpec(Array.from({ length: 100_000 }, () => ({ type: 'dense', units: 100 }))),
    'GYRE_INVALID_ARGUMENT',
    ['model size'],
  ],
  [
    'an embedding second',
    tokenSpec([
      { type: 'embedding', dim: 3 },
      { type: 'embedding', dim: 3 },
    ]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[1].type', 'embedding'],
  ],
  [
    'an embedding in a feature model',
    featureSpec([{ type: 'embedding', dim: 3 }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].type', 'embedding'],
  ],
  [
    'a token model without an embedding first',
    tokenSpec([{ type: 'lstm', hiddenSize: 3 }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].type', 'embedding first'],
  ],
  [
    'a recurrent layer after a final-state output',
    featureSpec([
      { type: 'lstm', hiddenSize: 3, returnSequences: false },
      { type: 'gru', hiddenSize: 3 },
    ]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[1].type', 'sequence'],
  ],
  [
    'dropout 1',
    featureSpec([{ type: 'lstm', hiddenSize: 3, numLayers: 2, dropout: 1 }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].dropout', '[0, 1)', 'got 1'],
  ],
  [
    'dropout -0.1',
    featureSpec([{ type: 'gru', hiddenSize: 3, numLayers: 2, dropout: -0.1 }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].dropout', '-0.1'],
  ],
  [
    'dropout NaN',
    featureSpec([{ type: 'rnn', hiddenSize: 3, numLayers: 2, dropout: Number.NaN }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].dropout', 'NaN'],
  ],
  [
    'dropout "0.1"',
    featureSpec([{ type: 'lstm', hiddenSize: 3, numLayers: 2, dropout: '0.1' }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].dropout', '"0.1"'],
  ],
  [
    'bidirectional "yes"',
    featureSpec([{ type: 'lstm', hiddenSize: 3, bidirectional: 'yes' }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].bidirectional must be a boolean', '"yes"'],
  ],
  [
    'returnSequences 0',
    featureSpec([{ type: 'gru', hiddenSize: 3, returnSequences: 0 }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].returnSequences must be a boolean'],
  ],
  [
    'merge "avg"',
    featureSpec([{ type: 'lstm', hiddenSize: 3, bidirectional: true, merge: 'avg' }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].merge', '"avg"'],
  ],
  [
    'nonlinearity "sigmoid"',
    featureSpec([{ type: 'rnn', hiddenSize: 3, nonlinearity: 'sigmoid' }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].nonlinearity', '"sigmoid"'],
  ],
  [
    'activation "gelu"',
    featureSpec([{ type: 'dense', units: 3, activation: 'gelu' }]),
    'GYRE_INVALID_ARGUMENT',
    ['layers[0].activation', '"gelu"'],
  ],
  [
    'both features and vocabSize',
    { input: { features: 2, vocabSize: 3 }, layers: [{ type: 'dense', units: 2 }] },
    'GYRE_INVALID_ARGUMENT',
    ['unknown option input.features'],
  ],
  ['features 0', { input: { features: 0 }, layers: [{ type: 'dense', units: 2 }] }, 'GYRE_INVALID_ARGUMENT', ['input.features', 'got 0']],
  ['features "2"', { input: { features: '2' }, layers: [{ type: 'dense', units: 2 }] }, 'GYRE_INVALID_ARGUMENT', ['input.features', '"2"']],
  ['no layers', featureSpec([]), 'GYRE_INVALID_ARGUMENT', ['layers must be a non-empty array']],
  [
    'layers as an object',
    { input: { features: 2 }, layers: { type: 'lstm', hiddenSize: 3 } },
    'GYRE_INVALID_ARGUMENT',
    ['layers must be a non-empty array', 'an object'],
  ],
  ['a null layer', featureSpec([null]), 'GYRE_INVALID_ARGUMENT', ['layers[0] must be an object', 'null']],
  ['seed -1', featureSpec([{ type: 'dense', units: 2 }], { seed: -1 }), 'GYRE_INVALID_ARGUMENT', ['seed', '-1']],
  ['seed 1.5', featureSpec([{ type: 'dense', units: 2 }], { seed: 1.5 }), 'GYRE_INVALID_ARGUMENT', ['seed', '1.5']],
  ['a null spec', null, 'GYRE_INVALID_ARGUMENT', ['model spec must be an object', 'null']],
];

describe('model specs', () => {
  it.each(specCases)('rejects %s', (_label, spec, code, fragments) => {
    throwsGyre(() => sequential(spec as ModelSpec), code, ...fragments);
  });
});

// ---------------------------------------------------------------------------------------------
// fit / evaluate / predict

/** Sequence classifier: one final state per sequence, 3 classes. */
const classifierSpec: ModelSpec = {
  input: { features: 2 },
  layers: [
    { type: 'lstm', hiddenSize: 4, returnSequences: false },
    { type: 'dense', units: 3 },
  ],
  seed: 1,
};
/** Per-step regression: 2 values per step. */
const regressorSpec: ModelSpec = {
  input: { features: 2 },
  layers: [
    { type: 'gru', hiddenSize: 4 },
    { type: 'dense', units: 2, activation: 'tanh' },
  ],
  seed: 2,
};
/** Token classifier over a vocabulary of 5. */
const tokenModelSpec: ModelSpec = {
  input: { vocabSize: 5 },
  layers: [
    { type: 'embedding', dim: 3 },
    { type: 'rnn', hiddenSize: 4, returnSequences: false },
    { type: 'dense', units: 2, activation: 'softmax' },
  ],
  seed: 3,
};

const xs = [
  [
    [0.1, 0.2],
    [0.3, 0.4],
  ],
  [[0.5, 0.6]],
  [
    [0.1, 0.1],
    [0.2, 0.2],
    [0.3, 0.3],
  ],
];
const ys = [0, 1, 2];
const tensorX = (lengths?: number[]) => ({
  data: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)),
  shape: [3, 2, 2],
  ...(lengths ? { lengths } : {}),
});
const fitOptions = (extra: Record<string, unknown> = {}) => ({ loss: 'crossEntropy', epochs: 1, batchSize: 2, ...extra });

type Kind = 'classifier' | 'regressor' | 'tokens';
const specs: Record<Kind, ModelSpec> = { classifier: classifierSpec, regressor: regressorSpec, tokens: tokenModelSpec };

const fitCases: [string, Kind, unknown, unknown, unknown, GyreErrorCode, string[]][] = [
  // samples and labels
  ['x and y sample counts that disagree', 'classifier', xs, [0, 1], fitOptions(), 'GYRE_SHAPE_MISMATCH', ['y must hold 3 values', 'got 2']],
  [
    'a label equal to the number of classes',
    'classifier',
    xs,
    [0, 1, 3],
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['y[2]', 'class id below 3', 'got 3'],
  ],
  [
    'a negative label',
    'classifier',
    xs,
    [0, -1, 2],
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['y[1]', 'non-negative integer class id', '-1'],
  ],
  ['a fractional label', 'classifier', xs, Float32Array.from([0, 1, 1.5]), fitOptions(), 'GYRE_INVALID_ARGUMENT', ['y[2]', '1.5']],
  ['a NaN label', 'classifier', xs, [0, Number.NaN, 2], fitOptions(), 'GYRE_INVALID_ARGUMENT', ['y[1]', 'NaN']],
  [
    'nested labels for a sequence classifier',
    'classifier',
    xs,
    [[0], [1], [2]],
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['y[0]', 'an array of length 1'],
  ],
  ['a string for y', 'classifier', xs, 'abc', fitOptions(), 'GYRE_INVALID_ARGUMENT', ['y must be an array or typed array', '"abc"']],
  ['y missing', 'classifier', xs, undefined, fitOptions(), 'GYRE_MISSING_ARGUMENT', ['y is required']],
  // non-finite values
  [
    'NaN in nested x',
    'classifier',
    [
      [
        [0.1, 0.2],
        [Number.NaN, 0.4],
      ],
      [[0.5, 0.6]],
      [[0.1, 0.1]],
    ],
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x[0][1][0] must be a finite number', 'NaN'],
  ],
  [
    'Infinity in nested x',
    'classifier',
    [[[0.1, Number.POSITIVE_INFINITY]], [[0.5, 0.6]], [[0.1, 0.1]]],
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x[0][0][1]', 'Infinity'],
  ],
  [
    'NaN in a Float32Array x',
    'classifier',
    { ...tensorX(), data: Float32Array.from({ length: 12 }, (_, i) => (i === 7 ? Number.NaN : 0)) },
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x.data[7] must be a finite number', 'NaN'],
  ],
  [
    'Infinity in the last sequence of a Float32Array x',
    'classifier',
    { ...tensorX(), data: Float32Array.from({ length: 12 }, (_, i) => (i === 11 ? Number.POSITIVE_INFINITY : 0)) },
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x.data[11] must be a finite number', 'Infinity'],
  ],
  [
    'NaN inside the lengths (the padding is not read)',
    'classifier',
    { ...tensorX([2, 1, 1]), data: Float32Array.from({ length: 12 }, (_, i) => (i === 7 || i === 8 ? Number.NaN : 0)) },
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x.data[8] must be a finite number', 'NaN'],
  ],
  [
    'a Float64Array value beyond float32',
    'classifier',
    { ...tensorX(), data: Float64Array.from({ length: 12 }, (_, i) => (i === 4 ? 1e39 : 0)) },
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x.data[4] must be a finite number (as float32)', '1e+39'],
  ],
  [
    '-Infinity in a Float64Array x',
    'classifier',
    { ...tensorX(), data: Float64Array.from({ length: 12 }, (_, i) => (i === 3 ? Number.NEGATIVE_INFINITY : 0)) },
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x.data[3]', '-Infinity'],
  ],
  [
    'NaN in per-step targets',
    'regressor',
    [
      [
        [1, 1],
        [2, 2],
      ],
    ],
    [
      [
        [0, 0],
        [0, Number.NaN],
      ],
    ],
    fitOptions({ loss: 'mse' }),
    'GYRE_INVALID_ARGUMENT',
    ['y[0][1][1] must be a finite number', 'NaN'],
  ],
  [
    'Infinity in tensor targets',
    'regressor',
    [
      [
        [1, 1],
        [2, 2],
      ],
    ],
    { data: Float32Array.from([0, 0, Number.POSITIVE_INFINITY, 0]), shape: [1, 2, 2] },
    fitOptions({ loss: 'mse' }),
    'GYRE_INVALID_ARGUMENT',
    ['y.data[2]', 'Infinity'],
  ],
  [
    'a binary target of 2',
    'classifier',
    xs,
    [
      [0, 1, 0],
      [0, 2, 1],
      [1, 0, 0],
    ],
    fitOptions({ loss: 'binaryCrossEntropy' }),
    'GYRE_INVALID_ARGUMENT',
    ['y must hold binaryCrossEntropy targets in [0, 1]', 'got 2'],
  ],
  [
    'a binary target of 2 in validationData',
    'classifier',
    xs,
    [
      [0, 1, 0],
      [0, 1, 1],
      [1, 0, 0],
    ],
    fitOptions({
      loss: 'binaryCrossEntropy',
      validationData: [
        xs,
        [
          [0, 1, 0],
          [0, 1, 1],
          [1, 0, -0.5],
        ],
      ],
    }),
    'GYRE_INVALID_ARGUMENT',
    ['validationData.y', '[0, 1]', 'got -0.5'],
  ],
  // ragged and tensor forms
  [
    'an empty sequence in ragged x',
    'classifier',
    [[[0.1, 0.2]], [], [[0.3, 0.3]]],
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x[1] must have at least one step'],
  ],
  ['no sequences at all', 'classifier', [], [], fitOptions(), 'GYRE_INVALID_ARGUMENT', ['x must hold at least one sequence']],
  [
    'a step that is a number in a 2-feature model',
    'classifier',
    [[[0, 0]], [0.5], [[1, 1]]],
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x[1][0] must be an array of 2 features', '0.5'],
  ],
  [
    'a length of 0',
    'classifier',
    tensorX([1, 0, 2]),
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x.lengths[1] must be an integer in 1..2', 'got 0'],
  ],
  ['a length beyond steps', 'classifier', tensorX([1, 3, 2]), ys, fitOptions(), 'GYRE_INVALID_ARGUMENT', ['x.lengths[1]', 'got 3']],
  ['a fractional length', 'classifier', tensorX([1, 1.5, 2]), ys, fitOptions(), 'GYRE_INVALID_ARGUMENT', ['x.lengths[1]', '1.5']],
  ['too few lengths', 'classifier', tensorX([1, 2]), ys, fitOptions(), 'GYRE_SHAPE_MISMATCH', ['x.lengths must have 3 entries', 'got 2']],
  [
    'tensor data shorter than its shape',
    'classifier',
    { data: new Float32Array(11), shape: [3, 2, 2] },
    ys,
    fitOptions(),
    'GYRE_SHAPE_MISMATCH',
    ['x.data must hold 12 values', 'got 11'],
  ],
  [
    'a fractional shape',
    'classifier',
    { data: new Float32Array(12), shape: [3, 2, 2.5] },
    ys,
    fitOptions(),
    'GYRE_SHAPE_MISMATCH',
    ['x.shape', '2.5'],
  ],
  [
    'a negative shape',
    'classifier',
    { data: new Float32Array(12), shape: [-3, -2, 2] },
    ys,
    fitOptions(),
    'GYRE_SHAPE_MISMATCH',
    ['x.shape', '-3'],
  ],
  [
    'a nested step of 3 features for a 2-feature model',
    'classifier',
    [[[0.1, 0.2, 0.3]], [[0, 0]], [[1, 1]]],
    ys,
    fitOptions(),
    'GYRE_SHAPE_MISMATCH',
    ['x[0][0] must have 2 features', 'got 3'],
  ],
  [
    'a tensor of 3 features for a 2-feature model',
    'classifier',
    { data: new Float32Array(18), shape: [3, 2, 3] },
    ys,
    fitOptions(),
    'GYRE_SHAPE_MISMATCH',
    ['x.shape[2]', '2 input features', 'got 3'],
  ],
  [
    'Int32Array features',
    'classifier',
    { data: new Int32Array(12), shape: [3, 2, 2] },
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x.data must be a Float32Array or Float64Array', 'Int32Array'],
  ],
  [
    'token ids for a feature model',
    'classifier',
    [[1, 2], [3], [4, 0]],
    ys,
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x[0][0] must be an array of 2 features'],
  ],
  [
    'feature vectors for a token model',
    'tokens',
    [[[0.5], [0.2]]],
    [1],
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x[0][0] must be a non-negative integer token id'],
  ],
  [
    'a Float32Array for a token model',
    'tokens',
    { data: new Float32Array(2), shape: [1, 2] },
    [1],
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x.data must be a Uint32Array or Int32Array of token ids', 'Float32Array'],
  ],
  [
    'a token id beyond the vocabulary',
    'tokens',
    [[1, 7]],
    [1],
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x[0][1]', 'vocabulary size 5', 'got 7'],
  ],
  [
    'a negative Int32 token id',
    'tokens',
    { data: Int32Array.from([1, -2]), shape: [1, 2] },
    [1],
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['x.data[1]', '-2'],
  ],
  ['a fractional token id', 'tokens', [[1, 0.5]], [1], fitOptions(), 'GYRE_INVALID_ARGUMENT', ['x[0][1]', '0.5']],
  ['a string for x', 'classifier', 'abc', ys, fitOptions(), 'GYRE_INVALID_ARGUMENT', ['x must be nested arrays', '"abc"']],
  // options
  [
    'a NaN learning rate',
    'classifier',
    xs,
    ys,
    fitOptions({ optimizer: { type: 'adam', learningRate: Number.NaN } }),
    'GYRE_INVALID_ARGUMENT',
    ['optimizer.learningRate must be a finite number', 'NaN'],
  ],
  [
    'an infinite learning rate',
    'classifier',
    xs,
    ys,
    fitOptions({ optimizer: { type: 'sgd', learningRate: Number.POSITIVE_INFINITY } }),
    'GYRE_INVALID_ARGUMENT',
    ['optimizer.learningRate', 'Infinity'],
  ],
  [
    'a negative learning rate',
    'classifier',
    xs,
    ys,
    fitOptions({ optimizer: { type: 'sgd', learningRate: -1 } }),
    'GYRE_INVALID_ARGUMENT',
    ['optimizer.learningRate', '-1'],
  ],
  [
    'an unknown optimizer',
    'classifier',
    xs,
    ys,
    fitOptions({ optimizer: { type: 'lbfgs', learningRate: 0.1 } }),
    'GYRE_INVALID_ARGUMENT',
    ["optimizer.type must be one of 'sgd', 'adam', 'adamw', 'rmsprop', got \"lbfgs\""],
  ],
  [
    'momentum on adam',
    'classifier',
    xs,
    ys,
    fitOptions({ optimizer: { type: 'adam', learningRate: 0.1, momentum: 0.9 } }),
    'GYRE_INVALID_ARGUMENT',
    ['unknown option optimizer.momentum; expected one of learningRate, beta1, beta2, eps, weightDecay'],
  ],
  [
    'a snake_case optimizer option',
    'classifier',
    xs,
    ys,
    fitOptions({ optimizer: { learning_rate: 0.01 } }),
    'GYRE_INVALID_ARGUMENT',
    ['unknown option optimizer.learning_rate; expected one of learningRate, beta1, beta2, eps, weightDecay'],
  ],
  [
    'a function as a schedule',
    'classifier',
    xs,
    ys,
    fitOptions({ schedule: () => 0.1 }),
    'GYRE_INVALID_ARGUMENT',
    ['schedule must be a number, string, boolean, array or object, got a function'],
  ],
  [
    'earlyStopping: true',
    'classifier',
    xs,
    ys,
    fitOptions({ earlyStopping: true }),
    'GYRE_INVALID_ARGUMENT',
    ['earlyStopping must be an object { patience?, minDelta?, restoreBest? }, got true'],
  ],
  [
    'an unknown fit option',
    'classifier',
    xs,
    ys,
    fitOptions({ learningRate: 0.1 }),
    'GYRE_INVALID_ARGUMENT',
    ['unknown option learningRate; expected one of loss, epochs, batchSize, shuffle, seed, optimizer, schedule'],
  ],
  ["epochs '3'", 'classifier', xs, ys, fitOptions({ epochs: '3' }), 'GYRE_INVALID_ARGUMENT', ['epochs', '"3"']],
  ['epochs 0', 'classifier', xs, ys, fitOptions({ epochs: 0 }), 'GYRE_INVALID_ARGUMENT', ['epochs', 'got 0']],
  ['batchSize 0', 'classifier', xs, ys, fitOptions({ batchSize: 0 }), 'GYRE_INVALID_ARGUMENT', ['batchSize', 'got 0']],
  ['batchSize 2.5', 'classifier', xs, ys, fitOptions({ batchSize: 2.5 }), 'GYRE_INVALID_ARGUMENT', ['batchSize', '2.5']],
  ['seed -1', 'classifier', xs, ys, fitOptions({ seed: -1 }), 'GYRE_INVALID_ARGUMENT', ['seed', '-1']],
  ['shuffle "yes"', 'classifier', xs, ys, fitOptions({ shuffle: 'yes' }), 'GYRE_INVALID_ARGUMENT', ['"yes"']],
  ['clipNorm -1', 'classifier', xs, ys, fitOptions({ clipNorm: -1 }), 'GYRE_INVALID_ARGUMENT', ['clipNorm', '-1']],
  [
    'an unknown early-stopping key',
    'classifier',
    xs,
    ys,
    fitOptions({ earlyStopping: { patient: 2 } }),
    'GYRE_INVALID_ARGUMENT',
    ['unknown option earlyStopping.patient; expected one of patience, minDelta, restoreBest'],
  ],
  ['an unknown schedule', 'classifier', xs, ys, fitOptions({ schedule: { type: 'cyclic' } }), 'GYRE_INVALID_ARGUMENT', ['cyclic']],
  [
    'tbpttSteps on a model with one output per sequence',
    'classifier',
    xs,
    ys,
    fitOptions({ tbpttSteps: 2 }),
    'GYRE_INVALID_ARGUMENT',
    ['tbpttSteps'],
  ],
  ['validationSplit 1.5', 'classifier', xs, ys, fitOptions({ validationSplit: 1.5 }), 'GYRE_INVALID_ARGUMENT', ['validationSplit', '1.5']],
  [
    'a validationSplit that leaves no validation data',
    'classifier',
    xs,
    ys,
    fitOptions({ validationSplit: 0.01 }),
    'GYRE_INVALID_ARGUMENT',
    ['validationSplit 0.01'],
  ],
  [
    'validationData that is not [x, y]',
    'classifier',
    xs,
    ys,
    fitOptions({ validationData: [xs] }),
    'GYRE_INVALID_ARGUMENT',
    ['validationData must be [x, y]'],
  ],
  [
    'validationData with a label out of range',
    'classifier',
    xs,
    ys,
    fitOptions({ validationData: [xs, [0, 1, 7]] }),
    'GYRE_INVALID_ARGUMENT',
    ['validation', 'y[2]', 'got 7'],
  ],
  [
    'both validationData and validationSplit',
    'classifier',
    xs,
    ys,
    fitOptions({ validationData: [xs, ys], validationSplit: 0.5 }),
    'GYRE_INVALID_ARGUMENT',
    ['validationData or validationSplit'],
  ],
  [
    'a signal that is not an AbortSignal',
    'classifier',
    xs,
    ys,
    fitOptions({ signal: { aborted: false } }),
    'GYRE_INVALID_ARGUMENT',
    ['signal must be an AbortSignal'],
  ],
  [
    'an onProgress that is not a function',
    'classifier',
    xs,
    ys,
    fitOptions({ onProgress: 'log' }),
    'GYRE_INVALID_ARGUMENT',
    ['onProgress must be a function', '"log"'],
  ],
  // losses that do not fit the model
  ['an unknown loss', 'classifier', xs, ys, fitOptions({ loss: 'hinge' }), 'GYRE_INVALID_ARGUMENT', ['loss must be one of', '"hinge"']],
  ['no loss', 'classifier', xs, ys, { epochs: 1 }, 'GYRE_MISSING_ARGUMENT', ['options.loss is required']],
  [
    'no options',
    'classifier',
    xs,
    ys,
    undefined,
    'GYRE_MISSING_ARGUMENT',
    ["fit(x, y, options) needs options with at least loss: 'crossEntropy', 'mse' or 'binaryCrossEntropy'"],
  ],
  [
    'crossEntropy after a tanh dense layer',
    'regressor',
    [[[1, 1]]],
    [[0]],
    fitOptions(),
    'GYRE_INVALID_ARGUMENT',
    ['loss crossEntropy', "'linear' or 'softmax'", 'got tanh'],
  ],
  [
    'binaryCrossEntropy after softmax',
    'tokens',
    [[1, 2]],
    [[0, 1]],
    fitOptions({ loss: 'binaryCrossEntropy' }),
    'GYRE_INVALID_ARGUMENT',
    ['loss binaryCrossEntropy', 'got softmax'],
  ],
  [
    'mse targets of the wrong width',
    'regressor',
    [
      [
        [1, 1],
        [2, 2],
      ],
    ],
    [
      [
        [0, 0, 0],
        [0, 0, 0],
      ],
    ],
    fitOptions({ loss: 'mse' }),
    'GYRE_SHAPE_MISMATCH',
    ['y[0][0] must have 2 values'],
  ],
];

describe('fit: bad data and options reject, and the model is unchanged', () => {
  const models = {} as Record<Kind, Model>;
  beforeAll(() => {
    for (const k of Object.keys(specs) as Kind[]) models[k] = sequential(specs[k]);
  });

  it.each(fitCases)('rejects %s', async (_label, kind, x, y, options, code, fragments) => {
    const model = models[kind];
    const err = await rejectsUnchanged(model, () => model.fit(x as never, y as never, options as never), code, ...fragments);
    expect(err).toBeInstanceOf(GyreError);
    expect(model.isTraining).toBe(false);
    expect(model.trainedEpochs).toBe(0);
  });

  it('option errors name the option path, never a parser position or an internal type name', async () => {
    const model = models.classifier;
    for (const [options, code, message] of [
      [fitOptions({ epochs: '3' }), 'GYRE_INVALID_ARGUMENT', 'epochs must be a positive integer, got "3"'],
      [fitOptions({ batchSize: 2.5 }), 'GYRE_INVALID_ARGUMENT', 'batchSize must be a positive integer, got 2.5'],
      [fitOptions({ schedule: { type: 'step', gamma: 0.5 } }), 'GYRE_MISSING_ARGUMENT', 'schedule.stepSize is required in schedule'],
      [fitOptions({ optimizer: { learning_rate: 0.01 } }), 'GYRE_INVALID_ARGUMENT', 'optimizer.learning_rate'],
      [fitOptions({ earlyStopping: true }), 'GYRE_INVALID_ARGUMENT', 'earlyStopping'],
    ] as [unknown, GyreErrorCode, string][]) {
      const err = await rejectsGyre(() => model.fit(xs as never, ys as never, options as never), code, message);
      expect(err.message).not.toMatch(/line \d+|column \d+|Json|struct |usize|f64/);
    }
  });

  it('rejects with GYRE_ABORTED for an already aborted signal, before any batch', async () => {
    const model = models.classifier;
    const controller = new AbortController();
    controller.abort();
    await rejectsUnchanged(
      model,
      () => model.fit(xs, ys, { loss: 'crossEntropy', signal: controller.signal }),
      'GYRE_ABORTED',
      'aborted after 0 complete epoch(s)',
    );
  });

  it('an onProgress that throws stops training and rejects with GYRE_ABORTED, instead of an uncaught exception', async () => {
    // Without the guard the callback's error surfaced as an uncaughtException, which ends a
    // Node process (vitest reports it as an unhandled error and fails the run).
    const model = sequential({
      input: { features: 2 },
      layers: [
        { type: 'lstm', hiddenSize: 16 },
        { type: 'dense', units: 2 },
      ],
      seed: 9,
    });
    const N = 256;
    const S = 12;
    const x = { data: Float32Array.from({ length: N * S * 2 }, (_, i) => Math.sin(i * 0.37)), shape: [N, S, 2] };
    const y = { data: Float32Array.from({ length: N * S * 2 }, (_, i) => Math.cos(i * 0.11)), shape: [N, S, 2] };
    const boom = new Error('boom');
    let calls = 0;
    const err = await rejectsGyre(
      () =>
        model.fit(x, y, {
          loss: 'mse',
          epochs: 50,
          batchSize: 8,
          onProgress: () => {
            calls++;
            throw boom;
          },
        }),
      'GYRE_ABORTED',
      'onProgress threw (boom)',
    );
    expect(err.cause).toBe(boom);
    expect(calls, 'no progress is delivered after the callback threw').toBe(1);
    expect((err as GyreError & { history: { epochs: unknown[] } }).history.epochs.length).toBeLessThan(50);
    expect(model.isTraining).toBe(false);
    for (const p of Object.values(model.parameters())) expect(p.data.every(Number.isFinite)).toBe(true);
    expect(model.predictSync([[[1, 2]]]).data.every(Number.isFinite)).toBe(true);
  });

  it('rejects with GYRE_NON_FINITE when the loss overflows, keeping the weights it had', async () => {
    const model = models.regressor;
    // Finite targets whose squared error overflows float32 in the very first batch.
    const huge = [
      [
        [1e30, 1e30],
        [1e30, -1e30],
      ],
    ];
    await rejectsUnchanged(
      model,
      () =>
        model.fit(
          [
            [
              [1, 1],
              [2, 2],
            ],
          ],
          huge,
          { loss: 'mse', batchSize: 1 },
        ),
      'GYRE_NON_FINITE',
      'epoch 1, batch 1',
    );
  });
});

describe('evaluate and predict: bad input', () => {
  const models = {} as Record<Kind, Model>;
  beforeAll(() => {
    for (const k of Object.keys(specs) as Kind[]) models[k] = sequential(specs[k]);
  });

  it('evaluate: sample counts that disagree', async () => {
    const m = models.classifier;
    await rejectsUnchanged(
      m,
      () => m.evaluate(xs, [0, 1], { loss: 'crossEntropy' }),
      'GYRE_SHAPE_MISMATCH',
      'y must hold 3 values',
      'got 2',
    );
  });
  it('evaluateSync: a label out of range', () => {
    const m = models.classifier;
    failsUnchanged(
      m,
      () => m.evaluateSync(xs, [0, 1, 5], { loss: 'crossEntropy' }),
      'GYRE_INVALID_ARGUMENT',
      'y[2]',
      'class id below 3',
      'got 5',
    );
  });
  it('evaluate: no loss', async () => {
    const m = models.classifier;
    await rejectsUnchanged(m, () => m.evaluate(xs, ys, {} as never), 'GYRE_INVALID_ARGUMENT', 'loss must be one of', 'undefined');
  });
  it('evaluateSync: NaN in a Float32Array x', () => {
    const m = models.regressor;
    const x = { data: Float32Array.from([1, 2, Number.NaN, 3]), shape: [1, 2, 2] };
    failsUnchanged(
      m,
      () =>
        m.evaluateSync(
          x,
          [
            [
              [0, 0],
              [0, 0],
            ],
          ],
          { loss: 'mse' },
        ),
      'GYRE_INVALID_ARGUMENT',
      'x.data[2] must be a finite number',
      'NaN',
    );
  });
  it('predict: an unknown option', async () => {
    const m = models.classifier;
    await rejectsUnchanged(m, () => m.predict(xs, { batch: 2 } as never), 'GYRE_INVALID_ARGUMENT', 'unknown option batch');
  });
  it('predict: batchSize 0', async () => {
    const m = models.classifier;
    await rejectsUnchanged(m, () => m.predict(xs, { batchSize: 0 }), 'GYRE_INVALID_ARGUMENT', 'batchSize', 'got 0');
  });
  it('predictSync: NaN in a Float32Array x (it would otherwise return NaN silently)', () => {
    const m = models.classifier;
    failsUnchanged(
      m,
      () => m.predictSync({ data: Float32Array.from([0.1, 0.2, Number.NaN, 0.4]), shape: [1, 2, 2] }),
      'GYRE_INVALID_ARGUMENT',
      'x.data[2]',
      'NaN',
    );
  });
  it('predictSync: values at padded steps are not read, so they may be anything', () => {
    const m = models.classifier;
    const padded = m.predictSync({ data: Float32Array.from([0.1, 0.2, Number.NaN, Number.NaN]), shape: [1, 2, 2], lengths: [1] });
    const short = m.predictSync([[[0.1, 0.2]]]);
    expect(Array.from(padded.data)).toEqual(Array.from(short.data));
  });
  it('predictSync: an empty sequence', () => {
    const m = models.regressor;
    failsUnchanged(m, () => m.predictSync([[[1, 1]], []]), 'GYRE_INVALID_ARGUMENT', 'x[1] must have at least one step');
  });
  it('predict: token id out of the vocabulary', async () => {
    const m = models.tokens;
    await rejectsUnchanged(
      m,
      () => m.predict({ data: Uint32Array.from([1, 9]), shape: [1, 2] }),
      'GYRE_INVALID_ARGUMENT',
      'vocabulary size 5',
      'got 9',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Detached, shared and mutated buffers

describe('detached, shared and mutated buffers', () => {
  let model: Model;
  beforeAll(() => {
    model = sequential(classifierSpec);
  });

  it('fit: a detached x.data is a shape error, not a crash', async () => {
    const x = tensorX();
    detach(x.data);
    await rejectsUnchanged(
      model,
      () => model.fit(x, ys, { loss: 'crossEntropy' }),
      'GYRE_SHAPE_MISMATCH',
      'x.data must hold 12 values',
      'got 0',
    );
  });
  it('fit: detached lengths', async () => {
    const x = { ...tensorX(), lengths: detach(Uint32Array.from([1, 2, 2]), 'postMessage') };
    await rejectsUnchanged(
      model,
      () => model.fit(x, ys, { loss: 'crossEntropy' }),
      'GYRE_SHAPE_MISMATCH',
      'x.lengths must have 3 entries',
      'got 0',
    );
  });
  it('fit: detached y', async () => {
    await rejectsUnchanged(
      model,
      () => model.fit(tensorX(), detach(Uint32Array.from(ys)), { loss: 'crossEntropy' }),
      'GYRE_SHAPE_MISMATCH',
      'y must hold 3 values',
      'got 0',
    );
  });
  it('predict: a detached x.data', async () => {
    const x = tensorX();
    detach(x.data, 'postMessage');
    await rejectsUnchanged(model, () => model.predict(x), 'GYRE_SHAPE_MISMATCH', 'x.data', 'got 0');
  });
  it('setParameters: a detached tensor', () => {
    failsUnchanged(
      model,
      () => model.setParameters({ '1.bias': detach(new Float32Array(3)) }),
      'GYRE_SHAPE_MISMATCH',
      '1.bias',
      'got 0 values',
    );
  });
  it('fromBuffer: detached bytes', () => {
    const bytes = new Uint8Array(model.toBuffer());
    detach(bytes);
    throwsGyre(() => fromBuffer(bytes), 'GYRE_BAD_FILE', 'empty');
  });

  it('a Float32Array over a SharedArrayBuffer trains and predicts exactly as a plain one', async () => {
    const x = tensorX();
    const shared = new Float32Array(new SharedArrayBuffer(x.data.byteLength));
    shared.set(x.data);
    const options = { loss: 'crossEntropy' as const, epochs: 2, batchSize: 2, seed: 4 };
    const a = sequential(classifierSpec);
    const b = sequential(classifierSpec);
    await a.fit(x, ys, options);
    await b.fit({ ...x, data: shared }, ys, options);
    expect(weights(b)).toEqual(weights(a));
    expect(Array.from(b.predictSync({ ...x, data: shared }).data)).toEqual(Array.from(a.predictSync(x).data));
  });

  describe('buffers changed while fit runs: the data were copied', () => {
    const N = 64;
    const S = 6;
    const spec: ModelSpec = {
      input: { features: 2 },
      layers: [
        { type: 'lstm', hiddenSize: 6 },
        { type: 'dense', units: 2 },
      ],
      seed: 5,
    };
    const data = () => ({
      x: { data: Float32Array.from({ length: N * S * 2 }, (_, i) => Math.sin(i * 0.7)), shape: [N, S, 2] },
      y: { data: Float32Array.from({ length: N * S * 2 }, (_, i) => Math.cos(i * 0.3)), shape: [N, S, 2] },
    });
    const options = { loss: 'mse' as const, epochs: 3, batchSize: 8, seed: 5, optimizer: { type: 'adam' as const, learningRate: 0.01 } };
    let reference: Weights;
    beforeAll(async () => {
      const m = sequential(spec);
      const { x, y } = data();
      await m.fit(x, y, options);
      reference = weights(m);
    });

    it('overwriting x and y with NaN while the Promise is pending changes nothing', async () => {
      const m = sequential(spec);
      const { x, y } = data();
      const training = m.fit(x, y, options);
      expect(m.isTraining).toBe(true);
      x.data.fill(Number.NaN);
      y.data.fill(Number.NaN);
      await training;
      expect(weights(m)).toEqual(reference);
    });

    it('detaching x while the Promise is pending changes nothing', async () => {
      const m = sequential(spec);
      const { x, y } = data();
      const training = m.fit(x, y, options);
      detach(x.data);
      await training;
      expect(weights(m)).toEqual(reference);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Busy and disposed models

describe('calls while fit runs are refused with GYRE_BUSY and leave training alone', () => {
  const spec: ModelSpec = {
    input: { features: 2 },
    layers: [
      { type: 'lstm', hiddenSize: 16 },
      { type: 'dense', units: 2 },
    ],
    seed: 7,
  };
  const N = 128;
  const S = 12;
  const x = { data: Float32Array.from({ length: N * S * 2 }, (_, i) => Math.sin(i * 0.37)), shape: [N, S, 2] };
  const y = { data: Float32Array.from({ length: N * S * 2 }, (_, i) => Math.cos(i * 0.11)), shape: [N, S, 2] };
  const options = { loss: 'mse' as const, epochs: 20, batchSize: 8, seed: 3 };
  let reference: Weights;
  let exported: Uint8Array;
  beforeAll(async () => {
    const m = sequential(spec);
    exported = sequential({ ...spec, seed: 99 }).exportPyTorch(0);
    await m.fit(x, y, options);
    reference = weights(m);
  });

  const busyCalls: [string, (m: Model) => unknown][] = [
    ['a second fit', (m) => m.fit(x, y, options)],
    ['predict', (m) => m.predict([[[1, 2]]])],
    ['predictSync', (m) => m.predictSync([[[1, 2]]])],
    ['evaluate', (m) => m.evaluate([[[1, 2]]], [[[0, 0]]], { loss: 'mse' })],
    ['evaluateSync', (m) => m.evaluateSync([[[1, 2]]], [[[0, 0]]], { loss: 'mse' })],
    ['save', (m) => m.save(join(tmpdir(), `gyre-busy-${process.pid}.safetensors`))],
    ['toBuffer', (m) => m.toBuffer()],
    ['parameters', (m) => m.parameters()],
    ['setParameters', (m) => m.setParameters({ '1.bias': new Float32Array([9, 9]) })],
    ['importPyTorch', (m) => m.importPyTorch(0, exported)],
    ['exportPyTorch', (m) => m.exportPyTorch(0)],
    ['createStream', (m) => m.createStream()],
    ['restoreStream', (m) => m.restoreStream(new Float32Array(32))],
    ['dispose', (m) => m.dispose()],
    ['toOnnx', (m) => toOnnx(m)],
  ];

  it.each(busyCalls)('%s → GYRE_BUSY', async (_label, call) => {
    const m = sequential(spec);
    const training = m.fit(x, y, options);
    expect(m.isTraining).toBe(true);
    await rejectsGyre(() => call(m), 'GYRE_BUSY', 'training');
    expect(m.isTraining, 'still training after the refused call').toBe(true);
    expect(m.isDisposed).toBe(false);
    const history = await training;
    expect(history.epochs).toHaveLength(20);
    expect(weights(m), 'training ran exactly as without the refused call').toEqual(reference);
  });

  it('the path of a refused save is not created', () => {
    expect(existsSync(join(tmpdir(), `gyre-busy-${process.pid}.safetensors`))).toBe(false);
  });
});

describe('calls on a disposed model are refused with GYRE_DISPOSED', () => {
  let model: Model;
  let stream: ReturnType<Model['createStream']>;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gyre-bad-'));
    model = sequential(regressorSpec);
    stream = model.createStream();
    model.dispose();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const disposedCalls: [string, () => unknown][] = [
    ['predict', () => model.predict([[[1, 2]]])],
    ['predictSync', () => model.predictSync([[[1, 2]]])],
    ['fit', () => model.fit([[[1, 2]]], [[[0, 0]]], { loss: 'mse' })],
    ['evaluate', () => model.evaluate([[[1, 2]]], [[[0, 0]]], { loss: 'mse' })],
    ['parameters', () => model.parameters()],
    ['setParameters', () => model.setParameters({ '1.bias': new Float32Array(2) })],
    ['save', () => model.save(join(dir, 'm.safetensors'))],
    ['toBuffer', () => model.toBuffer()],
    ['createStream', () => model.createStream()],
    ['stream.step', () => stream.step([1, 2])],
    ['stream.copy', () => stream.copy().step([1, 2])],
    ['exportPyTorch', () => model.exportPyTorch(0)],
    ['toOnnx', () => toOnnx(model)],
    ['trainedEpochs', () => model.trainedEpochs],
    ['dispose again', () => model.dispose()],
  ];

  it.each(disposedCalls)('%s → GYRE_DISPOSED', async (_label, call) => {
    await rejectsGyre(call, 'GYRE_DISPOSED', 'disposed');
    expect(model.isDisposed).toBe(true);
  });

  it('the refused save wrote nothing', () => {
    expect(existsSync(join(dir, 'm.safetensors'))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// setParameters

describe('setParameters', () => {
  let model: Model;
  beforeAll(() => {
    model = sequential(regressorSpec); // 0.weight_ih_l0 [12, 2] ... 1.weight [2, 4], 1.bias [2]
  });

  const cases: [string, () => unknown, GyreErrorCode, string[]][] = [
    ['an unknown name', () => ({ '0.weight': new Float32Array(3) }), 'GYRE_INVALID_ARGUMENT', ['unknown parameter "0.weight"', '1.bias']],
    ['a wrong length', () => ({ '1.bias': new Float32Array(3) }), 'GYRE_SHAPE_MISMATCH', ['1.bias must have shape [2]', 'got 3 values']],
    ['a plain array', () => ({ '1.bias': [0, 0] }), 'GYRE_INVALID_ARGUMENT', ['1.bias must be a Float32Array', 'an array of length 2']],
    [
      'a Float64Array',
      () => ({ '1.bias': new Float64Array(2) }),
      'GYRE_INVALID_ARGUMENT',
      ['1.bias must be a Float32Array', 'Float64Array'],
    ],
    [
      'a NaN value',
      () => ({ '1.bias': Float32Array.from([0, Number.NaN]) }),
      'GYRE_INVALID_ARGUMENT',
      ['1.bias[1] must be a finite number', 'NaN'],
    ],
    [
      'an infinite value',
      () => ({ '0.bias_hh_l0': Float32Array.from({ length: 12 }, (_, i) => (i === 4 ? Number.POSITIVE_INFINITY : 0)) }),
      'GYRE_INVALID_ARGUMENT',
      ['0.bias_hh_l0[4]', 'finite'],
    ],
    [
      'a good tensor followed by one of the wrong length',
      () => ({ '1.bias': Float32Array.from([5, 5]), '1.weight': new Float32Array(3) }),
      'GYRE_SHAPE_MISMATCH',
      ['1.weight must have shape [2, 4]', 'got 3 values'],
    ],
    [
      'a good tensor followed by a NaN one',
      () => ({ '1.bias': Float32Array.from([6, 6]), '1.weight': new Float32Array(8).fill(Number.NaN) }),
      'GYRE_INVALID_ARGUMENT',
      ['1.weight[0]', 'NaN'],
    ],
    [
      'a good tensor followed by an unknown name',
      () => ({ '1.bias': Float32Array.from([7, 7]), '2.bias': new Float32Array(2) }),
      'GYRE_INVALID_ARGUMENT',
      ['unknown parameter "2.bias"'],
    ],
    ['null', () => null, 'GYRE_INVALID_ARGUMENT', ['values must be an object', 'null']],
  ];

  it.each(cases)('rejects %s and changes no parameter', (_label, values, code, fragments) => {
    failsUnchanged(model, () => model.setParameters(values() as never), code, ...fragments);
  });
});

// ---------------------------------------------------------------------------------------------
// Files: save, load, PyTorch

describe('save, load and PyTorch state_dicts', () => {
  let model: Model;
  let good: Uint8Array;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gyre-bad-'));
    model = sequential(regressorSpec);
    good = model.toBuffer();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const badBytes: [string, () => Uint8Array, string[]][] = [
    ['garbage', () => Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff), ['header length', 'not a safetensors file']],
    ['an empty Uint8Array', () => new Uint8Array(0), ['empty']],
    ['a file truncated in its data', () => good.subarray(0, good.length - 10), ['truncated']],
    ['a file truncated in its header', () => good.subarray(0, 20), ['header length', 'only 12 bytes follow']],
    [
      'a header length of 2^63',
      () => {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setBigUint64(0, 2n ** 63n, true);
        return b;
      },
      ['header length', 'over the limit'],
    ],
    ['an ONNX file', () => toOnnx(model), ['not a safetensors file', 'ONNX']],
    ['a PyTorch state_dict instead of a gyre model', () => model.exportPyTorch(0), ['__metadata__.format', 'not a gyre model']],
    ['a pickle', () => Uint8Array.from(Buffer.from('\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00}q\x00.', 'latin1')), ['pickle']],
  ];

  it.each(badBytes)('fromBuffer: %s → GYRE_BAD_FILE', (_label, bytes, fragments) => {
    throwsGyre(() => fromBuffer(bytes()), 'GYRE_BAD_FILE', ...fragments);
  });

  it.each([
    ['a plain array', () => Array.from(good)],
    ['an ArrayBuffer', () => good.slice().buffer],
    ['a string', () => 'model.safetensors'],
  ] as [string, () => unknown][])('fromBuffer: %s → GYRE_INVALID_ARGUMENT', (_label, bytes) => {
    throwsGyre(() => fromBuffer(bytes() as never), 'GYRE_INVALID_ARGUMENT', 'bytes must be a Uint8Array or Buffer');
  });

  it('loadModel: a missing path rejects with GYRE_FILE naming it, Node’s ENOENT as the cause', async () => {
    const path = join(dir, 'missing.safetensors');
    const err = await rejectsGyre(() => loadModel(path), 'GYRE_FILE', `cannot read model file ${JSON.stringify(path)}`, '(ENOENT)');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });
  it('loadModel: an empty path', async () => {
    await rejectsGyre(() => loadModel(''), 'GYRE_INVALID_ARGUMENT', 'path must be a non-empty string');
  });
  it('save: an empty path, and nothing is written', async () => {
    await rejectsUnchanged(model, () => model.save(''), 'GYRE_INVALID_ARGUMENT', 'path must be a non-empty string');
  });
  it('save: metadata that is not an object', async () => {
    await rejectsUnchanged(
      model,
      () => model.save(join(dir, 'm.safetensors'), { metadata: 'notes' as never }),
      'GYRE_INVALID_ARGUMENT',
      'metadata must be an object',
    );
    expect(existsSync(join(dir, 'm.safetensors'))).toBe(false);
  });
  it('toBuffer: includeOptimizer "yes"', () => {
    failsUnchanged(
      model,
      () => model.toBuffer({ includeOptimizer: 'yes' as never }),
      'GYRE_INVALID_ARGUMENT',
      'includeOptimizer must be a boolean',
    );
  });
  it('toBuffer: an unknown option', () => {
    failsUnchanged(model, () => model.toBuffer({ optimizer: true } as never), 'GYRE_INVALID_ARGUMENT', 'unknown option optimizer');
  });

  it.each([
    ['99', 99, 'layer must be a layer index below 2', 'got 99'],
    ['-1', -1, 'layer', '-1'],
    ['1.5', 1.5, 'layer', '1.5'],
    ['"0"', '0', 'layer', '"0"'],
  ] as [string, unknown, string, string][])('exportPyTorch(%s) → GYRE_INVALID_ARGUMENT', (_label, layer, ...fragments) => {
    failsUnchanged(model, () => model.exportPyTorch(layer as number), 'GYRE_INVALID_ARGUMENT', ...fragments);
  });

  const importCases: [string, () => [number, unknown, unknown?], GyreErrorCode, string[]][] = [
    [
      'a layer index out of range',
      () => [99, model.exportPyTorch(0)],
      'GYRE_INVALID_ARGUMENT',
      ['layer must be a layer index below 2', 'got 99'],
    ],
    ['a GRU state_dict into the dense layer', () => [1, model.exportPyTorch(0)], 'GYRE_BAD_FILE', ['missing bias, weight', 'weight_ih_l0']],
    ['non-safetensors bytes', () => [0, Uint8Array.from([1, 2, 3])], 'GYRE_BAD_FILE', ['header length', 'not a safetensors file']],
    ['a gyre model file', () => [0, good], 'GYRE_BAD_FILE', ['missing bias_hh_l0']],
    [
      'an LSTM state_dict into a GRU layer',
      () => [0, sequential({ input: { features: 2 }, layers: [{ type: 'lstm', hiddenSize: 4 }] }).exportPyTorch(0)],
      'GYRE_BAD_FILE',
      ['has shape [16]', 'needs [12]'],
    ],
    ['a prefix that matches nothing', () => [0, model.exportPyTorch(0), { prefix: 'rnn.' }], 'GYRE_BAD_FILE', ['missing rnn.bias_hh_l0']],
    [
      'a prefix that is not a string',
      () => [0, model.exportPyTorch(0), { prefix: 1 }],
      'GYRE_INVALID_ARGUMENT',
      ['prefix must be a string'],
    ],
    ['an unknown option', () => [0, model.exportPyTorch(0), { prefx: 'rnn.' }], 'GYRE_INVALID_ARGUMENT', ['unknown option prefx']],
    ['bytes as a plain array', () => [0, Array.from(model.exportPyTorch(0))], 'GYRE_INVALID_ARGUMENT', ['bytes must be a Uint8Array']],
  ];

  it.each(importCases)('importPyTorch: %s', (_label, args, code, fragments) => {
    const [layer, bytes, options] = args();
    failsUnchanged(model, () => model.importPyTorch(layer, bytes as Uint8Array, options as never), code, ...fragments);
  });
});

// ---------------------------------------------------------------------------------------------
// Streams

describe('streams', () => {
  let model: Model;
  let tokens: Model;
  beforeAll(() => {
    model = sequential(regressorSpec); // 2 features in, 2 units out
    tokens = sequential(tokenModelSpec);
  });

  const featureSteps: [string, unknown, GyreErrorCode, string[]][] = [
    ['a step of 3 features for 2', [1, 2, 3], 'GYRE_SHAPE_MISMATCH', ['input', '2 values', 'got 3 values']],
    ['a Float32Array of 3 features', new Float32Array(3), 'GYRE_SHAPE_MISMATCH', ['input', 'got 3 values']],
    [
      'two vectors for one stream',
      [
        [1, 2],
        [3, 4],
      ],
      'GYRE_SHAPE_MISMATCH',
      ['input', 'got 4 values'],
    ],
    ['an empty step', [], 'GYRE_SHAPE_MISMATCH', ['input', 'got 0 values']],
    ['NaN', [Number.NaN, 1], 'GYRE_INVALID_ARGUMENT', ['step input[0] must be a finite number', 'NaN']],
    [
      'Infinity in a Float32Array',
      Float32Array.from([0, Number.POSITIVE_INFINITY]),
      'GYRE_INVALID_ARGUMENT',
      ['step input[1]', 'Infinity'],
    ],
    ['a string', 'ab', 'GYRE_INVALID_ARGUMENT', ['step input must be 1 vector(s) of 2 features', '"ab"']],
    ['a token id', 3, 'GYRE_INVALID_ARGUMENT', ['step input must be 1 vector(s) of 2 features', 'got 3']],
    ['a Float64Array', new Float64Array(2), 'GYRE_INVALID_ARGUMENT', ['step input', 'Float64Array']],
  ];

  it.each(featureSteps)('step: %s, and the stream state is unchanged', (_label, input, code, fragments) => {
    const stream = model.createStream();
    stream.step([0.5, -0.5]);
    const state = Array.from(stream.toArray());
    failsUnchanged(model, () => stream.step(input as never), code, ...fragments);
    expect(Array.from(stream.toArray())).toEqual(state);
  });

  it('step: a detached Float32Array', () => {
    const stream = model.createStream();
    failsUnchanged(model, () => stream.step(detach(new Float32Array(2))), 'GYRE_SHAPE_MISMATCH', 'input', 'got 0 values');
    expect(Array.from(stream.toArray()).every((v) => v === 0)).toBe(true);
  });

  it.each([
    ['a token id beyond the vocabulary', 5, 'GYRE_INVALID_ARGUMENT', ['vocabulary size 5', 'got 5']],
    ['a negative token id', -1, 'GYRE_INVALID_ARGUMENT', ['input[0]', '-1']],
    ['a fractional token id', 1.5, 'GYRE_INVALID_ARGUMENT', ['input[0]', '1.5']],
    ['a Float32Array for a token model', new Float32Array([1]), 'GYRE_INVALID_ARGUMENT', ['step input must be 1 token id(s)']],
  ] as [string, unknown, GyreErrorCode, string[]][])('token step: %s', (_label, input, code, fragments) => {
    const stream = tokens.createStream();
    stream.step(2);
    const state = Array.from(stream.toArray());
    failsUnchanged(tokens, () => stream.step(input as never), code, ...fragments);
    expect(Array.from(stream.toArray())).toEqual(state);
  });

  // The native step reports an out-of-vocabulary id as `x[0][0]`, a name that step does not have.
  it('token step: an out-of-vocabulary id is reported under the step’s own argument name', () => {
    const stream = tokens.createStream();
    const err = throwsGyre(() => stream.step(5), 'GYRE_INVALID_ARGUMENT');
    expect(err.message).not.toContain('x[0][0]');
    expect(err.message).toContain('input[0]');
  });

  it.each([
    [
      'a wrong-length array',
      () => model.restoreStream(new Float32Array(3)),
      'GYRE_SHAPE_MISMATCH',
      ['state must have shape 4 values for 1 streams', 'got 3 values'],
    ],
    [
      'a batch the array does not hold',
      () => model.restoreStream(new Float32Array(4), 2),
      'GYRE_SHAPE_MISMATCH',
      ['8 values for 2 streams', 'got 4 values'],
    ],
    [
      'a NaN state value',
      () => model.restoreStream(Float32Array.from([0, Number.NaN, 0, 0])),
      'GYRE_INVALID_ARGUMENT',
      ['state[1]', 'finite'],
    ],
    [
      'a plain array',
      () => model.restoreStream([0, 0, 0, 0] as never),
      'GYRE_INVALID_ARGUMENT',
      ['values must be a Float32Array', 'an array of length 4'],
    ],
    ['a detached array', () => model.restoreStream(detach(new Float32Array(4))), 'GYRE_SHAPE_MISMATCH', ['got 0 values']],
    ['batch 2^31', () => model.restoreStream(new Float32Array(4), 2 ** 31), 'GYRE_INVALID_ARGUMENT', ['batch', '2147483648']],
    ['createStream(2^31)', () => model.createStream(2 ** 31), 'GYRE_INVALID_ARGUMENT', ['batch must be at most', 'got 2147483648']],
    ['createStream(0)', () => model.createStream(0), 'GYRE_INVALID_ARGUMENT', ['batch', 'got 0']],
    ['createStream(1.5)', () => model.createStream(1.5), 'GYRE_INVALID_ARGUMENT', ['batch', '1.5']],
    ['createStream("2")', () => model.createStream('2' as never), 'GYRE_INVALID_ARGUMENT', ['batch', '"2"']],
  ] as [string, () => unknown, GyreErrorCode, string[]][])('%s', (_label, call, code, fragments) => {
    failsUnchanged(model, call, code, ...fragments);
  });
});

// ---------------------------------------------------------------------------------------------
// Interop: ONNX and TensorFlow.js

describe('ONNX export options', () => {
  let model: Model;
  let dir: string;
  beforeAll(async () => {
    model = sequential(regressorSpec);
    dir = await mkdtemp(join(tmpdir(), 'gyre-bad-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['opset 5', { opset: 5 }, ['opset must be an integer in 13..23', 'got 5']],
    ['opset 99', { opset: 99 }, ['opset', 'got 99']],
    ['opset "17"', { opset: '17' }, ['opset']],
    ['opset 17.5', { opset: 17.5 }, ['opset', '17.5']],
    ['an unknown option', { opsets: 17 }, ['unknown option opsets']],
    ['a numeric producer', { producer: 3 }, ['producer must be a string']],
    ['null options', null, ['options must be an object']],
  ] as [string, unknown, string[]][])('toOnnx: %s', (_label, options, fragments) => {
    failsUnchanged(model, () => toOnnx(model, options as never), 'GYRE_INVALID_ARGUMENT', ...fragments);
  });

  it.each([
    ['an object', {}],
    ['null', null],
    ['a spec', regressorSpec],
  ] as [string, unknown][])('toOnnx: %s instead of a model is a typed error, not a TypeError', (_label, notAModel) => {
    throwsGyre(() => toOnnx(notAModel as never), 'GYRE_INVALID_ARGUMENT', 'toOnnx: model must be a gyre Model');
  });

  it('saveOnnx: a bad opset rejects and writes no file', async () => {
    const path = join(dir, 'model.onnx');
    await rejectsUnchanged(model, () => saveOnnx(model, path, { opset: 5 }), 'GYRE_INVALID_ARGUMENT', 'opset');
    expect(existsSync(path)).toBe(false);
  });
});

describe('TensorFlow.js import of malformed models', () => {
  const dense = (weights: unknown[]) => ({
    modelTopology: {
      class_name: 'Sequential',
      config: { layers: [{ class_name: 'Dense', config: { name: 'dense', units: 2, batch_input_shape: [null, 3] } }] },
    },
    weightsManifest: [{ paths: [], weights }],
  });
  const denseWeights = [
    { name: 'dense/kernel', shape: [3, 2], dtype: 'float32' },
    { name: 'dense/bias', shape: [2], dtype: 'float32' },
  ];

  const cases: [string, unknown, unknown, GyreErrorCode, string[]][] = [
    ['model.json that is not JSON', '{"modelTopology": ', new Uint8Array(0), 'GYRE_INVALID_ARGUMENT', ['model.json is not valid JSON']],
    ['null', null, new Uint8Array(0), 'GYRE_INVALID_ARGUMENT', ['modelJson must be an object or a JSON string', 'null']],
    ['no modelTopology', {}, new Uint8Array(0), 'GYRE_INVALID_ARGUMENT', ['no modelTopology']],
    ['a modelTopology string', { modelTopology: 'x' }, new Uint8Array(0), 'GYRE_INVALID_ARGUMENT', ['no modelTopology', '"x"']],
    [
      'a functional model',
      { modelTopology: { class_name: 'Model', config: { layers: [] } }, weightsManifest: [] },
      new Uint8Array(0),
      'GYRE_INVALID_ARGUMENT',
      ['only Sequential models', '"Model"'],
    ],
    [
      'no layers',
      { modelTopology: { class_name: 'Sequential', config: { layers: [] } }, weightsManifest: [] },
      new Uint8Array(0),
      'GYRE_INVALID_ARGUMENT',
      ['no layers'],
    ],
    [
      'an unsupported layer class',
      {
        modelTopology: {
          class_name: 'Sequential',
          config: { layers: [{ class_name: 'Conv1D', config: { filters: 2, batch_input_shape: [null, 3, 2] } }] },
        },
        weightsManifest: [],
      },
      new Uint8Array(0),
      'GYRE_INVALID_ARGUMENT',
      ['Conv1D', 'not supported'],
    ],
    [
      'a weightsManifest that is not an array',
      { ...dense(denseWeights), weightsManifest: 'x' },
      new Uint8Array(32),
      'GYRE_INVALID_ARGUMENT',
      ['weightsManifest'],
    ],
    [
      'a manifest without the layer’s weights',
      dense([]),
      new Uint8Array(0),
      'GYRE_MISSING_ARGUMENT',
      ['missing weights', 'kernel', 'bias'],
    ],
    ['too few weight bytes', dense(denseWeights), new Uint8Array(4), 'GYRE_SHAPE_MISMATCH', ['weight data has 4 bytes', 'dense/kernel']],
    [
      'weight data as a string',
      dense(denseWeights),
      'abc',
      'GYRE_INVALID_ARGUMENT',
      ['weightData must be an ArrayBuffer or a typed array', '"abc"'],
    ],
  ];

  it.each(cases)('importTfjs: %s', (_label, json, data, code, fragments) => {
    throwsGyre(() => importTfjs(json as never, data as never), code, ...fragments);
  });

  it('loadTfjs: a missing model.json', async () => {
    await rejectsGyre(() => loadTfjs(join(tmpdir(), 'gyre-no-such-dir', 'model.json')), 'GYRE_FILE', 'cannot read', 'ENOENT');
  });
});

describe('threads', () => {
  it.each([0, 1.5, -2, 'two', 5000])('setNumThreads(%s) → GYRE_INVALID_ARGUMENT naming the range', (n) => {
    throwsGyre(
      () => setNumThreads(n as number),
      'GYRE_INVALID_ARGUMENT',
      'threads must be an integer in 1..1024',
      `got ${typeof n === 'string' ? `"${n}"` : n}`,
    );
  });
});
