/**
 * A first real training run: one LSTM layer plus a dense readout, trained with Adam on the
 * functional API, learns y_t = x_{t-3} (examples/delay.ts, the README's main job).
 */
import { describe, expect, it } from 'vitest';
import { trainDelay } from '../dist/examples/delay.js';

describe('training an LSTM on the delay task', () => {
  it('drives the test MSE below 0.01, under 3% of the predict-zero baseline', () => {
    const result = trainDelay({ updates: 300, seed: 7 });
    expect(result.losses).toHaveLength(300);
    expect(result.losses[0]!).toBeGreaterThan(0.2);
    expect(result.baselineLoss).toBeGreaterThan(0.25);
    expect(result.testLoss).toBeLessThan(0.01);
    expect(result.testLoss).toBeLessThan(0.03 * result.baselineLoss);
  });

  it('is reproducible: the same seed gives the same loss curve', () => {
    const a = trainDelay({ updates: 20, seed: 3 });
    const b = trainDelay({ updates: 20, seed: 3 });
    expect(a.losses).toEqual(b.losses);
  });
});
