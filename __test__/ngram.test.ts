/**
 * The n-gram baseline `gyre train` and `gyre eval` print beside a text model: Witten–Bell
 * interpolation checked against probabilities worked out by hand.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, NgramModel } from 'gyre';

describe('NgramModel (Witten–Bell)', () => {
  // One text "2 3" with end id 1: x = [1, 2, 3], y = [2, 3, 1]; vocabulary of 4 ids.
  const bigram = () => new NgramModel(2, 4).fit([[1, 2, 3]], [[2, 3, 1]]);

  it('gives the interpolated probabilities worked out by hand', () => {
    const m = bigram();
    // Unigram: 3 tokens, 3 types, each seen once: P(w) = (c(w) + 3 · 1/4) / (3 + 3).
    // After "1" (seen once, followed by 2): P(w | 1) = (c(1, w) + 1 · P(w)) / (1 + 1).
    const uni = (c: number) => (c + 0.75) / 6;
    expect(m.probability([1], 2)).toBeCloseTo((1 + uni(1)) / 2, 15);
    expect(m.probability([1], 0)).toBeCloseTo(uni(0) / 2, 15);
    expect(m.probability([1], 3)).toBeCloseTo(uni(1) / 2, 15);
    // An unseen history backs off to the unigram.
    expect(m.probability([0], 3)).toBeCloseTo(uni(1), 15);
    for (const h of [[0], [1], [2], [3]]) {
      expect([0, 1, 2, 3].reduce((s, w) => s + m.probability(h, w), 0)).toBeCloseTo(1, 14);
    }
  });

  it('cross-entropy is the mean −ln P of each token given the tokens before it (the text start repeated)', () => {
    const m = bigram();
    const want = -(Math.log(m.probability([1], 2)) + Math.log(m.probability([2], 3)) + Math.log(m.probability([3], 1))) / 3;
    expect(m.crossEntropy([[1, 2, 3]], [[2, 3, 1]])).toBeCloseTo(want, 15);
    // A 4-gram's first prediction reads the start id three times.
    const four = new NgramModel(4, 4).fit([[1, 2, 3]], [[2, 3, 1]]);
    expect(four.probability([1, 1, 1], 2)).toBeGreaterThan(four.probability([0, 0, 1], 2));
  });

  it('toJSON keeps the whole n-gram counts, from which fromJSON rebuilds every order', () => {
    const m = new NgramModel(3, 6).fit(
      [
        [1, 2, 3, 4],
        [1, 5, 2],
      ],
      [
        [2, 3, 4, 1],
        [5, 2, 1],
      ],
    );
    const again = NgramModel.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
    for (const h of [
      [1, 1],
      [1, 2],
      [5, 2],
      [0, 0],
      [3, 4],
    ]) {
      for (let w = 0; w < 6; w++) expect(again.probability(h, w)).toBe(m.probability(h, w));
    }
    expect(() => NgramModel.fromJSON({ order: 3, vocabSize: 6, counts: [[1, 2]] })).toThrow(InvalidArgumentError);
    expect(() => m.fit([[1]], [[9]])).toThrow(/y\[0\]\[0\] must be a token id below 6, got 9/);
  });
});
