/**
 * Forecasting daily US births (1994–2003, examples/data/us-births-1994-2003.csv, CDC/NCHS,
 * public domain) with an LSTM: windows of 28 days predict the next day; the last year is held out
 * and the model's error there is compared with two baselines — repeating yesterday's value, and
 * repeating the value of a week before (the series has a strong weekly pattern).
 *
 * Run: `npm run build && node dist/examples/forecast-births.js [epochs]`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Forecaster } from 'gyre';

/** The births column of the bundled CSV, one value per day. */
export function readBirths(): number[] {
  const file = join(__dirname, '..', '..', 'examples', 'data', 'us-births-1994-2003.csv');
  const [header, ...rows] = readFileSync(file, 'utf8').trim().split('\n');
  const col = header!.split(',').indexOf('births');
  return rows.map((r) => Number(r.split(',')[col]));
}

/** What {@link forecastBirths} measured on the held-out year (mean absolute errors, births per day). */
export interface BirthsResult {
  mae: number;
  naiveMae: number;
  weeklyMae: number;
  /** The next 14 days after the data. */
  nextTwoWeeks: number[];
}

/** Trains on all but the last 365 days and measures one-day-ahead errors on them. */
export async function forecastBirths(options: { epochs?: number; seed?: number } = {}): Promise<BirthsResult> {
  const births = readBirths();
  const test = 365;
  const inputLength = 28;
  const forecaster = await Forecaster.train(births.slice(0, births.length - test), {
    inputLength,
    hiddenSize: 32,
    epochs: options.epochs ?? 40,
    learningRate: 0.005,
    seed: options.seed ?? 0,
  });
  const heldOut = births.slice(births.length - test - inputLength);
  const e = await forecaster.evaluate(heldOut);
  let weekly = 0;
  for (let t = births.length - test; t < births.length; t++) weekly += Math.abs(births[t]! - births[t - 7]!);
  const next = forecaster.forecast(births, 14);
  return { mae: e.mae, naiveMae: e.naiveMae, weeklyMae: weekly / test, nextTwoWeeks: Array.from(next.data) };
}

async function main(): Promise<void> {
  const r = await forecastBirths({ epochs: Number(process.argv[2] ?? 40) });
  console.log('one-day-ahead mean absolute error on the held-out year (births per day):');
  console.log(`  LSTM forecaster            ${r.mae.toFixed(0)}`);
  console.log(`  repeat yesterday           ${r.naiveMae.toFixed(0)}`);
  console.log(`  repeat a week before       ${r.weeklyMae.toFixed(0)}`);
  console.log(`next 14 days: ${r.nextTwoWeeks.map((v) => v.toFixed(0)).join(' ')}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
