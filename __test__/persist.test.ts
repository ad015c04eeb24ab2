/**
 * Saving and loading: one .safetensors file round trips a model with its optimizer state (so
 * training resumes exactly), saves are atomic, bad files are typed errors; and layers move to
 * and from PyTorch state_dicts, checked against an independent NumPy implementation of
 * torch.nn.RNN/LSTM/GRU (__test__/pytorch/torch_ref.py, whose output is committed in
 * __test__/pytorch/cases/, so these tests need no Python).
 */
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadFileError, fromBuffer, loadModel, sequential, type ModelSpec } from 'gyre';
import { readSafetensors, seeded } from './helpers';

const spec: ModelSpec = {
  input: { vocabSize: 6 },
  layers: [
    { type: 'embedding', dim: 4 },
    { type: 'gru', hiddenSize: 8, numLayers: 2, bidirectional: true, dropout: 0.1 },
    { type: 'dense', units: 6 },
  ],
  seed: 2,
};
const x = Array.from({ length: 48 }, (_, i) => Array.from({ length: 2 + (i % 6) }, (_, t) => (i * 7 + t * 3) % 6));
const y = x.map((s) => s.map((v) => (v + 2) % 6));
const fitOptions = { loss: 'crossEntropy' as const, batchSize: 8, seed: 3, optimizer: { type: 'adam' as const, learningRate: 0.01 } };

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('save and load', () => {
  it('round trips weights, configuration, trained epochs and metadata', async () => {
    const model = sequential(spec);
    await model.fit(x, y, { ...fitOptions, epochs: 1 });
    const dir = await mkdtemp(join(tmpdir(), 'gyre-'));
    const path = join(dir, 'model.safetensors');
    await model.save(path, { metadata: { vocabulary: 'abcdef', note: 1 } });
    const back = await loadModel(path);
    expect(back.config).toEqual(model.config);
    expect(back.trainedEpochs).toBe(1);
    expect(back.metadata).toEqual({ vocabulary: 'abcdef', note: 1 });
    expect(back.predictSync(x.slice(0, 5)).data).toEqual(model.predictSync(x.slice(0, 5)).data);
    const same = fromBuffer(model.toBuffer({ includeOptimizer: false }));
    expect(Object.keys(same.parameters())).toEqual(Object.keys(model.parameters()));
    expect(await readdir(dir)).toEqual(['model.safetensors']); // no temporary file left
  });

  it('continues training after a load exactly as uninterrupted training does', async () => {
    const whole = sequential(spec);
    await whole.fit(x, y, { ...fitOptions, epochs: 3 });
    const first = sequential(spec);
    await first.fit(x, y, { ...fitOptions, epochs: 1 });
    const resumed = fromBuffer(first.toBuffer());
    await resumed.fit(x, y, { ...fitOptions, epochs: 2 });
    expect(resumed.trainedEpochs).toBe(3);
    const a = whole.parameters();
    const b = resumed.parameters();
    for (const name of Object.keys(a)) expect(bits(b[name]!.data).equals(bits(a[name]!.data)), name).toBe(true);
    // Without the optimizer state the continuation is a different run.
    const cold = fromBuffer(first.toBuffer({ includeOptimizer: false }));
    await cold.fit(x, y, { ...fitOptions, epochs: 2 });
    expect(bits(cold.parameters()['1.weight_hh_l0']!.data).equals(bits(a['1.weight_hh_l0']!.data))).toBe(false);
  });

  it('replaces a file atomically and leaves it intact when a save fails', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gyre-'));
    const path = join(dir, 'm.safetensors');
    const model = sequential(spec);
    await model.save(path);
    const before = await readFile(path);
    const training = model.fit(x, y, { ...fitOptions, epochs: 2 });
    await expect(model.save(path)).rejects.toMatchObject({ code: 'GYRE_BUSY' });
    await training;
    expect((await readFile(path)).equals(before)).toBe(true);
    await model.save(path);
    expect((await readFile(path)).equals(before)).toBe(false);
    expect(await readdir(dir)).toEqual(['m.safetensors']);
  });

  it('rejects files that are not gyre models with a typed error', async () => {
    const pickle = Uint8Array.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]);
    expect(() => fromBuffer(pickle)).toThrow(BadFileError);
    const model = sequential(spec);
    const bytes = model.toBuffer();
    expect(() => fromBuffer(bytes.subarray(0, bytes.length - 10))).toThrow(BadFileError);
    expect(() => fromBuffer(model.exportPyTorch(1))).toThrow(/not a gyre model/);
    await expect(loadModel(join(tmpdir(), 'does-not-exist.safetensors'))).rejects.toThrow(/ENOENT/);
  });
});

describe('PyTorch state_dicts (checked against a NumPy implementation of torch.nn)', () => {
  // Made by __test__/pytorch/torch_ref.py (`make`), committed; CI checks they regenerate.
  const casesDir = join(__dirname, 'pytorch', 'cases');
  const cases = ['lstm', 'gru', 'rnn_relu', 'rnn_tanh'] as const;
  interface Case {
    mode: 'LSTM' | 'GRU' | 'RNN_RELU' | 'RNN_TANH';
    input_size: number;
    hidden_size: number;
    num_layers: number;
    bidirectional: boolean;
    lengths: number[];
    x: number[][][];
    output: number[][][];
    h_n: number[][][];
    c_n?: number[][][];
  }
  const readCase = async (name: string) => ({
    c: JSON.parse(await readFile(join(casesDir, `${name}.json`), 'utf8')) as Case,
    bytes: await readFile(join(casesDir, `${name}.safetensors`)),
  });

  const layerFor = (c: Case) => {
    const type = c.mode === 'LSTM' ? 'lstm' : c.mode === 'GRU' ? 'gru' : 'rnn';
    const base = { hiddenSize: c.hidden_size, numLayers: c.num_layers, bidirectional: c.bidirectional };
    return type === 'rnn'
      ? { type, ...base, nonlinearity: c.mode === 'RNN_RELU' ? ('relu' as const) : ('tanh' as const) }
      : { type, ...base };
  };
  const inputOf = (c: Case) => ({
    data: Float32Array.from(c.x.flat(2)),
    shape: [c.x.length, c.x[0]!.length, c.input_size],
    lengths: c.lengths,
  });

  it.each(cases)("%s: imports into a layer and reproduces torch.nn's outputs and final states", async (name) => {
    const { c, bytes } = await readCase(name);
    const model = sequential({ input: { features: c.input_size }, layers: [layerFor(c) as never], seed: 1 });
    model.importPyTorch(0, bytes, { prefix: 'rnn.' });
    const p = model.predictSync(inputOf(c));
    const flatOut = c.output.flat(2);
    expect(p.data.length).toBe(flatOut.length);
    p.data.forEach((v, i) => {
      expect(Math.abs(v - flatOut[i]!)).toBeLessThan(1e-5);
    });
    const hn = c.h_n.flat(2);
    p.states[0]!.hidden.data.forEach((v, i) => {
      expect(Math.abs(v - hn[i]!)).toBeLessThan(1e-5);
    });
    if (c.c_n) {
      const cn = c.c_n.flat(2);
      p.states[0]!.cell!.data.forEach((v, i) => {
        expect(Math.abs(v - cn[i]!)).toBeLessThan(1e-5);
      });
    }
  });

  it.each(cases)('%s: exports exactly the state_dict torch.nn has, tensor for tensor', async (name) => {
    const { c, bytes } = await readCase(name);
    const torch = readSafetensors(bytes);
    const expected = Object.fromEntries(
      Object.entries(torch)
        .filter(([k]) => k.startsWith('rnn.'))
        .map(([k, t]) => [k.slice('rnn.'.length), t]),
    );
    // The imported weights come back out under torch's names, shapes, dtype and values.
    const model = sequential({ input: { features: c.input_size }, layers: [layerFor(c) as never], seed: 1 });
    model.importPyTorch(0, bytes, { prefix: 'rnn.' });
    const exported = readSafetensors(model.exportPyTorch(0));
    expect(Object.keys(exported).sort()).toEqual(Object.keys(expected).sort());
    for (const [k, t] of Object.entries(expected)) {
      expect(exported[k]!.dtype, k).toBe('F32');
      expect(exported[k]!.shape, k).toEqual(t.shape);
      expect(Buffer.from(exported[k]!.data).equals(Buffer.from(t.data)), k).toBe(true);
    }
    // gyre's own weights take the same names and shapes, and load back to the same outputs.
    const other = sequential({ input: { features: c.input_size }, layers: [layerFor(c) as never], seed: 9 });
    const mine = readSafetensors(other.exportPyTorch(0));
    expect(Object.fromEntries(Object.entries(mine).map(([k, t]) => [k, t.shape]))).toEqual(
      Object.fromEntries(Object.entries(expected).map(([k, t]) => [k, t.shape])),
    );
    const back = sequential({ input: { features: c.input_size }, layers: [layerFor(c) as never], seed: 1 });
    back.importPyTorch(0, other.exportPyTorch(0));
    expect(back.predictSync(inputOf(c)).data).toEqual(other.predictSync(inputOf(c)).data);
  });

  it('lists missing and extra tensors and names mismatched shapes', async () => {
    const { bytes } = await readCase('lstm');
    const probe = [[Array.from(seeded(1)(3))]];
    const wrongSize = sequential({ input: { features: 3 }, layers: [{ type: 'lstm', hiddenSize: 5, numLayers: 2, bidirectional: true }] });
    const before = wrongSize.predictSync(probe).data;
    expect(() => wrongSize.importPyTorch(0, bytes, { prefix: 'rnn.' })).toThrow(
      /tensor "rnn\.bias_hh_l0".*has shape \[16\] but layer 0 needs \[20\]/,
    );
    expect(wrongSize.predictSync(probe).data).toEqual(before); // a failed import changes nothing
    const oneLayer = sequential({ input: { features: 3 }, layers: [{ type: 'lstm', hiddenSize: 4, bidirectional: true }] });
    expect(() => oneLayer.importPyTorch(0, bytes, { prefix: 'rnn.' })).toThrow(/not in layer 0: rnn\.bias_hh_l1/);
    expect(() => oneLayer.importPyTorch(0, bytes)).toThrow(/missing bias_hh_l0/);
  });
});
