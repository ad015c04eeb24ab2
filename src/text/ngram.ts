/**
 * A token n-gram language model with Witten–Bell interpolation: the baseline `gyre train` and
 * `gyre eval` print beside a text model's cross-entropy, on the same token sequences.
 * @module
 */
import { InvalidArgumentError } from '../errors.js';
import { describe, intIn } from '../util/check.js';

/** Counts after one context: how often it occurs, and how often each token follows it. */
interface Counts {
  total: number;
  next: Map<number, number>;
}

/**
 * A Witten–Bell interpolated n-gram model over token ids `0..vocabSize-1`, fitted on the
 * sequences a text model trains on (`x`, `y` of {@link textSequences}: `y[i]` follows
 * `x[0..i]`), the history before a sequence's first token read as `x[0]` repeated (the
 * end-of-text id that starts a text):
 *
 * `P(w | h) = (c(h, w) + T(h) · P(w | h')) / (c(h) + T(h))`, where `h'` is `h` without its
 * oldest token, `c` counts, `T(h)` is the number of distinct tokens seen after `h`, an unseen
 * `h` gives `P(w | h')`, and the empty history backs off to the uniform `1 / vocabSize`.
 */
export class NgramModel {
  readonly order: number;
  readonly vocabSize: number;
  /** By history length 0..order-1: history key → counts. */
  readonly #tables: Map<string, Counts>[];

  constructor(order: number, vocabSize: number) {
    this.order = intIn('order', order, 1, 16);
    this.vocabSize = intIn('vocabSize', vocabSize, 1);
    this.#tables = Array.from({ length: this.order }, () => new Map<string, Counts>());
  }

  /** Each predicted token with its history (the `order - 1` tokens before it, padded at the start). */
  *#events(x: readonly (readonly number[])[], y: readonly (readonly number[])[]): Generator<[number[], number]> {
    if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) {
      throw new InvalidArgumentError(`x and y must be arrays of the same length, got ${describe(x)} and ${describe(y)}`);
    }
    const n = this.order - 1;
    for (const [s, xs] of x.entries()) {
      const ys = y[s]!;
      const start = xs[0]!;
      const history = [...new Array<number>(n).fill(start)];
      for (let i = 0; i < ys.length; i++) {
        history.push(xs[i]!);
        history.shift();
        const w = ys[i]!;
        if (!Number.isInteger(w) || w < 0 || w >= this.vocabSize) {
          throw new InvalidArgumentError(`y[${s}][${i}] must be a token id below ${this.vocabSize}, got ${describe(w)}`);
        }
        yield [history.slice(), w];
      }
    }
  }

  #add(history: number[], w: number, count: number): void {
    for (let k = 0; k < this.order; k++) {
      const key = history.slice(history.length - k).join(',');
      const table = this.#tables[k]!;
      let c = table.get(key);
      if (!c) {
        c = { total: 0, next: new Map() };
        table.set(key, c);
      }
      c.total += count;
      c.next.set(w, (c.next.get(w) ?? 0) + count);
    }
  }

  /** Counts the tokens of sequences `y` after their histories in `x`. */
  fit(x: readonly (readonly number[])[], y: readonly (readonly number[])[]): this {
    for (const [h, w] of this.#events(x, y)) this.#add(h, w, 1);
    return this;
  }

  /** `P(w | history)` (the last `order - 1` tokens of `history` are read). */
  probability(history: readonly number[], w: number): number {
    let p = 1 / this.vocabSize;
    for (let k = 0; k < this.order; k++) {
      const c = this.#tables[k]!.get(history.slice(history.length - k).join(','));
      if (!c) break;
      const types = c.next.size;
      p = ((c.next.get(w) ?? 0) + types * p) / (c.total + types);
    }
    return p;
  }

  /** Mean `-ln P` of each token of `y` given its history: nats per token, as a text model's cross-entropy. */
  crossEntropy(x: readonly (readonly number[])[], y: readonly (readonly number[])[]): number {
    let [sum, n] = [0, 0];
    for (const [h, w] of this.#events(x, y)) {
      sum -= Math.log(this.probability(h, w));
      n++;
    }
    return n > 0 ? sum / n : 0;
  }

  /** The counts of whole n-grams, from which every lower order follows: `[...history, token, count]` rows. */
  toJSON(): { order: number; vocabSize: number; counts: number[][] } {
    const top = this.#tables[this.order - 1]!;
    const counts: number[][] = [];
    for (const [key, c] of top) {
      const history = key === '' ? [] : key.split(',').map(Number);
      for (const [w, n] of c.next) counts.push([...history, w, n]);
    }
    return { order: this.order, vocabSize: this.vocabSize, counts };
  }

  /** A model from {@link NgramModel.toJSON}'s output. */
  static fromJSON(v: unknown): NgramModel {
    const o = v as { order?: unknown; vocabSize?: unknown; counts?: unknown };
    if (v === null || typeof v !== 'object' || !Array.isArray(o.counts)) {
      throw new InvalidArgumentError(`an n-gram model must be { order, vocabSize, counts }, got ${describe(v)}`);
    }
    const m = new NgramModel(o.order as number, o.vocabSize as number);
    for (const [i, row] of (o.counts as unknown[]).entries()) {
      if (!Array.isArray(row) || row.length !== m.order + 1 || !row.every((n) => Number.isInteger(n) && n >= 0)) {
        throw new InvalidArgumentError(`n-gram counts[${i}] must be ${m.order + 1} non-negative integers, got ${describe(row)}`);
      }
      const nums = row as number[];
      m.#add(nums.slice(0, m.order - 1), nums[m.order - 1]!, nums[m.order]!);
    }
    return m;
  }
}
