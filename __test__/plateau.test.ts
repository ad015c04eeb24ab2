/**
 * The reduceOnPlateau schedule through `fit`: each epoch's rate follows from the monitored
 * losses reported before it by PyTorch's `ReduceLROnPlateau` rules (the rules themselves are
 * checked against PyTorch in crates/gyre-core/tests/plateau.rs); its state is saved with the
 * model, so training split across a save and a load matches training in one run, bit for bit.
 */
import { describe, expect, it } from 'vitest';
import { fromBuffer, sequential, type FitOptions, type Model } from 'gyre';
import { seeded } from './helpers';

const [S, T, F] = [32, 5, 2];
const r = seeded(12);
const x = { data: Float32Array.from(r(S * T * F)), shape: [S, T, F] };
const y = Float32Array.from(r(S * T));

const model = (): Model =>
  sequential({
    input: { features: F },
    layers: [
      { type: 'gru', hiddenSize: 4 },
      { type: 'dense', units: 1 },
    ],
    seed: 8,
  });

const options = (epochs: number): FitOptions => ({
  loss: 'mse',
  epochs,
  batchSize: 8,
  // A rate at which the loss levels off within a few epochs, so that the schedule acts.
  optimizer: { type: 'sgd', learningRate: 0.5 },
  schedule: { type: 'reduceOnPlateau', factor: 0.5, patience: 1, threshold: 0.01, cooldown: 1 },
});

/** PyTorch's rules over the reported losses: the rate each epoch should have had. */
function replay(losses: number[], lr: number): number[] {
  let [best, bad, cool] = [Number.POSITIVE_INFINITY, 0, 0];
  const out = [lr];
  for (const loss of losses) {
    if (loss < best * (1 - 0.01)) [best, bad] = [loss, 0];
    else bad++;
    if (cool > 0) [cool, bad] = [cool - 1, 0];
    if (bad > 1) {
      const next = Math.max(lr * 0.5, 0);
      if (lr - next > 1e-8) lr = next;
      [cool, bad] = [1, 0];
    }
    out.push(lr);
  }
  return out;
}

describe("schedule: { type: 'reduceOnPlateau' }", () => {
  it('lowers the rate after the loss stops improving, as PyTorch does', async () => {
    const h = await model().fit(x, y, options(12));
    const rates = h.epochs.map((e) => e.learningRate);
    const losses = h.epochs.map((e) => e.loss);
    expect(rates).toEqual(replay(losses, 0.5).slice(0, 12));
    expect(new Set(rates.slice(0, 7)).size).toBeGreaterThan(1);
    expect(new Set(rates).size).toBeGreaterThan(2);
  });

  it('resumes exactly after a save and a load', async () => {
    const whole = model();
    const h = await whole.fit(x, y, options(12));
    const first = model();
    const h1 = await first.fit(x, y, options(6));
    const second = fromBuffer(first.toBuffer());
    const h2 = await second.fit(x, y, options(6));
    expect([...h1.epochs, ...h2.epochs].map((e) => e.learningRate)).toEqual(h.epochs.map((e) => e.learningRate));
    expect(second.parameters()).toEqual(whole.parameters());
  });

  it('refuses bad settings, naming them', async () => {
    await expect(model().fit(x, y, { ...options(1), schedule: { type: 'reduceOnPlateau', factor: 1.5 } })).rejects.toThrow(
      /schedule\.factor/,
    );
    await expect(
      model().fit(x, y, { ...options(1), schedule: { type: 'reduceOnPlateau', thresholdMode: 'max' as 'abs' } }),
    ).rejects.toThrow(/schedule\.thresholdMode/);
  });
});
