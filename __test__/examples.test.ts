/**
 * The examples on the bundled real data, shortened: each must learn something measurable
 * against a baseline (the full runs are `npm run demo` and `npm run example:*`).
 */
import { describe, expect, it } from 'vitest';
import { classifyNames } from '../dist/examples/classify-names.js';
import { forecastBirths } from '../dist/examples/forecast-births.js';
import { readNames, trainNames } from '../dist/examples/names.js';

describe('examples on real data', () => {
  it('the name generator learns the names list and generates name-like strings', async () => {
    const names = readNames();
    expect(names.length).toBe(8422);
    const { generator, losses } = await trainNames({ epochs: 3, limit: 3000, hiddenSize: 64 });
    expect(losses[2]!).toBeLessThan(losses[0]!);
    // Uniform guessing over the alphabet would be ln(vocab) ≈ 4; a learned model is far below.
    expect(losses[2]!).toBeLessThan(2.4);
    for (let i = 0; i < 5; i++) {
      const name = generator.generate({ temperature: 0.5, randomSeed: i, maxLength: 20 }).trim();
      expect(name).toMatch(/^[A-Z][a-z'-]*[a-z]$/);
    }
  });

  it('the births forecaster beats repeating yesterday on the held-out year', async () => {
    const r = await forecastBirths({ epochs: 6 });
    expect(r.mae).toBeLessThan(r.naiveMae * 0.6);
    expect(r.nextTwoWeeks).toHaveLength(14);
    r.nextTwoWeeks.forEach((v) => {
      expect(v).toBeGreaterThan(5000);
    });
  });

  it('the name classifier beats always answering the larger class', async () => {
    const r = await classifyNames({ epochs: 3 });
    expect(r.accuracy).toBeGreaterThan(r.baseline + 0.15);
  });
});
