/**
 * The benchmark suite's alternated rounds (benchmark/lib/timing.mjs `mergeRounds`): each row of
 * a library's result is its median round, with every round's rate kept in round order.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

interface Row {
  mode: string;
  threads: number;
  seqPerSec: number;
  reps?: number;
  roundsSeqPerSec?: number[];
}
type Result = { ok: true; result: Row[]; wallMs: number } | { ok: false; error: string; wallMs?: number };

async function load(): Promise<(results: Result[]) => Result> {
  const url = pathToFileURL(join(__dirname, '..', 'benchmark', 'lib', 'timing.mjs')).href;
  return ((await import(url)) as { mergeRounds: (results: Result[]) => Result }).mergeRounds;
}

const round = (inference1: number, inference2: number, reps: number): Result => ({
  ok: true,
  wallMs: 1000,
  result: [
    { mode: 'inference', threads: 1, seqPerSec: inference1, reps },
    { mode: 'inference', threads: 2, seqPerSec: inference2, reps },
  ],
});

describe('benchmark rounds', () => {
  it('keeps the median round of each row, with every round in order', async () => {
    const merge = await load();
    const merged = merge([round(100, 300, 1), round(120, 180, 2), round(90, 250, 3)]);
    expect(merged.ok).toBe(true);
    if (!merged.ok) return;
    expect(merged.wallMs).toBe(3000);
    const one = merged.result.find((r) => r.threads === 1)!;
    const two = merged.result.find((r) => r.threads === 2)!;
    // The median round's whole row (its reps too), not a mix of rounds.
    expect(one).toMatchObject({ seqPerSec: 100, reps: 1, roundsSeqPerSec: [100, 120, 90] });
    expect(two).toMatchObject({ seqPerSec: 250, reps: 3, roundsSeqPerSec: [300, 180, 250] });
  });

  it('takes the lower middle round of an even count, and one round as it is', async () => {
    const merge = await load();
    const two = merge([round(100, 10, 1), round(80, 20, 2)]);
    expect(two.ok && two.result.map((r) => r.seqPerSec)).toEqual([80, 10]);
    const one = merge([round(100, 10, 1)]);
    expect(one.ok && one.result.map((r) => [r.seqPerSec, r.roundsSeqPerSec])).toEqual([
      [100, [100]],
      [10, [10]],
    ]);
  });

  it('fails the whole when a round failed', async () => {
    const merge = await load();
    const failed: Result = { ok: false, error: 'killed after the task timeout', wallMs: 5 };
    expect(merge([round(100, 10, 1), failed, round(90, 20, 1)])).toBe(failed);
  });
});
