/**
 * Forecasting series with a trend: differencing (and seasonal differencing) as a Forecaster
 * option stored with the model, the seasonal-naive baseline and its detected period.
 */
import { describe, expect, it } from 'vitest';
import { Forecaster, InvalidArgumentError } from 'gyre';
import { detectPeriod, differenceCoefficients, differenced, undifference } from '../src/data/timeseries.js';

/** Period-24 sine + 0.05·t + seeded Gaussian noise, 720 steps (600 to train, 120 held out). */
function trendSeries(n = 720): number[] {
  let seed = 12345;
  const r = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(r() || 1e-9)) * Math.cos(2 * Math.PI * r());
  return Array.from({ length: n }, (_, t) => 5 * Math.sin((2 * Math.PI * t) / 24) + 0.05 * t + gauss());
}

describe('differencing', () => {
  it('Π (1 − B^lag) coefficients, and adding the differences back gives the series', () => {
    expect(differenceCoefficients([])).toEqual([1]);
    expect(differenceCoefficients([1])).toEqual([1, -1]);
    const both = differenceCoefficients([1, 3]);
    expect(both).toEqual([1, -1, 0, -1, 1]);
    const v = [3, 7, -2, 5, 11, 4, 0, 9, 8, -6];
    const d = differenced({ data: Float32Array.from(v), shape: [10, 1] }, both);
    expect(Array.from(d.data)).toEqual(v.slice(4).map((x, i) => x - v[i + 3]! - v[i + 1]! + v[i]!));
    for (let t = 4; t < 10; t++) expect(undifference(d.data[t - 4]!, both, (j) => v[t - j]!)).toBe(v[t]);
  });

  it('detects the season of a series, and none in noise', () => {
    const s = trendSeries();
    expect(detectPeriod({ data: Float32Array.from(s), shape: [s.length, 1] }, 0)).toBe(24);
    const weekly = Array.from({ length: 400 }, (_, t) => [0, 1, 1, 2, 5, 9, 3][t % 7]! + 0.01 * t);
    expect(detectPeriod({ data: Float32Array.from(weekly), shape: [400, 1] }, 0)).toBe(7);
    let seed = 9;
    const noise = Array.from({ length: 500 }, () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    });
    expect(detectPeriod({ data: Float32Array.from(noise), shape: [500, 1] }, 0)).toBeUndefined();
  });

  it('a differencing forecaster beats the naive and seasonal-naive baselines on a trend the plain one cannot follow', async () => {
    const y = trendSeries();
    const train = y.slice(0, 600);
    const options = { inputLength: 28, epochs: 20, seed: 1 };
    const plain = await Forecaster.train(train, options);
    const diff = await Forecaster.train(train, { ...options, difference: 1 });
    expect(diff.difference).toEqual([1]);
    expect(diff.period).toBe(24);
    // The held-out 120 steps with the context each needs before them.
    const p = plain.evaluateSync(y.slice(600 - 28));
    const d = diff.evaluateSync(y.slice(600 - 28 - 1));
    expect(p.windows).toBe(120);
    expect(d.windows).toBe(120);
    expect(d.period).toBe(24);
    expect(d.mae).toBeLessThan(d.naiveMae);
    expect(d.mae).toBeLessThan(d.seasonalNaiveMae!);
    expect(d.mae).toBeLessThan(p.mae);
    // The seasonal-naive baseline repeats the value one season back.
    let ae = 0;
    for (let t = 600; t < 720; t++) ae += Math.abs(y[t - 24]! - y[t]!);
    expect(d.seasonalNaiveMae).toBeCloseTo(ae / 120, 4);
  });

  it("forecast agrees with evaluate's reconstruction, recursive forecasts run, and the file keeps the differencing", async () => {
    const y = trendSeries(300);
    const fc = await Forecaster.train(y.slice(0, 250), { inputLength: 12, horizon: 2, epochs: 3, difference: [1, 24], period: 24 });
    const test = y.slice(250 - 12 - 25);
    const e = fc.evaluateSync(test);
    let [ae, n] = [0, 0];
    for (let i = 0; i < e.windows; i++) {
      const f = fc.forecast(test.slice(i, i + 12 + 25), 2).data;
      for (let k = 0; k < 2; k++) {
        ae += Math.abs(f[k]! - test[i + 12 + 25 + k]!);
        n++;
      }
    }
    expect(e.mae).toBeCloseTo(ae / n, 4);
    expect(fc.forecast(y, 7).shape).toEqual([7, 1]);
    const again = Forecaster.fromBuffer(fc.toBuffer());
    expect(again.difference).toEqual([1, 24]);
    expect(again.period).toBe(24);
    expect(Array.from(again.forecast(y, 5).data)).toEqual(Array.from(fc.forecast(y, 5).data));
    expect(fc.metadata).toMatchObject({ difference: [1, 24], period: 24 });
    const plain = await Forecaster.train(y.slice(0, 250), { inputLength: 12, epochs: 1, period: 24 });
    expect('difference' in plain.metadata).toBe(false);
    expect(() => fc.forecast(y.slice(0, 30))).toThrow(/needs at least inputLength \+ 25 = 37/);
  });

  it('bad differencing options are errors naming them', async () => {
    const y = trendSeries(100);
    await expect(Forecaster.train(y, { inputLength: 5, difference: 0 })).rejects.toThrow(InvalidArgumentError);
    await expect(Forecaster.train(y, { inputLength: 5, difference: [1, -2] })).rejects.toThrow(/difference\[1\]/);
    await expect(Forecaster.train(y.slice(0, 30), { inputLength: 5, difference: 26 })).rejects.toThrow(
      /differencing at lags \[26\] uses its first 26 steps/,
    );
    await expect(Forecaster.train(y, { inputLength: 5, period: 1 })).rejects.toThrow(/period/);
  });
});
