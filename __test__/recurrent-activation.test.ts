/**
 * The gates' activation (`recurrentActivation`: `'sigmoid'`, `'hardSigmoidTfjs'`,
 * `'hardSigmoidKeras3'`) through the whole API: the functional API (forward equal to a model's
 * predict, gradients against f64 central differences), models (training moves the loss, save
 * and load, streams), the ONNX export against onnxruntime's own `HardSigmoid`, and the errors
 * for bad values. The Rust side checks every gradient by finite differences
 * (`crates/gyre-core/tests/gradcheck.rs`) and that shards and threads give the same bits.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  fromBuffer,
  gruBackward,
  gruForward,
  InvalidArgumentError,
  lstmBackward,
  lstmForward,
  RECURRENT_ACTIVATIONS,
  sequential,
  toOnnx,
  type LayerSpec,
  type Model,
  type RecurrentActivation,
  type RecurrentWeights,
} from 'gyre';
import { seeded } from './helpers';

const [B, T, I, H] = [2, 5, 3, 4];
const HARD: RecurrentActivation[] = ['hardSigmoidTfjs', 'hardSigmoidKeras3'];

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** A model of one `type` layer whose weights are scaled so that many gates saturate. */
function saturated(type: 'lstm' | 'gru', recurrentActivation: RecurrentActivation, extra: object = {}): Model {
  const m = sequential({ input: { features: I }, layers: [{ type, hiddenSize: H, recurrentActivation, ...extra }], seed: 5 });
  m.setParameters(Object.fromEntries(Object.entries(m.parameters()).map(([k, v]) => [k, Float32Array.from(v.data, (w) => 6 * w)])));
  return m;
}

const x = Float32Array.from(seeded(3)(B * T * I, 3));

describe('recurrentActivation', () => {
  it('names the three activations', () => {
    expect(RECURRENT_ACTIVATIONS).toEqual(['sigmoid', 'hardSigmoidTfjs', 'hardSigmoidKeras3']);
  });

  for (const type of ['lstm', 'gru'] as const) {
    it(`${type}: the functional API computes what the model computes, and the hard sigmoids differ from the sigmoid`, () => {
      const outputs: Float32Array[] = [];
      for (const act of RECURRENT_ACTIVATIONS) {
        const m = saturated(type, act, type === 'gru' ? { resetAfter: true } : {});
        const p = m.parameters();
        const weights = {
          weight_ih_l0: p['0.weight_ih_l0']!.data,
          weight_hh_l0: p['0.weight_hh_l0']!.data,
          bias_ih_l0: p['0.bias_ih_l0']!.data,
          bias_hh_l0: p['0.bias_hh_l0']!.data,
        };
        const args = { input: x, batch: B, steps: T, inputSize: I, hiddenSize: H, weights, recurrentActivation: act };
        const f = type === 'lstm' ? lstmForward(args) : gruForward(args);
        expect(maxDiff(f.output, m.predictSync({ data: x, shape: [B, T, I] }).data)).toBeLessThan(1e-6);
        outputs.push(f.output);
      }
      expect(maxDiff(outputs[0]!, outputs[1]!)).toBeGreaterThan(1e-2);
      expect(maxDiff(outputs[1]!, outputs[2]!)).toBeGreaterThan(1e-3);
    });
  }

  describe('functional gradients match f64 central differences', () => {
    for (const [type, act] of [
      ['lstm', 'hardSigmoidTfjs'],
      ['gru', 'hardSigmoidKeras3'],
    ] as const) {
      it(`${type} ${act}`, () => {
        const r = seeded(9);
        const G = type === 'lstm' ? 4 : 3;
        const weights = {
          weight_ih_l0: Float64Array.from(r(G * H * I, 2)),
          weight_hh_l0: Float64Array.from(r(G * H * H, 2)),
          bias_ih_l0: Float64Array.from(r(G * H, 0.5)),
          bias_hh_l0: Float64Array.from(r(G * H, 0.5)),
        };
        const input = Float64Array.from(r(B * T * I, 2));
        const gradOutput = Float64Array.from(r(B * T * H));
        const base = { batch: B, steps: T, inputSize: I, hiddenSize: H, recurrentActivation: act };
        const loss = (inp: Float64Array, w: typeof weights) => {
          const y = (type === 'lstm' ? lstmForward({ ...base, input: inp, weights: w }) : gruForward({ ...base, input: inp, weights: w }))
            .output;
          return y.reduce((s, v, i) => s + v * gradOutput[i]!, 0);
        };
        const g =
          type === 'lstm' ? lstmBackward({ ...base, input, weights, gradOutput }) : gruBackward({ ...base, input, weights, gradOutput });
        const eps = 1e-6;
        const checks: [string, Float64Array, Float64Array][] = [
          ['input', input, g.gradInput],
          ['weight_hh_l0', weights.weight_hh_l0, g.gradWeights.weight_hh_l0],
          ['weight_ih_l0', weights.weight_ih_l0, g.gradWeights.weight_ih_l0],
        ];
        for (const [, values, grad] of checks) {
          for (let i = 0; i < values.length; i++) {
            const keep = values[i]!;
            values[i] = keep + eps;
            const up = loss(input, weights);
            values[i] = keep - eps;
            const down = loss(input, weights);
            values[i] = keep;
            const numeric = (up - down) / (2 * eps);
            expect(Math.abs(grad[i]! - numeric)).toBeLessThanOrEqual(1e-6 + 1e-4 * Math.abs(numeric));
          }
        }
      });
    }
  });

  it('trains, saves, loads and streams a hard sigmoid model', async () => {
    const m = sequential({
      input: { features: I },
      layers: [
        { type: 'lstm', hiddenSize: H, recurrentActivation: 'hardSigmoidTfjs' },
        { type: 'gru', hiddenSize: H, recurrentActivation: 'hardSigmoidKeras3', resetAfter: false },
        { type: 'dense', units: 1 },
      ],
      seed: 2,
    });
    const y = Float32Array.from({ length: B * T }, (_, i) => Math.sin(i));
    const before = m.evaluateSync({ data: x, shape: [B, T, I] }, y, { loss: 'mse' }).loss;
    await m.fit({ data: x, shape: [B, T, I] }, y, {
      loss: 'mse',
      epochs: 30,
      batchSize: B,
      optimizer: { type: 'adam', learningRate: 0.01 },
    });
    const after = m.evaluateSync({ data: x, shape: [B, T, I] }, y, { loss: 'mse' }).loss;
    expect(after).toBeLessThan(0.8 * before);
    const again = fromBuffer(m.toBuffer());
    expect(again.config.layers.map((l) => ('recurrentActivation' in l ? l.recurrentActivation : undefined))).toEqual([
      'hardSigmoidTfjs',
      'hardSigmoidKeras3',
      undefined,
    ]);
    const want = again.predictSync({ data: x, shape: [B, T, I] }).data;
    expect(maxDiff(want, m.predictSync({ data: x, shape: [B, T, I] }).data)).toBe(0);
    const stream = again.createStream(B);
    for (let t = 0; t < T; t++) {
      const step = stream.step(Float32Array.from({ length: B * I }, (_, i) => x[(Math.floor(i / I) * T + t) * I + (i % I)]!));
      for (let b = 0; b < B; b++) expect(Math.abs(step[b]! - want[b * T + t]!)).toBeLessThan(1e-6);
    }
  });

  describe('exports to ONNX as HardSigmoid, equal in onnxruntime', () => {
    const cases: [string, Model][] = [];
    for (const act of HARD) {
      cases.push([`lstm ${act}`, saturated('lstm', act)]);
      cases.push([`bidirectional lstm ${act}, 2 layers`, saturated('lstm', act, { bidirectional: true, numLayers: 2 })]);
      cases.push([`gru ${act} (reset after)`, saturated('gru', act)]);
      cases.push([`bidirectional gru ${act} (reset before)`, saturated('gru', act, { bidirectional: true, resetAfter: false })]);
    }
    it.each(cases)('%s', async (_, m) => {
      const s = await ort.InferenceSession.create(toOnnx(m));
      const out = await s.run({
        input: new ort.Tensor('float32', x, [B, T, I]),
        sequence_lens: new ort.Tensor('int32', Int32Array.of(T, T - 2), [B]),
      });
      const want = m.predictSync({ data: x, shape: [B, T, I], lengths: [T, T - 2] }).data;
      expect(maxDiff(out.output!.data as Float32Array, want)).toBeLessThan(1e-5);
    });
  });

  it('refuses bad values, naming the option', () => {
    const spec = (layer: object) => ({ input: { features: 2 }, layers: [layer as LayerSpec] });
    expect(() => sequential(spec({ type: 'lstm', hiddenSize: 2, recurrentActivation: 'hardSigmoid' }))).toThrow(
      /layers\[0\]\.recurrentActivation.*'sigmoid', 'hardSigmoidTfjs'.*'hardSigmoidKeras3'.*got "hardSigmoid"/,
    );
    expect(() => sequential(spec({ type: 'rnn', hiddenSize: 2, recurrentActivation: 'sigmoid' }))).toThrow(
      /layers\[0\]\.recurrentActivation/,
    );
    const args = { input: x, batch: B, steps: T, inputSize: I, hiddenSize: H, weights: {} as RecurrentWeights<Float32Array> };
    expect(() => lstmForward({ ...args, recurrentActivation: 'relu' as RecurrentActivation })).toThrow(InvalidArgumentError);
    expect(() => lstmForward({ ...args, recurrentActivation: 'relu' as RecurrentActivation })).toThrow(
      /lstmForward: recurrentActivation must be one of sigmoid, hardSigmoidTfjs, hardSigmoidKeras3, got "relu"/,
    );
    expect(() => saturated('lstm', 'hardSigmoidTfjs').exportPyTorch(0)).toThrow(/layers\[0\]\.recurrentActivation/);
  });
});
