/**
 * The one seeded generator of the TypeScript side: mulberry32 (Tommy Ettinger's 32-bit
 * generator, public domain), uniform numbers in [0, 1) with 2^-32 resolution, the same on every
 * platform. Not for cryptography.
 *
 * Chosen over splitmix32, which `Dataset` used before, because it was already the public one
 * (`seededRandom`, text sampling, the command line's shuffle of texts): keeping it leaves every
 * seeded text and command-line result as it was, and only the orders that `Dataset.shuffle`,
 * `Dataset.batch` (bucket order) and `Dataset.split` draw for a given seed changed with the switch.
 *
 * gyre has two separate random streams, and a seed given to one says nothing about the other:
 * - this generator, in JavaScript, orders data and samples text: `Dataset.shuffle`,
 *   `Dataset.batch` and `Dataset.split` (their `seed`), `generateText` /
 *   `TextGenerator.generate` (`randomSeed`), and `gyre train`'s shuffle of the texts before its
 *   validation split (`--seed`);
 * - the native generator, in Rust (xoshiro256++ seeded through SplitMix64,
 *   `crates/gyre-core/src/random.rs`), initialises the weights (`sequential({ seed })`) and,
 *   inside `fit` / `fitDataset`, shuffles the samples of each epoch and draws the dropout masks
 *   (`fit(x, y, { seed })`, mixed with the epoch number, and in `fitDataset` with the batch
 *   number).
 * The same number passed to both draws unrelated numbers from each; each alone repeats exactly.
 */
import { describe } from './check.js';
import { InvalidArgumentError } from '../errors.js';

/** The mulberry32 stream from a 32-bit state. */
function mulberry32(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A seeded generator of uniform numbers in [0, 1) (mulberry32; see the module's doc for how it
 * relates to the native generator). `seed` is an integer, taken modulo 2^32.
 * @returns a function; each call returns the next number of the sequence.
 * @throws {InvalidArgumentError} when `seed` is not a safe integer.
 */
export function seededRandom(seed: number): () => number {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed))
    throw new InvalidArgumentError(`seed must be an integer, got ${describe(seed)}`);
  return mulberry32(seed);
}

/**
 * @internal
 * A uniform number in [0, 1) from a seed and an index without keeping any state: the first
 * number of the generator started from both mixed (for splits that need no memory).
 */
export function hashUnit(seed: number, i: number): number {
  return mulberry32((Math.imul(seed >>> 0, 0x27d4eb2d) ^ Math.imul(i + 1, 0x165667b1)) >>> 0)();
}

/** @internal The generator for internal uses whose seed the caller already checked (any integer, modulo 2^32). */
export function randomStream(seed: number): () => number {
  return mulberry32(seed);
}
