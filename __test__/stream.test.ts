/** Streaming inference: per-stream state handles stepped one time step at a time. */
import { describe, expect, it } from 'vitest';
import { GyreError, InvalidArgumentError, ShapeMismatchError, sequential } from 'gyre';
import { seeded } from './helpers';

const model = sequential({
  input: { features: 3 },
  layers: [
    { type: 'lstm', hiddenSize: 8, numLayers: 2 },
    { type: 'dense', units: 2, activation: 'tanh' },
  ],
  seed: 4,
});

describe('streams', () => {
  const r = seeded(2);
  const seqs = [0, 1].map(() => Array.from({ length: 6 }, () => Array.from(r(3))));
  const whole = model.predictSync(seqs);

  it('stepping one step at a time gives the outputs of the whole sequence', () => {
    const stream = model.createStream(2);
    for (let t = 0; t < 6; t++) {
      const out = stream.step([seqs[0]![t]!, seqs[1]![t]!]);
      for (let b = 0; b < 2; b++) {
        for (let u = 0; u < 2; u++) expect(out[b * 2 + u]).toBeCloseTo(whole.data[(b * 6 + t) * 2 + u]!, 6);
      }
    }
  });

  it('copies, serializes, restores and resets independently', () => {
    const a = model.createStream();
    for (let t = 0; t < 3; t++) a.step(seqs[0]![t]!);
    const b = a.copy();
    const saved = model.restoreStream(a.toArray());
    const next = a.step(seqs[0]![3]!);
    expect(b.step(seqs[0]![3]!)).toEqual(next);
    expect(saved.step(seqs[0]![3]!)).toEqual(next);
    a.reset();
    const fresh = model.createStream();
    expect(a.step(seqs[0]![0]!)).toEqual(fresh.step(seqs[0]![0]!));
  });

  it('keeps thousands of live streams apart', () => {
    const streams = Array.from({ length: 2000 }, () => model.createStream());
    const outs = streams.map((s, i) => s.step(seqs[i % 2]![0]!));
    expect(outs[0]).toEqual(outs[2]);
    expect(outs[0]).not.toEqual(outs[1]);
  });

  it('rejects input of the wrong size or kind without changing the state', () => {
    const s = model.createStream();
    s.step(seqs[0]![0]!);
    const before = s.toArray();
    expect(() => s.step([1, 2])).toThrow(ShapeMismatchError);
    expect(() => s.step([1, Number.NaN, 3])).toThrow(InvalidArgumentError);
    expect(() => s.step('x' as never)).toThrow(InvalidArgumentError);
    expect(s.toArray()).toEqual(before);
    expect(() => model.restoreStream(new Float32Array(3))).toThrow(ShapeMismatchError);
    expect(() => model.createStream(0)).toThrow(InvalidArgumentError);
  });

  it('refuses a model with a bidirectional layer: its backward direction needs the whole sequence', () => {
    const bi = sequential({
      input: { features: 3 },
      layers: [
        { type: 'gru', hiddenSize: 4 },
        { type: 'lstm', hiddenSize: 4, bidirectional: true },
        { type: 'dense', units: 2 },
      ],
      seed: 1,
    });
    let err: unknown;
    try {
      bi.createStream();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GyreError);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as GyreError).code).toBe('GYRE_INVALID_ARGUMENT');
    expect((err as GyreError).message).toBe(
      "layers[1].bidirectional must be false for a stream (a stream runs one step at a time and cannot run layer 1's backward direction, which needs the whole sequence; use predict), got true",
    );
    expect(() => bi.restoreStream(new Float32Array(24))).toThrow(InvalidArgumentError);
    bi.dispose();
  });
});
