// The benchmark workloads, their FLOP counts and deterministic synthetic data.
//
// Every workload is float32 with a dense readout at every step. FLOPs count only the recurrence's
// matrix products: 2·G·H·(I+H) per step per sequence (G gate blocks: 4 LSTM, 3 GRU), so
// inference FLOPs per sequence = steps · 2·G·H·(I+H) and training is counted as 3× that
// (forward, and a backward pass of about twice the forward's work). The readout, the
// nonlinearities and the optimizer are not counted, for any library.

import { seededRandom } from '../../dist/util/random.js';

/** @typedef {{ name: string, cell: 'lstm'|'gru', input: number, hidden: number, steps: number, batch: number, output: number, loss: 'crossEntropy'|'mse', oneHot: boolean }} Workload */

/** @type {Record<string, Workload>} */
export const WORKLOADS = {
  // Character-level style: one-hot input over 32 classes, softmax over 32 classes, cross-entropy
  // against the next token at every step.
  'lstm-s': { name: 'lstm-s', cell: 'lstm', input: 32, hidden: 64, steps: 16, batch: 1, output: 32, loss: 'crossEntropy', oneHot: true },
  'lstm-m': { name: 'lstm-m', cell: 'lstm', input: 128, hidden: 256, steps: 64, batch: 32, output: 128, loss: 'mse', oneHot: false },
  'gru-m': { name: 'gru-m', cell: 'gru', input: 128, hidden: 256, steps: 64, batch: 32, output: 128, loss: 'mse', oneHot: false },
  'lstm-l': { name: 'lstm-l', cell: 'lstm', input: 512, hidden: 512, steps: 100, batch: 64, output: 512, loss: 'mse', oneHot: false },
};

/** Gate blocks of a cell. */
export function gates(cell) {
  return cell === 'lstm' ? 4 : cell === 'gru' ? 3 : 1;
}

/** Recurrence matrix FLOPs of one forward pass over one sequence. */
export function forwardFlopsPerSequence(w) {
  return w.steps * 2 * gates(w.cell) * w.hidden * (w.input + w.hidden);
}

/** FLOPs per sequence counted for a mode: training = 3 × forward. */
export function flopsPerSequence(w, mode) {
  return (mode === 'training' ? 3 : 1) * forwardFlopsPerSequence(w);
}

/** Parameters of the benchmarked model (one recurrent layer with PyTorch's two biases, one dense layer). */
export function parameterCount(w) {
  const gh = gates(w.cell) * w.hidden;
  return gh * (w.input + w.hidden) + 2 * gh + w.output * w.hidden + w.output;
}

/**
 * gyre's seeded generator (mulberry32), so every run and every library sees the same data. Its
 * module is plain TypeScript output: importing it loads no native code into the baselines'
 * processes.
 */
export const rng = seededRandom;

/**
 * `sequences` synthetic sequences of workload `w`:
 * - `x`: Float32Array [sequences, steps, input] (one-hot rows for lstm-s, else uniform in [-1, 1));
 * - `tokens` (lstm-s only): Uint32Array [sequences, steps + 1], x is the one-hot of the first `steps`;
 * - `classes` (lstm-s): Uint32Array [sequences, steps], the next token at every step;
 * - `values` (mse workloads): Float32Array [sequences, steps, output], uniform in [-1, 1).
 */
export function makeData(w, sequences, seed = 1) {
  const r = rng(seed);
  const x = new Float32Array(sequences * w.steps * w.input);
  if (w.oneHot) {
    const tokens = new Uint32Array(sequences * (w.steps + 1));
    for (let i = 0; i < tokens.length; i++) tokens[i] = Math.floor(r() * w.input);
    const classes = new Uint32Array(sequences * w.steps);
    for (let s = 0; s < sequences; s++) {
      for (let t = 0; t < w.steps; t++) {
        x[(s * w.steps + t) * w.input + tokens[s * (w.steps + 1) + t]] = 1;
        classes[s * w.steps + t] = tokens[s * (w.steps + 1) + t + 1];
      }
    }
    return { sequences, x, tokens, classes };
  }
  for (let i = 0; i < x.length; i++) x[i] = r() * 2 - 1;
  const values = new Float32Array(sequences * w.steps * w.output);
  for (let i = 0; i < values.length; i++) values[i] = r() * 2 - 1;
  return { sequences, x, values };
}

/**
 * The encoder–decoder both gyre (a model graph) and TensorFlow.js (a functional model built of
 * its layers) can express: source letters (vocabulary 26, embedding 64) → a bidirectional LSTM
 * (128 per direction, returning its states) whose forward and backward states, joined forward
 * first, start an LSTM decoder (256) over the target ids shifted right (vocabulary 41: 39
 * symbols, end, start; embedding 64); Luong's dot attention of the decoder's states over the
 * encoder's outputs (without masking: every pair has the same lengths, 8 letters and 8 symbols
 * plus the end); the decoder state and the context, joined, feed a softmax over the 40 target
 * ids at every step; cross-entropy per step, Adam (0.001), batches of 64.
 */
export const ATTENTION = { letters: 26, symbols: 39, sourceSteps: 8, targetSteps: 9, embedding: 64, encoder: 128, decoder: 256, batch: 64 };

/**
 * `pairs` pairs of the task above: `source` Int32Array [pairs, 8] letter ids, `decoderIn`
 * Int32Array [pairs, 9] (start id 40, then the targets but the last), `target` Int32Array
 * [pairs, 9] (each letter mapped to one of 39 symbols, in reverse order, then the end id 39).
 */
export function attentionData(pairs, seed = 17) {
  const a = ATTENTION;
  const r = rng(seed);
  const source = new Int32Array(pairs * a.sourceSteps);
  const decoderIn = new Int32Array(pairs * a.targetSteps);
  const target = new Int32Array(pairs * a.targetSteps);
  for (let i = 0; i < pairs; i++) {
    const s = Array.from({ length: a.sourceSteps }, () => Math.floor(((r() + 1) / 2) * a.letters) % a.letters);
    const t = [...s.map((l) => (l * 7) % a.symbols).reverse(), a.symbols];
    source.set(s, i * a.sourceSteps);
    target.set(t, i * a.targetSteps);
    decoderIn.set([a.symbols + 1, ...t.slice(0, -1)], i * a.targetSteps);
  }
  return { source, decoderIn, target };
}
