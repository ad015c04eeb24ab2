/**
 * `recurrentDropout` and `zoneout`: dropout on the hidden state the recurrent products read
 * (one mask per sequence for every step) and zoneout, in training; off (recurrent dropout) or
 * the expectation (zoneout) elsewhere. Their gradients with the masks fixed are checked by
 * finite differences in crates/gyre-core/src/rnn/tests.rs and crates/gyre-core/tests/model.rs,
 * against the recurrence written step by step there; here the TypeScript surface.
 */
import { describe, expect, it } from 'vitest';
import { fromBuffer, InvalidArgumentError, type LayerSpec, sequential, toOnnx } from 'gyre';

const x = Array.from({ length: 16 }, (_, s) => Array.from({ length: 5 }, (_, t) => [Math.sin(s + t), Math.cos(s - 2 * t), 0.1 * t]));
const y = x.map((q) => [q[4]![0]! - q[0]![1]!]);
const options = { loss: 'mse' as const, epochs: 3, batchSize: 4, optimizer: { type: 'adam' as const, learningRate: 0.02 } };
const model = (type: 'rnn' | 'lstm' | 'gru', extra: { recurrentDropout?: number; zoneout?: number }, head = true) =>
  sequential({
    input: { features: 3 },
    layers: [
      { type, hiddenSize: 6, returnSequences: false, ...extra } as LayerSpec,
      ...(head ? [{ type: 'dense' as const, units: 1 }] : []),
    ],
    seed: 4,
  });
const values = (m: ReturnType<typeof model>, input: number[][][] = x) => Array.from(m.predictSync(input).data);

describe('recurrentDropout', () => {
  it.each(['rnn', 'lstm', 'gru'] as const)('%s: off at inference, seeded in training, and changes what training learns', async (type) => {
    const a = model(type, { recurrentDropout: 0.4 });
    const b = model(type, {});
    expect(values(a)).toEqual(values(b));
    await a.fit(x, y, options);
    await b.fit(x, y, options);
    const again = model(type, { recurrentDropout: 0.4 });
    await again.fit(x, y, options);
    expect(values(again)).toEqual(values(a));
    expect(values(a)).not.toEqual(values(b));
  });

  it('is written in the configuration only when set, checked, and exports to ONNX and PyTorch', () => {
    expect('recurrentDropout' in model('gru', {}).config.layers[0]!).toBe(false);
    const m = model('lstm', { recurrentDropout: 0.25 });
    expect(m.config.layers[0]).toMatchObject({ recurrentDropout: 0.25 });
    expect(fromBuffer(m.toBuffer()).config.layers[0]).toMatchObject({ recurrentDropout: 0.25 });
    expect(() => model('gru', { recurrentDropout: 1 })).toThrow(InvalidArgumentError);
    expect(() => model('gru', { recurrentDropout: 1 })).toThrow(/layers\[0\]\.recurrentDropout must be a number in \[0, 1\), got 1/);
    expect(() => model('rnn', { recurrentDropout: -0.1 })).toThrow(/recurrentDropout/);
    expect(toOnnx(m).byteLength).toBeGreaterThan(0);
    expect(m.exportPyTorch(0).byteLength).toBeGreaterThan(0);
  });
});

describe('zoneout', () => {
  it.each(['rnn', 'lstm', 'gru'] as const)('%s: a first step from the zero state is (1 − p) times the plain one', (type) => {
    // h = p·h_prev + (1 − p)·h̃ with h_prev = 0.
    const oneStep = x.map((q) => [q[0]!]);
    const plain = values(model(type, {}, false), oneStep);
    const zoned = values(model(type, { zoneout: 0.3 }, false), oneStep);
    // The LSTM's h̃ = o·tanh(c̃) is its own: the blend of c does not reach this step's h.
    expect(zoned.length).toBe(plain.length);
    for (let i = 0; i < plain.length; i++) expect(zoned[i]).toBeCloseTo(0.7 * plain[i]!, 6);
  });

  it('runs the same expectation in predict, evaluate and a stream, and trains seeded', async () => {
    const m = model('gru', { zoneout: 0.2 });
    const whole = values(m);
    const stream = m.createStream(x.length);
    let last: number[] = [];
    for (let t = 0; t < 5; t++) last = Array.from(stream.step(x.map((q) => q[t]!)));
    for (let i = 0; i < whole.length; i++) expect(last[i]).toBeCloseTo(whole[i]!, 5);
    const mse = whole.reduce((s, v, i) => s + (v - y[i]![0]!) ** 2, 0) / whole.length;
    expect(m.evaluateSync(x, y, { loss: 'mse' }).loss).toBeCloseTo(mse, 5);
    await m.fit(x, y, options);
    const again = model('gru', { zoneout: 0.2 });
    await again.fit(x, y, options);
    expect(values(again)).toEqual(values(m));
    const plain = model('gru', {});
    await plain.fit(x, y, options);
    expect(values(plain)).not.toEqual(values(m));
  });

  it('is saved, checked, and refused by the ONNX and PyTorch exports, which have no zoneout', () => {
    const m = model('lstm', { zoneout: 0.15 });
    const back = fromBuffer(m.toBuffer());
    expect(back.config.layers[0]).toMatchObject({ zoneout: 0.15 });
    expect(values(back)).toEqual(values(m));
    expect('zoneout' in model('lstm', {}).config.layers[0]!).toBe(false);
    expect(() => model('lstm', { zoneout: 1 })).toThrow(/layers\[0\]\.zoneout must be a number in \[0, 1\), got 1/);
    expect(() => toOnnx(m)).toThrow(InvalidArgumentError);
    expect(() => toOnnx(m)).toThrow(/zoneout 0\.15 has no ONNX mapping/);
    expect(() => m.exportPyTorch(0)).toThrow(/layers\[0\]\.zoneout.*PyTorch's recurrent modules have no zoneout/);
  });
});
