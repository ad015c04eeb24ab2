/**
 * A model's specification in one shape: `model.config` is a `ModelSpec` that builds the same
 * architecture again, and the public types say what each progress event carries.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { type FitHistory, fromBuffer, type Model, type ModelSpec, type ProgressEvent, sequential } from 'gyre';

/** Parameter names and shapes: the architecture as the weights see it. */
function architecture(model: Model): Record<string, number[]> {
  return Object.fromEntries(Object.entries(model.parameters()).map(([name, p]) => [name, p.shape]));
}

const specs: Record<string, ModelSpec> = {
  'embedding input, lstm, dense': {
    input: { vocabSize: 12 },
    layers: [
      { type: 'embedding', dim: 5 },
      { type: 'lstm', hiddenSize: 6 },
      { type: 'dense', units: 12, activation: 'softmax' },
    ],
    seed: 3,
  },
  'features input, stacked gru with dropout, final state': {
    input: { features: 3 },
    layers: [
      { type: 'gru', hiddenSize: 4, numLayers: 2, dropout: 0.2, returnSequences: false, resetAfter: false },
      { type: 'dense', units: 2 },
    ],
  },
  'bidirectional rnn (relu, concat) then bidirectional lstm (sum)': {
    input: { features: 2 },
    layers: [
      { type: 'rnn', hiddenSize: 3, bidirectional: true, nonlinearity: 'relu' },
      { type: 'lstm', hiddenSize: 4, bidirectional: true, merge: 'sum', numLayers: 2 },
      { type: 'dense', units: 1, activation: 'sigmoid' },
    ],
  },
  'every cell in one model': {
    input: { vocabSize: 7 },
    layers: [
      { type: 'embedding', dim: 3 },
      { type: 'rnn', hiddenSize: 2 },
      { type: 'gru', hiddenSize: 3, bidirectional: true },
      { type: 'lstm', hiddenSize: 4, returnSequences: false },
    ],
  },
};

describe('model.config', () => {
  for (const [name, spec] of Object.entries(specs)) {
    it(`round-trips into sequential(): ${name}`, () => {
      const model = sequential(spec);
      const config = model.config;
      expect(config.input).toEqual(spec.input);
      const again = sequential(config);
      expect(architecture(again)).toEqual(architecture(model));
      expect(again.config).toEqual(config);
      model.dispose();
      again.dispose();
    });
  }

  it('writes every layer default out', () => {
    const model = sequential({ input: { features: 2 }, layers: [{ type: 'gru', hiddenSize: 3 }] });
    expect(model.config).toEqual({
      input: { features: 2 },
      layers: [
        {
          type: 'gru',
          hiddenSize: 3,
          numLayers: 1,
          bidirectional: false,
          merge: 'concat',
          returnSequences: true,
          dropout: 0,
          resetAfter: true,
        },
      ],
    });
    model.dispose();
  });

  it('is typed as the model spec', () => {
    expectTypeOf<Model['config']>().toEqualTypeOf<ModelSpec>();
  });
});

describe('ProgressEvent', () => {
  it('tells batch and epoch events apart by kind', async () => {
    const handle = (e: ProgressEvent): number => {
      if (e.kind === 'batch') {
        expectTypeOf(e.batch).toEqualTypeOf<number>();
        return e.batch;
      }
      expectTypeOf(e.learningRate).toEqualTypeOf<number>();
      expectTypeOf(e.valLoss).toEqualTypeOf<number | undefined>();
      return e.epoch;
    };
    expectTypeOf<FitHistory['epochs'][number]['kind']>().toEqualTypeOf<'epoch'>();

    const model = sequential({
      input: { features: 1 },
      layers: [
        { type: 'lstm', hiddenSize: 2, returnSequences: false },
        { type: 'dense', units: 1 },
      ],
    });
    const events: ProgressEvent[] = [];
    const history = await model.fit([[[0.1], [0.2]], [[0.3]], [[-0.4], [0.5], [0.6]]], [[0.1], [0.2], [0.3]], {
      loss: 'mse',
      epochs: 2,
      batchSize: 2,
      onProgress: (e) => events.push(e),
    });
    expect(events.map(handle)).toEqual([1, 2, 1, 1, 2, 2]);
    for (const e of events) {
      if (e.kind === 'batch') expect(e.batches).toBe(2);
      else expect(Number.isFinite(e.learningRate)).toBe(true);
    }
    expect(history.epochs.map((e) => e.kind)).toEqual(['epoch', 'epoch']);
    model.dispose();
  });
});

describe('the published declarations', () => {
  /** Every .d.ts the package ships (dist/, without the examples). */
  const declarations = (dir = join(__dirname, '..', 'dist')): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory()
        ? e.name === 'examples'
          ? []
          : declarations(join(dir, e.name))
        : e.name.endsWith('.d.ts')
          ? [join(dir, e.name)]
          : [],
    );

  it('leave out what is marked @internal', () => {
    const text = declarations()
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    for (const internal of ['fromNative', 'NativeHandle', 'nativeFitOptions', 'checkTokenizer', 'hashUnit']) {
      expect(text).not.toContain(internal);
    }
    const stream = readFileSync(join(__dirname, '..', 'dist', 'model', 'stream.d.ts'), 'utf8');
    expect(stream).not.toContain('constructor');
  });
});

describe('goBackwards and input masks in the spec', () => {
  it('round-trip through model.config and files, and are refused where they cannot apply', () => {
    const spec: ModelSpec = {
      input: { features: 2, maskValue: -1 },
      layers: [
        { type: 'lstm', hiddenSize: 3, goBackwards: true },
        { type: 'dense', units: 1 },
      ],
    };
    const model = sequential(spec);
    expect(model.config.input).toEqual({ features: 2, maskValue: -1 });
    expect(model.config.layers[0]).toMatchObject({ goBackwards: true });
    expect(fromBuffer(model.toBuffer()).config).toEqual(model.config);
    expect(() => model.createStream(1)).toThrow(/layers\[0\]\.goBackwards must be false for a stream/);
    expect(() => model.exportPyTorch(0)).toThrow(/layers\[0\]\.goBackwards/);
    expect(() => sequential({ ...spec, layers: [{ type: 'gru', hiddenSize: 2, goBackwards: true, bidirectional: true }] })).toThrow(
      /layers\[0\]\.goBackwards must be false for a bidirectional or stacked layer/,
    );
    expect(() => sequential({ ...spec, input: { features: 2, maskValue: Number.NaN } })).toThrow(/input\.maskValue/);
    // Absent when false or unset: the configuration of other models is unchanged.
    const plain = sequential({
      input: { vocabSize: 4 },
      layers: [
        { type: 'embedding', dim: 2 },
        { type: 'gru', hiddenSize: 2 },
      ],
    });
    expect(plain.config.input).toEqual({ vocabSize: 4 });
    expect(plain.config.layers[1]).not.toHaveProperty('goBackwards');
  });
});
