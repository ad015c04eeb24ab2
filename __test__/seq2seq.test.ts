/**
 * The Seq2Seq toolkit: an encoder–decoder with attention trained on a small transduction task
 * (reversing letter strings), through the public API: training with validation, greedy and beam
 * decoding with n-best lists and attention, evaluation, files, and bad input.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadFileError,
  BusyError,
  CharTokenizer,
  editDistance,
  InvalidArgumentError,
  Seq2Seq,
  seededRandom,
  sequential,
  type TextPair,
} from 'gyre';

const dir = mkdtempSync(join(tmpdir(), 'gyre-seq2seq-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Letter strings of 2–6 letters from `a`–`f` and their reversal. */
function reversal(n: number, seed: number): TextPair[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => {
    const s = Array.from({ length: 2 + Math.floor(random() * 5) }, () => 'abcdef'[Math.floor(random() * 6)]).join('');
    return [s, [...s].reverse().join('')] as const;
  });
}

describe('Seq2Seq', () => {
  const train = reversal(700, 1);
  const test = reversal(100, 2);
  let model: Seq2Seq;
  beforeAll(async () => {
    model = await Seq2Seq.train(train, { hiddenSize: 32, embeddingDim: 16, epochs: 14, learningRate: 0.01, batchSize: 32, seed: 3 });
  }, 60_000);

  it('learns to reverse held-out strings, greedy and by beam search', async () => {
    expect(model.history.length).toBeGreaterThan(3);
    expect(model.history[0]!.validationLoss).toBeGreaterThan(model.history.at(-1)!.validationLoss!);
    const greedy = await model.evaluate(test);
    const beam = await model.evaluate(test, { beamWidth: 4 });
    expect(greedy.count).toBe(100);
    expect(greedy.exactMatch).toBeGreaterThan(0.9);
    expect(beam.exactMatch).toBeGreaterThan(0.9);
    expect(greedy.tokenErrorRate).toBeLessThan(0.05);
    expect(greedy.loss).toBeLessThan(0.3);
    const [out] = await model.transduce('abcdef');
    expect(out!.text).toBe('fedcba');
  });

  it('returns n-best lists ranked by score, each with its attention over the source tokens', async () => {
    const [r] = await model.transduce('cafe', { beamWidth: 5, nBest: 3 });
    expect(r!.sourceTokens).toEqual(['c', 'a', 'f', 'e']);
    expect(r!.nBest).toHaveLength(3);
    expect(r!.nBest[0]!.text).toBe(r!.text);
    for (let i = 1; i < 3; i++) expect(r!.nBest[i]!.score).toBeLessThanOrEqual(r!.nBest[i - 1]!.score);
    expect(new Set(r!.nBest.map((h) => h.text)).size).toBe(3);
    // One row per output token and its end, each a distribution over the 4 source letters.
    expect(r!.attention).toHaveLength(r!.tokens.length + 1);
    for (const row of r!.attention) {
      expect(row).toHaveLength(4);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
    // Reversal: the first output letter looks mostly at the last source letter.
    expect(r!.attention[0]!.indexOf(Math.max(...r!.attention[0]!))).toBe(3);
  });

  it("scores an output with the model's log-probability: evaluate's loss on it agrees", async () => {
    const [r] = await model.transduce('bead', { beamWidth: 3, nBest: 3 });
    for (const h of r!.nBest) {
      const e = await model.evaluate([['bead', h.text]]);
      // loss is per target token, the end included.
      expect(e.loss * (h.tokens.length + 1)).toBeCloseTo(-h.logProb, 4);
    }
  });

  it('streams the decoder a token at a time: the most likely ids are the greedy output', async () => {
    const texts = ['cafe', 'dab'];
    const greedy = await model.transduce(texts);
    const stream = model.stream(texts);
    expect(stream.batch).toBe(2);
    expect(stream.sourceLengths).toEqual([4, 3]);
    let step = stream.step();
    const outs: number[][] = [[], []];
    const logProb = [0, 0];
    for (let k = 0; k < 10; k++) {
      const next = step.logProbs.map((lp) => lp.indexOf(Math.max(...lp)));
      next.forEach((id, i) => {
        if (outs[i]!.at(-1) === stream.endId) return;
        outs[i]!.push(id);
        logProb[i]! += step.logProbs[i]![id]!;
      });
      expect(step.attention[0]).toHaveLength(4);
      step = stream.step(next.map((id) => (id === stream.endId ? stream.startId : id)));
    }
    texts.forEach((_, i) => {
      expect(outs[i]!.at(-1)).toBe(stream.endId);
      expect(model.targetTokenizer.decode(outs[i]!.slice(0, -1))).toBe(greedy[i]!.text);
      expect(logProb[i]).toBeCloseTo(greedy[i]!.logProb, 8);
    });
    expect(stream.steps).toBe(11);
    expect(() => stream.step([1])).toThrow(/one per source/);
    expect(() => stream.step([1, stream.vocabSize])).toThrow(/tokens\[1\]/);
    expect(stream.steps).toBe(11);
  });

  it('saves and loads as one file with both tokenizers', async () => {
    const path = join(dir, 'reverse.safetensors');
    await model.save(path, { includeOptimizer: true });
    const loaded = await Seq2Seq.load(path);
    expect(loaded.config).toEqual(model.config);
    expect(loaded.sourceTokenizer.toJSON()).toEqual(model.sourceTokenizer.toJSON());
    expect(loaded.parameterCount).toBe(model.parameterCount);
    const texts = test.slice(0, 10).map((p) => p[0]);
    expect(await loaded.transduce(texts, { beamWidth: 3 })).toEqual(await model.transduce(texts, { beamWidth: 3 }));
    expect(loaded.parameterShapes()[1]).toEqual({ name: 'encoder.rnn.weight_ih_l0', shape: [128, 16] });
    // A sequential model's file is not an encoder–decoder, and the reverse.
    const seqPath = join(dir, 'sequential.safetensors');
    await sequential({ input: { features: 2 }, layers: [{ type: 'lstm', hiddenSize: 3 }] }).save(seqPath);
    await expect(Seq2Seq.load(seqPath)).rejects.toThrow(BadFileError);
    expect(() => Seq2Seq.fromBuffer(new Uint8Array([1, 2, 3]))).toThrow(BadFileError);
  });

  it('resumes from a checkpoint to the weights of an uninterrupted run, its schedule included', async () => {
    const pairs = reversal(300, 7);
    // Learning rate 0.05 makes some epochs worse on validation, so halving is part of what resumes.
    const shape = { hiddenSize: 12, embeddingDim: 8 };
    const o = { batchSize: 16, seed: 4, dropout: 0.1, patience: 10 };
    const whole = await Seq2Seq.train(pairs, { ...shape, ...o, learningRate: 0.05, epochs: 6 });
    expect(whole.history.map((e) => e.epoch)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(whole.history.map((e) => e.learningRate)).size).toBeGreaterThan(1);
    const path = join(dir, 'checkpoint.safetensors');
    const first = await Seq2Seq.train(pairs, { ...shape, ...o, learningRate: 0.05, epochs: 3, checkpoint: path });
    const resumed = await Seq2Seq.load(path);
    expect(resumed.history).toEqual(first.history.map((e) => ({ ...e })));
    await resumed.fit(pairs, { ...o, epochs: 3, checkpoint: path });
    expect(resumed.history.map((e) => [e.epoch, e.loss, e.validationLoss, e.learningRate])).toEqual(
      whole.history.map((e) => [e.epoch, e.loss, e.validationLoss, e.learningRate]),
    );
    expect(resumed.parameters()).toEqual(whole.parameters());
    // The checkpoint holds the last epoch's model and the whole history.
    const last = await Seq2Seq.load(path);
    expect(last.epochs).toBe(6);
    expect(last.history).toHaveLength(6);
    // fit takes only the training options, each checked.
    await expect(resumed.fit(pairs, { hiddenSize: 4 } as never)).rejects.toThrow(/hiddenSize/);
    await expect(resumed.fit(pairs, { checkpoint: '' })).rejects.toThrow(/checkpoint/);
    await expect(resumed.fit([], {})).rejects.toThrow(/pairs/);
    expect(resumed.history).toHaveLength(6);
  }, 60_000);

  it("decodes with an ensemble: each output's logProb is the mean of the models' (their evaluate agrees)", async () => {
    const tokenizers = { sourceTokenizer: model.sourceTokenizer, targetTokenizer: model.targetTokenizer };
    const other = await Seq2Seq.train(train, { ...tokenizers, hiddenSize: 24, embeddingDim: 8, epochs: 4, learningRate: 0.01, seed: 9 });
    const [r] = await model.transduce('bead', { beamWidth: 3, nBest: 3, ensemble: [other] });
    for (const h of r!.nBest) {
      const [a, b] = [await model.evaluate([['bead', h.text]]), await other.evaluate([['bead', h.text]])];
      // loss is per target token, the end included.
      expect(((a.loss + b.loss) / 2) * (h.tokens.length + 1)).toBeCloseTo(-h.logProb, 4);
    }
    const [alone] = await model.transduce('bead', { beamWidth: 3, nBest: 3 });
    expect(r!.nBest.map((h) => h.logProb)).not.toEqual(alone!.nBest.map((h) => h.logProb));
    // With itself, the model decodes as alone.
    expect(await model.transduce(['bead', 'fac'], { beamWidth: 2, ensemble: [model] })).toEqual(
      await model.transduce(['bead', 'fac'], { beamWidth: 2 }),
    );
    // The other model is busy while the ensemble decodes, and free after.
    const pending = model.transduce(['abc', 'fed'], { ensemble: [other] });
    await expect(other.transduce('abc')).rejects.toThrow(BusyError);
    await pending;
    expect((await other.transduce('abc'))[0]!.text).toBeTypeOf('string');
    const words = await Seq2Seq.train([['ab cd', 'x y']], { sourceTokenizer: 'word', epochs: 1, hiddenSize: 4 });
    await expect(model.transduce('abc', { ensemble: [words] })).rejects.toThrow(/ensemble\[0\].*tokenizers/);
    await expect(model.transduce('abc', { ensemble: [model, {}] as never })).rejects.toThrow(/ensemble\[1\] must be a Seq2Seq/);
    await expect(model.transduce('abc', { ensemble: model as never })).rejects.toThrow(/ensemble must be an array/);
    other.dispose();
    words.dispose();
  }, 60_000);

  it('refuses a second call while one runs', async () => {
    const pending = model.transduce(['abc']);
    await expect(model.transduce(['abc'])).rejects.toThrow(BusyError);
    await pending;
  });

  it('names the option or the pair at fault', async () => {
    await expect(Seq2Seq.train([['ab', 'ba']], { hiddenSize: 0 })).rejects.toThrow(/hiddenSize/);
    await expect(Seq2Seq.train([['ab', 'ba']], { dropout: 1 })).rejects.toThrow(/dropout/);
    await expect(Seq2Seq.train([['ab', 'ba']], { attention: 'general', attentionUnits: 4 })).rejects.toThrow(/attentionUnits/);
    await expect(Seq2Seq.train([['ab', 'ba']], { depth: 2 } as never)).rejects.toThrow(/depth/);
    await expect(Seq2Seq.train([['ab', 3]] as never)).rejects.toThrow(/pairs\[0\]/);
    await expect(Seq2Seq.train([])).rejects.toThrow(InvalidArgumentError);
    await expect(Seq2Seq.train([['', 'x']])).rejects.toThrow(/pairs\[0\]\[0\]/);
    await expect(model.transduce('abc', { beamWidth: 0 })).rejects.toThrow(/beamWidth/);
    await expect(model.transduce('abc', { beamWidth: 2, nBest: 3 })).rejects.toThrow(/nBest/);
    await expect(model.transduce('')).rejects.toThrow(/texts\[0\]/);
    // Characters never seen map to the unknown id: decoded, not refused.
    expect((await model.transduce('xyz'))[0]!.finished).toBe(true);
  });

  it('trains with word tokenizers, a GRU, additive attention and label smoothing', async () => {
    const words: TextPair[] = reversal(200, 5).map(([s, t]) => [[...s].join(' '), [...t].join(' ')]);
    const m = await Seq2Seq.train(words, {
      sourceTokenizer: 'word',
      targetTokenizer: CharTokenizer.fromCorpus(words.map((p) => p[1])),
      cell: 'gru',
      attention: 'additive',
      labelSmoothing: 0.1,
      dropout: 0.2,
      hiddenSize: 16,
      epochs: 2,
      validation: 0,
    });
    expect(m.history).toHaveLength(2);
    expect(m.history[0]!.validationLoss).toBeUndefined();
    expect(m.config).toMatchObject({ cell: 'gru', score: { additive: { units: 32 } } });
  });
});

describe('editDistance', () => {
  it('counts insertions, deletions and substitutions', () => {
    expect(editDistance([...'kitten'], [...'sitting'])).toBe(3);
    expect(editDistance([], ['a'])).toBe(1);
    expect(editDistance(['a', 'b'], ['a', 'b'])).toBe(0);
  });
});
