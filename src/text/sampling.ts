/**
 * Sampling an index from a row of scores: temperature, top-k, top-p, drawn with a seeded
 * generator ({@link seededRandom}, `src/util/random.ts`).
 */
import { InvalidArgumentError, MissingArgumentError } from '../errors.js';
import { describe, numberIn, optBool, options, positiveInt } from '../util/check.js';
import type { seededRandom } from '../util/random.js';

/** Options of {@link sampleFrom}. */
export interface SampleOptions {
  /** Divides the logits (or raises probabilities to 1/T); 0 picks the highest score (greedy). A finite number ≥ 0. Default 1. */
  temperature?: number;
  /** Keep only the k most probable indices (an integer ≥ 1). Default: all. */
  topK?: number;
  /** Keep the smallest set of most probable indices whose probability sums to at least topP, in (0, 1]. Default 1. */
  topP?: number;
  /** Uniform numbers in [0, 1): `Math.random` or {@link seededRandom}. Called once per draw (not when greedy). */
  random: () => number;
  /** The scores are probabilities (≥ 0, e.g. a softmax output) rather than logits. Default false. */
  probabilities?: boolean;
}

/**
 * Draws an index of `scores` (`[n]` logits, or probabilities with `probabilities: true`).
 * Logits become `softmax(scores / temperature)`; probabilities become `p^(1/temperature)`
 * renormalised. Then only the `topK` most probable indices are kept, then the smallest head of
 * those whose renormalised probability sums to ≥ `topP`; the rest is renormalised and one index
 * drawn with `random()`. Temperature 0 returns the index of the highest score (the first on ties).
 * @returns an index in `0..n-1`.
 * @throws {InvalidArgumentError} for empty or non-finite scores (logits may be -Infinity),
 *   negative probabilities, or a temperature, topK, topP or random value out of its domain.
 */
export function sampleFrom(scores: ArrayLike<number>, options_: SampleOptions): number {
  if (scores === null || typeof scores !== 'object' || typeof scores.length !== 'number' || scores.length === 0) {
    throw new InvalidArgumentError(`scores must be a non-empty array of numbers, got ${describe(scores)}`);
  }
  if (options_ === undefined) throw new MissingArgumentError('sampleFrom options are required: { random } at least');
  const o = options('options', options_, ['temperature', 'topK', 'topP', 'random', 'probabilities']);
  const temperature = numberIn('temperature', o.temperature ?? 1, 0, Number.POSITIVE_INFINITY, '[)');
  const n = scores.length;
  const topK = o.topK === undefined ? n : positiveInt('topK', o.topK);
  const topP = numberIn('topP', o.topP ?? 1, 0, 1, '(]');
  if (o.random === undefined)
    throw new MissingArgumentError('options.random is required: a function returning uniform numbers in [0, 1), e.g. seededRandom(0)');
  if (typeof o.random !== 'function') throw new InvalidArgumentError(`random must be a function, got ${describe(o.random)}`);
  const random = o.random as () => number;
  const probabilities = optBool('probabilities', o.probabilities, false);

  // Work in log space: logits / T, or log(p) / T; -Infinity for impossible indices.
  const logs = new Float64Array(n);
  let best = -Infinity;
  let argmax = -1;
  for (let i = 0; i < n; i++) {
    const s = scores[i];
    if (typeof s !== 'number' || Number.isNaN(s) || s === Infinity) {
      throw new InvalidArgumentError(`scores[${i}] must be a finite number, got ${describe(s)}`);
    }
    if (probabilities && !(s >= 0 && Number.isFinite(s)))
      throw new InvalidArgumentError(`scores[${i}] must be a probability ≥ 0, got ${describe(s)}`);
    const l = probabilities ? Math.log(s) : s;
    logs[i] = l;
    if (l > best) {
      best = l;
      argmax = i;
    }
  }
  if (argmax < 0) throw new InvalidArgumentError(`scores give every index probability 0 (all ${probabilities ? '0' : '-Infinity'})`);
  if (temperature === 0) return argmax;

  const p = new Float64Array(n);
  for (let i = 0; i < n; i++) p[i] = Math.exp((logs[i]! - best) / temperature);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[b]! - p[a]! || a - b);
  let kept = order.slice(0, topK).filter((i) => p[i]! > 0);
  if (topP < 1) {
    const total = kept.reduce((a, i) => a + p[i]!, 0);
    let cum = 0;
    let k = 0;
    while (k < kept.length) {
      cum += p[kept[k]!]! / total;
      k++;
      if (cum >= topP - 1e-12) break;
    }
    kept = kept.slice(0, k);
  }
  const total = kept.reduce((a, i) => a + p[i]!, 0);
  const r = random();
  if (typeof r !== 'number' || !(r >= 0 && r < 1))
    throw new InvalidArgumentError(`random() must return a number in [0, 1), got ${describe(r)}`);
  let target = r * total;
  for (const i of kept) {
    target -= p[i]!;
    if (target < 0) return i;
  }
  return kept[kept.length - 1]!;
}
