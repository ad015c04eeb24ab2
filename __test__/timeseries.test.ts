/**
 * The time-series toolkit: validated series input, sliding windows (exact values), per-feature
 * normalization and its JSON, and a Forecaster trained for real on a noiseless sine wave
 * (beats the naive baseline, forecasts one step, recursively 30 steps, and directly 5 steps),
 * saved and loaded with its normalizer.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Forecaster,
  GyreError,
  InvalidArgumentError,
  Normalizer,
  ShapeMismatchError,
  sequential,
  toSeries,
  windows,
  type ProgressEvent,
} from 'gyre';

const PERIOD = 25;
const sine = (t: number) => Math.sin((2 * Math.PI * t) / PERIOD);
const N = 300;
/** 300 training points and the true continuation after them. */
const wave = Array.from({ length: N + 40 }, (_, t) => sine(t));
const train = wave.slice(0, N);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gyre-ts-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('toSeries', () => {
  it('takes number[], number[][] and { data, shape }', () => {
    expect(toSeries([1, 2, 3])).toEqual({ data: Float32Array.from([1, 2, 3]), shape: [3, 1] });
    expect(
      toSeries([
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
    ).toEqual({ data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [3, 2] });
    const t = toSeries({ data: Float64Array.from([1, 2, 3, 4]), shape: [2, 2] });
    expect(t.data).toBeInstanceOf(Float32Array);
    expect(t).toEqual({ data: Float32Array.from([1, 2, 3, 4]), shape: [2, 2] });
  });

  it('names the time step and feature of a bad value', () => {
    const rows = Array.from({ length: 20 }, (_, t) => [t, t, t]);
    rows[12]![1] = NaN;
    expect(() => toSeries(rows)).toThrow(InvalidArgumentError);
    expect(() => toSeries(rows)).toThrow('series[12][1] must be a finite number, got NaN');
    const flat = new Float32Array(60);
    flat[12 * 3 + 1] = Infinity;
    expect(() => toSeries({ data: flat, shape: [20, 3] })).toThrow('series[12][1] must be a finite number, got Infinity');
    expect(() => toSeries([1, 2, NaN], 'history')).toThrow('history[2] must be a finite number, got NaN');
    expect(() => toSeries([[1], ['x' as unknown as number]])).toThrow('series[1][0] must be a finite number, got "x"');
  });

  it('rejects ragged rows, a wrong data length and empty series', () => {
    const rows = Array.from({ length: 8 }, (_, t) => [t, t, t]);
    rows[5] = [1, 2];
    expect(() => toSeries(rows)).toThrow(ShapeMismatchError);
    expect(() => toSeries(rows)).toThrow('series[5] has 2 features, expected 3');
    expect(() => toSeries({ data: new Float32Array(5), shape: [2, 3] })).toThrow(ShapeMismatchError);
    expect(() => toSeries([])).toThrow(InvalidArgumentError);
    expect(() => toSeries([])).toThrow(/at least one time step/);
    expect(() => toSeries({ data: new Float32Array(0), shape: [0, 2] })).toThrow(InvalidArgumentError);
    expect(() => toSeries('abc' as never)).toThrow(InvalidArgumentError);
  });
});

describe('windows', () => {
  /** Step t is [t, 10t]. */
  const two = Array.from({ length: 10 }, (_, t) => [t, 10 * t]);

  it('cuts windows with stride, horizon > 1 and a subset of targets', () => {
    const w = windows(two, { inputLength: 3, horizon: 2, stride: 2, targets: [1] });
    expect(w.x.shape).toEqual([3, 3, 2]);
    expect(w.y.shape).toEqual([3, 2]);
    expect(Array.from(w.x.data)).toEqual([0, 0, 1, 10, 2, 20, 2, 20, 3, 30, 4, 40, 4, 40, 5, 50, 6, 60]);
    expect(Array.from(w.y.data)).toEqual([30, 40, 50, 60, 70, 80]);
  });

  it('orders targets step-major, in the order given', () => {
    const w = windows(two, { inputLength: 3, horizon: 2, targets: [1, 0] });
    expect(w.x.shape).toEqual([6, 3, 2]);
    expect(w.y.shape).toEqual([6, 4]);
    expect(Array.from(w.y.data.subarray(0, 8))).toEqual([30, 3, 40, 4, 40, 4, 50, 5]);
  });

  it('defaults to horizon 1, stride 1 and every feature', () => {
    const w = windows([0, 1, 2, 3, 4], { inputLength: 2 });
    expect(w.x).toEqual({ data: Float32Array.from([0, 1, 1, 2, 2, 3]), shape: [3, 2, 1] });
    expect(w.y).toEqual({ data: Float32Array.from([2, 3, 4]), shape: [3, 1] });
    // Exactly one window fits.
    expect(windows([0, 1, 2, 3, 4], { inputLength: 3, horizon: 2 }).y.shape).toEqual([1, 2]);
  });

  it('says how long the series must be when it is too short', () => {
    const call = () => windows([0, 1, 2, 3], { inputLength: 3, horizon: 2 });
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow('series is too short for one window: it needs at least 5 steps (inputLength 3 + horizon 2), got 4');
  });

  it('names a bad option and its value', () => {
    expect(() => windows(two, { inputLength: 0 })).toThrow('inputLength must be a positive integer, got 0');
    expect(() => windows(two, { inputLength: 2, stride: 1.5 })).toThrow('stride must be a positive integer, got 1.5');
    expect(() => windows(two, { inputLength: 2, horizon: -1 })).toThrow('horizon must be a positive integer, got -1');
    expect(() => windows(two, { inputLength: 2, targets: [2] })).toThrow('targets[0] must be an integer in 0..1, got 2');
    expect(() => windows(two, { inputLength: 2, targets: [] })).toThrow(/targets must be a non-empty array/);
    expect(() => windows(two, { inputLength: 2, targets: [0, 0] })).toThrow('targets lists feature 0 twice');
    expect(() => windows(two, { inputLength: 2, step: 1 } as never)).toThrow(/unknown option step/);
    expect(() => windows(two, {} as never)).toThrow(GyreError);
  });
});

describe('Normalizer', () => {
  /** Feature 0 is 1..4, feature 1 is constant. */
  const rows = [
    [1, 10],
    [2, 10],
    [3, 10],
    [4, 10],
  ];

  it('z-scores each feature with its mean and population standard deviation', () => {
    const n = Normalizer.fit(rows);
    expect(n.method).toBe('zscore');
    expect(n.features).toBe(2);
    const std = Math.sqrt(1.25);
    expect(n.toJSON()).toEqual({ type: 'normalizer', version: 1, method: 'zscore', offset: [2.5, 10], scale: [std, 1] });
    const t = n.transform(rows);
    expect(t.shape).toEqual([4, 2]);
    const expected = [-1.5, 0, -0.5, 0, 0.5, 0, 1.5, 0].map((v, i) => (i % 2 === 0 ? v / std : v));
    Array.from(t.data).forEach((v, i) => {
      expect(v).toBeCloseTo(expected[i]!, 6);
    });
    expect(n.transformValue(4, 0)).toBeCloseTo(1.5 / std, 12);
    expect(n.inverseValue(1.5 / std, 0)).toBeCloseTo(4, 12);
  });

  it('min-max scales each feature to 0..1; a constant feature gets scale 1', () => {
    const n = Normalizer.fit(rows, { method: 'minmax' });
    expect(n.toJSON()).toEqual({ type: 'normalizer', version: 1, method: 'minmax', offset: [1, 10], scale: [3, 1] });
    expect(Array.from(n.transform(rows).data)).toEqual([0, 0, 1 / 3, 0, 2 / 3, 0, 1, 0].map(Math.fround));
    expect(n.transformValue(10, 1)).toBe(0);
    expect(n.transformValue(12, 1)).toBe(2);
    const constant = Normalizer.fit([0.1, 0.1, 0.1]);
    expect(constant.scale).toEqual([1]);
    expect(Number.isFinite(constant.transformValue(0.3, 0))).toBe(true);
  });

  it('inverse(transform(x)) gives x back', () => {
    const series = Array.from({ length: 50 }, (_, t) => [100 + 30 * Math.sin(t), -0.001 * t, 7]);
    for (const method of ['zscore', 'minmax'] as const) {
      const n = Normalizer.fit(series, { method });
      const back = n.inverse(n.transform(series));
      expect(back.shape).toEqual([50, 3]);
      series.flat().forEach((v, i) => {
        expect(back.data[i]).toBeCloseTo(v, 3);
      });
    }
  });

  it('round trips through JSON', () => {
    const n = Normalizer.fit([
      [5, -2],
      [7, 3],
      [6, 1],
    ]);
    const back = Normalizer.fromJSON(JSON.parse(JSON.stringify(n)));
    expect(back.toJSON()).toEqual(n.toJSON());
    expect(back.transform([[6.5, 0]]).data).toEqual(n.transform([[6.5, 0]]).data);
  });

  it('rejects malformed JSON', () => {
    const good = { type: 'normalizer', version: 1, method: 'zscore', offset: [0, 1], scale: [1, 2] };
    const bad: [unknown, RegExp][] = [
      [null, /must be an object/],
      [{ ...good, type: 'tokenizer' }, /type 'normalizer'/],
      [{ ...good, version: 2 }, /version must be 1, got 2/],
      [{ ...good, method: 'robust' }, /method must be one of/],
      [{ ...good, offset: [0] }, /equal lengths, got 1 and 2/],
      [{ ...good, scale: [1, 0] }, /scale\[1\] must be positive, got 0/],
      [{ ...good, scale: [-1, 1] }, /scale\[0\] must be positive/],
      [{ ...good, offset: [0, NaN] }, /offset\[1\] must be a finite number, got NaN/],
      [{ ...good, offset: ['0', 1] }, /offset\[0\] must be a finite number/],
      [{ ...good, scale: undefined }, /scale must be a non-empty array/],
      [{ ...good, offset: [], scale: [] }, /offset must be a non-empty array/],
    ];
    for (const [json, message] of bad) {
      expect(() => Normalizer.fromJSON(json)).toThrow(InvalidArgumentError);
      expect(() => Normalizer.fromJSON(json)).toThrow(message);
    }
  });

  it('rejects a series with another number of features', () => {
    const n = Normalizer.fit(rows);
    expect(() => n.transform([1, 2, 3])).toThrow(ShapeMismatchError);
    expect(() => n.inverse([[1, 2, 3]])).toThrow('series has 3 feature(s) per step, but the normalizer was fitted on 2');
    expect(() => n.transformValue(1, 2)).toThrow('feature must be an integer in 0..1, got 2');
  });
});

describe('Forecaster on a sine wave', () => {
  let forecaster: Forecaster;
  const events: ProgressEvent[] = [];

  beforeAll(async () => {
    forecaster = await Forecaster.train(train, {
      inputLength: 20,
      hiddenSize: 16,
      epochs: 20,
      batchSize: 16,
      onProgress: (e) => events.push(e),
    });
  });

  it('trains the documented architecture and keeps its history', () => {
    expect(forecaster.inputLength).toBe(20);
    expect(forecaster.horizon).toBe(1);
    expect(forecaster.targets).toEqual([0]);
    expect(forecaster.features).toBe(1);
    expect(forecaster.normalizer.method).toBe('zscore');
    const layers = forecaster.model.config.layers;
    expect(layers).toHaveLength(2);
    expect(layers[0]).toMatchObject({ type: 'lstm', hiddenSize: 16, numLayers: 1, returnSequences: false });
    expect(layers[1]).toMatchObject({ type: 'dense', units: 1 });
    expect(forecaster.history?.epochs).toHaveLength(20);
    expect(events.filter((e) => e.kind === 'epoch')).toHaveLength(20);
  });

  it('beats the naive baseline clearly', async () => {
    const e = await forecaster.evaluate(wave);
    expect(e.windows).toBe(wave.length - 20);
    // The baseline repeats the last value: |wave[t + 1] - wave[t]| averaged over the windows' targets.
    let naive = 0;
    for (let t = 19; t < wave.length - 1; t++) naive += Math.abs(Math.fround(wave[t + 1]!) - Math.fround(wave[t]!));
    expect(e.naiveMae).toBeCloseTo(naive / e.windows, 6);
    expect(e.naiveMae).toBeGreaterThan(0.1);
    expect(e.mae).toBeLessThan(e.naiveMae / 10);
    expect(e.mse).toBeLessThan(e.naiveMse / 100);
    expect(forecaster.evaluateSync(wave)).toEqual(e);
    // On the 40 steps after the training series only.
    const unseen = forecaster.evaluateSync(wave.slice(N - 20));
    expect(unseen.windows).toBe(40);
    expect(unseen.mae).toBeLessThan(unseen.naiveMae / 10);
  });

  it('forecasts the next step and, recursively, the next 30 steps', () => {
    const one = forecaster.forecast(train, 1);
    expect(one.shape).toEqual([1, 1]);
    expect(Math.abs(one.data[0]! - wave[N]!)).toBeLessThan(0.02);
    expect(forecaster.forecast(train)).toEqual(one); // steps defaults to horizon
    const thirty = forecaster.forecast(train, 30);
    expect(thirty.shape).toEqual([30, 1]);
    expect(thirty.data[0]).toBe(one.data[0]);
    for (let k = 0; k < 30; k++) expect(Math.abs(thirty.data[k]! - wave[N + k]!)).toBeLessThan(0.05);
    // Only the last inputLength steps matter; every input form works.
    expect(forecaster.forecast(train.slice(-20), 30)).toEqual(thirty);
    expect(forecaster.forecast({ data: Float64Array.from(train), shape: [N, 1] }, 30)).toEqual(thirty);
  });

  it('fails clearly for a history shorter than inputLength or with other features', () => {
    const call = () => forecaster.forecast(train.slice(0, 10));
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow('history has 10 steps, but the forecaster needs at least inputLength = 20');
    expect(() => forecaster.forecast(train.map((v) => [v, v]))).toThrow(ShapeMismatchError);
    expect(() => forecaster.forecast(train, 0)).toThrow('steps must be a positive integer, got 0');
    expect(() => forecaster.forecast([...train.slice(0, 25), NaN])).toThrow('history[25] must be a finite number, got NaN');
  });

  it('saves and loads with identical forecasts and the same normalizer', async () => {
    const path = join(dir, 'sine.safetensors');
    await forecaster.save(path);
    const back = await Forecaster.load(path);
    expect(back.normalizer.toJSON()).toEqual(forecaster.normalizer.toJSON());
    expect([back.inputLength, back.horizon, back.targets, back.features]).toEqual([20, 1, [0], 1]);
    expect(back.history).toBeNull();
    expect(back.model.metadata).toEqual({ gyre: forecaster.metadata });
    expect(back.forecast(train, 30)).toEqual(forecaster.forecast(train, 30));
    expect(Forecaster.fromBuffer(forecaster.toBuffer()).forecast(train, 5)).toEqual(forecaster.forecast(train, 5));
  });

  it('refuses models that are not forecasters, naming their task', async () => {
    const plain = sequential({
      input: { features: 1 },
      layers: [
        { type: 'gru', hiddenSize: 4, returnSequences: false },
        { type: 'dense', units: 1 },
      ],
    });
    const plainPath = join(dir, 'plain.safetensors');
    await plain.save(plainPath);
    await expect(Forecaster.load(plainPath)).rejects.toThrow(InvalidArgumentError);
    await expect(Forecaster.load(plainPath)).rejects.toThrow("the model file is a 'plain' model, not a forecasting model");
    const textPath = join(dir, 'text.safetensors');
    await plain.save(textPath, { metadata: { gyre: { task: 'text', vocabulary: 'abc' } } });
    await expect(Forecaster.load(textPath)).rejects.toThrow("the model file is a 'text' model, not a forecasting model");
    expect(() => Forecaster.fromModel(plain)).toThrow("the model file is a 'plain' model, not a forecasting model");
    // Forecasting metadata that disagrees with the model is refused too.
    const mismatched = plain.toBuffer({ metadata: { gyre: { ...forecaster.metadata, horizon: 3 } } });
    expect(() => Forecaster.fromBuffer(mismatched)).toThrow(InvalidArgumentError);
    expect(() => Forecaster.fromBuffer(mismatched)).toThrow(/dense layer of horizon × targets = 3 units, got dense \(1 units\)/);
    const broken = plain.toBuffer({ metadata: { gyre: { ...forecaster.metadata, normalizer: { type: 'normalizer' } } } });
    expect(() => Forecaster.fromBuffer(broken)).toThrow(/normalizer JSON version must be 1/);
  });
});

describe('Forecaster variants', () => {
  it('forecasts 5 steps directly with horizon 5, and further recursively', async () => {
    const f = await Forecaster.train(train, { inputLength: 20, horizon: 5, hiddenSize: 16, epochs: 15, batchSize: 16, seed: 1 });
    expect(f.model.config.layers[1]).toMatchObject({ type: 'dense', units: 5 });
    const five = f.forecast(train);
    expect(five.shape).toEqual([5, 1]);
    for (let k = 0; k < 5; k++) expect(Math.abs(five.data[k]! - wave[N + k]!)).toBeLessThan(0.05);
    expect(f.forecast(train, 3).data).toEqual(five.data.subarray(0, 3));
    const twelve = f.forecast(train, 12);
    expect(twelve.shape).toEqual([12, 1]);
    expect(twelve.data.subarray(0, 5)).toEqual(five.data);
    for (let k = 0; k < 12; k++) expect(Math.abs(twelve.data[k]! - wave[N + k]!)).toBeLessThan(0.1);
    const e = f.evaluateSync(wave);
    expect(e.mae).toBeLessThan(e.naiveMae / 5);
  });

  it('forecasts a subset of features directly but refuses recursion past the horizon', async () => {
    const pairs = Array.from({ length: 200 }, (_, t) => [sine(t), Math.cos((2 * Math.PI * t) / PERIOD)]);
    const f = await Forecaster.train(pairs, { inputLength: 10, targets: [1], cell: 'gru', hiddenSize: 8, epochs: 3, normalize: 'minmax' });
    expect(f.targets).toEqual([1]);
    expect(f.normalizer.method).toBe('minmax');
    expect(f.forecast(pairs, 1).shape).toEqual([1, 1]);
    expect(() => f.forecast(pairs, 2)).toThrow(InvalidArgumentError);
    expect(() => f.forecast(pairs, 2)).toThrow(/recursive forecasting .* needs every feature predicted/);
    expect(() => f.forecast(pairs.map((p) => p[0]!))).toThrow('history has 1 feature(s) per step, but the forecaster was trained on 2');
  });

  it('names bad training options', async () => {
    await expect(Forecaster.train([1, 2, 3, 4], { inputLength: 4 })).rejects.toThrow(/needs at least 5 steps .* got 4/);
    await expect(Forecaster.train(train, { inputLength: 20, cell: 'transformer' as never })).rejects.toThrow(
      /cell must be one of 'lstm', 'gru', 'rnn', got "transformer"/,
    );
    await expect(Forecaster.train(train, { inputLength: 20, normalize: 'log' as never })).rejects.toThrow(/normalize must be one of/);
    await expect(Forecaster.train(train, { inputLength: 20, learningRate: 0 })).rejects.toThrow(
      'learningRate must be a finite number > 0, got 0',
    );
    await expect(Forecaster.train(train, { inputLength: 20, epoch: 3 } as never)).rejects.toThrow(/unknown option epoch/);
  });
});
