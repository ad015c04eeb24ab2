/**
 * Bad input: each a thrown GyreError with a stable code whose message names the argument, the
 * expected value and the value received. Nothing reaches the process as a crash.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCodes, NativeModel, recurrentForwardF32 } from '../native/binding.js';
import {
  GyreError,
  gruForward,
  gyreErrorCodes,
  InvalidArgumentError,
  lstmBackward,
  lstmForward,
  MissingArgumentError,
  rnnForward,
  ShapeMismatchError,
} from 'gyre';

const B = 2;
const T = 3;
const I = 2;
const H = 3;

function lstmArgs(overrides: Record<string, unknown> = {}) {
  const f = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.3);
  return {
    input: f(B * T * I),
    batch: B,
    steps: T,
    inputSize: I,
    hiddenSize: H,
    weights: { weight_ih_l0: f(4 * H * I), weight_hh_l0: f(4 * H * H), bias_ih_l0: f(4 * H), bias_hh_l0: f(4 * H) },
    ...overrides,
  };
}

type Call = () => unknown;

function expectError(call: Call, cls: new (...a: never[]) => GyreError, code: string, ...fragments: string[]): void {
  let caught: unknown;
  try {
    call();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'an error is thrown').toBeInstanceOf(cls);
  const err = caught as GyreError;
  expect(err).toBeInstanceOf(GyreError);
  expect(err.code).toBe(code);
  for (const f of fragments) expect(err.message).toContain(f);
}

describe('bad input to the functional API', () => {
  it('rejects non-integer and non-positive sizes, naming the size and the value', () => {
    expectError(
      () => lstmForward(lstmArgs({ hiddenSize: -3 })),
      InvalidArgumentError,
      'GYRE_INVALID_ARGUMENT',
      'hiddenSize must be a positive integer, got -3',
    );
    expectError(() => lstmForward(lstmArgs({ batch: 1.5 })), InvalidArgumentError, 'GYRE_INVALID_ARGUMENT', 'batch', '1.5');
    expectError(() => lstmForward(lstmArgs({ steps: 0 })), InvalidArgumentError, 'GYRE_INVALID_ARGUMENT', 'steps', 'got 0');
    expectError(() => lstmForward(lstmArgs({ inputSize: '2' })), InvalidArgumentError, 'GYRE_INVALID_ARGUMENT', 'inputSize', '"2"');
    expectError(
      () => lstmForward(lstmArgs({ hiddenSize: Number.NaN })),
      InvalidArgumentError,
      'GYRE_INVALID_ARGUMENT',
      'hiddenSize',
      'NaN',
    );
  });

  it('rejects typed arrays of the wrong length with the expected shape and the received length', () => {
    const args = lstmArgs();
    expectError(
      () => lstmForward({ ...args, weights: { ...args.weights, weight_ih_l0: new Float32Array(10) } }),
      ShapeMismatchError,
      'GYRE_SHAPE_MISMATCH',
      'lstmForward',
      'weight_ih_l0',
      '[12, 2] (24 values)',
      'got 10 values',
    );
    expectError(
      () => lstmForward({ ...args, input: new Float32Array(B * T * I + 1) }),
      ShapeMismatchError,
      'GYRE_SHAPE_MISMATCH',
      'input',
      '[2, 3, 2]',
      'got 13 values',
    );
    expectError(() => lstmForward({ ...args, h0: new Float32Array(B * H - 1) }), ShapeMismatchError, 'GYRE_SHAPE_MISMATCH', 'h0', '[2, 3]');
    expectError(() => lstmForward({ ...args, c0: new Float32Array(1) }), ShapeMismatchError, 'GYRE_SHAPE_MISMATCH', 'c0');
    expectError(
      () => lstmBackward({ ...args, gradOutput: new Float32Array(5) }),
      ShapeMismatchError,
      'GYRE_SHAPE_MISMATCH',
      'grad_output',
      '[2, 3, 3]',
    );
    expectError(() => lstmBackward({ ...args, gradCN: new Float32Array(7) }), ShapeMismatchError, 'GYRE_SHAPE_MISMATCH', 'grad_c_n');
  });

  it('rejects weights whose shapes belong to another cell or size', () => {
    // LSTM weights (4 gate blocks) handed to a GRU (3 gate blocks).
    expectError(
      () => gruForward(lstmArgs()),
      ShapeMismatchError,
      'GYRE_SHAPE_MISMATCH',
      'gruForward',
      'weight_ih_l0',
      '[9, 2]',
      'got 24 values',
    );
    expectError(() => lstmForward(lstmArgs({ hiddenSize: 4 })), ShapeMismatchError, 'GYRE_SHAPE_MISMATCH', '[16, 2]');
  });

  it('rejects missing weights and unknown options by name', () => {
    const args = lstmArgs();
    const { bias_hh_l0: _dropped, ...three } = args.weights;
    expectError(
      () => lstmForward({ ...args, weights: three } as never),
      MissingArgumentError,
      'GYRE_MISSING_ARGUMENT',
      'weights.bias_hh_l0 is required',
    );
    expectError(
      () => lstmForward({ ...args, weights: undefined } as never),
      MissingArgumentError,
      'GYRE_MISSING_ARGUMENT',
      'weights is required',
    );
    expectError(
      () => lstmForward({ ...args, weights: { ...args.weights, weight_ih_l1: new Float32Array(1) } } as never),
      InvalidArgumentError,
      'GYRE_INVALID_ARGUMENT',
      'unknown option weights.weight_ih_l1',
    );
    expectError(
      () => lstmForward({ ...args, hiddensize: 3 } as never),
      InvalidArgumentError,
      'GYRE_INVALID_ARGUMENT',
      'unknown option hiddensize',
    );
    // A cell state is an LSTM's only: c0 on a GRU is an error, not silently ignored.
    const gruArgs = { ...args, weights: lstmArgs().weights };
    expectError(
      () => gruForward({ ...gruArgs, c0: new Float32Array(B * H) } as never),
      InvalidArgumentError,
      'GYRE_INVALID_ARGUMENT',
      'unknown option c0',
    );
  });

  it('rejects wrong types and mixed dtypes', () => {
    const args = lstmArgs();
    expectError(
      () => lstmForward({ ...args, input: [1, 2, 3] } as never),
      InvalidArgumentError,
      'GYRE_INVALID_ARGUMENT',
      'input must be a Float32Array or Float64Array, got an array of length 3',
    );
    expectError(
      () => lstmForward({ ...args, h0: new Float64Array(B * H) } as never),
      InvalidArgumentError,
      'GYRE_INVALID_ARGUMENT',
      'h0 must be a Float32Array like input, got a Float64Array of length 6',
    );
    expectError(() => lstmForward(null as never), InvalidArgumentError, 'GYRE_INVALID_ARGUMENT', 'expected an options object, got null');
    expectError(
      () => rnnForward({ ...args, nonlinearity: 'sigmoid' } as never),
      InvalidArgumentError,
      'GYRE_INVALID_ARGUMENT',
      "nonlinearity must be 'tanh' or 'relu', got \"sigmoid\"",
    );
    expectError(
      () => gruForward({ ...args, resetAfter: 1 } as never),
      InvalidArgumentError,
      'GYRE_INVALID_ARGUMENT',
      'resetAfter must be a boolean, got 1',
    );
  });

  it('leaves the caller’s arrays untouched when it throws', () => {
    const args = lstmArgs();
    const before = Array.from(args.weights.weight_hh_l0);
    expect(() => lstmBackward({ ...args, gradOutput: new Float32Array(1) })).toThrow(GyreError);
    expect(Array.from(args.weights.weight_hh_l0)).toEqual(before);
  });
});

describe('error codes', () => {
  it('every code of the native table is a GyreErrorCode', () => {
    const codes = errorCodes();
    expect(codes).toContain('GYRE_INTERNAL');
    for (const code of codes) expect(gyreErrorCodes).toContain(code);
  });

  it('native errors carry the code as their code property, not in the message (sync and async)', async () => {
    const f = (n: number) => new Float32Array(n);
    let sync: unknown;
    try {
      recurrentForwardF32(
        { cell: 'lstm', batch: 0, steps: 1, inputSize: 1, hiddenSize: 1 },
        { input: f(1), weightIh: f(4), weightHh: f(4), biasIh: f(4), biasHh: f(4) },
      );
    } catch (e) {
      sync = e;
    }
    expect(sync).toBeInstanceOf(Error);
    expect((sync as { code: unknown }).code).toBe('GYRE_INVALID_ARGUMENT');
    expect((sync as Error).message).toBe('batch must be a positive integer, got 0');
    const model = new NativeModel({
      input: { features: 1 },
      layers: [
        { type: 'lstm', hiddenSize: 2 },
        { type: 'dense', units: 1 },
      ],
    });
    const rejected: unknown = await model.evaluate({ samples: 1, steps: 1, features: f(1), values: f(1) }, 'hinge', 4).then(
      () => 'resolved',
      (e: unknown) => e,
    );
    expect(rejected).toBeInstanceOf(Error);
    expect((rejected as { code: unknown }).code).toBe('GYRE_INVALID_ARGUMENT');
    expect((rejected as Error).message).toBe('loss must be one of crossEntropy, mse, binaryCrossEntropy, got "hinge"');
  });
});

describe('defaults', () => {
  it('absent initial states and output gradients mean zeros', () => {
    const args = lstmArgs();
    const zeros = new Float32Array(B * H);
    expect(lstmForward(args)).toEqual(lstmForward({ ...args, h0: zeros, c0: zeros }));
    const withZeros = lstmBackward({ ...args, gradOutput: new Float32Array(B * T * H), gradHN: zeros, gradCN: zeros });
    expect(Array.from(withZeros.gradInput).every((v) => v === 0)).toBe(true);
    const onlyHN = lstmBackward({ ...args, gradHN: Float32Array.from({ length: B * H }, () => 1) });
    expect(onlyHN.gradWeights.weight_hh_l0.some((v) => v !== 0)).toBe(true);
  });
});

describe('no native binary', () => {
  /** Loads gyre in a child process where neither the platform's addon nor the WebAssembly build can be found. */
  const loadWithout = (env: NodeJS.ProcessEnv) => {
    const script = `
      const Module = require('node:module');
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request.endsWith('.node') || request.startsWith('gyre-') || request.includes('wasi')) {
          throw Object.assign(new Error('not here: ' + request), { code: 'MODULE_NOT_FOUND' });
        }
        return resolve.call(this, request, ...rest);
      };
      try { require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))}); console.log('loaded'); }
      catch (err) { console.log(JSON.stringify({ name: err.name, code: err.code, message: err.message })); }
    `;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', env });
    return JSON.parse(out) as { name: string; code: string; message: string };
  };

  it('require("gyre") throws NativeUnavailableError naming the platform, both packages and what to do from an npm install', () => {
    const { GYRE_WASM: _, ...env } = process.env;
    const err = loadWithout(env);
    expect(err.name).toBe('NativeUnavailableError');
    expect(err.code).toBe('GYRE_NATIVE_UNAVAILABLE');
    expect(err.message).toContain(`${process.platform}-${process.arch}`);
    expect(err.message).toMatch(/Install the package gyre-/);
    expect(err.message).toContain('the WebAssembly package gyre-wasm32-wasi');
    expect(err.message).toContain('in a git clone of gyre, `npm install` builds the addon');
    expect(err.message).not.toContain('build:native');
  });

  it('GYRE_WASM=1 without the WebAssembly build names it and how to get it; other values are refused', () => {
    const err = loadWithout({ ...process.env, GYRE_WASM: '1' });
    expect(err.code).toBe('GYRE_NATIVE_UNAVAILABLE');
    expect(err.message).toContain('GYRE_WASM=1');
    expect(err.message).toContain('npm install --force gyre-wasm32-wasi');
    const bad = loadWithout({ ...process.env, GYRE_WASM: 'yes' });
    expect(bad.code).toBe('GYRE_NATIVE_UNAVAILABLE');
    expect(bad.message).toContain('GYRE_WASM must be 1');
    expect(bad.message).toContain('"yes"');
  });
});
