/**
 * Sequential models through the public API: defining, training off the event loop with
 * progress and cancellation, evaluating and predicting; variable-length data; determinism;
 * the non-finite guard; bad input.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  BusyError,
  type GyreError,
  InvalidArgumentError,
  NonFiniteError,
  ShapeMismatchError,
  TrainingAbortedError,
  getNumThreads,
  sequential,
  setNumThreads,
  simdLevel,
  backend,
  type ModelSpec,
  type ProgressEvent,
} from 'gyre';
import { seeded } from './helpers';

/** Ragged sequences of one feature; class 1 when their sum is positive. */
function signTask(samples: number, seed: number): { x: number[][][]; y: number[] } {
  const r = seeded(seed);
  const x: number[][][] = [];
  const y: number[] = [];
  for (let i = 0; i < samples; i++) {
    const len = 2 + Math.floor(((r(1)[0]! + 1) / 2) * 10);
    const vals = Array.from(r(len));
    x.push(vals.map((v) => [v]));
    y.push(vals.reduce((a, b) => a + b, 0) > 0 ? 1 : 0);
  }
  return { x, y };
}

const classifier = (seed = 3): ModelSpec => ({
  input: { features: 1 },
  layers: [
    { type: 'lstm', hiddenSize: 16, numLayers: 2, bidirectional: true, returnSequences: false, dropout: 0.1 },
    { type: 'dense', units: 2, activation: 'softmax' },
  ],
  seed,
});

const threadsAtStart = getNumThreads();
afterAll(() => setNumThreads(threadsAtStart));

describe('a stacked bidirectional LSTM on variable-length data', () => {
  it('trains with progress events and then classifies held-out sequences', async () => {
    const { x, y } = signTask(384, 1);
    const test = signTask(128, 2);
    const model = sequential(classifier());
    const before = model.evaluateSync(test.x, test.y, { loss: 'crossEntropy' });
    const events: ProgressEvent[] = [];
    const history = await model.fit(x, y, {
      loss: 'crossEntropy',
      epochs: 12,
      batchSize: 32,
      optimizer: { type: 'adam', learningRate: 0.01 },
      validationSplit: 0.25,
      onProgress: (e) => events.push(e),
    });
    expect(history.epochs).toHaveLength(12);
    const batches = events.filter((e) => e.kind === 'batch');
    expect(batches).toHaveLength(12 * 9); // 288 training samples / 32
    expect(batches[0]).toMatchObject({ epoch: 1, batch: 1, batches: 9 });
    const epochs = events.filter((e) => e.kind === 'epoch');
    expect(epochs).toHaveLength(12); // all delivered before fit resolved
    expect(epochs[11]!.valLoss).toBeGreaterThan(0);
    expect(epochs[11]!.samplesPerSecond).toBeGreaterThan(0);
    const after = await model.evaluate(test.x, test.y, { loss: 'crossEntropy' });
    expect(after.loss).toBeLessThan(0.5 * before.loss);
    expect(after.accuracy).toBeGreaterThan(0.85);
    const p = await model.predict(test.x.slice(0, 5));
    expect(p.shape).toEqual([5, 2]);
    for (let i = 0; i < 5; i++) expect(p.data[2 * i]! + p.data[2 * i + 1]!).toBeCloseTo(1, 5);
    expect(model.predictSync(test.x.slice(0, 5)).data).toEqual(p.data);
  });

  it('returns each sequence’s final states at its own last step, in both directions', () => {
    const model = sequential({
      input: { features: 1 },
      layers: [
        { type: 'lstm', hiddenSize: 3, numLayers: 2, bidirectional: true },
        { type: 'dense', units: 1 },
      ],
      seed: 8,
    });
    const r = seeded(3);
    const seqs = [2, 5, 3].map((len) => Array.from(r(len), (v) => [v]));
    const { states } = model.predictSync(seqs);
    expect(states).toHaveLength(1);
    expect(states[0]!.hidden.shape).toEqual([4, 3, 3]);
    expect(states[0]!.cell!.shape).toEqual([4, 3, 3]);
    seqs.forEach((seq, b) => {
      const alone = model.predictSync([seq]).states[0]!;
      for (let k = 0; k < 4; k++) {
        for (let j = 0; j < 3; j++) {
          expect(states[0]!.hidden.data[(k * 3 + b) * 3 + j]).toBeCloseTo(alone.hidden.data[k * 3 + j]!, 6);
          expect(states[0]!.cell!.data[(k * 3 + b) * 3 + j]).toBeCloseTo(alone.cell!.data[k * 3 + j]!, 6);
        }
      }
    });
  });

  it('outputs zeros at padded steps and each sequence’s own values elsewhere', () => {
    const model = sequential({
      input: { features: 2 },
      layers: [
        { type: 'gru', hiddenSize: 4, bidirectional: true, merge: 'sum' },
        { type: 'dense', units: 3 },
      ],
      seed: 1,
    });
    const r = seeded(5);
    const seqs = [3, 1, 4].map((len) => Array.from({ length: len }, () => Array.from(r(2))));
    const batch = model.predictSync(seqs);
    expect(batch.shape).toEqual([3, 4, 3]);
    seqs.forEach((seq, b) => {
      const alone = model.predictSync([seq]);
      for (let t = 0; t < 4; t++) {
        for (let u = 0; u < 3; u++) {
          const got = batch.data[(b * 4 + t) * 3 + u]!;
          if (t < seq.length) expect(got).toBeCloseTo(alone.data[t * 3 + u]!, 6);
          else expect(got).toBe(0);
        }
      }
    });
  });
});

describe('fit off the event loop', () => {
  it('stops within one batch when its AbortSignal fires, keeping usable weights', async () => {
    const { x, y } = signTask(256, 3);
    const model = sequential(classifier());
    const ac = new AbortController();
    let seen = 0;
    const run = model.fit(x, y, {
      loss: 'crossEntropy',
      epochs: 1000,
      batchSize: 8,
      signal: ac.signal,
      onProgress: (e) => {
        if (e.kind === 'batch' && ++seen === 3) ac.abort();
      },
    });
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingAbortedError);
    expect((err as TrainingAbortedError).code).toBe('GYRE_ABORTED');
    // 1,000 epochs are 32,000 batches. Progress events reach JavaScript asynchronously, so the
    // native loop may be some batches ahead when the abort lands; it then stops before its next
    // batch (exactly so in crates/gyre-core/tests/train.rs, without the event queue in between).
    expect(seen).toBeLessThan(3200);
    expect(model.isTraining).toBe(false);
    const p = model.predictSync(x.slice(0, 4));
    expect(Array.from(p.data).every(Number.isFinite)).toBe(true);
    // An already-aborted signal never starts.
    await expect(model.fit(x, y, { loss: 'crossEntropy', signal: AbortSignal.abort() })).rejects.toBeInstanceOf(TrainingAbortedError);
  });

  it('refuses a second fit, and sync calls, while one is running', async () => {
    const { x, y } = signTask(256, 4);
    const model = sequential(classifier());
    const first = model.fit(x, y, { loss: 'crossEntropy', epochs: 3 });
    expect(model.isTraining).toBe(true);
    await expect(model.fit(x, y, { loss: 'crossEntropy' })).rejects.toBeInstanceOf(BusyError);
    expect(() => model.predictSync(x.slice(0, 1))).toThrow(BusyError);
    await expect(model.predict(x.slice(0, 1))).rejects.toMatchObject({ code: 'GYRE_BUSY' });
    await first;
    expect(model.isTraining).toBe(false);
    expect(model.predictSync(x.slice(0, 1)).shape).toEqual([1, 2]);
  });

  it('rejects with GYRE_NON_FINITE naming the epoch and batch, keeping the last good weights', async () => {
    const model = sequential({
      input: { features: 1 },
      layers: [
        { type: 'rnn', hiddenSize: 8, nonlinearity: 'relu' },
        { type: 'dense', units: 1 },
      ],
      seed: 2,
    });
    const r = seeded(9);
    const x = Array.from({ length: 64 }, () => Array.from(r(6), (v) => [v * 50]));
    const y = x.map((seq) => seq.map((s) => [s[0]! * 1e6]));
    const err = await model
      .fit(x, y, { loss: 'mse', epochs: 50, batchSize: 8, optimizer: { type: 'sgd', learningRate: 1e6 } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as GyreError).message).toMatch(/epoch \d+, batch \d+/);
    for (const { data } of Object.values(model.parameters())) expect(Array.from(data).every(Number.isFinite)).toBe(true);
  });
});

describe('reproducibility', () => {
  it('gives bit-identical weights for the same seed, on 1 and on 2 threads', async () => {
    const { x, y } = signTask(128, 6);
    const train = async (threads: number) => {
      setNumThreads(threads);
      const model = sequential(classifier(11));
      await model.fit(x, y, { loss: 'crossEntropy', epochs: 2, batchSize: 16, seed: 4, optimizer: { type: 'adam', learningRate: 0.01 } });
      return model.parameters();
    };
    const one = await train(1);
    expect(getNumThreads()).toBe(1);
    const again = await train(1);
    const two = await train(2);
    for (const name of Object.keys(one)) {
      expect(Buffer.from(again[name]!.data.buffer).equals(Buffer.from(one[name]!.data.buffer)), name).toBe(true);
      expect(Buffer.from(two[name]!.data.buffer).equals(Buffer.from(one[name]!.data.buffer)), name).toBe(true);
    }
  });
});

describe('model definition', () => {
  it('answers its output width and whether it outputs a sequence from the native model', () => {
    const summed = sequential({
      input: { features: 2 },
      layers: [
        { type: 'gru', hiddenSize: 3, bidirectional: true },
        { type: 'lstm', hiddenSize: 4, bidirectional: true, merge: 'sum', returnSequences: false },
      ],
    });
    expect([summed.outputWidth, summed.outputsSequence]).toEqual([4, false]);
    const concat = sequential({ input: { features: 2 }, layers: [{ type: 'rnn', hiddenSize: 3, bidirectional: true }] });
    expect([concat.outputWidth, concat.outputsSequence]).toEqual([6, true]);
    const dense = sequential({
      input: { features: 2 },
      layers: [
        { type: 'lstm', hiddenSize: 3, returnSequences: false },
        { type: 'dense', units: 5 },
      ],
    });
    expect([dense.outputWidth, dense.outputsSequence]).toEqual([5, false]);
  });

  it('keeps PyTorch names and writes every default into its config', () => {
    const model = sequential({
      input: { vocabSize: 20 },
      layers: [
        { type: 'embedding', dim: 4 },
        { type: 'gru', hiddenSize: 5, numLayers: 2, bidirectional: true },
        { type: 'dense', units: 20, activation: 'softmax' },
      ],
    });
    const params = model.parameters();
    expect(Object.keys(params)).toContain('1.weight_hh_l1_reverse');
    expect(params['1.weight_ih_l1']!.shape).toEqual([15, 10]);
    expect(params['0.weight']!.shape).toEqual([20, 4]);
    expect(model.config.layers[1]).toEqual({
      type: 'gru',
      hiddenSize: 5,
      numLayers: 2,
      bidirectional: true,
      merge: 'concat',
      returnSequences: true,
      dropout: 0,
      resetAfter: true,
    });
    const copy = sequential({ input: { vocabSize: 20 }, layers: model.config.layers });
    expect(Object.keys(copy.parameters())).toEqual(Object.keys(params));
  });

  it('trains a token model with per-step targets (a next-token task)', async () => {
    const model = sequential({
      input: { vocabSize: 5 },
      layers: [
        { type: 'embedding', dim: 8 },
        { type: 'lstm', hiddenSize: 16 },
        { type: 'dense', units: 5 },
      ],
      seed: 1,
    });
    // Counting mod 5: the next token is the current one plus one.
    const x = Array.from({ length: 64 }, (_, i) => Array.from({ length: 3 + (i % 5) }, (_, t) => (i + t) % 5));
    const y = x.map((seq) => seq.map((v) => (v + 1) % 5));
    const before = model.evaluateSync(x, y, { loss: 'crossEntropy' });
    await model.fit(x, y, { loss: 'crossEntropy', epochs: 30, batchSize: 16, optimizer: { type: 'adam', learningRate: 0.02 } });
    const after = model.evaluateSync(x, y, { loss: 'crossEntropy' });
    expect(after.loss).toBeLessThan(0.2 * before.loss);
    expect(after.accuracy).toBeGreaterThan(0.95);
  });
});

describe('bad input', () => {
  const model = sequential(classifier());
  const { x, y } = signTask(16, 7);

  it('rejects unknown and misspelled options', () => {
    expect(() => sequential({ ...classifier(), layers: [{ type: 'lstm', hiddensize: 3 } as never] })).toThrow(
      /unknown option layers\[0\]\.hiddensize/,
    );
    expect(() => sequential({ ...classifier(), layers: [{ type: 'conv', units: 3 } as never] })).toThrow(/layers\[0\]\.type/);
    expect(() => sequential({ input: { features: 1 }, layers: [{ type: 'lstm', hiddenSize: 3, resetAfter: false } as never] })).toThrow(
      /resetAfter/,
    );
    expect(() => sequential({ input: { features: 1 }, layers: [{ type: 'lstm', hiddenSize: -3 }] })).toThrow(
      /hiddenSize.*-3|-3.*hiddenSize/,
    );
    return expect(model.fit(x, y, { loss: 'crossEntropy', epoch: 3 } as never)).rejects.toThrow(/unknown option epoch/);
  });

  it('rejects x and y that disagree, labels out of range and bad lengths', async () => {
    await expect(model.fit(x, y.slice(1), { loss: 'crossEntropy' })).rejects.toBeInstanceOf(ShapeMismatchError);
    const bad = [...y];
    bad[5] = 7;
    await expect(model.fit(x, bad, { loss: 'crossEntropy' })).rejects.toThrow(/y\[5\].*below 2.*got 7/);
    const tensor = { data: new Float32Array(16 * 4), shape: [16, 4, 1], lengths: new Array(16).fill(4) };
    tensor.lengths[2] = 0;
    await expect(model.fit(tensor, y, { loss: 'crossEntropy' })).rejects.toThrow(/lengths\[2\].*got 0/);
    tensor.lengths[2] = 5;
    await expect(model.fit(tensor, y, { loss: 'crossEntropy' })).rejects.toThrow(/lengths\[2\].*1\.\.4.*got 5/);
    await expect(model.fit([[[1]], []], [0, 1], { loss: 'crossEntropy' })).rejects.toThrow(/x\[1\].*empty/);
    await expect(model.fit([[[Number.NaN]]], [0], { loss: 'crossEntropy' })).rejects.toThrow(/x\[0\]\[0\]\[0\].*finite/);
  });

  it('rejects non-finite learning rates and losses that do not fit the model', async () => {
    await expect(
      model.fit(x, y, { loss: 'crossEntropy', optimizer: { type: 'adam', learningRate: Number.POSITIVE_INFINITY } }),
    ).rejects.toThrow(/optimizer\.learningRate/);
    await expect(model.fit(x, y, { loss: 'crossEntropy', optimizer: { type: 'sgd', learningRate: -0.1 } })).rejects.toThrow(
      /optimizer\.learningRate.*-0\.1/,
    );
    await expect(model.fit(x, y, { loss: 'binaryCrossEntropy' })).rejects.toThrow(/sigmoid/);
    await expect(model.fit(x, y, { loss: 'hinge' as never })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(model.isTraining).toBe(false);
  });
});

describe('options that shape training', () => {
  it('follows the learning-rate schedule and warmup epoch by epoch', async () => {
    const { x, y } = signTask(32, 8);
    const model = sequential(classifier());
    const h = await model.fit(x, y, {
      loss: 'crossEntropy',
      epochs: 5,
      optimizer: { type: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true },
      schedule: { type: 'step', stepSize: 2, gamma: 0.5 },
      warmupEpochs: 2,
      clipNorm: 1,
      clipValue: 0.5,
    });
    const rates = h.epochs.map((e) => e.learningRate!);
    // step decay 0.1, 0.1, 0.05, 0.05, 0.025, times the warmup factor 1/2, 1, 1, ...
    [0.05, 0.1, 0.05, 0.05, 0.025].forEach((want, i) => {
      expect(rates[i]).toBeCloseTo(want, 12);
    });
  });

  it('takes the documented defaults for partial options: optimizer { type: adam } trains at learning rate 0.001, bit for bit', async () => {
    const { x, y } = signTask(16, 5);
    const weights = async (optimizer: unknown) => {
      const m = sequential(classifier(7));
      const options = { loss: 'crossEntropy' as const, epochs: 2, batchSize: 8, ...(optimizer === undefined ? {} : { optimizer }) };
      const h = await m.fit(x, y, options as never);
      expect(h.epochs.map((e) => e.learningRate)).toEqual([0.001, 0.001]);
      return Object.fromEntries(Object.entries(m.parameters()).map(([k, v]) => [k, Array.from(v.data)]));
    };
    const explicit = await weights({ type: 'adam', learningRate: 0.001 });
    expect(await weights({ type: 'adam' })).toEqual(explicit);
    expect(await weights({ type: 'adam', learningRate: undefined })).toEqual(explicit);
    expect(await weights(undefined)).toEqual(explicit);
  });

  it('reports its SIMD level, capped by GYRE_SIMD', async () => {
    const { execFileSync } = await import('node:child_process');
    const levels = ['scalar', 'avx2', 'avx512'];
    const under = (cap: string) =>
      execFileSync(process.execPath, ['-e', "console.log(require('gyre').simdLevel())"], {
        env: { ...process.env, GYRE_SIMD: cap },
        encoding: 'utf8',
      }).trim();
    const best = under('avx512'); // the CPU's best
    const cap = process.env.GYRE_SIMD;
    if (backend() === 'wasm') {
      // The WebAssembly build: simd128 (chosen when it was built); only `scalar` lowers it.
      expect(best).toBe('simd128');
      expect(under('avx2')).toBe('simd128');
      expect(under('scalar')).toBe('scalar');
      expect(simdLevel()).toBe(cap === 'scalar' ? 'scalar' : 'simd128');
      return;
    }
    if (process.arch === 'arm64') {
      // NEON on every arm64 CPU; only `scalar` lowers it.
      expect(best).toBe('neon');
      expect(under('avx2')).toBe('neon');
      expect(under('scalar')).toBe('scalar');
      expect(simdLevel()).toBe(cap === 'scalar' ? 'scalar' : 'neon');
      return;
    }
    expect(levels).toContain(best);
    if (process.arch !== 'x64') expect(best).toBe('scalar');
    const lower = (cap: string) => levels[Math.min(levels.indexOf(cap), levels.indexOf(best))];
    for (const cap of levels) expect(under(cap)).toBe(lower(cap));
    // This process: the CPU's best unless the tests run under a cap.
    expect(simdLevel()).toBe(cap && levels.includes(cap) ? lower(cap) : best);
  });

  it('reads its thread count from GYRE_NUM_THREADS', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync(process.execPath, ['-e', "console.log(require('gyre').getNumThreads())"], {
      env: { ...process.env, GYRE_NUM_THREADS: '1' },
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('1');
    expect(() =>
      execFileSync(process.execPath, ['-e', "require('gyre').getNumThreads()"], {
        env: { ...process.env, GYRE_NUM_THREADS: 'lots' },
        stdio: 'pipe',
      }),
    ).toThrow(/GYRE_NUM_THREADS/);
  });
});
