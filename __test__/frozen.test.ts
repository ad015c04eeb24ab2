/**
 * Frozen layers (`trainable: false`): training leaves their weights bit for bit as they were
 * and keeps no optimizer state for them (none in the saved file either); the model saves,
 * loads and trains on exactly; Keras layers with `trainable: false` import frozen.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { fromBuffer, importTfjs, sequential, type Model, type ModelSpec } from 'gyre';
import { readSafetensors, seeded } from './helpers';
import { artifactsOf } from './tfjs-helpers';

const [S, T, V] = [24, 6, 12];
const r = seeded(4);
const ids = Uint32Array.from(r(S * T), (v) => Math.floor(((v + 1) / 2) * (V - 1)) + 1);
const y = Float32Array.from(r(S * T));
const x = { data: ids, shape: [S, T] };

const spec: ModelSpec = {
  input: { vocabSize: V },
  layers: [
    { type: 'embedding', dim: 4, trainable: false },
    { type: 'gru', hiddenSize: 5 },
    { type: 'dense', units: 1, trainable: false },
  ],
  seed: 3,
};

function bits(m: Model): Record<string, number[]> {
  return Object.fromEntries(Object.entries(m.parameters()).map(([k, v]) => [k, Array.from(new Uint32Array(v.data.buffer.slice(0)))]));
}

const train = (m: Model, epochs: number) =>
  m.fit(x, y, { loss: 'mse', epochs, batchSize: 8, shuffle: true, optimizer: { type: 'adam', learningRate: 0.05 } });

describe('trainable: false', () => {
  it('keeps the layer as it was, trains the others, keeps no optimizer state for it, and resumes exactly', async () => {
    const model = sequential(spec);
    expect(model.config.layers.map((l) => ('trainable' in l ? l.trainable : true))).toEqual([false, true, false]);
    const before = bits(model);
    await train(model, 3);
    const after = bits(model);
    for (const name of Object.keys(before)) {
      const frozen = name.startsWith('0.') || name.startsWith('2.');
      expect(
        after[name]!.every((v, i) => v === before[name]![i]),
        name,
      ).toBe(frozen);
    }
    const bytes = model.toBuffer();
    const names = Object.keys(readSafetensors(bytes));
    expect(names).toContain('optimizer/1.weight_hh_l0/exp_avg');
    expect(names.filter((n) => n.startsWith('optimizer/0.') || n.startsWith('optimizer/2.'))).toEqual([]);
    const again = fromBuffer(bytes);
    expect(again.config).toEqual(model.config);
    await train(again, 1);
    await train(model, 1);
    expect(bits(again)).toEqual(bits(model));
    expect(bits(again)['0.weight']).toEqual(before['0.weight']);
  });

  it('changes what trains: the same model with every layer trainable moves them all', async () => {
    const free = sequential({ ...spec, layers: spec.layers.map((l) => ({ ...l, trainable: true })) });
    expect(free.config.layers.every((l) => !('trainable' in l))).toBe(true);
    const before = bits(free);
    await train(free, 1);
    const after = bits(free);
    for (const name of Object.keys(before)) expect(after[name], name).not.toEqual(before[name]);
  });

  it('is refused when not a boolean, naming the layer', () => {
    expect(() => sequential({ ...spec, layers: [{ type: 'embedding', dim: 2, trainable: 'no' as unknown as boolean }] })).toThrow(
      /layers\[0\]\.trainable must be a boolean/,
    );
  });

  it('comes from a Keras layer with trainable false', async () => {
    const m = tf.sequential();
    m.add(tf.layers.embedding({ inputDim: V, outputDim: 3, inputLength: T, trainable: false }));
    m.add(tf.layers.lstm({ units: 2, recurrentActivation: 'sigmoid' }));
    const a = await artifactsOf(m);
    const gyre = importTfjs(a.modelJson, a.weightData);
    expect(gyre.config.layers[0]).toMatchObject({ type: 'embedding', trainable: false });
    expect(gyre.config.layers[1]).not.toHaveProperty('trainable');
  });
});
