/**
 * The model graph (functional form) through the public API: an encoder–decoder with attention
 * built layer by layer (a bidirectional encoder returning its states, a decoder starting from
 * them) that learns to reverse sequences; a forecaster with two inputs; a sequential model as
 * the case of one chain; files; bad graphs and bad data. The gradients are checked by finite
 * differences in Rust (`crates/gyre-core/src/graph/tests.rs`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BadFileError,
  BusyError,
  DisposedError,
  type GraphInputSpec,
  type GraphLayerSpec,
  GraphModel,
  type GraphNodeSpec,
  graph,
  InvalidArgumentError,
  MissingArgumentError,
  seededRandom,
  sequential,
} from 'gyre';

const dir = mkdtempSync(join(tmpdir(), 'gyre-graph-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Sequences of 3–6 symbols of 5 and their reversal; the decoder reads start (5), y1 … y(n−1). */
function reversal(n: number, seed: number) {
  const random = seededRandom(seed);
  const source: number[][] = [];
  const decoderIn: number[][] = [];
  const target: number[][] = [];
  for (let i = 0; i < n; i++) {
    const s = Array.from({ length: 3 + Math.floor(random() * 4) }, () => Math.floor(random() * 5));
    const r = [...s].reverse();
    source.push(s);
    target.push(r);
    decoderIn.push([5, ...r.slice(0, -1)]);
  }
  return { x: { source, target: decoderIn }, y: { out: target } };
}

function encoderDecoder(seed = 1) {
  const g = graph();
  const source = g.input('source', { vocabSize: 5 });
  const target = g.input('target', { vocabSize: 6 });
  const enc = g.lstm(g.embedding(source, { embeddingDim: 8 }), { hiddenSize: 16, bidirectional: true, returnState: true, name: 'enc' });
  const dec = g.lstm(g.embedding(target, { embeddingDim: 8 }), { hiddenSize: 32, initialState: enc.state, name: 'dec' });
  const ctx = g.attention(dec, enc, { score: 'general', name: 'ctx' });
  const out = g.dense(g.concatenate([dec, ctx]), { units: 5, activation: 'softmax', name: 'out' });
  return g.model([out], { seed });
}

describe('an encoder–decoder built as a graph', () => {
  it('learns to reverse sequences; predict returns the attention weights; files keep it', async () => {
    const model = encoderDecoder();
    const train = reversal(512, 1);
    const test = reversal(64, 2);
    const before = await model.evaluate(test.x, test.y);
    const history = await model.fit(train.x, train.y, { epochs: 25, batchSize: 32, learningRate: 0.01, clipNorm: 5, validationData: test });
    expect(history).toHaveLength(25);
    expect(history[24]!.epoch).toBe(25);
    const after = await model.evaluate(test.x, test.y);
    expect(before).toBeGreaterThan(1.4); // ≈ ln 5 untrained
    expect(after).toBeLessThan(0.15);
    expect(history[24]!.validationLoss).toBeCloseTo(after, 5);

    const p = await model.predict(test.x);
    const out = p.outputs.out!;
    expect(out.shape).toEqual([64, 6, 5]);
    // Greedy per step under teacher forcing: nearly every step right.
    let right = 0;
    let steps = 0;
    test.y.out.forEach((t, i) => {
      t.forEach((c, k) => {
        const row = out.data.subarray((i * 6 + k) * 5, (i * 6 + k + 1) * 5);
        right += row.indexOf(Math.max(...row)) === c ? 1 : 0;
        steps++;
      });
      // Zeros past the sequence's length.
      expect(out.data.subarray((i * 6 + t.length) * 5, (i + 1) * 6 * 5).every((v) => v === 0)).toBe(true);
    });
    expect(right / steps).toBeGreaterThan(0.95);
    const a = p.attention.ctx!;
    expect(a.shape).toEqual([64, 6, 6]);
    const len0 = test.x.source[0]!.length;
    const row0 = a.data.subarray(0, 6);
    expect(row0.slice(0, len0).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    expect(Array.from(row0.slice(len0))).toEqual(new Array(6 - len0).fill(0));
    // Reversal: the first output step attends most to the last source step.
    let last = 0;
    test.x.source.forEach((s, i) => {
      const r = a.data.subarray(i * 36, i * 36 + 6);
      last += r.indexOf(Math.max(...r)) === s.length - 1 ? 1 : 0;
    });
    expect(last / 64).toBeGreaterThan(0.8);

    const path = join(dir, 'reverse.safetensors');
    await model.save(path);
    const loaded = await GraphModel.load(path);
    expect(loaded.spec).toEqual(model.spec);
    expect(loaded.trainedEpochs).toBe(25);
    expect((await loaded.predict(test.x)).outputs.out!.data).toEqual(out.data);
    // Prediction does not depend on the batch size.
    expect((await model.predict(test.x, { batchSize: 5 })).outputs.out!.data).toEqual(out.data);
    // The JSON form builds the same graph.
    const again = GraphModel.fromSpec(model.spec);
    again.setParameters(Object.fromEntries(Object.entries(model.parameters()).map(([k, v]) => [k, v.data])));
    expect((await again.predict(test.x)).outputs.out!.data).toEqual(out.data);
    for (const m of [model, loaded, again]) m.dispose();
  });

  it('goes on from a file saved with its optimizer as it goes on in memory', async () => {
    const train = reversal(96, 3);
    const opts = { epochs: 1, batchSize: 16, learningRate: 0.01, clipNorm: 5, seed: 4 };
    const model = encoderDecoder(2);
    expect(model.hasOptimizer).toBe(false);
    await model.fit(train.x, train.y, opts);
    expect(model.hasOptimizer).toBe(true);
    const path = join(dir, 'resume.safetensors');
    await model.save(path, { includeOptimizer: true });
    const resumed = await GraphModel.load(path);
    expect(resumed.hasOptimizer).toBe(true);
    expect(resumed.trainedEpochs).toBe(1);
    const bare = GraphModel.fromBuffer(model.toBuffer());
    expect(bare.hasOptimizer).toBe(false);
    expect(model.toBuffer().length).toBeLessThan(model.toBuffer({ includeOptimizer: true }).length);
    for (const m of [model, resumed, bare]) await m.fit(train.x, train.y, opts);
    const values = (m: GraphModel) => Object.values(m.parameters()).map((p) => Array.from(p.data));
    expect(values(resumed)).toEqual(values(model));
    // Without the optimizer's state the second epoch differs: the test can tell.
    expect(values(bare)).not.toEqual(values(model));
    expect(() => model.toBuffer({ includeOptimizer: 'yes' } as never)).toThrow(InvalidArgumentError);
    for (const m of [model, resumed, bare]) m.dispose();
  });

  it('names its parameters by node, PyTorch-style', () => {
    const model = encoderDecoder();
    const shapes = Object.fromEntries(Object.entries(model.parameters()).map(([k, v]) => [k, v.shape]));
    expect(shapes['enc.weight_ih_l0']).toEqual([64, 8]);
    expect(shapes['enc.weight_hh_l0_reverse']).toEqual([64, 16]);
    expect(shapes['dec.weight_hh_l0']).toEqual([128, 32]);
    expect(shapes['ctx.weight']).toEqual([32, 32]);
    expect(shapes['out.weight']).toEqual([5, 64]);
    model.dispose();
  });
});

describe('a forecaster with two inputs', () => {
  it('reads the history, starts from its state over the known future inputs, and learns', async () => {
    const g = graph();
    const past = g.input('past', { features: 1 });
    const future = g.input('future', { features: 1 });
    const h = g.gru(past, { hiddenSize: 16, returnState: true, returnSequences: false });
    const f = g.gru(future, { hiddenSize: 16, initialState: h.state });
    const y = g.dense(f, { units: 1, name: 'y' });
    const level = g.dense(h, { units: 1, name: 'level' });
    const model = g.model([y, level], { seed: 3 });
    // y_t = the last past value + the future input; level = the last past value.
    const random = seededRandom(5);
    const n = 256;
    const pastX: number[][][] = [];
    const futX: number[][][] = [];
    const ys: number[][][] = [];
    const levels: number[][] = [];
    for (let i = 0; i < n; i++) {
      const p = Array.from({ length: 4 + Math.floor(random() * 4) }, () => [random() * 2 - 1]);
      const u = Array.from({ length: 3 }, () => [random() - 0.5]);
      const lastValue = p[p.length - 1]![0]!;
      pastX.push(p);
      futX.push(u);
      ys.push(u.map((v) => [lastValue + v[0]!]));
      levels.push([lastValue]);
    }
    const x = { past: pastX, future: futX };
    const t = { y: ys, level: levels };
    const before = await model.evaluate(x, t);
    const history = await model.fit(x, t, { epochs: 40, batchSize: 32, learningRate: 0.01 });
    expect(history[39]!.loss).toBeLessThan(before / 10);
    const p = await model.predict(x);
    expect(p.outputs.y!.shape).toEqual([n, 3, 1]);
    expect(p.outputs.level!.shape).toEqual([n, 1]);
    expect(p.attention).toEqual({});
    model.dispose();
  });
});

describe('dropout in a graph', () => {
  it('drops in fit (seeded: the same seed gives the same run) and is the identity in predict and evaluate', async () => {
    const build = () => {
      const g = graph();
      const x = g.input('x', { features: 3 });
      const h = g.dropout(g.lstm(x, { hiddenSize: 8 }), { rate: 0.5, name: 'drop' });
      return g.model([g.dense(h, { units: 2, name: 'y' })], { seed: 2 });
    };
    const random = seededRandom(3);
    const xs = Array.from({ length: 40 }, () => Array.from({ length: 5 }, () => [random(), random(), random()]));
    const ys = xs.map((s) => s.map((v) => [v[0]! - v[1]!, v[2]!]));
    const [a, b] = [build(), build()];
    const before = (await a.predict({ x: xs })).outputs.y!.data;
    expect((await a.predict({ x: xs })).outputs.y!.data).toEqual(before);
    expect(await a.evaluate({ x: xs }, { y: ys })).toBe(await a.evaluate({ x: xs }, { y: ys }));
    const ha = await a.fit({ x: xs }, { y: ys }, { epochs: 3, seed: 4 });
    const hb = await b.fit({ x: xs }, { y: ys }, { epochs: 3, seed: 4 });
    expect(ha).toEqual(hb);
    // Training's loss is over dropped activations: it differs from evaluate's on the same weights.
    const c = build();
    const [first] = await c.fit({ x: xs }, { y: ys }, { epochs: 1, learningRate: 1e-12, seed: 1 });
    expect(first!.loss).not.toBeCloseTo(await c.evaluate({ x: xs }, { y: ys }), 6);
    const g = graph();
    expect(() => g.dropout(g.input('x', { features: 1 }), { rate: 1 })).toThrow(/rate/);
    for (const m of [a, b, c]) m.dispose();
  });
});

describe('a sequential model is the case of one chain', () => {
  it('GraphModel.fromSequential predicts what the sequential model predicts, under the same parameter names', async () => {
    const seq = sequential({
      input: { vocabSize: 7 },
      layers: [
        { type: 'embedding', dim: 4 },
        { type: 'gru', hiddenSize: 5, bidirectional: true, numLayers: 2 },
        { type: 'lstm', hiddenSize: 3, returnSequences: false },
        { type: 'dense', units: 4, activation: 'softmax' },
      ],
      seed: 4,
    });
    const g = GraphModel.fromSequential(seq);
    expect(Object.keys(g.parameters())).toEqual(Object.keys(seq.parameters()));
    const x = [
      [1, 2, 3, 4, 5],
      [6, 0],
      [3, 3, 3],
    ];
    const want = (await seq.predict(x)).data;
    const got = (await g.predict({ x })).outputs['3']!.data;
    expect(got.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-6);
    g.dispose();
    const withDropout = sequential({
      input: { features: 2 },
      layers: [{ type: 'lstm', hiddenSize: 3, dropout: 0.2, numLayers: 2 }],
      seed: 1,
    });
    expect(() => GraphModel.fromSequential(withDropout)).toThrow(/layers\[0\]\.dropout is 0\.2/);
    seq.dispose();
    withDropout.dispose();
  });
});

describe('bad graphs and bad data', () => {
  it('are errors that name the option and the value', async () => {
    const g = graph();
    const x = g.input('x', { features: 2 });
    const t = g.input('t', { vocabSize: 4 });
    expect(() => g.lstm(t, { hiddenSize: 3 })).toThrow(/embedding first/);
    const a = g.gru(x, { hiddenSize: 3, returnState: true });
    expect(() => g.lstm(x, { hiddenSize: 3, initialState: a.state })).toThrow(/cell state/);
    expect(() => g.gru(x, { hiddenSize: 4, initialState: a.state })).toThrow(/width hiddenSize × directions \(4\)/);
    const plain = g.gru(x, { hiddenSize: 3 });
    expect(() => g.gru(x, { hiddenSize: 3, initialState: { node: plain.name } })).toThrow(/returnState: true/);
    expect(() => g.input('x', { features: 1 })).toThrow(InvalidArgumentError);
    expect(() => g.dense(x, { units: 0 })).toThrow(/units/);
    expect(() => g.attention(a, g.dense(x, { units: 5 }))).toThrow(/'general'/);
    expect(() => graph().dense(x, { units: 2 })).toThrow(/a value of this graph/);
    expect(() => g.lstm(x, { hiddenSize: 2, hiden: 3 } as never)).toThrow(/hiden/);
    // The JSON form is checked natively, naming the option's path.
    expect(() =>
      GraphModel.fromSpec({
        inputs: [{ name: 'x', features: 2 }],
        nodes: [{ name: 'h', layer: { type: 'lstm', hiddenSize: -1 }, inputs: ['x'] }],
        outputs: ['h'],
      }),
    ).toThrow(/nodes\[0\]\.layer\.hiddenSize/);
    expect(() => GraphModel.fromSpec({ inputs: [{ name: 'x', features: 2 }], nodes: [], outputs: ['x'] })).toThrow(/outputs\[0\]/);

    const model = g.model([g.dense(plain, { units: 2, name: 'y' })]);
    const xs = [
      [
        [1, 2],
        [3, 4],
      ],
    ];
    const ys = [
      [
        [0, 1],
        [1, 0],
      ],
    ];
    await expect(model.fit({ x: xs }, { y: ys })).rejects.toThrow(MissingArgumentError);
    await expect(model.fit({ x: xs, t: [[1, 9]] }, { y: ys })).rejects.toThrow(/inputs\.t\[0\]\[1\].*vocabSize 4/);
    await expect(model.fit({ x: xs, t: [[1, 2]], z: [[1]] } as never, { y: ys })).rejects.toThrow(/z/);
    await expect(model.fit({ x: xs, t: [[1, 2]] }, { y: ys }, { losses: { y: 'crossEntropy' } })).rejects.toThrow(/softmax/);
    await expect(model.fit({ x: xs, t: [[1, 2]] }, { y: [[[0, 1, 2]]] })).rejects.toThrow(/y\.y\[0\]\[0\] must have 2 values/);
    // One call at a time; a disposed model refuses every call.
    const fitting = model.fit({ x: xs, t: [[1, 2]] }, { y: ys }, { epochs: 3 });
    await expect(model.predict({ x: xs, t: [[1, 2]] })).rejects.toThrow(BusyError);
    await fitting;
    model.dispose();
    await expect(model.predict({ x: xs, t: [[1, 2]] })).rejects.toThrow(DisposedError);
    expect(() => GraphModel.fromBuffer(new Uint8Array([1, 2, 3]))).toThrow(BadFileError);
  });
});

/** Every key of `T` (the object must name each one: the compiler holds it to the type). */
function keysOf<T>(all: { [K in keyof Required<T>]: true }): string[] {
  return Object.keys(all).sort();
}

/** The keys the native reader accepts at `layer` (from its error for an unknown key). */
function nativeKeys(layer: Record<string, unknown>, where: 'layer' | 'node' | 'input' = 'layer'): string[] {
  const node = { name: 'a', layer, inputs: ['x'], ...(where === 'node' ? { zz: 1 } : {}) };
  const input = { name: 'x', features: 2, ...(where === 'input' ? { zz: 1 } : {}) };
  try {
    GraphModel.fromSpec({ inputs: [input as GraphInputSpec], nodes: [node as GraphNodeSpec], outputs: ['a'] });
  } catch (err) {
    const m = /expected (one of (.*)|no options)$/.exec((err as Error).message);
    if (m)
      return m[2] === undefined
        ? []
        : m[2]
            .split(', ')
            .filter((k) => k !== 'type')
            .sort();
    throw err;
  }
  throw new Error('accepted');
}

describe("the graph spec's TypeScript types", () => {
  it('name exactly the options the native reader takes', () => {
    type Of<T> = Omit<Extract<GraphLayerSpec, T>, 'type'>;
    expect(
      keysOf<Of<{ hiddenSize: number }>>({
        hiddenSize: true,
        numLayers: true,
        bidirectional: true,
        returnSequences: true,
        returnState: true,
        nonlinearity: true,
        resetAfter: true,
        recurrentActivation: true,
      }),
    ).toEqual(nativeKeys({ type: 'lstm', hiddenSize: 2, zz: 1 }));
    expect(keysOf<Of<{ units: number }>>({ units: true, activation: true })).toEqual(nativeKeys({ type: 'dense', units: 2, zz: 1 }));
    expect(keysOf<Of<{ embeddingDim: number }>>({ embeddingDim: true })).toEqual(nativeKeys({ type: 'embedding', embeddingDim: 2, zz: 1 }));
    expect(keysOf<Of<{ type: 'attention' }>>({ score: true })).toEqual(nativeKeys({ type: 'attention', zz: 1 }));
    expect(nativeKeys({ type: 'concatenate', zz: 1 })).toEqual([]);
    expect(keysOf<Of<{ type: 'dropout' }>>({ rate: true })).toEqual(nativeKeys({ type: 'dropout', rate: 0.1, zz: 1 }));
    expect(keysOf<GraphNodeSpec>({ name: true, layer: true, inputs: true, initialState: true })).toEqual(
      nativeKeys({ type: 'dense', units: 1 }, 'node'),
    );
    type AnyInput = { name: string; features: number; vocabSize: number };
    expect(keysOf<AnyInput>({ name: true, features: true, vocabSize: true })).toEqual(nativeKeys({ type: 'dense', units: 1 }, 'input'));
  });
});
