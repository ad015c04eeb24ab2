// TensorFlow.js (@tensorflow/tfjs, no tfjs-node) on its pure-JS `cpu` backend or its `wasm`
// backend (XNNPACK; in Node it runs single-threaded). The model: tf.sequential of one LSTM / GRU
// layer (recurrentActivation 'sigmoid', returnSequences true; GRU with tfjs's only cell,
// reset_after=false, the same matrix FLOPs) and a timeDistributed dense readout, compiled with
// adam (lr 0.001) and meanSquaredError, or softmax + categoricalCrossentropy for lstm-s.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { ATTENTION, attentionData, makeData } from './workloads.mjs';
import { budgeted, measure } from './timing.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

async function useBackend(name) {
  if (name === 'wasm') setWasmPaths(path.join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist') + path.sep);
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend('${name}') failed`);
  await tf.ready();
  return name === 'wasm' ? getThreadsCount() : 1;
}

function buildModel(w) {
  const model = tf.sequential();
  const rnn = {
    units: w.hidden,
    recurrentActivation: 'sigmoid',
    returnSequences: true,
    inputShape: [w.steps, w.input],
    // The default orthogonal initializer takes minutes on these sizes; it does not affect speed.
    recurrentInitializer: 'glorotUniform',
  };
  model.add(w.cell === 'lstm' ? tf.layers.lstm(rnn) : tf.layers.gru(rnn));
  model.add(
    tf.layers.timeDistributed({
      layer: tf.layers.dense({ units: w.output, activation: w.loss === 'crossEntropy' ? 'softmax' : 'linear' }),
    }),
  );
  model.compile({ optimizer: tf.train.adam(0.001), loss: w.loss === 'crossEntropy' ? 'categoricalCrossentropy' : 'meanSquaredError' });
  return model;
}

/** x and y tensors for `batches` batches. */
function tensors(w, batches) {
  const S = batches * w.batch;
  const d = makeData(w, S, 1);
  const x = tf.tensor3d(d.x, [S, w.steps, w.input]);
  let y;
  if (w.oneHot) {
    const oneHot = new Float32Array(S * w.steps * w.output);
    d.classes.forEach((c, i) => {
      oneHot[i * w.output + c] = 1;
    });
    y = tf.tensor3d(oneHot, [S, w.steps, w.output]);
  } else {
    y = tf.tensor3d(d.values, [S, w.steps, w.output]);
  }
  return { x, y };
}

/**
 * Units are batches: inference = `model.predict(x, { batchSize })` over k batches (output
 * read back with `data()`), training = `model.fit(x, y, { batchSize, epochs: 1, shuffle: false })`
 * over k batches, k sized by the time budget (see timing.mjs `budgeted`).
 */
export async function bench(w, s, backend) {
  const threads = await useBackend(backend);
  const model = buildModel(w);
  const held = [];
  const data = (k) => {
    const t = tensors(w, k);
    held.push(t.x, t.y);
    return t;
  };
  const rows = [];
  const maxUnits = Math.max(1, Math.floor(s.maxSlowSequences / w.batch));
  const inf = await budgeted({
    prepare: (k) => {
      const { x } = data(k);
      return async () => {
        const out = model.predict(x, { batchSize: w.batch });
        await out.data();
        out.dispose();
      };
    },
    unitSeqs: w.batch,
    budgetMs: s.slowBudgetMs.inference,
    reps: s.slowReps,
    maxUnits,
  });
  rows.push({ mode: 'inference', threads, ...inf, note: `model.predict, batchSize ${w.batch}` });
  const tr = await budgeted({
    prepare: (k) => {
      const { x, y } = data(k);
      return () => model.fit(x, y, { batchSize: w.batch, epochs: 1, shuffle: false, verbose: 0 });
    },
    unitSeqs: w.batch,
    budgetMs: s.slowBudgetMs.training,
    reps: s.slowReps,
    maxUnits,
  });
  rows.push({ mode: 'training', threads, ...tr, note: `model.fit, adam, batchSize ${w.batch}` });
  for (const t of held) t.dispose();
  model.dispose();
  return rows;
}

/**
 * The encoder–decoder with dot attention of workloads.mjs (`ATTENTION`) as a TensorFlow.js
 * functional model: the attention from its layers (`dot` of the decoder's states with the
 * encoder's outputs, `softmax`, `dot` with the outputs), the bidirectional encoder's states
 * joined forward first as gyre joins them, LSTMs with recurrentActivation 'sigmoid'; compiled
 * with adam (0.001) and categoricalCrossentropy over one-hot targets. Training pairs/s: the
 * median of `s.slowReps` one-epoch fits over `s.attentionSlowPairs` pairs (batch 64, no
 * shuffling) after a warm-up epoch. A backend that cannot train it (tfjs-wasm has no
 * `UnsortedSegmentSum`, the embedding's gradient) reports the error instead.
 */
export async function attentionBench(s, backend) {
  const threads = await useBackend(backend);
  const a = ATTENTION;
  const n = s.attentionSlowPairs;
  const d = attentionData(n);
  const lstm = (units, o) =>
    tf.layers.lstm({ units, recurrentActivation: 'sigmoid', recurrentInitializer: 'glorotUniform', returnSequences: true, ...o });
  const src = tf.input({ shape: [a.sourceSteps], dtype: 'int32', name: 'source' });
  const tgt = tf.input({ shape: [a.targetSteps], dtype: 'int32', name: 'target' });
  const [encOut, fh, fc, bh, bc] = tf.layers
    .bidirectional({ layer: lstm(a.encoder, { returnState: true }), mergeMode: 'concat' })
    .apply(tf.layers.embedding({ inputDim: a.letters, outputDim: a.embedding }).apply(src));
  const h = tf.layers.concatenate().apply([fh, bh]);
  const c = tf.layers.concatenate().apply([fc, bc]);
  const dec = lstm(a.decoder).apply(tf.layers.embedding({ inputDim: a.symbols + 2, outputDim: a.embedding }).apply(tgt), {
    initialState: [h, c],
  });
  const weights = tf.layers.softmax({ axis: -1 }).apply(tf.layers.dot({ axes: [2, 2] }).apply([dec, encOut]));
  const ctx = tf.layers.dot({ axes: [2, 1] }).apply([weights, encOut]);
  const out = tf.layers.dense({ units: a.symbols + 1, activation: 'softmax' }).apply(tf.layers.concatenate().apply([dec, ctx]));
  const model = tf.model({ inputs: [src, tgt], outputs: out });
  model.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy' });
  const xs = [tf.tensor2d(d.source, [n, a.sourceSteps], 'int32'), tf.tensor2d(d.decoderIn, [n, a.targetSteps], 'int32')];
  const y = tf.tidy(() => tf.oneHot(tf.tensor2d(d.target, [n, a.targetSteps], 'int32'), a.symbols + 1).toFloat());
  const oneEpoch = () => model.fit(xs, y, { epochs: 1, batchSize: a.batch, shuffle: false, verbose: 0 });
  const row = { library: `tfjs-${backend}`, threads, pairs: n, parameters: model.countParams() };
  try {
    row.trainingPairsPerSec = (await measure(oneEpoch, { seqsPerRep: n, reps: s.slowReps })).seqPerSec;
  } catch (err) {
    row.error = String(err?.message ?? err).split('\n')[0];
  }
  for (const t of [...xs, y]) t.dispose();
  model.dispose();
  return [row];
}
