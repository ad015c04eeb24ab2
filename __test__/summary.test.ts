/**
 * `model.summary()` (output shapes and parameter counts against PyTorch's formulas) and
 * `predictClasses` (against the outputs of `predictSync`, ranked by hand).
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, sequential } from 'gyre';

describe('model.summary()', () => {
  const model = () =>
    sequential({
      input: { vocabSize: 30 },
      layers: [
        { type: 'embedding', dim: 8, trainable: false },
        { type: 'lstm', hiddenSize: 6, numLayers: 2, bidirectional: true, dropout: 0.1 },
        { type: 'gru', hiddenSize: 5, returnSequences: false },
        { type: 'dense', units: 3, activation: 'softmax' },
      ],
    });

  it('gives each layer its output shape and parameter count (PyTorch formulas), and the totals', () => {
    const m = model();
    const s = m.summary();
    expect(s.inputShape).toEqual([null, null]);
    // LSTM per direction and stacked layer: 4H·(I + H) + 8H; layer 2 reads both directions (2H).
    const lstm = 2 * (4 * 6 * (8 + 6) + 8 * 6) + 2 * (4 * 6 * (12 + 6) + 8 * 6);
    // GRU: 3H·(I + H) + 6H.
    const gru = 3 * 5 * (12 + 5) + 6 * 5;
    expect(s.layers.map((l) => [l.type, l.outputShape, l.parameters, l.trainable])).toEqual([
      ['embedding', [null, null, 8], 30 * 8, false],
      ['lstm', [null, null, 12], lstm, true],
      ['gru', [null, 5], gru, true],
      ['dense', [null, 3], 3 * 5 + 3, true],
    ]);
    expect(s.totalParameters).toBe(m.parameterCount);
    expect(s.trainableParameters).toBe(m.parameterCount - 240);
    expect(s.layers[1]!.description).toBe('hidden 6 × 2 layers, bidirectional (concat), sequences, dropout 0.1');
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });

  it('as text: an aligned table with the totals', () => {
    const text = model().summary({ format: 'text' });
    const lines = text.split('\n');
    expect(lines[0]).toBe('input [?, ?]');
    expect(lines[1]).toMatch(/^layer\s+options\s+output shape\s+parameters$/);
    expect(lines).toContainEqual(expect.stringMatching(/^0 embedding\s+30 ids → 8\s+\[\?, \?, 8\]\s+240 \(frozen\)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^3 dense\s+3 units, softmax\s+\[\?, 3\]\s+18$/));
    expect(lines.at(-1)).toMatch(/^parameters: [\d,]+ \([\d,]+ trainable\)$/);
    expect(() => model().summary({ format: 'yaml' } as never)).toThrow(/format must be one of 'json', 'text'/);
  });
});

describe('predictClasses', () => {
  const x = Array.from({ length: 7 }, (_, s) => Array.from({ length: 4 }, (_, t) => [Math.sin(s + t), Math.cos(2 * s - t)]));

  /** Classes ranked by probability (ties: lower class first), from probabilities `p`. */
  const ranked = (p: number[]) => p.map((_, c) => c).sort((a, b) => p[b]! - p[a]! || a - b);

  it('softmax outputs: the classes ranked by predictSync, top-k with their probabilities', async () => {
    const m = sequential({
      input: { features: 2 },
      layers: [
        { type: 'gru', hiddenSize: 4, returnSequences: false },
        { type: 'dense', units: 5, activation: 'softmax' },
      ],
      seed: 2,
    });
    const out = m.predictSync(x).data;
    const got = m.predictClassesSync(x, { topK: 3 }) as {
      class: number;
      probability: number;
      top: { class: number; probability: number }[];
    }[];
    expect(got).toHaveLength(7);
    got.forEach((g, s) => {
      const p = Array.from(out.subarray(s * 5, (s + 1) * 5));
      const order = ranked(p);
      expect(g.top.map((t) => t.class)).toEqual(order.slice(0, 3));
      expect(g.top.map((t) => t.probability)).toEqual(order.slice(0, 3).map((c) => p[c]));
      expect([g.class, g.probability]).toEqual([order[0], p[order[0]!]]);
    });
    expect(await m.predictClasses(x, { topK: 3 })).toEqual(got);
    expect((m.predictClassesSync(x) as { top: unknown[] }[])[0]!.top).toHaveLength(1);
    expect((m.predictClassesSync(x, { topK: 9 }) as { top: unknown[] }[])[0]!.top).toHaveLength(5);
  });

  it('linear outputs are logits (softmaxed); one sigmoid unit is P(class 1); sequence models give each real step', () => {
    const logits = sequential({
      input: { features: 2 },
      layers: [
        { type: 'lstm', hiddenSize: 3 },
        { type: 'dense', units: 4 },
      ],
      seed: 4,
    });
    const ragged = x.map((q, s) => q.slice(0, 1 + (s % 4)));
    const out = logits.predictSync(ragged).data;
    const steps = logits.predictClassesSync(ragged, { topK: 2 }) as { class: number; probability: number }[][];
    expect(steps.map((s) => s.length)).toEqual(ragged.map((q) => q.length));
    steps.forEach((seq, s) => {
      seq.forEach((g, t) => {
        const z = Array.from(out.subarray((s * 4 + t) * 4, (s * 4 + t + 1) * 4));
        const e = z.map((v) => Math.exp(v - Math.max(...z)));
        const p = e.map((v) => v / e.reduce((a, b) => a + b, 0));
        expect(g.class).toBe(ranked(p)[0]);
        expect(g.probability).toBeCloseTo(Math.max(...p), 12);
      });
    });
    const binary = sequential({
      input: { features: 2 },
      layers: [
        { type: 'rnn', hiddenSize: 3, returnSequences: false },
        { type: 'dense', units: 1, activation: 'sigmoid' },
      ],
      seed: 5,
    });
    const p1 = binary.predictSync(x).data;
    const b = binary.predictClassesSync(x, { topK: 2 }) as { class: number; top: { class: number; probability: number }[] }[];
    b.forEach((g, s) => {
      expect(g.class).toBe(p1[s]! > 0.5 ? 1 : 0);
      expect(g.top.find((t) => t.class === 1)!.probability).toBe(p1[s]);
      expect(g.top.find((t) => t.class === 0)!.probability).toBeCloseTo(1 - p1[s]!, 7);
    });
  });

  it('a model that is not a classifier, or a bad topK, is an error', () => {
    const regressor = sequential({
      input: { features: 2 },
      layers: [
        { type: 'gru', hiddenSize: 3, returnSequences: false },
        { type: 'dense', units: 2, activation: 'tanh' },
      ],
    });
    expect(() => regressor.predictClassesSync(x)).toThrow(InvalidArgumentError);
    expect(() => regressor.predictClassesSync(x)).toThrow(/this model ends with a dense layer of 2 unit\(s\) with tanh/);
    const bare = sequential({ input: { features: 2 }, layers: [{ type: 'lstm', hiddenSize: 3 }] });
    expect(() => bare.predictClassesSync(x)).toThrow(/this model ends with its lstm layer/);
    const m = sequential({ input: { features: 2 }, layers: [{ type: 'dense', units: 3, activation: 'softmax' }] });
    expect(() => m.predictClassesSync(x, { topK: 0 })).toThrow(/topK must be a positive integer/);
    expect(() => m.predictClassesSync(x, { k: 2 } as never)).toThrow(/unknown option k/);
  });
});
