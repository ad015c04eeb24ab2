/**
 * ONNX export: the exported graph, run by onnxruntime-node, gives gyre's predictSync output
 * (within 1e-5, zeros at padded steps) on batches of different-length sequences, for every
 * recurrent cell and option; saveOnnx writes a loadable file; what cannot be exported throws.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, sequential, type Model, type ModelSpec } from 'gyre';
import {
  ONNX_DEFAULT_OPSET,
  ONNX_MAX_OPSET,
  ONNX_MIN_OPSET,
  featureBatch,
  gyreOutput,
  maxAbsDiff,
  onnxOutput,
  paddedValues,
  saveOnnx,
  toOnnx,
  tokenBatch,
  type Batch,
} from './onnx-helpers';

const TOL = 1e-5;
/** Different lengths in one batch, the longest not first, one of length 1. */
const LENGTHS = [5, 9, 2, 7, 1, 9];
const FEATURES = 3;
const VOCAB = 11;

/** Exports, runs both ways, checks shape, values and zeros at padded steps; returns the max error. */
async function check(model: Model, batch: Batch, options?: { opset?: number }): Promise<number> {
  const session = await ort.InferenceSession.create(toOnnx(model, options));
  const want = gyreOutput(model, batch);
  const got = await onnxOutput(session, batch);
  expect(got.shape).toEqual(want.shape);
  const err = maxAbsDiff(got.data, want.data);
  expect(err).toBeLessThanOrEqual(TOL);
  if (got.shape.length === 3) {
    const padded = paddedValues(got, batch.lengths);
    expect(padded.length).toBeGreaterThan(0);
    expect(padded.every((v) => v === 0)).toBe(true);
  }
  return err;
}

const errors: Record<string, number> = {};
afterAll(() => {
  console.log(
    'onnx export, max |onnxruntime - predictSync|:\n' +
      Object.entries(errors)
        .map(([k, v]) => `  ${v.toExponential(2)}  ${k}`)
        .join('\n'),
  );
});

const features = (layers: ModelSpec['layers'], seed = 1): ModelSpec => ({ input: { features: FEATURES }, layers, seed });

const featureCases: Record<string, ModelSpec> = {
  'goBackwards LSTM (sequences) then goBackwards GRU (final state) + dense': features([
    { type: 'lstm', hiddenSize: 5, goBackwards: true },
    { type: 'gru', hiddenSize: 4, goBackwards: true, returnSequences: false },
    { type: 'dense', units: 2 },
  ]),
  'goBackwards RNN relu, sequences': features([{ type: 'rnn', hiddenSize: 4, nonlinearity: 'relu', goBackwards: true }]),
  'stacked bidirectional LSTM (sequences) + dense softmax': features([
    { type: 'lstm', hiddenSize: 8, numLayers: 2, bidirectional: true },
    { type: 'dense', units: 4, activation: 'softmax' },
  ]),
  'three-layer bidirectional LSTM, merge sum (last layer recurrent)': features([
    { type: 'lstm', hiddenSize: 6, numLayers: 3, bidirectional: true, merge: 'sum' },
  ]),
  'GRU resetAfter true': features([{ type: 'gru', hiddenSize: 8, resetAfter: true }]),
  'GRU resetAfter false': features([{ type: 'gru', hiddenSize: 8, resetAfter: false }]),
  'GRU resetAfter true, bidirectional, merge sum + dense': features([
    { type: 'gru', hiddenSize: 8, bidirectional: true, merge: 'sum', resetAfter: true },
    { type: 'dense', units: 3 },
  ]),
  'GRU resetAfter false, bidirectional, merge sum, 2 layers': features([
    { type: 'gru', hiddenSize: 8, numLayers: 2, bidirectional: true, merge: 'sum', resetAfter: false },
  ]),
  'GRU resetAfter false, bidirectional concat + dense tanh': features([
    { type: 'gru', hiddenSize: 5, bidirectional: true, resetAfter: false },
    { type: 'dense', units: 2, activation: 'tanh' },
  ]),
  'RNN tanh, 2 layers': features([{ type: 'rnn', hiddenSize: 8, numLayers: 2, nonlinearity: 'tanh' }]),
  'RNN relu, 2 layers': features([{ type: 'rnn', hiddenSize: 8, numLayers: 2, nonlinearity: 'relu' }]),
  'RNN tanh, bidirectional + dense relu': features([
    { type: 'rnn', hiddenSize: 6, bidirectional: true, nonlinearity: 'tanh' },
    { type: 'dense', units: 4, activation: 'relu' },
  ]),
  'RNN relu, bidirectional, merge sum': features([{ type: 'rnn', hiddenSize: 6, bidirectional: true, merge: 'sum', nonlinearity: 'relu' }]),
  'returnSequences false: stacked bidirectional LSTM + dense softmax': features([
    { type: 'lstm', hiddenSize: 8, numLayers: 2, bidirectional: true, returnSequences: false, dropout: 0.2 },
    { type: 'dense', units: 3, activation: 'softmax' },
  ]),
  'returnSequences false: bidirectional GRU (reset before), merge sum + dense sigmoid': features([
    { type: 'gru', hiddenSize: 8, bidirectional: true, merge: 'sum', resetAfter: false, returnSequences: false },
    { type: 'dense', units: 2, activation: 'sigmoid' },
  ]),
  'returnSequences false: RNN relu, 2 layers (final states as the output)': features([
    { type: 'rnn', hiddenSize: 7, numLayers: 2, nonlinearity: 'relu', returnSequences: false },
  ]),
  'returnSequences false: LSTM + two dense layers': features([
    { type: 'lstm', hiddenSize: 8, returnSequences: false },
    { type: 'dense', units: 6, activation: 'relu' },
    { type: 'dense', units: 2 },
  ]),
  'dense before and between recurrent layers': features([
    { type: 'dense', units: 5, activation: 'tanh' },
    { type: 'gru', hiddenSize: 6, bidirectional: true },
    { type: 'dense', units: 4, activation: 'relu' },
    { type: 'lstm', hiddenSize: 6 },
    { type: 'dense', units: 2, activation: 'softmax' },
  ]),
  'dense layers only': features([{ type: 'dense', units: 4, activation: 'sigmoid' }]),
};

describe('toOnnx matches predictSync on variable-length batches', () => {
  for (const [name, spec] of Object.entries(featureCases)) {
    it(name, async () => {
      errors[name] = await check(sequential(spec), featureBatch(LENGTHS, FEATURES, 11));
    });
  }

  const tokens = (layers: ModelSpec['layers']): ModelSpec => ({ input: { vocabSize: VOCAB }, layers, seed: 2 });
  const tokenCases: Record<string, ModelSpec> = {
    'embedding + LSTM + dense (token ids, out-of-vocabulary junk at padded steps)': tokens([
      { type: 'embedding', dim: 6 },
      { type: 'lstm', hiddenSize: 8 },
      { type: 'dense', units: VOCAB, activation: 'softmax' },
    ]),
    'embedding + bidirectional GRU, returnSequences false + dense': tokens([
      { type: 'embedding', dim: 4 },
      { type: 'gru', hiddenSize: 6, bidirectional: true, returnSequences: false },
      { type: 'dense', units: 2 },
    ]),
    'embedding + dense': tokens([
      { type: 'embedding', dim: 4 },
      { type: 'dense', units: 3, activation: 'tanh' },
    ]),
  };
  for (const [name, spec] of Object.entries(tokenCases)) {
    it(name, async () => {
      errors[name] = await check(sequential(spec), tokenBatch(LENGTHS, VOCAB, 12));
    });
  }

  it('has symbolic batch and time: one session runs other batch sizes and lengths', async () => {
    const model = sequential(featureCases['stacked bidirectional LSTM (sequences) + dense softmax']!);
    const session = await ort.InferenceSession.create(toOnnx(model));
    for (const [lengths, seed] of [
      [[3], 1],
      [[4, 4], 2],
      [[12, 1, 6, 12, 3, 8, 2, 12, 5, 1, 9], 3],
    ] as const) {
      const batch = featureBatch([...lengths], FEATURES, seed);
      const got = await onnxOutput(session, batch);
      const want = gyreOutput(model, batch);
      expect(got.shape).toEqual(want.shape);
      expect(maxAbsDiff(got.data, want.data)).toBeLessThanOrEqual(TOL);
    }
  });

  it('declares every opset from ONNX_MIN_OPSET to ONNX_MAX_OPSET and runs the same', async () => {
    const model = sequential(
      features([
        { type: 'gru', hiddenSize: 5, numLayers: 2, bidirectional: true, merge: 'sum', resetAfter: false, returnSequences: false },
        { type: 'dense', units: 2, activation: 'softmax' },
      ]),
    );
    const batch = featureBatch(LENGTHS, FEATURES, 13);
    for (let opset = ONNX_MIN_OPSET; opset <= ONNX_MAX_OPSET; opset++) {
      expect(onnx.ModelProto.decode(toOnnx(model, { opset })).opsetImport[0]!.version.toString()).toBe(String(opset));
      await check(model, batch, { opset });
    }
  });
});

describe('the exported graph', () => {
  it('has the documented inputs, output, opset and recurrent nodes', () => {
    const model = sequential({
      input: { vocabSize: VOCAB },
      layers: [
        { type: 'embedding', dim: 4 },
        { type: 'lstm', hiddenSize: 8, numLayers: 2, bidirectional: true },
        { type: 'gru', hiddenSize: 3, resetAfter: false },
        { type: 'rnn', hiddenSize: 3, nonlinearity: 'relu', bidirectional: true, returnSequences: false },
        { type: 'dense', units: 2, activation: 'softmax' },
      ],
    });
    const m = onnx.ModelProto.decode(toOnnx(model, { producer: 'test-producer' }));
    expect(m.producerName).toBe('test-producer');
    expect(m.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', ONNX_DEFAULT_OPSET]]);
    expect(Number(m.irVersion)).toBe(8);
    const g = m.graph!;
    const [inputs, outputs, nodes, initializers] = [g.input!, g.output!, g.node!, g.initializer!];
    const describeValue = (v: onnx.IValueInfoProto) => ({
      name: v.name,
      type: v.type!.tensorType!.elemType,
      dims: v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue)),
    });
    expect(inputs.map(describeValue)).toEqual([
      { name: 'input', type: onnx.TensorProto.DataType.INT64, dims: ['batch', 'time'] },
      { name: 'sequence_lens', type: onnx.TensorProto.DataType.INT32, dims: ['batch'] },
    ]);
    expect(outputs.map(describeValue)).toEqual([{ name: 'output', type: onnx.TensorProto.DataType.FLOAT, dims: ['batch', 2] }]);
    const attrs = (n: onnx.INodeProto) =>
      Object.fromEntries(
        n.attribute!.map((a) => [
          a.name,
          a.s?.length ? Buffer.from(a.s).toString() : a.strings?.length ? a.strings.map((s) => Buffer.from(s).toString()) : Number(a.i),
        ]),
      );
    const recurrent = nodes.filter((n) => ['LSTM', 'GRU', 'RNN'].includes(n.opType!));
    expect(recurrent.map((n) => [n.opType, attrs(n)])).toEqual([
      ['LSTM', { hidden_size: 8, direction: 'bidirectional' }],
      ['LSTM', { hidden_size: 8, direction: 'bidirectional' }],
      ['GRU', { hidden_size: 3, direction: 'forward', linear_before_reset: 0 }],
      ['RNN', { hidden_size: 3, direction: 'bidirectional', activations: ['Relu', 'Relu'] }],
    ]);
    for (const n of recurrent) expect(n.input![4]).toBe('sequence_lens');
    expect(nodes.some((n) => n.opType === 'Gather')).toBe(true);
    // Initializers: W [D, G·H, I], R [D, G·H, H], B [D, 2·G·H]; the first LSTM reads the 4-dim embedding.
    const dims = Object.fromEntries(initializers.map((t) => [t.name, t.dims!.map(Number)]));
    const lstmW = recurrent[0]!.input!.slice(1, 4).map((name) => dims[name!]);
    expect(lstmW).toEqual([
      [2, 32, 4],
      [2, 32, 8],
      [2, 64],
    ]);
    expect(recurrent[1]!.input!.slice(1, 4).map((name) => dims[name!])).toEqual([
      [2, 32, 16],
      [2, 32, 8],
      [2, 64],
    ]);
    expect(m.metadataProps!.find((p) => p.key === 'gyre.config')!.value).toBe(JSON.stringify(model.config));
  });

  it('reorders the gates: LSTM i,f,g,o → i,o,f,c and GRU r,z,n → z,r,h', () => {
    const lstm = sequential(features([{ type: 'lstm', hiddenSize: 2 }]));
    const gru = sequential(features([{ type: 'gru', hiddenSize: 2 }]));
    const initializer = (model: Model, suffix: string) => {
      const t = onnx.ModelProto.decode(toOnnx(model)).graph!.initializer!.find((x) => x.name!.endsWith(suffix))!;
      const raw = t.rawData!;
      return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    };
    const blocks = (a: Float32Array, n: number) =>
      Array.from({ length: n }, (_, k) => Array.from(a.subarray((k * a.length) / n, ((k + 1) * a.length) / n)));
    const lp = lstm.parameters()['0.bias_ih_l0']!.data;
    const lb = blocks(initializer(lstm, '_B').subarray(0, 8), 4);
    expect(lb).toEqual([0, 3, 1, 2].map((k) => blocks(lp, 4)[k]));
    const gp = gru.parameters()['0.weight_hh_l0']!.data;
    expect(blocks(initializer(gru, '_R'), 3)).toEqual([1, 0, 2].map((k) => blocks(gp, 3)[k]));
  });
});

describe('saveOnnx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gyre-onnx-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a file that InferenceSession.create(path) loads and that gives predictSync', async () => {
    const model = sequential(featureCases['returnSequences false: stacked bidirectional LSTM + dense softmax']!);
    const path = join(dir, 'model.onnx');
    await saveOnnx(model, path);
    await saveOnnx(model, path); // replaces it
    expect(readdirSync(dir)).toEqual(['model.onnx']); // no temporary file left behind
    const session = await ort.InferenceSession.create(path);
    expect(session.inputNames).toEqual(['input', 'sequence_lens']);
    expect(session.outputNames).toEqual(['output']);
    const batch = featureBatch(LENGTHS, FEATURES, 14);
    const got = await onnxOutput(session, batch);
    const want = gyreOutput(model, batch);
    expect(got.shape).toEqual(want.shape);
    expect(maxAbsDiff(got.data, want.data)).toBeLessThanOrEqual(TOL);
  });

  it('rejects, leaving nothing behind, when the directory does not exist', async () => {
    const model = sequential(features([{ type: 'gru', hiddenSize: 2 }]));
    await expect(saveOnnx(model, join(dir, 'missing', 'model.onnx'))).rejects.toThrow(/ENOENT/);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('what cannot be exported', () => {
  /** A model-like object whose config holds what a future gyre might add. */
  const fake = (layers: Record<string, unknown>[], input: Record<string, unknown> = { features: 3 }): Model =>
    ({ config: { input, layers }, parameters: () => ({}) }) as unknown as Model;

  it('throws naming the layer for a layer type without an ONNX mapping', () => {
    const model = fake([
      { type: 'lstm', hiddenSize: 4, numLayers: 1, bidirectional: false, merge: 'concat', returnSequences: true, dropout: 0 },
      { type: 'attention', heads: 2 },
    ]);
    expect(() => toOnnx(model)).toThrow(InvalidArgumentError);
    expect(() => toOnnx(model)).toThrow(/layers\[1\] \(attention\) cannot be exported to ONNX: layer type "attention"/);
  });

  it('throws naming the layer and option for an option without an ONNX mapping', () => {
    const lstm = fake([
      { type: 'lstm', hiddenSize: 4, numLayers: 1, bidirectional: false, merge: 'concat', returnSequences: true, dropout: 0, projSize: 2 },
    ]);
    expect(() => toOnnx(lstm)).toThrow(/layers\[0\] \(lstm\) cannot be exported to ONNX: option projSize/);
    const dense = fake([{ type: 'dense', units: 2, activation: 'gelu' }]);
    expect(() => toOnnx(dense)).toThrow(/layers\[0\] \(dense\) cannot be exported to ONNX: activation "gelu"/);
    const rnn = fake([
      {
        type: 'rnn',
        hiddenSize: 4,
        numLayers: 1,
        bidirectional: false,
        merge: 'concat',
        returnSequences: true,
        dropout: 0,
        nonlinearity: 'gelu',
      },
    ]);
    expect(() => toOnnx(rnn)).toThrow(/layers\[0\] \(rnn\) cannot be exported to ONNX: nonlinearity "gelu"/);
  });

  it('rejects bad options', () => {
    const model = sequential(features([{ type: 'gru', hiddenSize: 2 }]));
    for (const opset of [12, ONNX_MAX_OPSET + 1, 17.5])
      expect(() => toOnnx(model, { opset })).toThrow(/opset must be an integer in 13\.\./);
    expect(() => toOnnx(model, { opsets: 17 } as never)).toThrow(/unknown option opsets/);
  });
});
