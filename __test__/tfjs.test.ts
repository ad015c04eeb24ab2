/**
 * Importing TensorFlow.js / Keras Layers models: tfjs models built here, saved through a save
 * handler (model.json + weight bytes), imported into gyre and compared with tfjs' own
 * predictions; Keras 2 / Keras 3 converter layouts; files on disk; unsupported models.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { GyreError, fromBuffer, sequential, type Model } from 'gyre';
import { convertTfjs, importTfjs, loadTfjs } from 'gyre';
import {
  artifactsOf,
  float32Bytes,
  kerasGru,
  maxDiff,
  randomizeWeights,
  seeded,
  sequences,
  splitWeights,
  tfPredict,
  type Artifacts,
  type Spec,
} from './tfjs-helpers';

const TOL = 1e-5;
const S = 3;
const T = 6;
const F = 4;

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

function seq(layers: tf.layers.Layer[]): tf.Sequential {
  const m = tf.sequential();
  for (const l of layers) m.add(l);
  return m;
}

/** Imports a tfjs model and checks gyre's prediction against tfjs' on `x`. */
async function expectSame(model: tf.LayersModel, x: number[][][] | number[][], seed = 1, scale = 0.5): Promise<Model> {
  randomizeWeights(model, seed, scale);
  const a = await artifactsOf(model);
  const gyre = importTfjs(a.modelJson, a.weightData);
  const want = tfPredict(model, x);
  const got = gyre.predictSync(x);
  expect(got.shape).toEqual(want.shape);
  expect(maxDiff(got.data, want.data)).toBeLessThan(TOL);
  return gyre;
}

/** An error's code and message. */
function caught(fn: () => unknown): { code: string; message: string; error: unknown } {
  try {
    fn();
  } catch (error) {
    return { code: (error as GyreError).code, message: (error as Error).message, error };
  }
  throw new Error('expected an error');
}

describe('importTfjs matches tfjs predict', () => {
  const x = sequences(S, T, F, 11);

  describe('masks become sequence lengths', () => {
    /** Post-padded token ids: sequence s has lengths[s] ids in 1..9, then zeros. */
    const lengths = [6, 3, 1];
    const ids = lengths.map((len, s) => Array.from({ length: T }, (_, t) => (t < len ? 1 + ((s * 7 + t * 3) % 9) : 0)));

    it('Embedding(mask_zero) + LSTM + Dense: predict without lengths equals tfjs', async () => {
      const m = seq([
        tf.layers.embedding({ inputDim: 10, outputDim: 4, maskZero: true, inputLength: T }),
        tf.layers.lstm({ units: 5, recurrentActivation: 'sigmoid' }),
        tf.layers.dense({ units: 2 }),
      ]);
      const gyre = await expectSame(m, ids, 41);
      expect(gyre.config.input).toEqual({ vocabSize: 10, maskZero: true });
      // The padding changes nothing: the same as the lengths given, and as the unpadded sequences.
      const flat = Uint32Array.from(ids.flat());
      const given = gyre.predictSync({ data: flat, shape: [S, T], lengths });
      expect(maxDiff(given.data, gyre.predictSync(ids).data)).toBe(0);
      const again = fromBuffer(gyre.toBuffer());
      expect(again.config.input).toEqual({ vocabSize: 10, maskZero: true });
      expect(maxDiff(again.predictSync(ids).data, given.data)).toBe(0);
    });

    it('Bidirectional LSTM over mask_zero: the backward direction starts at the last real step', async () => {
      const m = seq([
        tf.layers.embedding({ inputDim: 10, outputDim: 3, maskZero: true, inputLength: T }),
        tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid' }) as tf.RNN }),
      ]);
      await expectSame(m, ids, 42);
    });

    it('Masking + GRU (sequences) + TimeDistributed(Dense): equal to tfjs at the real steps, zeros after', async () => {
      const m = seq([
        tf.layers.masking({ maskValue: -1, inputShape: [T, F] }),
        tf.layers.gru({ units: 4, recurrentActivation: 'sigmoid', returnSequences: true }),
        tf.layers.timeDistributed({ layer: tf.layers.dense({ units: 2 }) }),
      ]);
      randomizeWeights(m, 43);
      const padded = x.map((seqs, s) => seqs.map((step, t) => (t < lengths[s]! ? step : step.map(() => -1))));
      const a = await artifactsOf(m);
      const gyre = importTfjs(a.modelJson, a.weightData);
      expect(gyre.config.input).toEqual({ features: F, maskValue: -1 });
      const want = tfPredict(m, padded).data;
      const got = gyre.predictSync(padded).data;
      lengths.forEach((len, s) => {
        for (let t = 0; t < T; t++) {
          for (let u = 0; u < 2; u++) {
            const i = (s * T + t) * 2 + u;
            if (t < len) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(TOL);
            else expect(got[i]).toBe(0);
          }
        }
      });
    });

    it('padding before a real step, or a sequence of padding only, is an error when the model reads it', async () => {
      const m = seq([
        tf.layers.embedding({ inputDim: 10, outputDim: 2, maskZero: true, inputLength: T }),
        tf.layers.gru({ units: 2, recurrentActivation: 'sigmoid' }),
      ]);
      const a = await artifactsOf(m);
      const gyre = importTfjs(a.modelJson, a.weightData);
      const pre = [[0, 0, 3, 4, 5, 6], ...ids.slice(1)];
      expect(() => gyre.predictSync(pre)).toThrow(
        /x: sequence 0 has padding \(token 0\) at step 0 before a real step at 5; .*pad at the end/,
      );
      expect(() => gyre.predictSync([[0, 0, 0, 0, 0, 0]])).toThrow(/x: sequence 0 is all padding/);
      // Lengths given explicitly are used as they are.
      expect(gyre.predictSync({ data: Uint32Array.from(pre.flat()), shape: [S, T], lengths: [T, 3, 1] }).shape).toEqual([S, 2]);
    });
  });

  it.each([true, false])(
    'go_backwards LSTM then GRU, returnSequences %s: the outputs in the order the layer ran',
    async (returnSequences) => {
      const m = seq([
        tf.layers.lstm({ units: 4, recurrentActivation: 'sigmoid', goBackwards: true, returnSequences: true, inputShape: [T, F] }),
        tf.layers.gru({ units: 3, recurrentActivation: 'sigmoid', goBackwards: !returnSequences, returnSequences }),
      ]);
      const gyre = await expectSame(m, x, 44);
      expect(gyre.config.layers.map((l) => ('goBackwards' in l ? l.goBackwards : false))).toEqual([true, !returnSequences]);
    },
  );

  it('a stateful GRU is a stream: stepping through successive batches gives the stateful outputs', async () => {
    const m = seq([
      tf.layers.gru({ units: 4, recurrentActivation: 'sigmoid', returnSequences: true, stateful: true, batchInputShape: [S, T, F] }),
      tf.layers.timeDistributed({ layer: tf.layers.dropout({ rate: 0.5 }) }),
      tf.layers.timeDistributed({ layer: tf.layers.dense({ units: 2 }) }),
    ]);
    randomizeWeights(m, 31);
    const a = await artifactsOf(m);
    const gyre = importTfjs(a.modelJson, a.weightData);
    expect(gyre.config.layers.map((l) => l.type)).toEqual(['gru', 'dense']);
    const x2 = sequences(S, T, F, 12);
    const first = tfPredict(m, x);
    const second = tfPredict(m, x2); // from the state the first call left
    m.resetStates();
    expect(maxDiff(gyre.predictSync(x).data, first.data)).toBeLessThan(TOL);
    expect(maxDiff(gyre.predictSync(x2).data, second.data)).toBeGreaterThan(1e-3);
    const stream = gyre.createStream(S);
    for (const [batch, want] of [
      [x, first],
      [x2, second],
    ] as const) {
      for (let t = 0; t < T; t++) {
        const y = stream.step(batch.map((s) => s[t]!));
        for (let s = 0; s < S; s++)
          for (let u = 0; u < 2; u++) expect(Math.abs(y[s * 2 + u]! - want.data[(s * T + t) * 2 + u]!)).toBeLessThan(TOL);
      }
    }
  });

  describe("with tfjs' default gates, hardSigmoid (clip(0.2·x + 0.5, 0, 1))", () => {
    // Large weights and inputs, so that many gates sit on each flat part of the hard sigmoid.
    const big = x.map((s) => s.map((v) => v.map((f) => 3 * f)));
    const cases: [string, () => tf.layers.Layer[]][] = [
      ['LSTM', () => [tf.layers.lstm({ units: 5, returnSequences: true, inputShape: [T, F] })]],
      ['GRU (reset before)', () => [tf.layers.gru({ units: 4, returnSequences: true, inputShape: [T, F] })]],
      [
        'Bidirectional GRU, then LSTM + Dense',
        () => [
          tf.layers.bidirectional({ layer: tf.layers.gru({ units: 3, returnSequences: true }) as tf.RNN, inputShape: [T, F] }),
          tf.layers.lstm({ units: 4 }),
          tf.layers.dense({ units: 2 }),
        ],
      ],
    ];
    it.each(cases)('%s', async (_, layers) => {
      const m = seq(layers());
      const gyre = await expectSame(m, big, 21, 2);
      for (const l of gyre.config.layers) if (l.type !== 'dense') expect(l).toMatchObject({ recurrentActivation: 'hardSigmoidTfjs' });
      // The gates do saturate: the same weights with sigmoid gates give another function.
      const spec = {
        ...gyre.config,
        layers: gyre.config.layers.map((l) => (l.type === 'dense' ? l : { ...l, recurrentActivation: 'sigmoid' as const })),
      };
      const sig = sequential(spec);
      sig.setParameters(Object.fromEntries(Object.entries(gyre.parameters()).map(([k, v]) => [k, v.data])));
      expect(maxDiff(sig.predictSync(big).data, gyre.predictSync(big).data)).toBeGreaterThan(1e-2);
      // Saved and loaded, streamed step by step: the same function.
      const again = fromBuffer(gyre.toBuffer());
      expect(again.config).toEqual(gyre.config);
      expect(maxDiff(again.predictSync(big).data, gyre.predictSync(big).data)).toBe(0);
    });

    it('a stream steps through the same function', async () => {
      const m = seq([tf.layers.gru({ units: 4, returnSequences: true, inputShape: [T, F] })]);
      const gyre = await expectSame(m, big, 22, 2);
      const want = gyre.predictSync(big).data;
      const stream = gyre.createStream(S);
      for (let t = 0; t < T; t++) {
        const y = stream.step(big.map((s) => s[t]!));
        for (let s = 0; s < S; s++) {
          for (let u = 0; u < 4; u++) expect(Math.abs(y[s * 4 + u]! - want[(s * T + t) * 4 + u]!)).toBeLessThan(TOL);
        }
      }
    });

    it('Keras 3 files mean relu6(x + 3) / 6, Keras 2 files the tfjs form', async () => {
      const m = seq([tf.layers.lstm({ units: 3, inputShape: [T, F] })]);
      randomizeWeights(m, 23, 2);
      const a = await artifactsOf(m);
      const withVersion = (v: string) => ({ ...a.modelJson, modelTopology: { ...a.modelJson.modelTopology, keras_version: v } });
      expect(importTfjs(withVersion('3.6.0'), a.weightData).config.layers[0]).toMatchObject({ recurrentActivation: 'hardSigmoidKeras3' });
      const k2 = importTfjs(withVersion('2.15.0'), a.weightData);
      expect(k2.config.layers[0]).toMatchObject({ recurrentActivation: 'hardSigmoidTfjs' });
      expect(maxDiff(k2.predictSync(big).data, tfPredict(m, big).data)).toBeLessThan(TOL);
      // Absent from a Keras config: Keras' default, the sigmoid.
      const topology = structuredClone(a.modelJson.modelTopology) as { config: { layers: { config: Record<string, unknown> }[] } };
      delete topology.config.layers[0]!.config.recurrent_activation;
      const absent = { ...a.modelJson, modelTopology: { ...topology, keras_version: '3.6.0' } };
      expect(importTfjs(absent, a.weightData).config.layers[0]).not.toHaveProperty('recurrentActivation');
      expect(importTfjs({ ...absent, modelTopology: topology }, a.weightData).config.layers[0]).toMatchObject({
        recurrentActivation: 'hardSigmoidTfjs',
      });
    });
  });

  it.each([true, false])('LSTM, returnSequences %s', async (returnSequences) => {
    const m = seq([tf.layers.lstm({ units: 5, recurrentActivation: 'sigmoid', returnSequences, inputShape: [T, F] })]);
    const gyre = await expectSame(m, x, returnSequences ? 2 : 3);
    expect(gyre.config.layers[0]).toMatchObject({ type: 'lstm', hiddenSize: 5, numLayers: 1, bidirectional: false, returnSequences });
  });

  it('GRU, resetAfter false (tfjs)', async () => {
    const m = seq([tf.layers.gru({ units: 4, recurrentActivation: 'sigmoid', returnSequences: true, inputShape: [T, F] })]);
    const gyre = await expectSame(m, x, 4);
    expect(gyre.config.layers[0]).toMatchObject({ type: 'gru', resetAfter: false });
  });

  it.each(['tanh', 'relu'] as const)('SimpleRNN %s', async (activation) => {
    const m = seq([tf.layers.simpleRNN({ units: 6, activation, returnSequences: true, inputShape: [T, F] })]);
    const gyre = await expectSame(m, x, activation === 'tanh' ? 5 : 6);
    expect(gyre.config.layers[0]).toMatchObject({ type: 'rnn', nonlinearity: activation });
  });

  it.each([
    ['concat', true],
    ['sum', true],
    ['concat', false],
    ['sum', false],
  ] as const)('Bidirectional LSTM, merge %s, returnSequences %s', async (mergeMode, returnSequences) => {
    const m = seq([
      tf.layers.bidirectional({
        layer: tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid', returnSequences }) as tf.RNN,
        mergeMode,
        inputShape: [T, F],
      }),
    ]);
    const gyre = await expectSame(m, x, 7);
    expect(gyre.config.layers[0]).toMatchObject({ type: 'lstm', bidirectional: true, merge: mergeMode, returnSequences });
  });

  it('two stacked GRUs + Dense softmax', async () => {
    const m = seq([
      tf.layers.gru({ units: 5, recurrentActivation: 'sigmoid', returnSequences: true, inputShape: [T, F] }),
      tf.layers.gru({ units: 4, recurrentActivation: 'sigmoid' }),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ]);
    const gyre = await expectSame(m, x, 8);
    expect(gyre.config.layers.map((l) => l.type)).toEqual(['gru', 'gru', 'dense']);
    const p = gyre.predictSync(x);
    expect(p.shape).toEqual([S, 3]);
    for (let s = 0; s < S; s++) expect(p.data[3 * s]! + p.data[3 * s + 1]! + p.data[3 * s + 2]!).toBeCloseTo(1, 5);
  });

  it('Embedding + LSTM + Dense token model', async () => {
    const m = seq([
      tf.layers.embedding({ inputDim: 10, outputDim: 4, inputLength: T }),
      tf.layers.lstm({ units: 5, recurrentActivation: 'sigmoid' }),
      tf.layers.dense({ units: 2, activation: 'sigmoid' }),
    ]);
    const r = seeded(12);
    const ids = Array.from({ length: S }, () => Array.from({ length: T }, () => Math.floor(((r() + 1) / 2) * 10)));
    const gyre = await expectSame(m, ids, 9);
    expect(convertTfjs((await artifactsOf(m)).modelJson, (await artifactsOf(m)).weightData).spec.input).toEqual({ vocabSize: 10 });
    // Typed token input gives the same.
    const typed = gyre.predictSync({ data: Uint32Array.from(ids.flat()), shape: [S, T] });
    expect(maxDiff(typed.data, tfPredict(m, ids).data)).toBeLessThan(TOL);
  });

  it('Dropout is skipped, TimeDistributed(Dense) and use_bias false map, stacked bidirectional GRU', async () => {
    const m = seq([
      tf.layers.bidirectional({
        layer: tf.layers.gru({ units: 3, recurrentActivation: 'sigmoid', returnSequences: true, useBias: false }) as tf.RNN,
        mergeMode: 'concat',
        inputShape: [T, F],
      }),
      tf.layers.dropout({ rate: 0.5 }),
      tf.layers.lstm({ units: 4, recurrentActivation: 'sigmoid', returnSequences: true }),
      tf.layers.timeDistributed({ layer: tf.layers.dense({ units: 2, activation: 'tanh', useBias: false }) }),
    ]);
    const gyre = await expectSame(m, x, 10);
    expect(gyre.config.layers.map((l) => l.type)).toEqual(['gru', 'lstm', 'dense']);
    const params = gyre.parameters();
    expect(Array.from(params['0.bias_ih_l0_reverse']!.data).every((v) => v === 0)).toBe(true);
    expect(Array.from(params['2.bias']!.data).every((v) => v === 0)).toBe(true);
  });

  it('accepts model.json as a string and the weights as a list of chunks', async () => {
    const m = seq([tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid', inputShape: [T, F] })]);
    randomizeWeights(m, 13);
    const a = await artifactsOf(m);
    const cut = 20;
    const gyre = importTfjs(JSON.stringify(a.modelJson), [a.weightData.slice(0, cut), a.weightData.slice(cut).buffer]);
    expect(maxDiff(gyre.predictSync(x).data, tfPredict(m, x).data)).toBeLessThan(TOL);
  });

  it("ignores tfjs optimizer weights (group 'optimizer')", async () => {
    const m = seq([tf.layers.simpleRNN({ units: 3, inputShape: [T, F] })]);
    randomizeWeights(m, 14);
    const a = await artifactsOf(m);
    a.modelJson.weightsManifest[0]!.weights.push(
      { name: 'iter', shape: [], dtype: 'int32', group: 'optimizer' },
      { name: 'simple_rnn_SimpleRNN1/kernel/m', shape: [F, 3], dtype: 'float32', group: 'optimizer' },
    );
    const gyre = importTfjs(a.modelJson, [a.weightData, new Uint8Array(4 + 4 * F * 3)]);
    expect(maxDiff(gyre.predictSync(x).data, tfPredict(m, x).data)).toBeLessThan(TOL);
  });

  it('maps weights exactly: transposes kernels and reorders GRU gates z,r,h → r,z,n', async () => {
    const m = seq([tf.layers.gru({ units: 2, recurrentActivation: 'sigmoid', inputShape: [T, 1] })]);
    const a = await artifactsOf(m);
    // kernel [1, 6] = 0..5 (z0 z1 r0 r1 h0 h1); recurrent [2, 6] = 10..21; bias [6] = 30..35.
    const bytes = float32Bytes(
      [0, 1, 2, 3, 4, 5],
      Array.from({ length: 12 }, (_, i) => 10 + i),
      [30, 31, 32, 33, 34, 35],
    );
    const { parameters, spec } = convertTfjs(a.modelJson, bytes);
    expect(spec).toEqual({
      input: { features: 1 },
      layers: [
        {
          type: 'gru',
          hiddenSize: 2,
          numLayers: 1,
          bidirectional: false,
          returnSequences: false,
          resetAfter: false,
        },
      ],
    });
    expect(Array.from(parameters['0.weight_ih_l0']!)).toEqual([2, 3, 0, 1, 4, 5]);
    // Row (r0) of weight_hh is recurrent column 2: 12, 18.
    expect(Array.from(parameters['0.weight_hh_l0']!)).toEqual([12, 18, 13, 19, 10, 16, 11, 17, 14, 20, 15, 21]);
    expect(Array.from(parameters['0.bias_ih_l0']!)).toEqual([32, 33, 30, 31, 34, 35]);
    expect(Array.from(parameters['0.bias_hh_l0']!)).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

/** A GRU's model.json in the given layout with seeded weights; bias `[2, 3H]` when resetAfter. */
function gruArtifact(h: number, resetAfter: boolean, returnSequences: boolean, seed: number) {
  const r = seeded(seed);
  const rand = (n: number) => Array.from({ length: n }, () => r() * 0.6);
  const kernel = rand(F * 3 * h);
  const recurrent = rand(h * 3 * h);
  const bias = rand((resetAfter ? 2 : 1) * 3 * h);
  const config = {
    name: 'gru',
    units: h,
    activation: 'tanh',
    recurrent_activation: 'sigmoid',
    use_bias: true,
    return_sequences: returnSequences,
    return_state: false,
    go_backwards: false,
    stateful: false,
    unroll: false,
    reset_after: resetAfter,
    dropout: 0,
    recurrent_dropout: 0,
    seed: null,
  };
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'keras v3.6.0',
    modelTopology: {
      keras_version: '3.6.0',
      backend: 'tensorflow',
      model_config: {
        class_name: 'Sequential',
        config: {
          name: 'sequential',
          trainable: true,
          dtype: { class_name: 'DTypePolicy', config: { name: 'float32' } },
          layers: [
            { class_name: 'InputLayer', config: { batch_shape: [null, T, F], dtype: 'float32', sparse: false, name: 'input_layer' } },
            { class_name: 'GRU', config, build_config: { input_shape: [null, T, F] } },
          ],
        },
      },
    },
    weightsManifest: [
      {
        paths: ['group1-shard1of1.bin'],
        weights: [
          { name: 'layers/gru/cell/vars/0', shape: [F, 3 * h], dtype: 'float32' },
          { name: 'layers/gru/cell/vars/1', shape: [h, 3 * h], dtype: 'float32' },
          { name: 'layers/gru/cell/vars/2', shape: resetAfter ? [2, 3 * h] : [3 * h], dtype: 'float32' },
        ],
      },
    ],
  };
  return { modelJson, weightData: float32Bytes(kernel, recurrent, bias), kernel, recurrent, bias };
}

describe('Keras layouts (tensorflowjs_converter)', () => {
  const x = sequences(S, T, F, 21);

  it('the GRU reference agrees with tfjs (reset_after false)', async () => {
    const m = seq([tf.layers.gru({ units: 4, recurrentActivation: 'sigmoid', returnSequences: true, inputShape: [T, F] })]);
    randomizeWeights(m, 22);
    const [k, rk, b] = splitWeights(await artifactsOf(m));
    expect(maxDiff(kerasGru(x, k!, rk!, b!, 4, false, true), tfPredict(m, x).data)).toBeLessThan(TOL);
  });

  it.each([
    [true, true],
    [true, false],
    [false, true],
  ])('Keras 3 GRU reset_after %s (returnSequences %s) matches the Keras GRU math', (resetAfter, returnSequences) => {
    const a = gruArtifact(5, resetAfter, returnSequences, 23);
    const gyre = importTfjs(a.modelJson, a.weightData);
    expect(gyre.config.layers[0]).toMatchObject({ type: 'gru', resetAfter, returnSequences });
    const want = kerasGru(x, a.kernel, a.recurrent, a.bias, 5, resetAfter, returnSequences);
    expect(maxDiff(gyre.predictSync(x).data, want)).toBeLessThan(TOL);
  });

  it('GRU reset_after absent from the config is read from the bias shape', () => {
    for (const resetAfter of [true, false]) {
      const a = gruArtifact(3, resetAfter, true, 24);
      delete (a.modelJson.modelTopology.model_config.config.layers[1]!.config as { reset_after?: boolean }).reset_after;
      const gyre = importTfjs(a.modelJson, a.weightData);
      expect(gyre.config.layers[0]).toMatchObject({ resetAfter });
      expect(maxDiff(gyre.predictSync(x).data, kerasGru(x, a.kernel, a.recurrent, a.bias, 3, resetAfter, true))).toBeLessThan(TOL);
    }
  });

  /** A tfjs model: Bidirectional GRU (concat) → LSTM → Dense softmax, and its artifacts. */
  async function stack() {
    const m = seq([
      tf.layers.bidirectional({
        layer: tf.layers.gru({ units: 3, recurrentActivation: 'sigmoid', returnSequences: true }) as tf.RNN,
        mergeMode: 'concat',
        inputShape: [T, F],
      }),
      tf.layers.lstm({ units: 4, recurrentActivation: 'sigmoid' }),
      tf.layers.dense({ units: 2, activation: 'softmax' }),
    ]);
    randomizeWeights(m, 25);
    const a = await artifactsOf(m);
    return { m, a, values: splitWeights(a), specs: a.modelJson.weightsManifest[0]!.weights };
  }

  const rnnConfig = (name: string, extra: Record<string, unknown>) => ({
    name,
    trainable: true,
    dtype: { class_name: 'DTypePolicy', config: { name: 'float32' } },
    activation: 'tanh',
    recurrent_activation: 'sigmoid',
    use_bias: true,
    return_state: false,
    go_backwards: false,
    stateful: false,
    unroll: false,
    dropout: 0,
    recurrent_dropout: 0,
    seed: null,
    ...extra,
  });

  it('Keras 3 layout: model_config, InputLayer batch_shape, backward_layer, layers/<class>/…/vars/<i> in any order, training state ignored', async () => {
    const { m, values, specs } = await stack();
    const gru = { units: 3, return_sequences: true, reset_after: false };
    const layers = [
      { class_name: 'InputLayer', config: { batch_shape: [null, T, F], dtype: 'float32', sparse: false, name: 'input_layer' } },
      {
        class_name: 'Bidirectional',
        config: {
          name: 'bidirectional',
          merge_mode: 'concat',
          layer: { class_name: 'GRU', config: rnnConfig('forward_gru', gru) },
          backward_layer: { class_name: 'GRU', config: rnnConfig('backward_gru', { ...gru, go_backwards: true }) },
        },
        build_config: { input_shape: [null, T, F] },
      },
      // A layer name that is not its Keras 3 weight key (the key is the class name: "lstm").
      { class_name: 'LSTM', config: rnnConfig('lstm_7', { units: 4, return_sequences: false, unit_forget_bias: true, use_cudnn: 'auto' }) },
      { class_name: 'Dense', config: { name: 'dense_3', units: 2, activation: 'softmax', use_bias: true } },
    ];
    const names = [
      'layers/bidirectional/forward_layer/cell/vars/0',
      'layers/bidirectional/forward_layer/cell/vars/1',
      'layers/bidirectional/forward_layer/cell/vars/2',
      'layers/bidirectional/backward_layer/cell/vars/0',
      'layers/bidirectional/backward_layer/cell/vars/1',
      'layers/bidirectional/backward_layer/cell/vars/2',
      'layers/lstm/cell/vars/0',
      'layers/lstm/cell/vars/1',
      'layers/lstm/cell/vars/2',
      'layers/dense/vars/0',
      'layers/dense/vars/1',
    ];
    // The converter walks the HDF5 file in key order: dense before lstm; then optimizer state.
    const order = [0, 1, 2, 3, 4, 5, 9, 10, 6, 7, 8];
    const weights: Spec[] = order.map((i) => ({ name: names[i]!, shape: specs[i]!.shape, dtype: 'float32' }));
    weights.push({ name: 'layers/lstm/cell/seed_generator/vars/0', shape: [2], dtype: 'int32' });
    weights.push({ name: 'optimizer/vars/0', shape: [], dtype: 'float32' });
    const bytes = float32Bytes(...order.map((i) => values[i]!), [0, 0], [7]);
    const modelJson = {
      format: 'layers-model',
      generatedBy: 'keras v3.6.0',
      convertedBy: 'TensorFlow.js Converter v4.22.0',
      modelTopology: {
        keras_version: '3.6.0',
        backend: 'tensorflow',
        model_config: { class_name: 'Sequential', config: { name: 'sequential', trainable: true, layers } },
      },
      weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights }],
    };
    const gyre = importTfjs(modelJson, bytes);
    expect(gyre.config.layers.map((l) => l.type)).toEqual(['gru', 'lstm', 'dense']);
    expect(maxDiff(gyre.predictSync(x).data, tfPredict(m, x).data)).toBeLessThan(TOL);
  });

  it('Keras 2 layout: layer/[forward_x/]cell/variable names', async () => {
    const { m, a, values, specs } = await stack();
    const topology = a.modelJson.modelTopology;
    const keras2Names = [
      'bidirectional/forward_gru/gru_cell/kernel',
      'bidirectional/forward_gru/gru_cell/recurrent_kernel',
      'bidirectional/forward_gru/gru_cell/bias',
      'bidirectional/backward_gru/gru_cell/kernel',
      'bidirectional/backward_gru/gru_cell/recurrent_kernel',
      'bidirectional/backward_gru/gru_cell/bias',
      'lstm/lstm_cell/kernel',
      'lstm/lstm_cell/recurrent_kernel',
      'lstm/lstm_cell/bias',
      'dense/kernel',
      'dense/bias',
    ];
    const layers = (topology.config as { layers: { config: { name: string } }[] }).layers;
    layers[0]!.config.name = 'bidirectional';
    layers[1]!.config.name = 'lstm';
    layers[2]!.config.name = 'dense';
    const modelJson = {
      modelTopology: {
        keras_version: '2.15.0',
        backend: 'tensorflow',
        model_config: { class_name: 'Sequential', config: topology.config },
      },
      weightsManifest: [{ paths: ['x'], weights: specs.map((s, i) => ({ ...s, name: keras2Names[i]! })) }],
    };
    const gyre = importTfjs(modelJson, float32Bytes(...values));
    expect(maxDiff(gyre.predictSync(x).data, tfPredict(m, x).data)).toBeLessThan(TOL);
  });

  it('reads uint8 / uint16 / float16 quantized weights', async () => {
    const m = seq([
      tf.layers.lstm({ units: 4, recurrentActivation: 'sigmoid', returnSequences: true, inputShape: [T, F] }),
      tf.layers.dense({ units: 2 }),
    ]);
    randomizeWeights(m, 26);
    const a = await artifactsOf(m);
    const values = splitWeights(a);
    const kinds = ['uint8', 'float16', 'uint16', 'uint8', 'float16'] as const;
    const chunks: Uint8Array[] = [];
    const dequantized = values.map((v, i) => {
      const kind = kinds[i]!;
      const spec = a.modelJson.weightsManifest[0]!.weights[i]!;
      if (kind === 'float16') {
        const half = new Uint16Array(Array.from(v, toHalf));
        chunks.push(new Uint8Array(half.buffer));
        spec.quantization = { dtype: 'float16' };
        return Float32Array.from(half, fromHalf);
      }
      const levels = kind === 'uint8' ? 255 : 65535;
      const min = Math.min(...v);
      const scale = (Math.max(...v) - min) / levels;
      const q = Array.from(v, (w) => Math.round((w - min) / scale));
      chunks.push(new Uint8Array((kind === 'uint8' ? Uint8Array.from(q) : Uint16Array.from(q)).buffer));
      spec.quantization = { dtype: kind, scale, min };
      return Float32Array.from(q, (w) => w * scale + min);
    });
    m.setWeights(dequantized.map((v, i) => tf.tensor(v, a.modelJson.weightsManifest[0]!.weights[i]!.shape)));
    const gyre = importTfjs(a.modelJson, chunks);
    expect(maxDiff(gyre.predictSync(x).data, tfPredict(m, x).data)).toBeLessThan(TOL);
  });
});

function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return sign; // tiny values flush to zero
  return sign | (exp << 10) | ((u >>> 13) & 0x3ff);
}

function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  return exp === 0 ? sign * 2 ** -14 * (frac / 1024) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

describe('loadTfjs', () => {
  const x = sequences(S, T, F, 31);

  async function withDir<R>(fn: (dir: string) => Promise<R>): Promise<R> {
    const dir = await mkdtemp(join(tmpdir(), 'gyre-tfjs-'));
    try {
      return await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  const model = () =>
    seq([
      tf.layers.bidirectional({
        layer: tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid', returnSequences: true }) as tf.RNN,
        mergeMode: 'sum',
        inputShape: [T, F],
      }),
      tf.layers.dense({ units: 2, activation: 'relu' }),
    ]);

  it('reads model.json and group1-shard1of1.bin written in tfjs file format', async () => {
    const m = model();
    randomizeWeights(m, 32);
    const a = await artifactsOf(m);
    await withDir(async (dir) => {
      await writeFile(join(dir, 'model.json'), JSON.stringify(a.modelJson));
      await writeFile(join(dir, 'group1-shard1of1.bin'), a.weightData);
      const gyre = await loadTfjs(join(dir, 'model.json'));
      expect(maxDiff(gyre.predictSync(x).data, tfPredict(m, x).data)).toBeLessThan(TOL);
    });
  });

  it('names the file in an error about what it holds', async () => {
    const m = seq([tf.layers.lstm({ units: 3, recurrentActivation: 'tanh', inputShape: [T, F] })]);
    const a = await artifactsOf(m);
    await withDir(async (dir) => {
      const path = join(dir, 'model.json');
      await writeFile(path, JSON.stringify(a.modelJson));
      await writeFile(join(dir, 'group1-shard1of1.bin'), a.weightData);
      await expect(loadTfjs(path)).rejects.toMatchObject({
        code: 'GYRE_INVALID_ARGUMENT',
        message: expect.stringMatching(
          new RegExp(
            `^tfjs import \\(${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\): layer "lstm_LSTM\\d+" .*recurrent_activation "tanh"`,
          ),
        ),
      });
    });
  });

  it('reads shards and groups in manifest order, paths relative to model.json', async () => {
    const m = model();
    randomizeWeights(m, 33);
    const a = await artifactsOf(m);
    const specs = a.modelJson.weightsManifest[0]!.weights;
    const firstGroupBytes = specs.slice(0, 6).reduce((n, s) => n + 4 * s.shape.reduce((p, q) => p * q, 1), 0);
    const modelJson = {
      ...a.modelJson,
      weightsManifest: [
        { paths: ['w/group1-shard1of2.bin', 'w/group1-shard2of2.bin'], weights: specs.slice(0, 6) },
        { paths: ['w/group2-shard1of1.bin'], weights: specs.slice(6) },
      ],
    };
    await withDir(async (dir) => {
      await mkdir(join(dir, 'model'));
      await mkdir(join(dir, 'model', 'w'));
      await writeFile(join(dir, 'model', 'model.json'), JSON.stringify(modelJson));
      await writeFile(join(dir, 'model', 'w', 'group1-shard1of2.bin'), a.weightData.slice(0, 10));
      await writeFile(join(dir, 'model', 'w', 'group1-shard2of2.bin'), a.weightData.slice(10, firstGroupBytes));
      await writeFile(join(dir, 'model', 'w', 'group2-shard1of1.bin'), a.weightData.slice(firstGroupBytes));
      const gyre = await loadTfjs(join(dir, 'model', 'model.json'));
      expect(maxDiff(gyre.predictSync(x).data, tfPredict(m, x).data)).toBeLessThan(TOL);
    });
  });

  it('names a missing weight file', async () => {
    const a = await artifactsOf(model());
    await withDir(async (dir) => {
      await writeFile(join(dir, 'model.json'), JSON.stringify(a.modelJson));
      await expect(loadTfjs(join(dir, 'model.json'))).rejects.toMatchObject({
        code: 'GYRE_FILE',
        message: expect.stringContaining('group1-shard1of1.bin'),
      });
      await expect(loadTfjs(join(dir, 'nope.json'))).rejects.toMatchObject({
        code: 'GYRE_FILE',
        message: expect.stringContaining('nope.json'),
      });
    });
  });
});

describe('unsupported models are errors naming the layer and option', () => {
  async function artifacts(layers: tf.layers.Layer[]): Promise<Artifacts> {
    return artifactsOf(seq(layers));
  }
  const importOf = (a: Artifacts) => () => importTfjs(a.modelJson, a.weightData);

  it('a recurrent activation other than sigmoid and hard_sigmoid', async () => {
    const a = await artifacts([tf.layers.lstm({ units: 3, recurrentActivation: 'tanh', inputShape: [T, F] })]);
    const e = caught(importOf(a));
    expect(e.error).toBeInstanceOf(GyreError);
    expect(e.code).toBe('GYRE_INVALID_ARGUMENT');
    expect(e.message).toMatch(/layer "lstm_LSTM\d+" \(LSTM, layers\[0\]\): recurrent_activation "tanh" is not supported/);
  });

  it('inside a Bidirectional, naming both layers', async () => {
    const a = await artifacts([
      tf.layers.bidirectional({
        layer: tf.layers.gru({ units: 3, recurrentActivation: 'relu', returnSequences: true }) as tf.RNN,
        inputShape: [T, F],
      }),
    ]);
    expect(caught(importOf(a)).message).toMatch(
      /layer "bidirectional_Bidirectional\d+" .* wrapping "gru_GRU\d+" \(GRU\): recurrent_activation "relu"/,
    );
  });

  it('a missing weight', async () => {
    const a = await artifacts([tf.layers.gru({ units: 3, recurrentActivation: 'sigmoid', inputShape: [T, F] })]);
    const specs = a.modelJson.weightsManifest[0]!.weights;
    const [k, , b] = splitWeights(a);
    a.modelJson.weightsManifest[0]!.weights = [specs[0]!, specs[2]!];
    a.weightData = float32Bytes(k!, b!);
    const e = caught(importOf(a));
    expect(e.code).toBe('GYRE_MISSING_ARGUMENT');
    expect(e.message).toMatch(/missing weights: layer "gru_GRU\d+" \(GRU, layers\[0\]\) recurrent_kernel/);
  });

  it('an unknown layer class', async () => {
    const a = await artifacts([
      tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid', returnSequences: true, inputShape: [T, F] }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 2 }),
    ]);
    const e = caught(importOf(a));
    expect(e.code).toBe('GYRE_INVALID_ARGUMENT');
    expect(e.message).toMatch(/layer "flatten_Flatten\d+" \(Flatten, layers\[1\]\): layer class "Flatten" is not supported/);
  });

  it('an unexpected weight', async () => {
    const a = await artifacts([tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid', inputShape: [T, F] })]);
    a.modelJson.weightsManifest[0]!.weights.push({ name: 'lstm_extra/kernel', shape: [1], dtype: 'float32' });
    a.weightData = new Uint8Array([...a.weightData, 0, 0, 0, 0]);
    expect(caught(importOf(a)).message).toMatch(/unexpected weights .*"lstm_extra\/kernel"/);
  });

  it('a weight of the wrong shape, and too few or too many bytes', async () => {
    const a = await artifacts([tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid', inputShape: [T, F] })]);
    const ok = a.weightData;
    a.modelJson.weightsManifest[0]!.weights[0]!.shape = [12, F];
    const e = caught(importOf(a));
    expect(e.code).toBe('GYRE_SHAPE_MISMATCH');
    expect(e.message).toMatch(/layer "lstm_LSTM\d+" .* kernel \("lstm_LSTM\d+\/kernel"\) has shape \[12, 4\], expected \[4, 12\]/);
    a.modelJson.weightsManifest[0]!.weights[0]!.shape = [F, 12];
    a.weightData = ok.slice(0, ok.length - 4);
    expect(caught(importOf(a)).code).toBe('GYRE_SHAPE_MISMATCH');
    a.weightData = new Uint8Array([...ok, 0, 0, 0, 0]);
    expect(caught(importOf(a)).message).toMatch(/has \d+ bytes but the manifest describes/);
  });

  it.each([
    [
      'go_backwards inside a Bidirectional',
      () =>
        tf.layers.bidirectional({
          layer: tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid', goBackwards: true }) as tf.RNN,
          inputShape: [T, F],
        }),
      /wrapping "lstm_LSTM\d+" \(LSTM\): go_backwards true inside a Bidirectional is not supported/,
    ],
    [
      'activation',
      () => tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid', activation: 'relu', inputShape: [T, F] }),
      /"lstm_LSTM\d+" .*activation "relu" is not supported/,
    ],
    [
      'SimpleRNN activation',
      () => tf.layers.simpleRNN({ units: 3, activation: 'sigmoid', inputShape: [T, F] }),
      /"simple_rnn_SimpleRNN\d+" .*activation "sigmoid" is not supported/,
    ],
    [
      'Dense activation',
      () => tf.layers.dense({ units: 3, activation: 'elu', inputShape: [T, F] }),
      /"dense_Dense\d+" .*activation "elu" is not supported/,
    ],
    [
      'merge_mode',
      () =>
        tf.layers.bidirectional({
          layer: tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid' }) as tf.RNN,
          mergeMode: 'mul',
          inputShape: [T, F],
        }),
      /"bidirectional_Bidirectional\d+" .*merge_mode "mul" is not supported/,
    ],
  ])('%s', async (_, layer, message) => {
    const a = await artifacts([layer()]);
    expect(caught(importOf(a)).message).toMatch(message);
  });

  it('a Masking layer after another layer', async () => {
    const a = await artifacts([
      tf.layers.dense({ units: 3, inputShape: [T, F] }),
      tf.layers.masking({ maskValue: 0 }),
      tf.layers.lstm({ units: 2, recurrentActivation: 'sigmoid' }),
    ]);
    expect(caught(importOf(a)).message).toMatch(/"masking_Masking\d+" .*a Masking layer must come first/);
  });

  it('a functional model', async () => {
    const input = tf.input({ shape: [T, F] });
    const output = tf.layers.lstm({ units: 3, recurrentActivation: 'sigmoid' }).apply(input) as tf.SymbolicTensor;
    const a = await artifactsOf(tf.model({ inputs: input, outputs: output }));
    expect(caught(importOf(a)).message).toMatch(
      /only Sequential models can be imported as a sequential model; the model is a "Model" \(a functional model: import it with importTfjsGraph/,
    );
  });

  it('an Embedding that is not first', () => {
    const a = gruArtifact(2, true, true, 1);
    a.modelJson.modelTopology.model_config.config.layers.push({
      class_name: 'Embedding',
      config: { name: 'emb', input_dim: 3, output_dim: 2 },
    } as never);
    expect(caught(() => importTfjs(a.modelJson, a.weightData)).message).toMatch(
      /layer "emb" \(Embedding, layers\[2\]\): an Embedding must be the model's first layer/,
    );
  });
});
