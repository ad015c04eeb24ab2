/**
 * The examples on the bundled real data, shortened: each must learn something measurable
 * against a baseline (the full runs are `npm run demo` and `npm run example:*`).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifyNames } from '../dist/examples/classify-names.js';
import { forecastBirths } from '../dist/examples/forecast-births.js';
import { cmudictEntries, pairsOf, runG2p, scoreModels, scoreOutputs, split } from '../dist/examples/g2p.js';
import { readNames, trainNames } from '../dist/examples/names.js';
import { readReviews, runTask, score } from '../dist/examples/sentiment.js';

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

  it('the sentiment example reads the labelled corpus and both of its models learn it', async () => {
    const reviews = readReviews();
    expect(reviews.length).toBeGreaterThan(2950);
    for (const source of ['imdb', 'amazon', 'yelp']) {
      const some = reviews.filter((r) => r.source === source);
      expect(some.filter((r) => r.positive === 1).length / some.length).toBeCloseTo(0.5, 1);
    }
    const texts = reviews.map((r) => r.text);
    const r = await runTask(
      texts,
      reviews.map((v) => (v.positive ? 'positive' : 'negative')),
      { epochs: 6, balanced: true },
    );
    // Balanced classes: always one label scores about 50%.
    expect(r.gru.accuracy).toBeGreaterThan(0.7);
    expect(r.baseline.accuracy).toBeGreaterThan(0.75);
    expect(r.gru.perLabel.reduce((s, c) => s + c.support, 0)).toBe(texts.length - Math.floor(texts.length * 0.8));
    // 'balanced' weights are n / (K·n_k): the movie class (a third) weighs about 1.5.
    const movie = await runTask(
      texts.slice(0, 1200),
      reviews.slice(0, 1200).map((v) => (v.source === 'imdb' ? 'movie' : 'product/food')),
      { epochs: 2, balanced: true },
    );
    const n = 960;
    const movies = reviews.slice(0, n).filter((v) => v.source === 'imdb').length;
    expect(movie.classWeight).toEqual([n / (2 * movies), n / (2 * (n - movies))]);
  });

  it('the grapheme-to-phoneme example reads CMUdict without stress and learns pronunciations', async () => {
    const entries = await cmudictEntries();
    expect(entries.length).toBe(124920);
    expect(pairsOf(entries).length).toBe(133659);
    const phones = new Set(pairsOf(entries).flatMap((p) => p[1].split(' ')));
    expect(phones.size).toBe(39);
    expect([...phones].every((p) => /^[A-Z]+$/.test(p))).toBe(true);
    expect(entries.find((e) => e.word === 'phoneme')?.pronunciations).toEqual(['F OW N IY M']);
    // A word's variants (`read(2)`) are its other pronunciations; any of them scores as right.
    expect(entries.find((e) => e.word === 'read')?.pronunciations).toEqual(['R EH D', 'R IY D']);
    expect(scoreOutputs([{ word: 'read', pronunciations: ['R EH D', 'R IY D'] }], ['R IY D'])).toEqual({ wer: 0, per: 0 });
    expect(scoreOutputs([{ word: 'read', pronunciations: ['R EH D', 'R IY D'] }], ['R IY T'])).toEqual({ wer: 1, per: 1 / 3 });
    const { train, test } = split(entries, 1000);
    expect([train.length, test.length]).toEqual([900, 100]);
    expect(new Set([...train, ...test].map((e) => e.word)).size).toBe(1000);
    const r = await runG2p({ words: 3000, epochs: 3, hiddenSize: 48, beamWidth: 3 });
    expect([r.trainWords, r.testWords]).toEqual([2700, 300]);
    // Untrained, nearly every phoneme is wrong; three short epochs get most of them right.
    expect(r.greedy.per).toBeLessThan(0.45);
    expect(r.beam.per).toBeLessThan(0.45);
    expect(r.examples).toHaveLength(5);
    // A saved model scores the same on the same test words; with itself as an ensemble, too.
    const file = join(mkdtempSync(join(tmpdir(), 'gyre-g2p-')), 'g2p.safetensors');
    await r.model.save(file);
    const alone = await scoreModels([file], 3000, 3);
    expect(alone.testWords).toBe(300);
    expect(alone.wer).toBe(r.beam.wer);
    expect(alone.per).toBe(r.beam.per);
    const both = await scoreModels([file, file], 3000, 3);
    expect([both.wer, both.per]).toEqual([alone.wer, alone.per]);
  }, 60_000);

  it("the g2p example's seed trains another model of the same split (seed 1 by default)", async () => {
    const o = { words: 400, epochs: 1, hiddenSize: 16, beamWidth: 1 };
    const [byDefault, one, two] = await Promise.all([runG2p(o), runG2p({ ...o, seed: 1 }), runG2p({ ...o, seed: 2 })]);
    expect([two.trainWords, two.testWords, two.trainPairs]).toEqual([one.trainWords, one.testWords, one.trainPairs]);
    expect(byDefault.model.history[0]!.loss).toBe(one.model.history[0]!.loss);
    expect(two.model.history[0]!.loss).not.toBe(one.model.history[0]!.loss);
  }, 60_000);

  it("the sentiment example's scores are precision, recall and F1 per label", () => {
    const s = score(['a', 'b'], ['a', 'a', 'b', 'b', 'b'], ['a', 'b', 'b', 'b', 'a']);
    expect(s.accuracy).toBe(3 / 5);
    expect(s.perLabel[0]).toEqual({ label: 'a', precision: 1 / 2, recall: 1 / 2, f1: 1 / 2, support: 2 });
    expect(s.perLabel[1]!.precision).toBe(2 / 3);
    expect(s.perLabel[1]!.recall).toBe(2 / 3);
    expect(s.macroF1).toBeCloseTo((1 / 2 + 2 / 3) / 2, 12);
  });
});
