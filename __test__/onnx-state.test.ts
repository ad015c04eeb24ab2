/**
 * ONNX export with state (`toOnnx(model, { state: true })`), run by onnxruntime-node: a
 * sequence run in chunks, each run fed the previous run's final states, gives the outputs and
 * final states of one run over the whole sequence; both equal gyre's own stream stepped through
 * the same sequence (outputs at every step, and `Stream.toArray` against the `Y_*` outputs in
 * `onnxStateNames` order), from a zero state and from a stream's restored state; shorter
 * sequences of a padded batch return the state after their last valid step.
 */
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, onnxStateNames, sequential, type Model, type ModelSpec } from 'gyre';
import { featureBatch, gyreOutput, maxAbsDiff, onnxOutput, paddedValues, toOnnx } from './onnx-helpers';
import { seeded } from './helpers';

const TOL = 1e-5;
const FEATURES = 3;
const VOCAB = 9;
const STEPS = 10;
const BATCH = 3;

const features = (layers: ModelSpec['layers'], seed = 1): ModelSpec => ({ input: { features: FEATURES }, layers, seed });

/** Streamable models (no bidirectional layer): every cell, stacked, with layers between. */
const cases: Record<string, ModelSpec> = {
  'LSTM, 2 stacked layers + dense': features([
    { type: 'lstm', hiddenSize: 6, numLayers: 2 },
    { type: 'dense', units: 2 },
  ]),
  'GRU reset-before, then LSTM, then dense softmax': features([
    { type: 'gru', hiddenSize: 5, resetAfter: false },
    { type: 'lstm', hiddenSize: 4 },
    { type: 'dense', units: 3, activation: 'softmax' },
  ]),
  'dense, GRU reset-after 2 layers, RNN relu': features([
    { type: 'dense', units: 4, activation: 'tanh' },
    { type: 'gru', hiddenSize: 5, numLayers: 2 },
    { type: 'rnn', hiddenSize: 3, nonlinearity: 'relu' },
  ]),
  'embedding + LSTM + dense (token ids)': {
    input: { vocabSize: VOCAB },
    layers: [
      { type: 'embedding', dim: 4 },
      { type: 'lstm', hiddenSize: 5 },
      { type: 'dense', units: VOCAB, activation: 'softmax' },
    ],
    seed: 3,
  },
};

interface Inputs {
  /** `[B, T, F]` features or `[B, T]` token ids, full length. */
  data: Float32Array | Uint32Array;
  tokens: boolean;
}

function inputsFor(model: Model, seed: number): Inputs {
  const r = seeded(seed);
  const tokens = 'vocabSize' in model.config.input;
  if (tokens) return { data: Uint32Array.from(r(BATCH * STEPS), (v) => Math.min(VOCAB - 1, Math.floor(((v + 1) / 2) * VOCAB))), tokens };
  return { data: Float32Array.from(r(BATCH * STEPS * FEATURES)), tokens };
}

/** Steps `t0..t1` of every sequence, as an onnxruntime `input` tensor. */
function chunk(x: Inputs, t0: number, t1: number): ort.Tensor {
  const width = x.tokens ? 1 : FEATURES;
  const n = t1 - t0;
  if (x.tokens) {
    const out = new BigInt64Array(BATCH * n);
    for (let b = 0; b < BATCH; b++) for (let t = 0; t < n; t++) out[b * n + t] = BigInt(x.data[b * STEPS + t0 + t]!);
    return new ort.Tensor('int64', out, [BATCH, n]);
  }
  const out = new Float32Array(BATCH * n * width);
  for (let b = 0; b < BATCH; b++) out.set(x.data.subarray((b * STEPS + t0) * width, (b * STEPS + t1) * width), b * n * width);
  return new ort.Tensor('float32', out, [BATCH, n, width]);
}

/** The `initial_*` feeds of a state laid out as `Stream.toArray` lays it out, for `batch` sequences. */
function stateFeeds(model: Model, state: Float32Array, batch: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  let o = 0;
  for (const s of onnxStateNames(model)) {
    const n = batch * s.hiddenSize;
    feeds[s.input] = new ort.Tensor('float32', state.slice(o, o + n), [batch, s.hiddenSize]);
    o += n;
  }
  expect(o).toBe(state.length);
  return feeds;
}

/** The `Y_*` outputs of a run, concatenated in `onnxStateNames` order (`Stream.toArray`'s layout). */
function finalState(model: Model, out: ort.InferenceSession.OnnxValueMapType): Float32Array {
  const parts = onnxStateNames(model).map((s) => out[s.output]!.data as Float32Array);
  const state = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    state.set(p, o);
    o += p.length;
  }
  return state;
}

/** One run of steps `t0..t1` from `state`: the output `[B, n, U]` and the final state. */
async function run(session: ort.InferenceSession, model: Model, x: Inputs, t0: number, t1: number, state: Float32Array) {
  const out = await session.run({
    input: chunk(x, t0, t1),
    sequence_lens: new ort.Tensor('int32', new Int32Array(BATCH).fill(t1 - t0), [BATCH]),
    ...stateFeeds(model, state, BATCH),
  });
  return { output: out.output!.data as Float32Array, units: Number(out.output!.dims[2]), state: finalState(model, out) };
}

/** gyre's stream over the whole sequence from `state`: the outputs `[B, T, U]` and its final state. */
function streamRun(model: Model, x: Inputs, state: Float32Array | null, units: number) {
  const stream = state ? model.restoreStream(state, BATCH) : model.createStream(BATCH);
  const output = new Float32Array(BATCH * STEPS * units);
  for (let t = 0; t < STEPS; t++) {
    const y = x.tokens
      ? stream.step(Uint32Array.from({ length: BATCH }, (_, b) => x.data[b * STEPS + t]!))
      : stream.step(
          Float32Array.from(
            { length: BATCH * FEATURES },
            (_, i) => x.data[(Math.floor(i / FEATURES) * STEPS + t) * FEATURES + (i % FEATURES)]!,
          ),
        );
    for (let b = 0; b < BATCH; b++) output.set(y.subarray(b * units, (b + 1) * units), (b * STEPS + t) * units);
  }
  return { output, state: stream.toArray() };
}

/** Concatenates chunk outputs `[B, n_k, U]` along time. */
function alongTime(parts: { output: Float32Array; units: number }[]): Float32Array {
  const units = parts[0]!.units;
  const out = new Float32Array(BATCH * STEPS * units);
  let t0 = 0;
  for (const p of parts) {
    const n = p.output.length / (BATCH * units);
    for (let b = 0; b < BATCH; b++) out.set(p.output.subarray(b * n * units, (b + 1) * n * units), (b * STEPS + t0) * units);
    t0 += n;
  }
  return out;
}

describe('toOnnx with state: chunks carry the state like one run and like gyre’s stream', () => {
  for (const [name, spec] of Object.entries(cases)) {
    it(name, async () => {
      const model = sequential(spec);
      const session = await ort.InferenceSession.create(toOnnx(model, { state: true }));
      const x = inputsFor(model, 5);
      const zero = new Float32Array(model.createStream(BATCH).toArray().length);
      expect(zero.length).toBeGreaterThan(0);

      const whole = await run(session, model, x, 0, STEPS, zero);
      // The stateless export on the same batch: a zero state changes nothing.
      const plain = await ort.InferenceSession.create(toOnnx(model));
      const batch = x.tokens
        ? { samples: BATCH, steps: STEPS, lengths: Array(BATCH).fill(STEPS), tokens: x.data as Uint32Array }
        : { samples: BATCH, steps: STEPS, lengths: Array(BATCH).fill(STEPS), features: { data: x.data as Float32Array, size: FEATURES } };
      expect(maxAbsDiff(whole.output, (await onnxOutput(plain, batch)).data)).toBe(0);
      expect(maxAbsDiff(whole.output, gyreOutput(model, batch).data)).toBeLessThanOrEqual(TOL);

      for (const cuts of [[4], [1, 3, 7], [9]]) {
        const bounds = [0, ...cuts, STEPS];
        const parts = [];
        let state: Float32Array = zero;
        for (let k = 0; k + 1 < bounds.length; k++) {
          const r = await run(session, model, x, bounds[k]!, bounds[k + 1]!, state);
          parts.push(r);
          state = r.state;
        }
        expect(maxAbsDiff(alongTime(parts), whole.output)).toBeLessThanOrEqual(TOL);
        expect(maxAbsDiff(state, whole.state)).toBeLessThanOrEqual(TOL);
      }

      // gyre's stream, from zero and from a restored non-zero state.
      const fromZero = streamRun(model, x, null, whole.units);
      expect(maxAbsDiff(fromZero.output, whole.output)).toBeLessThanOrEqual(TOL);
      expect(maxAbsDiff(fromZero.state, whole.state)).toBeLessThanOrEqual(TOL);
      const start = Float32Array.from(seeded(17)(zero.length), (v) => 0.8 * v);
      const fromStart = streamRun(model, x, start, whole.units);
      const onnxFromStart = await run(session, model, x, 0, STEPS, start);
      expect(maxAbsDiff(onnxFromStart.output, whole.output)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(fromStart.output, onnxFromStart.output)).toBeLessThanOrEqual(TOL);
      expect(maxAbsDiff(fromStart.state, onnxFromStart.state)).toBeLessThanOrEqual(TOL);
    });
  }

  it('returns each shorter sequence’s state after its last valid step', async () => {
    const model = sequential(cases['LSTM, 2 stacked layers + dense']!);
    const session = await ort.InferenceSession.create(toOnnx(model, { state: true }));
    const lengths = [4, 10, 1];
    const b = featureBatch(lengths, FEATURES, 21);
    const zero = new Float32Array(model.createStream(lengths.length).toArray().length);
    const out = await session.run({
      input: new ort.Tensor('float32', b.features!.data, [b.samples, b.steps, FEATURES]),
      sequence_lens: new ort.Tensor('int32', Int32Array.from(lengths), [lengths.length]),
      ...stateFeeds(model, zero, lengths.length),
    });
    const names = onnxStateNames(model);
    lengths.forEach((len, s) => {
      const stream = model.createStream(1);
      for (let t = 0; t < len; t++) stream.step(b.features!.data.slice((s * b.steps + t) * FEATURES, (s * b.steps + t + 1) * FEATURES));
      const rows = names.map((n) => (out[n.output]!.data as Float32Array).subarray(s * n.hiddenSize, (s + 1) * n.hiddenSize));
      const want = stream.toArray();
      let o = 0;
      for (const row of rows) {
        expect(maxAbsDiff(row, want.subarray(o, o + row.length))).toBeLessThanOrEqual(TOL);
        o += row.length;
      }
    });
    // The output is still predictSync's, zeros at padded steps.
    const y = { data: out.output!.data as Float32Array, shape: out.output!.dims.map(Number) };
    expect(maxAbsDiff(y.data, gyreOutput(model, b).data)).toBeLessThanOrEqual(TOL);
    const padded = paddedValues(y, lengths);
    expect(padded.length).toBeGreaterThan(0);
    expect(padded.every((v) => v === 0)).toBe(true);
  });

  it('names each direction of a bidirectional layer: the forward and reverse final states are its last output', async () => {
    const model = sequential(features([{ type: 'gru', hiddenSize: 4, numLayers: 2, bidirectional: true, returnSequences: false }]));
    const names = onnxStateNames(model);
    expect(names.map((n) => n.output)).toEqual(['Y_h.0.l0', 'Y_h.0.l0_reverse', 'Y_h.0.l1', 'Y_h.0.l1_reverse']);
    const session = await ort.InferenceSession.create(toOnnx(model, { state: true }));
    const b = featureBatch([6, 3], FEATURES, 8);
    const zero = (n: number) => new ort.Tensor('float32', new Float32Array(2 * n), [2, n]);
    const out = await session.run({
      input: new ort.Tensor('float32', b.features!.data, [2, b.steps, FEATURES]),
      sequence_lens: new ort.Tensor('int32', Int32Array.of(6, 3), [2]),
      ...Object.fromEntries(names.map((n) => [n.input, zero(n.hiddenSize)])),
    });
    // gyre's output: [B, 2H], the top layer's forward final state then its reverse one.
    const want = gyreOutput(model, b).data;
    const fwd = out['Y_h.0.l1']!.data as Float32Array;
    const rev = out['Y_h.0.l1_reverse']!.data as Float32Array;
    const got = new Float32Array(8 * 2);
    for (let s = 0; s < 2; s++) {
      got.set(fwd.subarray(4 * s, 4 * s + 4), 8 * s);
      got.set(rev.subarray(4 * s, 4 * s + 4), 8 * s + 4);
    }
    expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(TOL);
    expect(maxAbsDiff(out.output!.data as Float32Array, want)).toBeLessThanOrEqual(TOL);
  });
});

describe('the state inputs and outputs', () => {
  it('are declared [batch, hiddenSize] in onnxStateNames order, listed in the metadata', () => {
    const model = sequential(cases['GRU reset-before, then LSTM, then dense softmax']!);
    const names = onnxStateNames(model);
    expect(names).toEqual([
      { input: 'initial_h.0.l0', output: 'Y_h.0.l0', kind: 'h', layer: 0, stack: 0, direction: 'forward', hiddenSize: 5 },
      { input: 'initial_h.1.l0', output: 'Y_h.1.l0', kind: 'h', layer: 1, stack: 0, direction: 'forward', hiddenSize: 4 },
      { input: 'initial_c.1.l0', output: 'Y_c.1.l0', kind: 'c', layer: 1, stack: 0, direction: 'forward', hiddenSize: 4 },
    ]);
    const m = onnx.ModelProto.decode(toOnnx(model, { state: true }));
    const shapeOf = (v: onnx.IValueInfoProto) => [v.name, v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue))];
    expect(m.graph!.input!.map(shapeOf)).toEqual([
      ['input', ['batch', 'time', FEATURES]],
      ['sequence_lens', ['batch']],
      ...names.map((n) => [n.input, ['batch', n.hiddenSize]]),
    ]);
    expect(m.graph!.output!.map(shapeOf)).toEqual([
      ['output', ['batch', 'time', 3]],
      ...names.map((n) => [n.output, ['batch', n.hiddenSize]]),
    ]);
    const meta = Object.fromEntries(m.metadataProps!.map((p) => [p.key, p.value]));
    expect(JSON.parse(meta['gyre.state']!)).toEqual(names);
    // Without the option: no state inputs, outputs or metadata.
    const plain = onnx.ModelProto.decode(toOnnx(model));
    expect(plain.graph!.input!.map((v) => v.name)).toEqual(['input', 'sequence_lens']);
    expect(plain.graph!.output!.map((v) => v.name)).toEqual(['output']);
    expect(plain.metadataProps!.map((p) => p.key)).toEqual(['gyre.config']);
  });

  it('refuses a state option that is not a boolean, and a model with nothing to carry', () => {
    const model = sequential(cases['LSTM, 2 stacked layers + dense']!);
    expect(() => toOnnx(model, { state: 'yes' as unknown as boolean })).toThrow(InvalidArgumentError);
    expect(() => toOnnx(model, { state: 'yes' as unknown as boolean })).toThrow(/state must be a boolean, got yes/);
    const dense = sequential(features([{ type: 'dense', units: 2 }]));
    expect(() => toOnnx(dense, { state: true })).toThrow(/state must be false for a model without recurrent layers/);
    expect(onnxStateNames(dense)).toEqual([]);
    expect(() => onnxStateNames(null as unknown as Model)).toThrow(InvalidArgumentError);
  });
});
