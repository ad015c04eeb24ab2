/**
 * `sampleWeight` and `classWeight`: the loss is the weighted mean Σ w·l / Σ w (PyTorch's
 * `CrossEntropyLoss(weight=...)` generalised), checked against means computed by hand from each
 * sample's own loss; weighted fitDataset against weighted fit; the errors.
 */
import { describe, expect, it } from 'vitest';
import { Dataset, InvalidArgumentError, type Model, sequential, ShapeMismatchError } from 'gyre';

const S = 20;
const T = 4;
const x = Array.from({ length: S }, (_, s) => Array.from({ length: T }, (_, t) => [Math.sin(1.3 * s + t), Math.cos(0.7 * s - t)]));
const classes = x.map((_, s) => (s * 5) % 3);
const sw = x.map((_, s) => [1, 0.5, 2, 0, 1.5][s % 5]!);

const classifier = (): Model =>
  sequential({
    input: { features: 2 },
    layers: [
      { type: 'lstm', hiddenSize: 5, returnSequences: false },
      { type: 'dense', units: 3 },
    ],
    seed: 7,
  });

/** Each sample's own loss at the model's weights. */
function ownLosses(m: Model, y: number[] | number[][], loss: 'crossEntropy' | 'binaryCrossEntropy'): number[] {
  return x.map((q, s) => m.evaluateSync([q], [y[s]!] as never, { loss }).loss);
}

const weightedMean = (l: number[], w: (s: number) => number) => {
  let [num, den] = [0, 0];
  l.forEach((v, s) => {
    num += w(s) * v;
    den += w(s);
  });
  return num / den;
};

describe('sample and class weights', () => {
  it('evaluate({ sampleWeight }) is the weighted mean of the samples own losses', async () => {
    const m = classifier();
    const own = ownLosses(m, classes, 'crossEntropy');
    const e = m.evaluateSync(x, classes, { loss: 'crossEntropy', batchSize: 6, sampleWeight: sw });
    expect(e.loss).toBeCloseTo(
      weightedMean(own, (s) => sw[s]!),
      6,
    );
    // The metrics count every row of nonzero weight once; weight 0 leaves a sample out.
    const kept = x.flatMap((_, s) => (sw[s]! > 0 ? [s] : []));
    const unweighted = m.evaluateSync(
      kept.map((s) => x[s]!),
      kept.map((s) => classes[s]!),
      { loss: 'crossEntropy' },
    );
    expect(e.accuracy).toBe(unweighted.accuracy);
    expect((await m.evaluate(x, classes, { loss: 'crossEntropy', sampleWeight: Float32Array.from(sw) })).loss).toBeCloseTo(e.loss, 6);
  });

  it("fit: an epoch's loss (one batch, before its update) is Σ classWeight[y]·sampleWeight·l / Σ classWeight[y]·sampleWeight", async () => {
    const m = classifier();
    const own = ownLosses(m, classes, 'crossEntropy');
    const classWeight = [0.2, 1, 3];
    const h = await m.fit(x, classes, {
      loss: 'crossEntropy',
      batchSize: 64,
      shuffle: false,
      optimizer: { type: 'sgd', learningRate: 0.1 },
      sampleWeight: sw,
      classWeight,
    });
    expect(h.epochs[0]!.loss).toBeCloseTo(
      weightedMean(own, (s) => classWeight[classes[s]!]! * sw[s]!),
      6,
    );
  });

  it('binaryCrossEntropy: classWeight [w0, w1] weighs each value w1·y + w0·(1 − y)', async () => {
    const m = sequential({
      input: { features: 2 },
      layers: [
        { type: 'gru', hiddenSize: 4, returnSequences: false },
        { type: 'dense', units: 1 },
      ],
      seed: 3,
    });
    const y = classes.map((c) => [c === 1 ? 1 : 0]);
    const own = ownLosses(m, y, 'binaryCrossEntropy');
    const h = await m.fit(x, y, { loss: 'binaryCrossEntropy', batchSize: 64, shuffle: false, classWeight: [0.5, 4] });
    expect(h.epochs[0]!.loss).toBeCloseTo(
      weightedMean(own, (s) => (y[s]![0] === 1 ? 4 : 0.5)),
      6,
    );
  });

  it('validationSplit keeps the held-out samples weights: the validation loss is weighted', async () => {
    const m = classifier();
    const h = await m.fit(x, classes, { loss: 'crossEntropy', epochs: 1, validationSplit: 0.25, sampleWeight: sw });
    const tail = m.evaluateSync(x.slice(15), classes.slice(15), { loss: 'crossEntropy', sampleWeight: sw.slice(15) });
    expect(h.epochs[0]!.valLoss).toBeCloseTo(tail.loss, 6);
  });

  it('fitDataset with sample weights gives the bits of fit with sampleWeight on the same batches', async () => {
    const options = { loss: 'crossEntropy' as const, epochs: 2, batchSize: 6, optimizer: { type: 'adam' as const, learningRate: 0.01 } };
    const a = classifier();
    await a.fit(x, classes, { ...options, shuffle: false, sampleWeight: sw });
    const b = classifier();
    await b.fitDataset(Dataset.from(x.map((q, s) => ({ x: q, y: classes[s]!, weight: sw[s]! }))), options);
    const pa = a.parameters();
    const pb = b.parameters();
    for (const k of Object.keys(pa)) expect(Array.from(pb[k]!.data)).toEqual(Array.from(pa[k]!.data));
  });

  it('fitDataset: validation samples of weight 0 are left out of the validation loss and metrics', async () => {
    const m = classifier();
    const samples = x.map((q, s) => ({ x: q, y: classes[s]!, weight: sw[s]! }));
    const h = await m.fitDataset(Dataset.from(samples.slice(0, 12)), {
      loss: 'crossEntropy',
      epochs: 1,
      batchSize: 4,
      validationData: Dataset.from(samples.slice(12)),
    });
    const kept = samples.slice(12).filter((s) => s.weight > 0);
    const v = m.evaluateSync(
      kept.map((s) => s.x),
      kept.map((s) => s.y),
      { loss: 'crossEntropy', sampleWeight: kept.map((s) => s.weight) },
    );
    expect(h.epochs[0]!.valLoss).toBeCloseTo(v.loss, 6);
    expect(h.epochs[0]!.valAccuracy).toBeCloseTo(v.accuracy!, 12);
  });

  it('bad weights are errors naming the option', async () => {
    const m = classifier();
    const train = (o: object) => m.fit(x, classes, { loss: 'crossEntropy', ...o } as never);
    await expect(train({ sampleWeight: sw.slice(1) })).rejects.toThrow(ShapeMismatchError);
    await expect(train({ sampleWeight: sw.slice(1) })).rejects.toThrow(/sampleWeight must have one weight per sample \(20\), got 19/);
    await expect(train({ sampleWeight: sw.map((v, i) => (i === 3 ? -1 : v)) })).rejects.toThrow(
      /sampleWeight\[3\] must be a finite non-negative number, got -1/,
    );
    await expect(train({ sampleWeight: sw.map((v, i) => (i === 2 ? Number.NaN : v)) })).rejects.toThrow(/sampleWeight\[2\]/);
    await expect(train({ sampleWeight: 'heavy' })).rejects.toThrow(/sampleWeight must be an array of numbers/);
    await expect(train({ classWeight: [1, 2] })).rejects.toThrow(/classWeight.*one weight per class: 3 numbers.*2 numbers/);
    await expect(train({ classWeight: [1, -2, 1] })).rejects.toThrow(/classWeight\[1\]/);
    await expect(train({ classWeight: [0, 0, 0] })).rejects.toThrow(/classWeight.*at least one positive weight/);
    const reg = sequential({ input: { features: 2 }, layers: [{ type: 'rnn', hiddenSize: 2, returnSequences: false }] });
    await expect(
      reg.fit(
        x,
        x.map(() => [0, 0]),
        { loss: 'mse', classWeight: [1, 1] },
      ),
    ).rejects.toThrow(/classWeight must be used with crossEntropy or binaryCrossEntropy/);
    await expect(m.fitDataset(Dataset.from([{ x: x[0]!, y: 0, weight: -1 }]), { loss: 'crossEntropy' })).rejects.toThrow(
      InvalidArgumentError,
    );
    expect(m.trainedEpochs).toBe(0);
  });
});
