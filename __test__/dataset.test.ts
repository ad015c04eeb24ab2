/**
 * Data feeding: tensors, padding, lazy datasets (shuffle, batch, bucket, split, files) and
 * training from a dataset read batch by batch (`fitDataset`), including a stream larger than
 * what training keeps in memory.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BusyError,
  Dataset,
  InvalidArgumentError,
  MissingArgumentError,
  ShapeMismatchError,
  TrainingAbortedError,
  padSequences,
  seededRandom,
  sequential,
  tensor,
  type ProgressEvent,
  type Sample,
} from 'gyre';

describe('tensor()', () => {
  it('reads nested arrays of any depth and typed arrays with a shape', () => {
    const t = tensor([
      [
        [1, 2],
        [3, 4],
      ],
      [
        [5, 6],
        [7, 8],
      ],
    ]);
    expect(t.shape).toEqual([2, 2, 2]);
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const u = tensor(new Float64Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    expect(u.shape).toEqual([2, 3]);
    expect(u.data).toBeInstanceOf(Float32Array);
    expect(Array.from(u.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('names the sample and the dimension that disagree', () => {
    expect(() => tensor([[[1], [2]], [[3]]])).toThrow(ShapeMismatchError);
    expect(() => tensor([[[1], [2]], [[3]]])).toThrow(
      /x\[1\] has 1 entries along dimension 1, expected 2; ragged sequences need padSequences/,
    );
    expect(() => tensor([[[1, 2], [3]]])).toThrow(/x\[0\]\[1\] has 1 entries along dimension 2, expected 2/);
    expect(() => tensor([[[1, NaN]]])).toThrow(/x\[0\]\[0\]\[1\] must be a finite number, got NaN/);
    expect(() => tensor([[['a']]])).toThrow(InvalidArgumentError);
    expect(() => tensor(new Float32Array(5), [2, 3])).toThrow(/holds 5 values but shape \[2, 3\] needs 6/);
    expect(() => tensor(new Float32Array(6))).toThrow(MissingArgumentError);
    expect(() => tensor([[1, 2]], [2, 1])).toThrow(/has shape \[1, 2\], expected \[2, 1\]/);
  });
});

describe('padSequences()', () => {
  it('pads ragged sequences and records their lengths', () => {
    const p = padSequences([[1, 2, 3], [4]], { tokens: true });
    expect(p.shape).toEqual([2, 3]);
    expect(Array.from(p.data)).toEqual([1, 2, 3, 4, 0, 0]);
    expect(Array.from(p.lengths)).toEqual([3, 1]);
    const f = padSequences(
      [
        [[1, 1]],
        [
          [2, 2],
          [3, 3],
        ],
      ],
      { value: -1 },
    );
    expect(f.shape).toEqual([2, 2, 2]);
    expect(Array.from(f.data)).toEqual([1, 1, -1, -1, 2, 2, 3, 3]);
    const cut = padSequences([[1, 2, 3, 4]], { tokens: true, maxLength: 2 });
    expect(Array.from(cut.data)).toEqual([3, 4]);
    const head = padSequences([[1, 2, 3, 4]], { tokens: true, maxLength: 2, truncate: 'end' });
    expect(Array.from(head.data)).toEqual([1, 2]);
  });

  it('rejects empty sequences and bad steps by index', () => {
    expect(() => padSequences([[1], []], { tokens: true })).toThrow(/x\[1\] is an empty sequence/);
    expect(() => padSequences([[[1, 2]], [[1]]])).toThrow(/x\[1\]\[0\] has 1 features along dimension 2, expected 2/);
    expect(() => padSequences([[1.5]], { tokens: true })).toThrow(/token id/);
    expect(() => padSequences([])).toThrow(InvalidArgumentError);
  });
});

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('Dataset', () => {
  it('shuffles reproducibly with a seed, differently on each pass, keeping every item', async () => {
    const d = Dataset.from(range(100)).shuffle({ bufferSize: 100, seed: 3 });
    const a = await d.toArray();
    const b = await d.toArray();
    expect([...a].sort((x, y) => x - y)).toEqual(range(100));
    expect(a).not.toEqual(range(100));
    expect(b).not.toEqual(a);
    expect(await Dataset.from(range(100)).shuffle({ bufferSize: 100, seed: 3 }).toArray()).toEqual(a);
    // A small buffer bounds memory and still keeps every item.
    const small = await Dataset.from(range(1000)).shuffle({ bufferSize: 10, seed: 1 }).toArray();
    expect([...small].sort((x, y) => x - y)).toEqual(range(1000));
    expect(small).not.toEqual(range(1000));
  });

  it('batches, drops the remainder on request, and buckets by length', async () => {
    const sizes = (await Dataset.from(range(10)).batch(4).toArray()).map((b) => b.length);
    expect(sizes).toEqual([4, 4, 2]);
    expect((await Dataset.from(range(10)).batch(4, { dropRemainder: true }).toArray()).map((b) => b.length)).toEqual([4, 4]);
    const random = seededRandom(5);
    const seqs = range(256).map(() => Array.from({ length: 1 + Math.floor(random() * 50) }, () => 0));
    const spread = (batches: number[][][]) =>
      batches.reduce((acc, b) => acc + Math.max(...b.map((s) => s.length)) - Math.min(...b.map((s) => s.length)), 0) / batches.length;
    const plain = await Dataset.from(seqs).batch(16).toArray();
    const bucketed = await Dataset.from(seqs)
      .batch(16, { bucketBy: (s) => s.length, bucketSize: 128, seed: 2 })
      .toArray();
    expect(bucketed.flat().length).toBe(256);
    expect(bucketed.every((b) => b.length === 16)).toBe(true);
    expect(spread(bucketed)).toBeLessThan(spread(plain) / 4);
  });

  it('splits without memory, the same on every pass', async () => {
    const [train, val] = Dataset.from(range(2000)).split(0.2, { seed: 9 });
    const t = await train.toArray();
    const v = await val.toArray();
    expect(t.length + v.length).toBe(2000);
    expect(new Set([...t, ...v]).size).toBe(2000);
    expect(v.length).toBeGreaterThan(300);
    expect(v.length).toBeLessThan(500);
    expect(await val.toArray()).toEqual(v);
    expect(() => Dataset.from(range(3)).split(1)).toThrow(/split fraction must be a number in \(0, 1\), got 1/);
  });

  it('maps, filters and takes lazily', async () => {
    let read = 0;
    const d = Dataset.from(() =>
      (function* () {
        for (let i = 0; ; i++) {
          read++;
          yield i;
        }
      })(),
    );
    expect(
      await d
        .map((v) => v * 2)
        .filter((v) => v % 3 === 0)
        .take(3)
        .toArray(),
    ).toEqual([0, 6, 12]);
    expect(read).toBeLessThan(10);
  });

  it('refuses a second pass over a one-shot generator, saying what to do', async () => {
    const d = Dataset.from(
      (async function* () {
        yield 1;
      })(),
    );
    expect(await d.toArray()).toEqual([1]);
    await expect(d.toArray()).rejects.toThrow(/one-shot iterator .* Dataset\.from\(\(\) => source\(\)\)/);
  });

  it('reads text, JSON-lines and CSV files as streams', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gyre-data-'));
    writeFileSync(join(dir, 'a.txt'), 'anna\nbob\n\ncarl\n');
    expect(await Dataset.fromLines(join(dir, 'a.txt')).toArray()).toEqual(['anna', 'bob', '', 'carl']);
    writeFileSync(join(dir, 'b.jsonl'), '{"x":[1],"y":0}\n\n{"x":[2],"y":1}\n');
    expect(await Dataset.fromJsonLines(join(dir, 'b.jsonl')).toArray()).toEqual([
      { x: [1], y: 0 },
      { x: [2], y: 1 },
    ]);
    writeFileSync(join(dir, 'c.jsonl'), '{"x":[1],"y":0}\n{oops\n');
    await expect(Dataset.fromJsonLines(join(dir, 'c.jsonl')).toArray()).rejects.toThrow(/c\.jsonl line 2 is not valid JSON/);
    writeFileSync(join(dir, 'd.csv'), 'day,value\n1, 10\n2,20\n');
    expect(await Dataset.fromCsv(join(dir, 'd.csv')).toArray()).toEqual([
      { day: '1', value: '10' },
      { day: '2', value: '20' },
    ]);
  });

  it('rejects mismatched arrays', () => {
    expect(() => Dataset.fromArrays([[1], [2]], [0])).toThrow(/x has 2 sequences but y has 1 targets/);
  });
});

/** Variable-length sequences of one feature; target: the sign of their sum (class 0/1). */
function signTask(n: number, seed: number): Sample[] {
  const random = seededRandom(seed);
  return range(n).map(() => {
    const len = 3 + Math.floor(random() * 10);
    const x = Array.from({ length: len }, () => random() * 2 - 1);
    return { x, y: x.reduce((a, b) => a + b, 0) > 0 ? 1 : 0 };
  });
}

const classifier = () =>
  sequential({
    input: { features: 1 },
    layers: [
      { type: 'gru', hiddenSize: 12, returnSequences: false },
      { type: 'dense', units: 2 },
    ],
    seed: 4,
  });

describe('Model.fitDataset', () => {
  it('gives exactly the weights of fit on the same batches (no shuffling, no dropout)', async () => {
    const samples = signTask(40, 1);
    const a = classifier();
    await a.fit(
      samples.map((s) => s.x as number[]),
      samples.map((s) => s.y as number),
      { loss: 'crossEntropy', epochs: 2, batchSize: 8, shuffle: false, optimizer: { type: 'adam', learningRate: 0.01 } },
    );
    const b = classifier();
    const h = await b.fitDataset(
      Dataset.fromArrays(
        samples.map((s) => s.x),
        samples.map((s) => s.y),
      ),
      {
        loss: 'crossEntropy',
        epochs: 2,
        batchSize: 8,
        optimizer: { type: 'adam', learningRate: 0.01 },
      },
    );
    expect(h.epochs).toHaveLength(2);
    expect(b.trainedEpochs).toBe(2);
    const pa = a.parameters();
    const pb = b.parameters();
    for (const name of Object.keys(pa)) expect(Array.from(pb[name]!.data)).toEqual(Array.from(pa[name]!.data));
  });

  it('trains from an async iterable larger than what it keeps in memory', async () => {
    const total = 6000;
    const [batchSize, bufferSize] = [32, 64];
    let produced = 0;
    let trained = 0;
    let mostAhead = 0;
    const stream = Dataset.from(() =>
      (async function* () {
        const random = seededRandom(11);
        for (let i = 0; i < total; i++) {
          const len = 3 + Math.floor(random() * 10);
          const x = Array.from({ length: len }, () => random() * 2 - 1);
          produced++;
          // Samples read but not yet trained on: the shuffle buffer plus one batch, never the whole stream.
          mostAhead = Math.max(mostAhead, produced - trained);
          yield { x, y: x.reduce((a, b) => a + b, 0) > 0 ? 1 : 0 };
        }
      })(),
    ).shuffle({ bufferSize, seed: 1 });
    const model = classifier();
    const test = signTask(300, 99);
    const before = await model.evaluate(
      test.map((s) => s.x as number[]),
      test.map((s) => s.y as number),
      { loss: 'crossEntropy' },
    );
    const events: ProgressEvent[] = [];
    const h = await model.fitDataset(stream, {
      loss: 'crossEntropy',
      batchSize,
      optimizer: { type: 'adam', learningRate: 0.01 },
      onProgress: (e) => {
        if (e.kind === 'batch') trained += batchSize;
        events.push(e);
      },
    });
    expect(produced).toBe(total);
    expect(mostAhead).toBeLessThanOrEqual(bufferSize + batchSize + 1);
    expect(events.filter((e) => e.kind === 'batch')).toHaveLength(Math.ceil(total / batchSize));
    expect(h.epochs[0]!.accuracy).toBeGreaterThan(0.8);
    const after = await model.evaluate(
      test.map((s) => s.x as number[]),
      test.map((s) => s.y as number),
      { loss: 'crossEntropy' },
    );
    expect(after.loss).toBeLessThan(before.loss * 0.5);
    expect(after.accuracy).toBeGreaterThan(0.9);
  });

  it('reports validation loss equal to evaluate() on the same data', async () => {
    const samples = signTask(50, 2);
    const val = signTask(37, 3);
    const model = classifier();
    const h = await model.fitDataset(samples, { loss: 'crossEntropy', batchSize: 10, validationData: Dataset.from(val) });
    const e = await model.evaluate(
      val.map((s) => s.x as number[]),
      val.map((s) => s.y as number),
      { loss: 'crossEntropy' },
    );
    expect(h.epochs[0]!.valLoss).toBeCloseTo(e.loss, 5);
    expect(h.epochs[0]!.valAccuracy).toBeCloseTo(e.accuracy!, 5);
  });

  it('takes batches as they come from dataset.batch()', async () => {
    const model = classifier();
    const events: ProgressEvent[] = [];
    await model.fitDataset(Dataset.from(signTask(30, 4)).batch(7), { loss: 'crossEntropy', onProgress: (e) => events.push(e) });
    expect(events.filter((e) => e.kind === 'batch')).toHaveLength(5);
  });

  it('names a bad sample with its batch and epoch; a bad batch leaves the model as it was', async () => {
    const samples = signTask(20, 5);
    (samples[13] as unknown as { x: number[] }).x[1] = NaN;
    await expect(classifier().fitDataset(samples, { loss: 'crossEntropy', batchSize: 8 })).rejects.toThrow(
      /batch 2 of epoch 1 \(samples 8\.\.15 of the epoch\): x\[5\]\[1\]\[0\] must be a finite number, got NaN/,
    );
    const bad = signTask(3, 6);
    (bad[2] as { y: number }).y = 7;
    const model = classifier();
    await expect(model.fitDataset(bad, { loss: 'crossEntropy' })).rejects.toThrow(/y\[2\] must be a class id below 2, got 7/);
    expect(model.parameters()).toEqual(classifier().parameters());
    expect(model.trainedEpochs).toBe(0);
    await expect(classifier().fitDataset([1, 2] as unknown as Sample[], { loss: 'crossEntropy' })).rejects.toThrow(
      /sample 0 must be a sample \{ x, y \}, got 1/,
    );
    await expect(classifier().fitDataset([], { loss: 'crossEntropy' })).rejects.toThrow(/yielded no samples/);
  });

  it('needs a re-readable source for more than one epoch', async () => {
    const once = (async function* () {
      yield* signTask(8, 7);
    })();
    await expect(classifier().fitDataset(once, { loss: 'crossEntropy', epochs: 2 })).rejects.toThrow(/one-shot iterator/);
  });

  it('stops on abort and refuses a second concurrent run', async () => {
    const model = classifier();
    const controller = new AbortController();
    const run = model.fitDataset(Dataset.from(signTask(200, 8)), {
      loss: 'crossEntropy',
      batchSize: 10,
      onProgress: (e) => {
        if (e.kind === 'batch' && e.batch === 3) controller.abort();
      },
      signal: controller.signal,
    });
    await expect(model.fitDataset(signTask(10, 1), { loss: 'crossEntropy' })).rejects.toThrow(BusyError);
    await expect(run).rejects.toThrow(TrainingAbortedError);
  });

  it('stops early when the loss stops improving and restores the best weights', async () => {
    const model = classifier();
    const h = await model.fitDataset(signTask(40, 9), {
      loss: 'crossEntropy',
      epochs: 50,
      batchSize: 40,
      optimizer: { type: 'sgd', learningRate: 1e-9 },
      earlyStopping: { patience: 2, minDelta: 1, restoreBest: true },
    });
    expect(h.stoppedEarly).toBe(true);
    expect(h.epochs).toHaveLength(3);
  });
});
