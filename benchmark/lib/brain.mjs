// brain.js 1.6.1, pure JavaScript, one sample at a time (no batching; its recurrent nets train
// with their own per-sample RMSProp-style update with gradient clipping, not Adam).
// - lstm-s: `brain.recurrent.LSTM` on token ids (32 tokens; its input is a learned 32-wide
//   embedding row, the same matrix sizes as a one-hot input), hidden 64, softmax readout over
//   the tokens (plus its END token) at every step. A sequence is 15 tokens: with brain's START
//   step that is 16 steps. Training: `train(seqs, { iterations: 1 })`. Inference: brain's
//   forward pass `net.trainInput(seq)` (every step with its softmax, no backward or update),
//   because `run()` generates tokens until it predicts END rather than reading a sequence.
// - lstm-m, gru-m, lstm-l: `brain.recurrent.LSTMTimeStep` / `GRUTimeStep` (inputSize I,
//   hiddenLayers [H], outputSize O = I), on arrays of number arrays. Training on T + 1 vectors
//   is T steps each predicting the next vector (MSE at every step); inference is `run()` on T
//   vectors (T steps, the readout at every step).
import brain from 'brain.js';
import { makeData } from './workloads.mjs';
import { budgeted } from './timing.mjs';

/** Plain nested arrays, as brain's data detection wants them. */
function sequences(w, count) {
  if (w.oneHot) {
    const d = makeData(w, count, 1);
    return Array.from({ length: count }, (_, s) => Array.from(d.tokens.subarray(s * (w.steps + 1), s * (w.steps + 1) + w.steps - 1)));
  }
  const d = makeData(w, count, 1);
  // T + 1 vectors per sequence (the last is only a target); run() reads the first T.
  const per = w.steps * w.input;
  return Array.from({ length: count }, (_, s) =>
    Array.from({ length: w.steps + 1 }, (_, t) => {
      const at = s * per + (t % w.steps) * w.input;
      return Array.from(d.x.subarray(at, at + w.input));
    }),
  );
}

export async function bench(w, s) {
  let net;
  let infer;
  if (w.oneHot) {
    net = new brain.recurrent.LSTM({ hiddenLayers: [w.hidden] });
    // Fix the vocabulary to all 32 tokens up front (brain would infer it from the first data).
    net.dataFormatter = new brain.utilities.DataFormatter([Array.from({ length: w.input }, (_, i) => i)]);
    infer = (seq) => net.trainInput(net.formatDataIn(seq));
  } else {
    const Net = w.cell === 'lstm' ? brain.recurrent.LSTMTimeStep : brain.recurrent.GRUTimeStep;
    net = new Net({ inputSize: w.input, hiddenLayers: [w.hidden], outputSize: w.output });
    infer = (seq) => net.run(seq.slice(0, w.steps));
  }
  const train = (seqs) => net.train(seqs, { iterations: 1, errorThresh: 0, log: false });
  const maxUnits = s.maxSlowSequences;
  const pool = sequences(w, Math.min(maxUnits, 64));
  const take = (k) => Array.from({ length: k }, (_, i) => pool[i % pool.length]);
  // Training first: brain builds its model on the first train() call.
  const tr = await budgeted({
    prepare: (k) => {
      const seqs = take(k);
      return () => train(seqs);
    },
    unitSeqs: 1,
    budgetMs: s.slowBudgetMs.training,
    reps: s.slowReps,
    maxUnits,
  });
  const inf = await budgeted({
    prepare: (k) => {
      const seqs = take(k);
      return () => {
        for (const q of seqs) infer(q);
      };
    },
    unitSeqs: 1,
    budgetMs: s.slowBudgetMs.inference,
    reps: s.slowReps,
    maxUnits,
  });
  const kind = w.oneHot ? 'recurrent.LSTM' : w.cell === 'lstm' ? 'recurrent.LSTMTimeStep' : 'recurrent.GRUTimeStep';
  return [
    { mode: 'inference', threads: 1, ...inf, note: `${kind}, ${w.oneHot ? 'trainInput (forward)' : 'run'}, per sample` },
    { mode: 'training', threads: 1, ...tr, note: `${kind}, train iterations 1, per sample (RMSProp-style)` },
  ];
}
