/** Shared helpers of the vitest suite: reference cases, seeded data, argument builders. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  gruBackward,
  gruForward,
  lstmBackward,
  lstmForward,
  rnnBackward,
  rnnForward,
  seededRandom,
  type FloatArray,
  type RecurrentWeights,
} from 'gyre';

export type CellName = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru' | 'gru_reset_before';
export const CELLS: CellName[] = ['rnn_tanh', 'rnn_relu', 'lstm', 'gru', 'gru_reset_before'];
export const GATES: Record<CellName, number> = { rnn_tanh: 1, rnn_relu: 1, lstm: 4, gru: 3, gru_reset_before: 3 };

/** One case of crates/gyre-core/tests/reference/recurrent.json (made by generate.py there). */
export interface ReferenceCase {
  name: string;
  cell: CellName;
  batch: number;
  steps: number;
  input_size: number;
  hidden_size: number;
  inputs: Record<string, number[]>;
  outputs: Record<string, number[]>;
  gradients: Record<string, number[]>;
}

export function referenceCases(): ReferenceCase[] {
  const path = join(__dirname, '..', 'crates', 'gyre-core', 'tests', 'reference', 'recurrent.json');
  return (JSON.parse(readFileSync(path, 'utf8')) as { cases: ReferenceCase[] }).cases;
}

/** Everything a forward or backward call takes, for any cell. */
export interface Problem<T extends FloatArray> {
  cell: CellName;
  input: T;
  batch: number;
  steps: number;
  inputSize: number;
  hiddenSize: number;
  weights: RecurrentWeights<T>;
  h0: T;
  c0?: T;
  gradOutput: T;
  gradHN: T;
  gradCN?: T;
}

/** The output and gradients of one problem, by the reference file's names. */
export interface Run {
  outputs: Record<string, FloatArray>;
  gradients: Record<string, FloatArray>;
}

function cellOptions(cell: CellName): Record<string, unknown> {
  if (cell === 'rnn_relu') return { nonlinearity: 'relu' };
  if (cell === 'gru_reset_before') return { resetAfter: false };
  return {};
}

/** Runs forward and backward through the public API for any cell. */
export function run<T extends FloatArray>(p: Problem<T>): Run {
  const base = {
    input: p.input,
    batch: p.batch,
    steps: p.steps,
    inputSize: p.inputSize,
    hiddenSize: p.hiddenSize,
    weights: p.weights,
    h0: p.h0,
    ...cellOptions(p.cell),
  };
  const grads = { gradOutput: p.gradOutput, gradHN: p.gradHN };
  if (p.cell === 'lstm') {
    const f = lstmForward({ ...base, c0: p.c0 });
    const g = lstmBackward({ ...base, c0: p.c0, ...grads, gradCN: p.gradCN });
    return {
      outputs: { output: f.output, h_n: f.hN, c_n: f.cN },
      gradients: { x: g.gradInput, h0: g.gradH0, c0: g.gradC0, ...g.gradWeights },
    };
  }
  const [fwd, bwd] = p.cell.startsWith('rnn') ? [rnnForward, rnnBackward] : [gruForward, gruBackward];
  const f = fwd(base as Parameters<typeof rnnForward>[0]);
  const g = bwd({ ...base, ...grads } as Parameters<typeof rnnBackward>[0]);
  return { outputs: { output: f.output, h_n: f.hN }, gradients: { x: g.gradInput, h0: g.gradH0, ...g.gradWeights } };
}

/** A reference case as a problem of the given dtype. */
export function fromReference<T extends FloatArray>(c: ReferenceCase, dtype: { from(a: number[]): T }): Problem<T> {
  const i = c.inputs;
  const t = (k: string) => dtype.from(i[k]!);
  return {
    cell: c.cell,
    input: t('x'),
    batch: c.batch,
    steps: c.steps,
    inputSize: c.input_size,
    hiddenSize: c.hidden_size,
    weights: {
      weight_ih_l0: t('weight_ih_l0'),
      weight_hh_l0: t('weight_hh_l0'),
      bias_ih_l0: t('bias_ih_l0'),
      bias_hh_l0: t('bias_hh_l0'),
    },
    h0: t('h0'),
    c0: i.c0 ? t('c0') : undefined,
    gradOutput: t('grad_output'),
    gradHN: t('grad_h_n'),
    gradCN: i.grad_c_n ? t('grad_c_n') : undefined,
  };
}

/** Uniform numbers in [-scale, scale) from gyre's seeded generator. */
export function seeded(seed: number): (n: number, scale?: number) => Float64Array {
  const next = seededRandom(seed);
  return (n, scale = 1) => Float64Array.from({ length: n }, () => (next() * 2 - 1) * scale);
}

/** A random f64 problem with non-zero initial states and output gradients. */
export function randomProblem(
  cell: CellName,
  batch: number,
  steps: number,
  inputSize: number,
  hiddenSize: number,
  seed: number,
): Problem<Float64Array> {
  const r = seeded(seed);
  const gh = GATES[cell] * hiddenSize;
  const lstm = cell === 'lstm';
  return {
    cell,
    input: r(batch * steps * inputSize),
    batch,
    steps,
    inputSize,
    hiddenSize,
    weights: {
      weight_ih_l0: r(gh * inputSize, 0.6),
      weight_hh_l0: r(gh * hiddenSize, 0.6),
      bias_ih_l0: r(gh, 0.3),
      bias_hh_l0: r(gh, 0.3),
    },
    h0: r(batch * hiddenSize, 0.8),
    c0: lstm ? r(batch * hiddenSize, 0.8) : undefined,
    gradOutput: r(batch * steps * hiddenSize),
    gradHN: r(batch * hiddenSize),
    gradCN: lstm ? r(batch * hiddenSize) : undefined,
  };
}

/** One tensor of a .safetensors file: its dtype name, shape and raw little-endian bytes. */
export interface SafeTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/**
 * Reads a .safetensors buffer (an 8-byte little-endian header length, a JSON header, the data)
 * into its tensors by name, `__metadata__` left out. An independent reader for tests: it does not
 * use gyre's parser.
 */
export function readSafetensors(bytes: Uint8Array): Record<string, SafeTensor> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLength;
  const out: Record<string, SafeTensor> = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out[name] = { dtype: t.dtype, shape: t.shape, data: bytes.subarray(base + t.data_offsets[0], base + t.data_offsets[1]) };
  }
  return out;
}
