/**
 * Evaluation metrics: top-k accuracy, the confusion matrix with precision / recall / F1 per class
 * and macro, MAE and RMSE, in `evaluate` and in each epoch's validation; checked against values
 * counted by hand from `predictSync`'s outputs and against fractions worked out by hand.
 */
import { describe, expect, it } from 'vitest';
import { Dataset, fromBuffer, InvalidArgumentError, sequential } from 'gyre';
// The arithmetic from a confusion matrix to the class metrics (internal: not exported by the package).
import { classMetrics } from '../src/model/training.js';

const S = 30;
const T = 5;
const x = Array.from({ length: S }, (_, s) => Array.from({ length: T }, (_, t) => [Math.sin(s + 0.9 * t), Math.cos(0.4 * s * t)]));
const classes = x.map((_, s) => (s * 7) % 4);

const classifier = () =>
  sequential({
    input: { features: 2 },
    layers: [
      { type: 'gru', hiddenSize: 6, returnSequences: false },
      { type: 'dense', units: 4, activation: 'softmax' },
    ],
    seed: 5,
  });

/** Accuracy, top-2 and the confusion matrix counted from the predicted probabilities. */
function byHand(probs: Float32Array, targets: number[], c: number) {
  let [top1, top2] = [0, 0];
  const confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  targets.forEach((t, s) => {
    const row = Array.from(probs.subarray(s * c, (s + 1) * c));
    const larger = row.filter((p) => p > row[t]!).length;
    const best = row.indexOf(Math.max(...row));
    top1 += Number(best === t);
    top2 += Number(larger < 2);
    confusion[t]![best]!++;
  });
  return { accuracy: top1 / targets.length, topKAccuracy: top2 / targets.length, confusion };
}

describe('evaluate metrics', () => {
  it('accuracy, top-k and the confusion matrix equal those counted from predict, in any batch size', async () => {
    const m = classifier();
    const hand = byHand(m.predictSync(x).data, classes, 4);
    expect(hand.topKAccuracy).toBeGreaterThan(hand.accuracy);
    for (const batchSize of [4, 64]) {
      const e = m.evaluateSync(x, classes, { loss: 'crossEntropy', batchSize, metrics: { topK: 2, confusion: true } });
      expect(e.accuracy).toBe(hand.accuracy);
      expect(e.topKAccuracy).toBe(hand.topKAccuracy);
      expect(e.confusion).toEqual(hand.confusion);
      expect(await m.evaluate(x, classes, { loss: 'crossEntropy', batchSize, metrics: { topK: 2, confusion: true } })).toEqual(e);
    }
    const plain = m.evaluateSync(x, classes, { loss: 'crossEntropy' });
    expect(Object.keys(plain).sort()).toEqual(['accuracy', 'loss']);
    expect(m.evaluateSync(x, classes, { loss: 'crossEntropy', metrics: { topK: 4 } }).topKAccuracy).toBe(1);
  });

  it('precision, recall, F1 and their macro means, from a confusion matrix worked out by hand', () => {
    // On the matrix evaluate returns: each class's ratios of its own counts.
    const m = classifier();
    const e = m.evaluateSync(x, classes, { loss: 'crossEntropy', metrics: { confusion: true } });
    const c = e.confusion!;
    for (let k = 0; k < 4; k++) {
      const tp = c[k]![k]!;
      const rows = c[k]!.reduce((a, b) => a + b, 0);
      const predicted = c.reduce((a, r) => a + r[k]!, 0);
      expect(e.precision![k]).toBe(predicted ? tp / predicted : 0);
      expect(e.recall![k]).toBe(rows ? tp / rows : 0);
    }
    // The formulas themselves, on a matrix with a class never predicted nor a target (left out
    // of the macro means) and one predicted but never a target:
    // targets 0: [5 → 0, 1 → 1], targets 1: [2 → 0, 3 → 1, 1 → 2], class 2 never a target, class 3 absent.
    const r = classMetrics([5, 1, 0, 0, 2, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(r.precision).toEqual([5 / 7, 3 / 4, 0, 0]);
    expect(r.recall).toEqual([5 / 6, 3 / 6, 0, 0]);
    // F1 = 2PR / (P + R): class 0 = 2·(5/7)(5/6) / (5/7 + 5/6) = 10/13; class 1 = 2·(3/4)(1/2) / (5/4) = 3/5.
    expect(r.f1[0]).toBeCloseTo(10 / 13, 15);
    expect(r.f1[1]).toBeCloseTo(3 / 5, 15);
    expect(r.f1.slice(2)).toEqual([0, 0]);
    expect(r.macro.precision).toBeCloseTo((5 / 7 + 3 / 4 + 0) / 3, 15);
    expect(r.macro.recall).toBeCloseTo((5 / 6 + 1 / 2 + 0) / 3, 15);
    expect(r.macro.f1).toBeCloseTo((10 / 13 + 3 / 5 + 0) / 3, 15);
  });

  it('MAE and RMSE over the real steps of sequence outputs (padding left out)', () => {
    const m = sequential({
      input: { features: 2 },
      layers: [
        { type: 'lstm', hiddenSize: 5 },
        { type: 'dense', units: 2 },
      ],
      seed: 2,
    });
    const lengths = x.map((_, s) => 1 + (s % T));
    const ragged = x.map((q, s) => q.slice(0, lengths[s]));
    const targets = ragged.map((q) => q.map(([a, b]) => [a! * b!, a! - b!]));
    const out = m.predictSync(ragged);
    let [abs, sq, n] = [0, 0, 0];
    ragged.forEach((q, s) => {
      q.forEach((_, t) => {
        for (let o = 0; o < 2; o++) {
          const d = out.data[(s * T + t) * 2 + o]! - targets[s]![t]![o]!;
          abs += Math.abs(d);
          sq += d * d;
          n++;
        }
      });
    });
    const e = m.evaluateSync(ragged, targets, { loss: 'mse', batchSize: 7 });
    expect(e.mae).toBeCloseTo(abs / n, 6);
    expect(e.rmse).toBeCloseTo(Math.sqrt(sq / n), 6);
    expect(e.loss).toBeCloseTo(sq / n, 6);
    expect(e.accuracy).toBeUndefined();
  });

  it('bad metrics options are errors naming the option', () => {
    const m = classifier();
    const cases: [unknown, RegExp][] = [
      [{ topK: 0 }, /metrics\.topK must be a positive integer/],
      [{ topk: 2 }, /unknown option metrics\.topk/],
      [{ confusion: 'yes' }, /metrics\.confusion must be a boolean/],
      [[2], /metrics must be an object/],
    ];
    for (const [metrics, message] of cases) {
      expect(() => m.evaluateSync(x, classes, { loss: 'crossEntropy', metrics } as never)).toThrow(InvalidArgumentError);
      expect(() => m.evaluateSync(x, classes, { loss: 'crossEntropy', metrics } as never)).toThrow(message);
    }
    const mse = sequential({ input: { features: 2 }, layers: [{ type: 'rnn', hiddenSize: 3, returnSequences: false }] });
    const y = x.map(() => [0, 0, 0]);
    expect(() => mse.evaluateSync(x, y, { loss: 'mse', metrics: { topK: 2 } })).toThrow(
      /metrics\.topK must be used with the crossEntropy loss/,
    );
  });
});

describe('metrics of each epoch', () => {
  it("fit: each epoch event's validation holds the metrics asked for, equal to evaluate's on the epoch's model", async () => {
    const m = classifier();
    const valX = x.slice(0, 12);
    const valY = classes.slice(0, 12);
    const bytes: Uint8Array[] = [];
    const h = await m.fit(x, classes, {
      loss: 'crossEntropy',
      epochs: 2,
      batchSize: 8,
      validationData: [valX, valY],
      metrics: { topK: 2, confusion: true },
      onProgress: (e) => {
        if (e.kind === 'epoch') bytes.push(m.toBuffer());
      },
    });
    for (const [i, e] of h.epochs.entries()) {
      const again = fromBuffer(bytes[i]!).evaluateSync(valX, valY, {
        loss: 'crossEntropy',
        batchSize: 8,
        metrics: { topK: 2, confusion: true },
      });
      expect(e.validation).toEqual(again);
      expect(e.valLoss).toBe(again.loss);
    }
    await expect(m.fit(x, classes, { loss: 'crossEntropy', metrics: { topK: 0 } })).rejects.toThrow(/metrics\.topK/);
  });

  it('fitDataset: validation read in batches gives the same metrics as evaluate on all of it', async () => {
    const m = classifier();
    const samples = x.map((q, s) => ({ x: q, y: classes[s]! }));
    const validation = Dataset.from(samples.slice(0, 12));
    const h = await m.fitDataset(Dataset.from(samples), {
      loss: 'crossEntropy',
      epochs: 1,
      batchSize: 5,
      validationData: validation,
      metrics: { topK: 2, confusion: true },
    });
    const whole = m.evaluateSync(x.slice(0, 12), classes.slice(0, 12), { loss: 'crossEntropy', metrics: { topK: 2, confusion: true } });
    const v = h.epochs[0]!.validation!;
    expect(v.confusion).toEqual(whole.confusion);
    expect(v.topKAccuracy).toBeCloseTo(whole.topKAccuracy!, 12);
    expect(v.accuracy).toBeCloseTo(whole.accuracy!, 12);
    expect(v.loss).toBeCloseTo(whole.loss, 6);
  });
});
