/**
 * `inputDropout`: dropout on a recurrent layer's input with one mask per sequence, in training
 * only (the gradients with the masks fixed are checked by finite differences in
 * crates/gyre-core/tests/model.rs; here the TypeScript surface).
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, sequential } from 'gyre';

const x = Array.from({ length: 16 }, (_, s) => Array.from({ length: 5 }, (_, t) => [Math.sin(s + t), Math.cos(s - 2 * t), 0.1 * t]));
const y = x.map((q) => [q[4]![0]! - q[0]![1]!]);
const spec = (inputDropout?: number) =>
  sequential({
    input: { features: 3 },
    layers: [
      { type: 'gru', hiddenSize: 6, returnSequences: false, ...(inputDropout === undefined ? {} : { inputDropout }) },
      { type: 'dense', units: 1 },
    ],
    seed: 4,
  });

describe('inputDropout', () => {
  it('is off at inference, seeded in training, and changes what training learns', async () => {
    const a = spec(0.4);
    const b = spec();
    expect(Array.from(a.predictSync(x).data)).toEqual(Array.from(b.predictSync(x).data));
    const options = { loss: 'mse' as const, epochs: 3, batchSize: 4, optimizer: { type: 'adam' as const, learningRate: 0.02 } };
    await a.fit(x, y, options);
    await b.fit(x, y, options);
    const again = spec(0.4);
    await again.fit(x, y, options);
    expect(Array.from(again.predictSync(x).data)).toEqual(Array.from(a.predictSync(x).data));
    expect(Array.from(a.predictSync(x).data)).not.toEqual(Array.from(b.predictSync(x).data));
  });

  it('is written in the configuration only when set, and checked', () => {
    expect('inputDropout' in spec().config.layers[0]!).toBe(false);
    expect(spec(0.25).config.layers[0]).toMatchObject({ inputDropout: 0.25 });
    expect(() => spec(1)).toThrow(InvalidArgumentError);
    expect(() => spec(1)).toThrow(/layers\[0\]\.inputDropout must be a number in \[0, 1\), got 1/);
    expect(() => spec(-0.1)).toThrow(/inputDropout/);
  });
});
