// Timing helpers shared by every library's benchmark.
import { performance } from 'node:perf_hooks';

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Times `rep` (an async or sync function processing `seqsPerRep` sequences).
 *
 * - `warmup` untimed calls first (their times are kept in `warmupMs`);
 * - then timed repetitions until `reps` are done, or the time budget `budgetMs` (counted from
 *   the first timed repetition) is spent once at least `minReps` are done; repetitions so short
 *   that these take less than `minTotalMs` go on until it is reached (at most `maxReps`);
 * - `single`: when the warm-up alone took at least half the budget, no further repetition
 *   is run and the warm-up is the one sample (`warmupOnly: true`): this is how the slow
 *   baselines report the rate they reach within a budget instead of being skipped.
 *
 * Returns sequences per second from the median repetition time.
 */
export async function measure(
  rep,
  { seqsPerRep, warmup = 1, reps = 5, minReps = 1, budgetMs = Infinity, minTotalMs = 0, maxReps = 1000, single = false },
) {
  const warmupMs = [];
  for (let i = 0; i < warmup; i++) {
    const t0 = performance.now();
    await rep();
    warmupMs.push(performance.now() - t0);
  }
  if (single && warmup > 0 && warmupMs[warmupMs.length - 1] >= budgetMs / 2) {
    const ms = warmupMs[warmupMs.length - 1];
    return { seqPerSec: (seqsPerRep * 1000) / ms, seqsPerRep, reps: 1, timesMs: [ms], warmupMs, warmupOnly: true };
  }
  const timesMs = [];
  const start = performance.now();
  const more = () => {
    const n = timesMs.length;
    const elapsed = performance.now() - start;
    if (n < minReps) return true;
    if (n < reps && elapsed < budgetMs) return true;
    return elapsed < minTotalMs && n < maxReps; // short repetitions: keep sampling for minTotalMs
  };
  while (more()) {
    const t0 = performance.now();
    await rep();
    timesMs.push(performance.now() - t0);
  }
  return { seqPerSec: (seqsPerRep * 1000) / median(timesMs), seqsPerRep, reps: timesMs.length, timesMs, warmupMs, warmupOnly: false };
}

/**
 * For per-sample or per-batch baselines sized by a time budget: how many units (sequences,
 * batches) one repetition should hold so that `reps` repetitions fill about `budgetMs`, given
 * that one unit took `unitMs` in the warm-up. At least 1, at most `maxUnits`.
 */
export function unitsPerRep(unitMs, budgetMs, reps, maxUnits) {
  return Math.max(1, Math.min(maxUnits, Math.floor(budgetMs / reps / Math.max(unitMs, 1e-3))));
}

/** Times one call, returning [result, milliseconds]. */
export async function timed(fn) {
  const t0 = performance.now();
  const result = await fn();
  return [result, performance.now() - t0];
}

/**
 * A measurement sized by a time budget, for the slow baselines (per-sample or per-batch).
 * `prepare(k)` returns a repetition function processing `k` units of `unitSeqs` sequences
 * each. One unit is run first as the warm-up and timed; if it took at least half the budget,
 * it is the only sample (`warmupOnly`); otherwise repetitions of k units (k chosen so that
 * `reps` repetitions fill the budget, at most `maxUnits`) are timed until `reps` are done or
 * the budget is spent. The rate reached is reported either way, never a skip.
 */
export async function budgeted({ prepare, unitSeqs, budgetMs, reps, maxUnits }) {
  const one = await prepare(1);
  const [, unitMs] = await timed(one);
  if (unitMs >= budgetMs / 2) {
    return {
      seqPerSec: (unitSeqs * 1000) / unitMs,
      seqsPerRep: unitSeqs,
      reps: 1,
      timesMs: [unitMs],
      warmupMs: [unitMs],
      warmupOnly: true,
    };
  }
  const k = unitsPerRep(unitMs, budgetMs, reps, maxUnits);
  const rep = k === 1 ? one : await prepare(k);
  const r = await measure(rep, { seqsPerRep: k * unitSeqs, warmup: 0, reps, minReps: 1, budgetMs });
  return { ...r, warmupMs: [unitMs] };
}

/**
 * The rounds' results of one library on one workload (each `{ ok, result: rows, wallMs }` or
 * `{ ok: false, error }`) as one result: each row (one mode and thread count) is the round
 * with the median seq/s (the lower middle one of an even count), with every round's seq/s, in
 * round order, in `roundsSeqPerSec`; `wallMs` is the rounds' sum. A failed round fails the
 * whole (its result is returned).
 */
export function mergeRounds(results) {
  const failed = results.find((r) => !r.ok);
  if (failed) return failed;
  const byRow = new Map();
  for (const r of results) {
    for (const row of r.result) {
      const key = `${row.mode} ${row.threads}`;
      byRow.set(key, [...(byRow.get(key) ?? []), row]);
    }
  }
  const result = [...byRow.values()].map((rs) => {
    const sorted = [...rs].sort((a, b) => a.seqPerSec - b.seqPerSec);
    return { ...sorted[(sorted.length - 1) >> 1], roundsSeqPerSec: rs.map((x) => x.seqPerSec) };
  });
  return { ok: true, result, wallMs: results.reduce((t, r) => t + (r.wallMs ?? 0), 0) };
}
