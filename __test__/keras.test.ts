/**
 * Importing Keras files as Keras writes them (`.keras` archives, `.weights.h5` with the config,
 * legacy `.h5` models): the files in `keras/` were written by Keras 3 itself
 * (`keras/make_keras.py`, which also recorded Keras' own `predict` in `keras/expected.json`);
 * gyre's predictions must agree within 1e-5. Then malformed files and unsupported models.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strFromU8, strToU8, unzipSync, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadFileError, fromBuffer, importKeras, InvalidArgumentError, loadKeras, MissingArgumentError, type Model } from 'gyre';

const DIR = join(__dirname, 'keras');
const TOL = 1e-5;

interface Case {
  input: unknown[];
  input_shape: number[];
  output: unknown[];
  output_shape: number[];
}
interface Expected {
  keras_version: string;
  cases: Record<string, Case>;
}

let expected: Expected;
let tmp: string;
beforeAll(async () => {
  expected = JSON.parse(await readFile(join(DIR, 'expected.json'), 'utf8')) as Expected;
  tmp = await mkdtemp(join(tmpdir(), 'gyre-keras-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function flat(v: unknown[]): number[] {
  return (v as unknown[]).flat(Number.POSITIVE_INFINITY) as number[];
}

/** gyre's prediction on the case's input. */
function predict(model: Model, c: Case, tokens = false): { data: Float32Array; shape: readonly number[] } {
  const x = flat(c.input);
  const data = tokens ? Uint32Array.from(x) : Float32Array.from(x);
  return model.predictSync({ data, shape: c.input_shape });
}

/** The largest difference from Keras' predict; `steps` limits each sequence's compared steps. */
function diffFromKeras(model: Model, name: string, steps?: number[]): number {
  const c = expected.cases[name]!;
  const y = predict(model, c, name === 'embedding');
  expect([...y.shape]).toEqual(c.output_shape);
  const ref = flat(c.output);
  const [batch, t, width] = c.output_shape as [number, number, number];
  let d = 0;
  for (let i = 0; i < ref.length; i++) {
    if (steps) {
      const s = Math.floor(i / (t * width));
      const step = Math.floor(i / width) % t;
      if (step >= steps[s]!) continue;
    }
    d = Math.max(d, Math.abs(ref[i]! - y.data[i]!));
  }
  expect(batch).toBe(c.input_shape[0]);
  return d;
}

describe('.keras archives written by Keras 3 predict as Keras does', () => {
  it('the reference files come from Keras 3', () => {
    expect(expected.keras_version).toMatch(/^3\./);
  });

  it.each([
    ['lstm', { layers: ['lstm', 'dense'] }],
    ['gru_reset_after', { layers: ['gru', 'dense'] }],
    ['gru_reset_before', { layers: ['gru', 'dense'] }],
    ['bidirectional', { layers: ['lstm', 'gru', 'dense'] }],
    ['embedding', { layers: ['embedding', 'rnn', 'dense'] }],
    ['simple_rnn', { layers: ['rnn', 'dense'] }],
    ['lstm_hard_sigmoid', { layers: ['lstm', 'dense'] }],
  ])('%s', async (name, { layers }) => {
    const model = await loadKeras(join(DIR, `${name}.keras`));
    expect(model.config.layers.map((l) => l.type)).toEqual(layers);
    expect(diffFromKeras(model, name)).toBeLessThan(TOL);
  });

  it("maps each layer's options: reset_after, merge modes, relu, Keras 3's hard sigmoid, mask_zero, TimeDistributed", async () => {
    const cfg = async (name: string) => (await loadKeras(join(DIR, `${name}.keras`))).config;
    expect((await cfg('gru_reset_after')).layers[0]).toMatchObject({ type: 'gru', resetAfter: true, returnSequences: true });
    expect((await cfg('gru_reset_after')).layers[1]).toMatchObject({ type: 'dense', units: 3, activation: 'softmax' });
    expect((await cfg('gru_reset_before')).layers[0]).toMatchObject({ type: 'gru', resetAfter: false, returnSequences: false });
    const bi = await cfg('bidirectional');
    expect(bi.layers[0]).toMatchObject({ type: 'lstm', bidirectional: true, merge: 'concat', returnSequences: true });
    expect(bi.layers[1]).toMatchObject({ type: 'gru', bidirectional: true, merge: 'sum', returnSequences: false });
    expect((await cfg('simple_rnn')).layers[0]).toMatchObject({ type: 'rnn', nonlinearity: 'relu' });
    expect((await cfg('lstm_hard_sigmoid')).layers[0]).toMatchObject({ recurrentActivation: 'hardSigmoidKeras3' });
    expect((await cfg('embedding')).input).toEqual({ vocabSize: 12, maskZero: true });
    expect((await cfg('lstm')).input).toEqual({ features: 3 });
  });

  it('Masking + stacked LSTM and GRU: equal to Keras at the real steps (the masked tail is the sequence length)', async () => {
    const model = await loadKeras(join(DIR, 'masking_stacked.keras'));
    expect(model.config.input).toEqual({ features: 2, maskValue: 0 });
    // make_keras.py zeroes sequence 1 from step 3 on.
    expect(diffFromKeras(model, 'masking_stacked', [6, 3, 6])).toBeLessThan(TOL);
  });

  it('importKeras reads the same bytes; the model saves, loads and trains in gyre', async () => {
    const bytes = await readFile(join(DIR, 'bidirectional.keras'));
    const model = importKeras(bytes);
    expect(diffFromKeras(model, 'bidirectional')).toBeLessThan(TOL);
    const again = fromBuffer(model.toBuffer());
    expect(diffFromKeras(again, 'bidirectional')).toBeLessThan(TOL);
    const c = expected.cases.bidirectional!;
    const x = { data: Float32Array.from(flat(c.input)), shape: c.input_shape };
    const before = model.evaluateSync(x, new Float32Array(6), { loss: 'mse' });
    await model.fit(x, new Float32Array(6), { loss: 'mse', epochs: 5, optimizer: { type: 'adam', learningRate: 0.01 } });
    expect(model.evaluateSync(x, new Float32Array(6), { loss: 'mse' }).loss).toBeLessThan(before.loss);
  });
});

describe('.weights.h5 with the config, and legacy .h5 models', () => {
  const weights = join(DIR, 'gru_reset_after.weights.h5');
  const configPath = join(DIR, 'gru_reset_after.config.json');

  it('a .weights.h5 file with model.to_json() as a path, an object or a JSON string', async () => {
    const text = await readFile(configPath, 'utf8');
    for (const config of [configPath, text, JSON.parse(text) as object]) {
      const model = await loadKeras(weights, { config });
      expect(diffFromKeras(model, 'gru_reset_after')).toBeLessThan(TOL);
    }
    expect(diffFromKeras(importKeras(await readFile(weights), { config: text }), 'gru_reset_after')).toBeLessThan(TOL);
  });

  it("an archive's config.json serves as the config of a .weights.h5 file", async () => {
    const files = unzipSync(await readFile(join(DIR, 'gru_reset_after.keras')));
    const model = importKeras(await readFile(weights), { config: strFromU8(files['config.json']!) });
    expect(diffFromKeras(model, 'gru_reset_after')).toBeLessThan(TOL);
  });

  it('a .weights.h5 file without a config is an error naming options.config', async () => {
    await expect(loadKeras(weights)).rejects.toThrow(MissingArgumentError);
    await expect(loadKeras(weights)).rejects.toThrow(/options\.config/);
  });

  it.each(['bidirectional', 'lstm_hard_sigmoid'])("legacy %s.h5 (model.save('m.h5')) predicts as Keras does", async (name) => {
    const model = await loadKeras(join(DIR, `${name}.h5`));
    expect(diffFromKeras(model, name)).toBeLessThan(TOL);
    if (name === 'lstm_hard_sigmoid') expect(model.config.layers[0]).toMatchObject({ recurrentActivation: 'hardSigmoidKeras3' });
  });

  it('a config given with a file that holds its own is an error', async () => {
    await expect(loadKeras(join(DIR, 'lstm.keras'), { config: configPath })).rejects.toThrow(/options\.config is for \.weights\.h5/);
    await expect(loadKeras(join(DIR, 'bidirectional.h5'), { config: configPath })).rejects.toThrow(/options\.config is for \.weights\.h5/);
  });
});

describe('malformed files and unsupported models are errors naming the file', () => {
  interface KerasConfig {
    class_name: string;
    config: { layers: { class_name: string; config: Record<string, unknown> }[] };
  }
  /** lstm.keras with its config.json changed by `edit` (or its files replaced), written to a temporary file. */
  async function editedArchive(edit: (config: KerasConfig) => void, files?: (f: Record<string, Uint8Array>) => void): Promise<string> {
    const f = unzipSync(await readFile(join(DIR, 'lstm.keras')));
    const config = JSON.parse(strFromU8(f['config.json']!)) as KerasConfig;
    edit(config);
    f['config.json'] = strToU8(JSON.stringify(config));
    files?.(f);
    const path = join(tmp, `edited-${Math.random().toString(36).slice(2)}.keras`);
    await writeFile(path, zipSync(f));
    return path;
  }
  const lstmConfig = (c: KerasConfig) => c.config.layers[1]!.config;

  it('an unsupported layer class, naming the layer and the file', async () => {
    const path = await editedArchive((c) => {
      c.config.layers[1]!.class_name = 'Conv1D';
    });
    const err = await loadKeras(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toContain(`Keras import (${path}): layer "lstm" (Conv1D, layers[1])`);
    expect((err as Error).message).toContain('not supported');
  });

  it.each([
    ['recurrent_activation', 'relu', /recurrent_activation "relu" is not supported/],
    ['return_state', true, /return_state true is not supported/],
    ['activation', 'sigmoid', /activation "sigmoid" is not supported/],
  ])('an unsupported option (%s: %s)', async (key, value, message) => {
    const path = await editedArchive((c) => {
      lstmConfig(c)[key] = value;
    });
    await expect(loadKeras(path)).rejects.toThrow(message);
    await expect(loadKeras(path)).rejects.toThrow(/layer "lstm" \(LSTM/);
  });

  it("a recurrent layer's dropout (on its inputs) becomes inputDropout, its recurrent_dropout recurrentDropout", async () => {
    const path = await editedArchive((c) => {
      lstmConfig(c).dropout = 0.25;
      lstmConfig(c).recurrent_dropout = 0.1;
    });
    const m = await loadKeras(path);
    expect(m.config.layers[0]).toMatchObject({ type: 'lstm', inputDropout: 0.25, recurrentDropout: 0.1 });
    expect(diffFromKeras(m, 'lstm')).toBeLessThan(TOL);
    for (const key of ['dropout', 'recurrent_dropout']) {
      const bad = await editedArchive((c) => {
        lstmConfig(c)[key] = 1.5;
      });
      await expect(loadKeras(bad)).rejects.toThrow(
        new RegExp(`layer "lstm" \\(LSTM, layers\\[1\\]\\): ${key} must be a number in \\[0, 1\\), got 1\\.5`),
      );
    }
  });

  it('a functional model', async () => {
    const path = await editedArchive((c) => {
      c.class_name = 'Functional';
    });
    await expect(loadKeras(path)).rejects.toThrow(
      /only Sequential models can be imported as a sequential model; the model is a "?Functional.*loadKerasGraph/,
    );
  });

  it('an archive without its weights, or with weights of another shape', async () => {
    const noWeights = await editedArchive(
      () => {},
      (f) => {
        delete f['model.weights.h5'];
      },
    );
    await expect(loadKeras(noWeights)).rejects.toThrow(BadFileError);
    await expect(loadKeras(noWeights)).rejects.toThrow(
      /holds config\.json and model\.weights\.h5; this one has "metadata\.json", "config\.json"/,
    );
    const wider = await editedArchive((c) => {
      lstmConfig(c).units = 6;
    });
    await expect(loadKeras(wider)).rejects.toMatchObject({
      code: 'GYRE_SHAPE_MISMATCH',
      message: expect.stringMatching(/expected \[3, 24\]/),
    });
  });

  it('truncated, empty or foreign bytes are a BadFileError, never a crash', async () => {
    const weights = await readFile(join(DIR, 'gru_reset_after.weights.h5'));
    const config = await readFile(join(DIR, 'gru_reset_after.config.json'), 'utf8');
    for (const cut of [8, 1000, 4000, 10000]) {
      expect(() => importKeras(weights.subarray(0, cut), { config })).toThrow(BadFileError);
    }
    const archive = await readFile(join(DIR, 'lstm.keras'));
    for (const cut of [10, 500, archive.length - 10]) expect(() => importKeras(archive.subarray(0, cut))).toThrow(BadFileError);
    expect(() => importKeras(new Uint8Array(0))).toThrow(/expected a \.keras archive/);
    expect(() => importKeras(Buffer.from('{"class_name": "Sequential"}'))).toThrow(BadFileError);
    expect(() => importKeras(weights, { config: 'not json' })).toThrow(/options\.config is not valid JSON/);
  });

  it('a missing file is a FileError naming it; bad arguments are typed errors', async () => {
    await expect(loadKeras(join(tmp, 'missing.keras'))).rejects.toMatchObject({ code: 'GYRE_FILE' });
    await expect(loadKeras(join(DIR, 'gru_reset_after.weights.h5'), { config: join(tmp, 'missing.json') })).rejects.toMatchObject({
      code: 'GYRE_FILE',
      message: expect.stringContaining('missing.json'),
    });
    await expect(loadKeras(42 as unknown as string)).rejects.toThrow(InvalidArgumentError);
    expect(() => importKeras('model.keras' as unknown as Uint8Array)).toThrow(/data must be the file's bytes/);
    expect(() => importKeras(new Uint8Array(4), 3 as unknown as object)).toThrow(/options must be an object/);
  });
});
