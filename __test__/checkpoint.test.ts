/**
 * Checkpoints (`fit`'s and `fitDataset`'s `checkpoint` option) and saving from an epoch
 * event's `onProgress` while `fit` goes on: which epochs are written, that a checkpoint resumes
 * training bit for bit, and the errors.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusyError, Dataset, type EpochProgressEvent, fromBuffer, InvalidArgumentError, loadModel, type Model, sequential } from 'gyre';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gyre-checkpoint-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
/** A fresh folder for one test's files. */
async function folder(): Promise<string> {
  const d = join(dir, `t${n++}`);
  const { mkdir } = await import('node:fs/promises');
  await mkdir(d);
  return d;
}

/** An LSTM with dropout between layers, so that resuming must also resume the random stream. */
const model = (): Model =>
  sequential({
    input: { features: 2 },
    layers: [
      { type: 'lstm', hiddenSize: 6, numLayers: 2, dropout: 0.2 },
      { type: 'dense', units: 1 },
    ],
    seed: 3,
  });

const x = Array.from({ length: 24 }, (_, s) => Array.from({ length: 5 }, (_, t) => [Math.sin(s + 0.7 * t), Math.cos(0.3 * s * t)]));
const y = x.map((q) => [0.5 * q[4]![0]! - q[2]![1]!]);
const valX = x.slice(0, 6).map((q) => q.map(([a, b]) => [b!, a!]));
const valY = y.slice(0, 6);
const options = { loss: 'mse' as const, batchSize: 5, optimizer: { type: 'adam' as const, learningRate: 0.05 } };

function sameWeights(a: Model, b: Model): boolean {
  const pa = a.parameters();
  const pb = b.parameters();
  return Object.keys(pa).every((k) => pa[k]!.data.every((v, i) => Object.is(v, pb[k]!.data[i])));
}

describe('fit({ checkpoint })', () => {
  it('writes every epoch to {epoch} paths, each resuming to exactly the uninterrupted run', async () => {
    const d = await folder();
    const whole = model();
    await whole.fit(x, y, { ...options, epochs: 4, checkpoint: { path: join(d, 'epoch-{epoch}.safetensors') } });
    expect((await readdir(d)).sort()).toEqual(['epoch-1.safetensors', 'epoch-2.safetensors', 'epoch-3.safetensors', 'epoch-4.safetensors']);
    const last = await loadModel(join(d, 'epoch-4.safetensors'));
    expect(last.trainedEpochs).toBe(4);
    expect(sameWeights(last, whole)).toBe(true);
    for (const from of [1, 2]) {
      const resumed = await loadModel(join(d, `epoch-${from}.safetensors`));
      expect(resumed.trainedEpochs).toBe(from);
      await resumed.fit(x, y, { ...options, epochs: 4 - from });
      expect(sameWeights(resumed, whole)).toBe(true);
    }
  });

  it('saveBestOnly writes only the epochs that improve the monitored loss (valLoss with validation data)', async () => {
    const d = await folder();
    const m = model();
    const h = await m.fit(x, y, {
      ...options,
      optimizer: { type: 'adam', learningRate: 0.2 },
      epochs: 8,
      validationData: [valX, valY],
      checkpoint: { path: join(d, 'best-{epoch}.safetensors'), saveBestOnly: true },
    });
    let best = Number.POSITIVE_INFINITY;
    const improving: number[] = [];
    for (const e of h.epochs) {
      if (e.valLoss! < best) {
        best = e.valLoss!;
        improving.push(e.epoch);
      }
    }
    const written = (await readdir(d)).map((f) => Number(/best-(\d+)/.exec(f)![1])).sort((a, b) => a - b);
    expect(written).toEqual(improving);
    // The run must include an epoch that did not improve, or the test shows nothing.
    expect(improving.length).toBeLessThan(8);
  });

  it('one path with saveBestOnly ends holding the best epoch (monitor: loss)', async () => {
    const d = await folder();
    const path = join(d, 'best.safetensors');
    const h = await model().fit(x, y, {
      ...options,
      optimizer: { type: 'adam', learningRate: 0.2 },
      epochs: 8,
      validationSplit: 0.25,
      checkpoint: { path, saveBestOnly: true, monitor: 'loss' },
    });
    const losses = h.epochs.map((e) => e.loss);
    const bestEpoch = h.epochs[losses.indexOf(Math.min(...losses))]!.epoch;
    expect((await loadModel(path)).trainedEpochs).toBe(bestEpoch);
    expect(await readdir(d)).toEqual(['best.safetensors']);
  });

  it('every: epochs numbered across calls; includeOptimizer false leaves the optimizer state out', async () => {
    const d = await folder();
    const m = model();
    const checkpoint = { path: join(d, 'e{epoch}.safetensors'), every: 2 };
    await m.fit(x, y, { ...options, epochs: 3, checkpoint });
    await m.fit(x, y, { ...options, epochs: 3, checkpoint });
    expect((await readdir(d)).sort()).toEqual(['e2.safetensors', 'e4.safetensors', 'e6.safetensors']);
    await m.fit(x, y, { ...options, epochs: 1, checkpoint: { path: join(d, 'light.safetensors'), includeOptimizer: false } });
    const light = await loadModel(join(d, 'light.safetensors'));
    expect(light.toBuffer().length).toBeLessThan(m.toBuffer().length);
    expect(light.toBuffer().length).toBe(m.toBuffer({ includeOptimizer: false }).length);
  });

  it('a checkpoint that cannot be written stops training; fit rejects with the FileError naming it; the model stays usable', async () => {
    const d = await folder();
    const path = join(d, 'missing-folder', 'c.safetensors');
    const m = model();
    const err = await m.fit(x, y, { ...options, epochs: 5000, checkpoint: { path } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'GYRE_FILE', message: expect.stringContaining(`cannot write checkpoint "${path}"`) });
    // Stopped within a few dozen epochs of the failed write (5000 would take seconds).
    expect(m.trainedEpochs).toBeLessThan(5000);
    expect(m.isTraining).toBe(false);
    expect(m.predictSync(x).data.every(Number.isFinite)).toBe(true);
    expect(await readdir(d)).toEqual([]);
  });

  it('bad checkpoint options are errors naming the option, before training', async () => {
    const m = model();
    const bad: [unknown, RegExp][] = [
      [{}, /checkpoint\.path must be a non-empty string/],
      [{ path: '' }, /checkpoint\.path must be a non-empty string/],
      [{ path: 'a', every: 0 }, /checkpoint\.every must be a positive integer/],
      [{ path: 'a', monitor: 'accuracy' }, /checkpoint\.monitor must be one of 'loss', 'valLoss', got "accuracy"/],
      [{ path: 'a', monitor: 'valLoss' }, /checkpoint\.monitor 'valLoss' needs validation data/],
      [{ path: 'a', saveBestOnly: 1 }, /checkpoint\.saveBestOnly must be a boolean/],
      [{ path: 'a', each: 2 }, /unknown option checkpoint\.each/],
      ['a.safetensors', /checkpoint must be an object/],
    ];
    for (const [checkpoint, message] of bad) {
      await expect(m.fit(x, y, { ...options, checkpoint } as never)).rejects.toThrow(InvalidArgumentError);
      await expect(m.fit(x, y, { ...options, checkpoint } as never)).rejects.toThrow(message);
    }
    expect(m.trainedEpochs).toBe(0);
  });
});

describe('save and toBuffer from an epoch event of onProgress', () => {
  it('give the model as it was at that epoch, while fit goes on; outside them the model is busy', async () => {
    const d = await folder();
    const m = model();
    const buffers: Uint8Array[] = [];
    const saves: Promise<void>[] = [];
    const fit = m.fit(x, y, {
      ...options,
      epochs: 3,
      checkpoint: { path: join(d, 'c{epoch}.safetensors') },
      onProgress: (e) => {
        if (e.kind !== 'epoch') return;
        buffers.push(m.toBuffer());
        saves.push(m.save(join(d, `saved${e.epoch}.safetensors`), { metadata: { epoch: e.epoch } }));
      },
    });
    // Outside an epoch event the model is busy while fit runs.
    expect(() => m.toBuffer()).toThrow(BusyError);
    await fit;
    await Promise.all(saves);
    expect(buffers).toHaveLength(3);
    for (const epoch of [1, 2, 3]) {
      const fromEvent = fromBuffer(buffers[epoch - 1]!);
      const checkpoint = await loadModel(join(d, `c${epoch}.safetensors`));
      const saved = await loadModel(join(d, `saved${epoch}.safetensors`));
      expect(fromEvent.trainedEpochs).toBe(epoch);
      expect(sameWeights(fromEvent, checkpoint)).toBe(true);
      expect(sameWeights(saved, checkpoint)).toBe(true);
      expect(saved.metadata).toEqual({ epoch });
    }
    // After fit, the model itself again.
    expect(sameWeights(fromBuffer(m.toBuffer()), m)).toBe(true);
    expect(fromBuffer(m.toBuffer()).trainedEpochs).toBe(3);
  });
});

describe('fitDataset({ checkpoint })', () => {
  it('writes the epochs it is asked to, and they resume exactly', async () => {
    const d = await folder();
    const data = Dataset.fromArrays(x, y);
    const whole = model();
    const events: EpochProgressEvent[] = [];
    await whole.fitDataset(data, {
      ...options,
      epochs: 3,
      checkpoint: { path: join(d, 'd{epoch}.safetensors') },
      onProgress: (e) => {
        if (e.kind === 'epoch') {
          events.push(e);
          // Between batches the model is free: toBuffer is the model itself.
          expect(fromBuffer(whole.toBuffer()).trainedEpochs).toBe(e.epoch);
        }
      },
    });
    expect(events).toHaveLength(3);
    expect((await readdir(d)).sort()).toEqual(['d1.safetensors', 'd2.safetensors', 'd3.safetensors']);
    const resumed = await loadModel(join(d, 'd1.safetensors'));
    await resumed.fitDataset(data, { ...options, epochs: 2 });
    expect(sameWeights(resumed, whole)).toBe(true);
  });
});
