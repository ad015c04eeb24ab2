/**
 * Importing functional TensorFlow.js Layers models (`tf.model({ inputs, outputs })`) as gyre
 * graphs: encoders that return their states (`returnState`) and decoders that start from them
 * (`initialState`), one- and two-directional, every cell, token and float inputs, several
 * outputs; built here with tfjs defaults (its hard sigmoid gates), saved through a save handler
 * and compared with tfjs' own `predict`; files on disk; what is refused.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { importTfjs, importTfjsGraph, loadTfjsGraph } from 'gyre';
import { artifactsOf, maxDiff, randomizeWeights, sequences } from './tfjs-helpers';

const TOL = 1e-5;

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

/** tfjs' outputs of a model with several inputs (float sequences or token ids), flat. */
function tfOutputs(model: tf.LayersModel, xs: (number[][][] | number[][])[]): Float32Array[] {
  const inputs = xs.map((x) =>
    Array.isArray(x[0]?.[0]) ? tf.tensor3d(x as number[][][]) : tf.tensor2d(x as number[][], undefined, 'int32'),
  );
  const ys = model.predict(inputs) as tf.Tensor | tf.Tensor[];
  const list = Array.isArray(ys) ? ys : [ys];
  const out = list.map((y) => y.dataSync() as Float32Array);
  for (const t of [...inputs, ...list]) t.dispose();
  return out;
}

function tokens(samples: number, steps: number, vocab: number, seed: number): number[][] {
  let s = seed;
  return Array.from({ length: samples }, () =>
    Array.from({ length: steps }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s % vocab;
    }),
  );
}

describe('functional tfjs models as graphs', () => {
  it('a bidirectional LSTM encoder whose states, joined forward first, start an LSTM decoder', async () => {
    const src = tf.input({ shape: [null, 3], name: 'src' });
    const tgt = tf.input({ shape: [null, 2], name: 'tgt' });
    const enc = tf.layers.bidirectional({
      layer: tf.layers.lstm({ units: 4, returnState: true, returnSequences: true }) as tf.layers.RNN,
      name: 'enc',
    });
    const [, fh, fc, bh, bc] = enc.apply(src) as tf.SymbolicTensor[];
    const h = tf.layers.concatenate({ name: 'cat_h' }).apply([fh!, bh!]) as tf.SymbolicTensor;
    const c = tf.layers.concatenate({ name: 'cat_c' }).apply([fc!, bc!]) as tf.SymbolicTensor;
    const dec = tf.layers.lstm({ units: 8, returnSequences: true, name: 'dec' }).apply(tgt, { initialState: [h, c] }) as tf.SymbolicTensor;
    const y = tf.layers.dense({ units: 3, activation: 'softmax', name: 'y' }).apply(dec) as tf.SymbolicTensor;
    const model = tf.model({ inputs: [src, tgt], outputs: y });
    randomizeWeights(model, 7);
    const a = await artifactsOf(model);
    const g = importTfjsGraph(a.modelJson, a.weightData);
    expect(g.spec.nodes.find((n) => n.name === 'dec')?.initialState).toBe('enc');
    expect(g.spec.nodes.find((n) => n.name === 'enc')?.layer).toMatchObject({
      type: 'lstm',
      bidirectional: true,
      returnState: true,
      recurrentActivation: 'hardSigmoidTfjs',
    });
    const xs = sequences(3, 5, 3, 1);
    const xt = sequences(3, 4, 2, 2);
    const [want] = tfOutputs(model, [xs, xt]);
    const got = (await g.predict({ src: xs, tgt: xt })).outputs.y!;
    expect(got.shape).toEqual([3, 4, 3]);
    expect(maxDiff(got.data, want!)).toBeLessThan(TOL);
    // The imported graph trains.
    const history = await g.fit(
      { src: xs, tgt: xt },
      {
        y: [
          [0, 1, 2, 0],
          [1, 1, 1, 1],
          [2, 0, 2, 0],
        ],
      },
      { epochs: 3, learningRate: 0.05 },
    );
    expect(history[2]!.loss).toBeLessThan(history[0]!.loss);
    g.dispose();
    model.dispose();
  });

  it('a GRU over token ids whose state starts a GRU decoder, with a second output on the encoder', async () => {
    const words = tf.input({ shape: [null], name: 'words', dtype: 'int32' });
    const future = tf.input({ shape: [null, 2], name: 'future' });
    const emb = tf.layers.embedding({ inputDim: 9, outputDim: 4, name: 'emb' }).apply(words) as tf.SymbolicTensor;
    const [, state] = tf.layers.gru({ units: 5, returnState: true, returnSequences: true, name: 'enc' }).apply(emb) as tf.SymbolicTensor[];
    const last = tf.layers.gru({ units: 4, name: 'summary' }).apply(emb) as tf.SymbolicTensor;
    const dec = tf.layers
      .gru({ units: 5, returnSequences: true, name: 'dec' })
      .apply(future, { initialState: [state!] }) as tf.SymbolicTensor;
    const y = tf.layers.timeDistributed({ layer: tf.layers.dense({ units: 2 }), name: 'y' }).apply(dec) as tf.SymbolicTensor;
    const cls = tf.layers.dense({ units: 3, activation: 'softmax', name: 'cls' }).apply(last) as tf.SymbolicTensor;
    const model = tf.model({ inputs: [words, future], outputs: [y, cls] });
    randomizeWeights(model, 3);
    const a = await artifactsOf(model);
    const g = importTfjsGraph(a.modelJson, a.weightData);
    expect(g.spec.inputs).toEqual([
      { name: 'words', vocabSize: 9 },
      { name: 'future', features: 2 },
    ]);
    const xw = tokens(4, 6, 9, 5);
    const xf = sequences(4, 3, 2, 8);
    const [wantY, wantCls] = tfOutputs(model, [xw, xf]);
    const p = await g.predict({ words: xw, future: xf });
    expect(maxDiff(p.outputs.y!.data, wantY!)).toBeLessThan(TOL);
    expect(maxDiff(p.outputs.cls!.data, wantCls!)).toBeLessThan(TOL);
    g.dispose();
    model.dispose();
  });

  it('a bidirectional simple RNN starting a bidirectional simple RNN from its two states, read from disk', async () => {
    const x = tf.input({ shape: [null, 2], name: 'x' });
    const z = tf.input({ shape: [null, 2], name: 'z' });
    const [, fh, bh] = tf.layers
      .bidirectional({ layer: tf.layers.simpleRNN({ units: 3, returnState: true }) as tf.layers.RNN, name: 'enc' })
      .apply(x) as tf.SymbolicTensor[];
    const dec = tf.layers
      .bidirectional({ layer: tf.layers.simpleRNN({ units: 3, returnSequences: true }) as tf.layers.RNN, name: 'dec' })
      .apply(z, { initialState: [fh!, bh!] }) as tf.SymbolicTensor;
    const model = tf.model({ inputs: [x, z], outputs: dec });
    randomizeWeights(model, 11);
    const a = await artifactsOf(model);
    const dir = await mkdtemp(join(tmpdir(), 'gyre-tfjs-graph-'));
    try {
      await writeFile(join(dir, 'model.json'), JSON.stringify(a.modelJson));
      await writeFile(join(dir, 'group1-shard1of1.bin'), a.weightData);
      const g = await loadTfjsGraph(join(dir, 'model.json'));
      const xs = sequences(2, 4, 2, 3);
      const zs = sequences(2, 5, 2, 4);
      const [want] = tfOutputs(model, [xs, zs]);
      expect(maxDiff((await g.predict({ x: xs, z: zs })).outputs.dec!.data, want!)).toBeLessThan(TOL);
      g.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    model.dispose();
  });

  it('refuses what it cannot map, naming the layer', async () => {
    const x = tf.input({ shape: [null, 2], name: 'x' });
    const [, h1] = tf.layers.gru({ units: 3, returnState: true, returnSequences: true, name: 'a' }).apply(x) as tf.SymbolicTensor[];
    const fromState = tf.layers.dense({ units: 2, name: 'd' }).apply(h1!) as tf.SymbolicTensor;
    const m1 = tf.model({ inputs: x, outputs: fromState });
    const a1 = await artifactsOf(m1);
    expect(() => importTfjsGraph(a1.modelJson, a1.weightData)).toThrow(/layer "d".*reads a state of "a"/);
    // A functional model given to the Sequential importer points to the graph importer.
    expect(() => importTfjs(a1.modelJson, a1.weightData)).toThrow(/functional model: import it with importTfjsGraph/);
    const s = tf.sequential({ layers: [tf.layers.lstm({ units: 2, inputShape: [3, 2] })] });
    const as = await artifactsOf(s);
    expect(() => importTfjsGraph(as.modelJson, as.weightData)).toThrow(/importTfjs/);
    // States of two layers cannot start one decoder.
    const [, ha, ca] = tf.layers.lstm({ units: 3, returnState: true, name: 'e1' }).apply(x) as tf.SymbolicTensor[];
    const [, , cb] = tf.layers.lstm({ units: 3, returnState: true, name: 'e2' }).apply(x) as tf.SymbolicTensor[];
    const mixed = tf.layers.lstm({ units: 3, name: 'mixed' }).apply(x, { initialState: [ha!, cb!] }) as tf.SymbolicTensor;
    const m2 = tf.model({ inputs: x, outputs: [mixed, tf.layers.dense({ units: 1 }).apply(ca!) as tf.SymbolicTensor] });
    const a2 = await artifactsOf(m2);
    expect(() => importTfjsGraph(a2.modelJson, a2.weightData)).toThrow(
      /layer "mixed".*initial_state must be the states of one recurrent layer/,
    );
    for (const m of [m1, s, m2]) m.dispose();
  });
});
