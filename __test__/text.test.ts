/**
 * The text toolkit: tokenizers, encodings, sampling, generation, and the TextGenerator and
 * TextClassifier convenience classes, all through the public API with real (small) models.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CharTokenizer,
  END_ID,
  InvalidArgumentError,
  MissingArgumentError,
  ShapeMismatchError,
  TextClassifier,
  TextGenerator,
  UNKNOWN_ID,
  WordTokenizer,
  generateText,
  oneHot,
  sampleFrom,
  seededRandom,
  sequential,
  textSequences,
  tokenizerFromJSON,
  type ModelSpec,
  type ProgressEvent,
} from 'gyre';

const dir = mkdtempSync(join(tmpdir(), 'gyre-text-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The message of the error `fn` throws (and that it is an InvalidArgumentError). */
function invalid(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as Error).message;
  }
  throw new Error('expected an InvalidArgumentError, nothing was thrown');
}

describe('CharTokenizer', () => {
  it('orders the vocabulary by decreasing count, then code point, after the two reserved ids', () => {
    const tok = CharTokenizer.fromCorpus('abracadabra');
    expect(tok.kind).toBe('char');
    expect(tok.toJSON()).toEqual({ type: 'char', version: 1, lowercase: false, tokens: ['a', 'b', 'r', 'c', 'd'] });
    expect(tok.vocabSize).toBe(7);
    expect([tok.unknownId, tok.endId]).toEqual([UNKNOWN_ID, END_ID]);
    expect([UNKNOWN_ID, END_ID]).toEqual([0, 1]);
    expect(tok.encode('cab')).toEqual([5, 2, 3]);
    expect(tok.decode([5, 2, 3])).toBe('cab');
    expect(tok.idOf('r')).toBe(4);
    expect(tok.idOf('z')).toBeUndefined();
    expect(tok.tokenOf(6)).toBe('d');
    expect(tok.tokenOf(0)).toBe('\uFFFD');
    expect(tok.tokenOf(1)).toBe('\n');
    expect(tok.decode([2, 1, 0, 3])).toBe('a\n\uFFFDb');
    invalid(() => tok.tokenOf(7));
    expect(invalid(() => tok.decode([2, 7]))).toMatch(/ids\[1\].*0\.\.6.*7/);
    invalid(() => tok.decode([1.5]));
  });

  it('keeps emoji and other surrogate pairs as one token and round trips them', () => {
    const texts = ['héllo 😀 wörld', '𝒳 marks 😀 the spot 👋🏽'];
    const tok = CharTokenizer.fromCorpus(texts);
    for (const t of tok.toJSON().tokens) expect(Array.from(t)).toHaveLength(1);
    expect(tok.encode('😀')).toHaveLength(1);
    expect(tok.encode('😀😀')).toEqual([tok.idOf('😀'), tok.idOf('😀')]);
    expect(tok.encode('👋🏽')).toHaveLength(2); // hand + skin-tone modifier: two code points
    for (const t of texts) expect(tok.decode(tok.encode(t))).toBe(t);
    // A Set iterates in insertion order: any iterable of strings is a corpus.
    expect(CharTokenizer.fromCorpus(new Set(texts)).toJSON()).toEqual(tok.toJSON());
  });

  it('maps, skips or rejects unknown characters, naming the character and its position', () => {
    const tok = CharTokenizer.fromCorpus(['abc']);
    expect(tok.encode('abxc')).toEqual([2, 3, 0, 4]);
    expect(tok.encode('abxc', { unknown: 'map' })).toEqual([2, 3, 0, 4]);
    expect(tok.decode(tok.encode('abxc'))).toBe('ab\uFFFDc');
    expect(tok.encode('abxc', { unknown: 'skip' })).toEqual([2, 3, 4]);
    const msg = invalid(() => tok.encode('abxc', { unknown: 'error' }));
    expect(msg).toContain('"x"');
    expect(msg).toContain('U+0078');
    expect(msg).toContain('position 2');
    // Positions count code points: the emoji before 'z' is one character.
    const emoji = invalid(() => tok.encode('a😀b', { unknown: 'error' }));
    expect(emoji).toContain('"😀"');
    expect(emoji).toContain('U+1F600');
    expect(emoji).toContain('position 1');
    expect(invalid(() => tok.encode('abc', { unknown: 'drop' as never }))).toMatch(
      /unknown must be one of 'map', 'skip', 'error', got "drop"/,
    );
    invalid(() => tok.encode(42 as never));
  });

  it('lowercases only when asked, and limits the vocabulary with maxVocab and minCount', () => {
    expect(CharTokenizer.fromCorpus('AaB').toJSON().tokens).toEqual(['A', 'B', 'a']);
    const lower = CharTokenizer.fromCorpus('AaB', { lowercase: true });
    expect(lower.toJSON()).toEqual({ type: 'char', version: 1, lowercase: true, tokens: ['a', 'b'] });
    expect(lower.encode('BAb')).toEqual([3, 2, 3]);
    expect(CharTokenizer.fromCorpus('aaabbc', { maxVocab: 4 }).toJSON().tokens).toEqual(['a', 'b']);
    expect(CharTokenizer.fromCorpus('aaabbc', { minCount: 2 }).toJSON().tokens).toEqual(['a', 'b']);
    expect(CharTokenizer.fromCorpus('aaabbc', { minCount: 3 }).vocabSize).toBe(3);
  });

  it('rejects an empty corpus and bad options, naming the option and value', () => {
    for (const corpus of ['', [], ['', '']]) expect(invalid(() => CharTokenizer.fromCorpus(corpus))).toMatch(/corpus is empty/);
    expect(invalid(() => WordTokenizer.fromCorpus(['  ', '\n']))).toMatch(/corpus is empty/);
    expect(invalid(() => CharTokenizer.fromCorpus('abc', { maxVocab: 2.5 }))).toMatch(/maxVocab.*2\.5/);
    expect(invalid(() => CharTokenizer.fromCorpus('abc', { maxVocab: 2 }))).toMatch(/maxVocab must be an integer ≥ 3, got 2/);
    expect(invalid(() => CharTokenizer.fromCorpus('abc', { minCount: 0 }))).toMatch(/minCount.*0/);
    expect(invalid(() => CharTokenizer.fromCorpus('abc', { lowercase: 'yes' as never }))).toMatch(/lowercase.*"yes"/);
    expect(invalid(() => CharTokenizer.fromCorpus('abc', { size: 3 } as never))).toMatch(/unknown option size/);
    expect(invalid(() => CharTokenizer.fromCorpus('aab', { minCount: 5 }))).toMatch(/minCount 5/);
    expect(invalid(() => CharTokenizer.fromCorpus(['a', 3] as never))).toMatch(/texts\[1\]/);
    invalid(() => CharTokenizer.fromCorpus(7 as never));
  });
});

describe('WordTokenizer', () => {
  it('splits words and punctuation, lowercases by default, and decodes with sensible spacing', () => {
    const tok = WordTokenizer.fromCorpus(['Hello, world!', 'hello there.']);
    expect(tok.kind).toBe('word');
    expect(tok.toJSON()).toEqual({ type: 'word', version: 1, lowercase: true, tokens: ['hello', '!', ',', '.', 'there', 'world'] });
    expect(tok.encode('Hello,   WORLD!')).toEqual([2, 4, 7, 3]);
    expect(tok.decode(tok.encode('Hello, world!'))).toBe('hello, world!');
    expect(tok.decode([2, 5, 1, 6])).toBe('hello.\nthere');

    const text = `She said "don't (ever)" — twice; well-known 42% now.`;
    const t2 = WordTokenizer.fromCorpus(text, { lowercase: false });
    expect(t2.toJSON().tokens).toContain("don't");
    expect(t2.toJSON().tokens).toContain('She');
    expect(t2.decode(t2.encode(text))).toBe(text);
  });

  it('maps, skips or rejects unknown words, naming the word and its position', () => {
    const tok = WordTokenizer.fromCorpus('the cat sat');
    expect(tok.encode('the dog sat')).toEqual([tok.idOf('the'), 0, tok.idOf('sat')]);
    expect(tok.decode(tok.encode('the dog sat'))).toBe('the \uFFFD sat');
    expect(tok.encode('the dog sat', { unknown: 'skip' })).toHaveLength(2);
    const msg = invalid(() => tok.encode('The cat saw', { unknown: 'error' }));
    expect(msg).toContain('"saw"');
    expect(msg).toContain('position 2');
    expect(msg).toContain('offset 8');
  });
});

describe('tokenizer JSON', () => {
  it('round trips both kinds, as an object or a JSON string', () => {
    const texts = ['Über 😀 café', 'naïve — ok?'];
    for (const tok of [
      CharTokenizer.fromCorpus(texts),
      WordTokenizer.fromCorpus(texts),
      CharTokenizer.fromCorpus(texts, { lowercase: true }),
    ]) {
      for (const json of [tok.toJSON(), JSON.parse(JSON.stringify(tok)), JSON.stringify(tok.toJSON())]) {
        const back = tokenizerFromJSON(json);
        expect(back.kind).toBe(tok.kind);
        expect(back.vocabSize).toBe(tok.vocabSize);
        expect(back.toJSON()).toEqual(tok.toJSON());
        for (const t of texts) expect(back.encode(t)).toEqual(tok.encode(t));
      }
    }
  });

  it('rejects malformed JSON with an InvalidArgumentError', () => {
    const good = { type: 'char', version: 1, lowercase: false, tokens: ['a', 'b'] };
    const bad: [unknown, RegExp][] = [
      [null, /object/],
      ['{not json', /not valid JSON/],
      [[], /object/],
      [{ ...good, type: 'bpe' }, /type.*"bpe"/],
      [{ ...good, version: 2 }, /version.*2/],
      [{ ...good, lowercase: 'no' }, /lowercase/],
      [{ ...good, tokens: 'ab' }, /tokens must be an array/],
      [{ ...good, tokens: [] }, /at least one token/],
      [{ ...good, tokens: ['a', 3] }, /tokens\[1\] must be a string, got 3/],
      [{ ...good, tokens: ['a', 'b', 'a'] }, /tokens\[2\] "a" duplicates tokens\[0\]/],
      [{ ...good, tokens: ['ab'] }, /exactly one character/],
      [{ ...good, tokens: [''] }, /exactly one character/],
      [{ ...good, type: 'word', tokens: ['a b'] }, /one word/],
      [{ ...good, extra: 1 }, /unknown key "extra"/],
      [{ type: 'char', version: 1, tokens: ['a'] }, /lowercase/],
    ];
    for (const [json, re] of bad) expect(invalid(() => tokenizerFromJSON(json))).toMatch(re);
  });
});

describe('encodings', () => {
  it('oneHot gives one 1 per row', () => {
    const r = oneHot([2, 0, 1], 3);
    expect(r.shape).toEqual([3, 3]);
    expect(Array.from(r.data)).toEqual([0, 0, 1, 1, 0, 0, 0, 1, 0]);
    expect(oneHot(new Uint32Array([1]), 2).data).toEqual(new Float32Array([0, 1]));
    expect(oneHot([], 4).shape).toEqual([0, 4]);
    expect(invalid(() => oneHot([0, 3], 3))).toMatch(/ids\[1\].*0\.\.2.*3/);
    invalid(() => oneHot([-1], 3));
    invalid(() => oneHot([0.5], 3));
    expect(invalid(() => oneHot([0], 0))).toMatch(/vocabSize/);
  });

  it('textSequences gives next-token pairs that start and end with END, skipping empty texts', () => {
    const tok = CharTokenizer.fromCorpus('abc'); // a=2, b=3, c=4
    expect(textSequences(['abc', '', 'ba'], tok)).toEqual({
      x: [
        [1, 2, 3, 4],
        [1, 3, 2],
      ],
      y: [
        [2, 3, 4, 1],
        [3, 2, 1],
      ],
    });
  });

  it('cuts long texts into consecutive chunks of at most maxLength steps', () => {
    const tok = CharTokenizer.fromCorpus('abc');
    expect(textSequences(['abc'], tok, { maxLength: 2 })).toEqual({
      x: [
        [1, 2],
        [3, 4],
      ],
      y: [
        [2, 3],
        [4, 1],
      ],
    });
    expect(textSequences(['abc', 'c'], tok, { maxLength: 3 })).toEqual({ x: [[1, 2, 3], [4], [1, 4]], y: [[2, 3, 4], [1], [4, 1]] });
    expect(textSequences(['abxc'], tok, { unknown: 'skip' }).x).toEqual([[1, 2, 3, 4]]);
    expect(invalid(() => textSequences(['', ''], tok))).toMatch(/at least one non-empty text/);
    expect(invalid(() => textSequences(['abc'], tok, { maxLength: 0 }))).toMatch(/maxLength.*0/);
    invalid(() => textSequences(['abc', 5] as never, tok));
  });
});

describe('sampling', () => {
  const never = () => {
    throw new Error('random must not be called');
  };

  it('temperature 0 and topK 1 pick the highest score', () => {
    expect(sampleFrom([0.1, 3, 2, -1], { temperature: 0, random: never })).toBe(1);
    expect(sampleFrom([0.2, 0.1, 0.7], { temperature: 0, random: never, probabilities: true })).toBe(2);
    const random = seededRandom(5);
    for (let i = 0; i < 200; i++) expect(sampleFrom([0.1, 3, 2.9, -1], { topK: 1, random })).toBe(1);
  });

  it('applies the temperature to logits and to probabilities', () => {
    // p = [0.6, 0.4]; with T = 0.5 it becomes [0.36, 0.16] / 0.52 ≈ [0.692, 0.308].
    const at = (r: number, temperature: number, probabilities: boolean) =>
      sampleFrom(probabilities ? [0.6, 0.4] : [Math.log(0.6), Math.log(0.4)], { temperature, probabilities, random: () => r });
    for (const probabilities of [true, false]) {
      expect(at(0.59, 1, probabilities)).toBe(0);
      expect(at(0.65, 1, probabilities)).toBe(1);
      expect(at(0.65, 0.5, probabilities)).toBe(0);
      expect(at(0.7, 0.5, probabilities)).toBe(1);
    }
  });

  it('topP keeps only the head of the distribution, topK only the k best', () => {
    const probs = [0.05, 0.5, 0.15, 0.3];
    const logits = probs.map(Math.log);
    for (const [scores, probabilities] of [
      [probs, true],
      [logits, false],
    ] as const) {
      const random = seededRandom(11);
      const counts = [0, 0, 0, 0];
      const n = 4000;
      for (let i = 0; i < n; i++) counts[sampleFrom(scores, { topP: 0.7, random, probabilities })]!++;
      // Smallest head reaching 0.7: indices 1 (0.5) and 3 (0.3); renormalised 0.625 / 0.375.
      expect(counts[0]).toBe(0);
      expect(counts[2]).toBe(0);
      expect(counts[1]! / n).toBeCloseTo(0.625, 1);
      const topK = [0, 0, 0, 0];
      for (let i = 0; i < n; i++) topK[sampleFrom(scores, { topK: 3, random, probabilities })]!++;
      expect(topK[0]).toBe(0);
      expect(topK[2]! / n).toBeCloseTo(0.15 / 0.95, 1);
    }
    // Every index appears without a filter.
    const random = seededRandom(3);
    const seen = new Set(Array.from({ length: 2000 }, () => sampleFrom(logits, { random })));
    expect(seen.size).toBe(4);
  });

  it('seededRandom is deterministic, uniform in [0, 1), and differs between seeds', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(xs.reduce((s, x) => s + x, 0) / xs.length).toBeCloseTo(0.5, 1);
    const c = seededRandom(43);
    expect(Array.from({ length: 10 }, () => c())).not.toEqual(xs.slice(0, 10));
    const r1 = seededRandom(7);
    const r2 = seededRandom(7);
    const draws = (r: () => number) => Array.from({ length: 50 }, () => sampleFrom([1, 2, 0.5, 1.5], { random: r }));
    expect(draws(r1)).toEqual(draws(r2));
    invalid(() => seededRandom(1.5));
  });

  it('validates its options', () => {
    const random = seededRandom(0);
    expect(invalid(() => sampleFrom([1, 2], { temperature: -1, random }))).toMatch(/temperature.*-1/);
    expect(invalid(() => sampleFrom([1, 2], { temperature: Number.POSITIVE_INFINITY, random }))).toMatch(/temperature/);
    expect(invalid(() => sampleFrom([1, 2], { topK: 0, random }))).toMatch(/topK.*0/);
    expect(invalid(() => sampleFrom([1, 2], { topK: 1.5, random }))).toMatch(/topK.*1\.5/);
    expect(invalid(() => sampleFrom([1, 2], { topP: 0, random }))).toMatch(/topP.*0/);
    expect(invalid(() => sampleFrom([1, 2], { topP: 1.5, random }))).toMatch(/topP.*1\.5/);
    expect(invalid(() => sampleFrom([], { random }))).toMatch(/scores/);
    expect(invalid(() => sampleFrom([1, Number.NaN], { random }))).toMatch(/scores\[1\]/);
    expect(invalid(() => sampleFrom([0.5, -0.1], { random, probabilities: true }))).toMatch(/scores\[1\]/);
    expect(invalid(() => sampleFrom([1, 2], { random: () => 1 }))).toMatch(/random\(\)/);
    expect(() => sampleFrom([1, 2], {} as never)).toThrow(MissingArgumentError);
    // -Infinity logits are impossible indices.
    for (let i = 0; i < 50; i++) expect(sampleFrom([Number.NEGATIVE_INFINITY, 0], { random })).toBe(1);
  });
});

const textModel = (vocabSize: number, activation: 'linear' | 'softmax' = 'linear', units = vocabSize): ModelSpec => ({
  input: { vocabSize },
  layers: [
    { type: 'embedding', dim: 8 },
    { type: 'gru', hiddenSize: 16 },
    { type: 'dense', units, activation },
  ],
  seed: 9,
});

describe('generateText', () => {
  const tok = CharTokenizer.fromCorpus('the quick brown fox jumps over the lazy dog');

  it('is deterministic for a random seed and differs between seeds', () => {
    const model = sequential(textModel(tok.vocabSize));
    const opts = { seed: 'the ', maxLength: 40, stopAtEnd: false };
    const a = generateText(model, tok, { ...opts, randomSeed: 1 });
    expect(a.startsWith('the ')).toBe(true);
    expect(a.length).toBeGreaterThan(4 + 20);
    expect(generateText(model, tok, { ...opts, randomSeed: 1 })).toBe(a);
    expect(generateText(model, tok, { ...opts, randomSeed: 2 })).not.toBe(a);
    expect(generateText(model, tok, { ...opts, temperature: 0 })).toBe(
      generateText(model, tok, { ...opts, temperature: 0, randomSeed: 5 }),
    );
    expect(generateText(model, tok, { seed: 'fox', maxLength: 0 })).toBe('fox');
    // Unknown seed characters: mapped by default, rejected on request.
    expect(generateText(model, tok, { seed: 'QZ', maxLength: 3, randomSeed: 1, stopAtEnd: false })).toHaveLength(5);
    expect(invalid(() => generateText(model, tok, { seed: 'Q', unknown: 'error' }))).toContain('"Q"');
  });

  it('reads a softmax output as probabilities', () => {
    // Same seed and shapes: the same weights, so softmax(logits) and the logits sample alike.
    const logits = sequential(textModel(tok.vocabSize, 'linear'));
    const probs = sequential(textModel(tok.vocabSize, 'softmax'));
    for (const temperature of [0, 0.7, 1]) {
      const opts = { seed: 'a', maxLength: 30, randomSeed: 4, temperature, stopAtEnd: false };
      expect(generateText(probs, tok, opts)).toBe(generateText(logits, tok, opts));
    }
  });

  it('rejects a model that does not match the tokenizer, and bad options', () => {
    expect(invalid(() => generateText(sequential(textModel(tok.vocabSize + 1)), tok))).toMatch(
      new RegExp(`vocabSize ${tok.vocabSize + 1}.*tokenizer has vocabSize ${tok.vocabSize}`),
    );
    expect(invalid(() => generateText(sequential(textModel(tok.vocabSize, 'linear', 5)), tok))).toMatch(/outputs 5 values per step/);
    const features = sequential({
      input: { features: 3 },
      layers: [
        { type: 'lstm', hiddenSize: 4 },
        { type: 'dense', units: tok.vocabSize },
      ],
    });
    expect(invalid(() => generateText(features, tok))).toMatch(/float features per step, not token ids/);
    const model = sequential(textModel(tok.vocabSize));
    expect(invalid(() => generateText(model, tok, { temperature: -1 }))).toMatch(/temperature/);
    expect(invalid(() => generateText(model, tok, { maxLength: -1 }))).toMatch(/maxLength/);
    expect(invalid(() => generateText(model, tok, { randomSeed: 0.5 }))).toMatch(/randomSeed/);
    expect(invalid(() => generateText(model, tok, { length: 3 } as never))).toMatch(/unknown option length/);
  });
});

describe('TextGenerator', () => {
  const words = ['cat', 'dog', 'fish', 'bird'];
  const corpus = Array.from({ length: 40 }, () => words).flat();
  const trained = TextGenerator.train(corpus, { hiddenSize: 32, epochs: 20, batchSize: 16, learningRate: 0.02, seed: 1 });

  it('learns a small corpus: the loss falls and greedy generation completes each word from its first letter', async () => {
    const gen = await trained;
    expect(gen.tokenizer.kind).toBe('char');
    expect(gen.model.config.layers.map((l) => l.type)).toEqual(['embedding', 'lstm', 'dense']);
    const losses = gen.history!.epochs.map((e) => e.loss);
    expect(losses).toHaveLength(20);
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! / 2);
    for (const w of words) expect(gen.generate({ seed: w[0]!, temperature: 0 })).toBe(w);
    expect(gen.generate({ randomSeed: 8, maxLength: 50 })).toBe(gen.generate({ randomSeed: 8, maxLength: 50 }));
  });

  it('saves and loads: same tokenizer, same generated text', async () => {
    const gen = await trained;
    const path = join(dir, 'gen.safetensors');
    await gen.save(path);
    const back = await TextGenerator.load(path);
    expect(back.tokenizer.toJSON()).toEqual(gen.tokenizer.toJSON());
    expect(back.history).toBeUndefined();
    const opts = { randomSeed: 3, maxLength: 60, stopAtEnd: false, topP: 0.95 };
    expect(back.generate(opts)).toBe(gen.generate(opts));
    expect(back.model.metadata).toEqual({ gyre: { task: 'text', tokenizer: gen.tokenizer.toJSON() } });
    expect(TextGenerator.fromModel(back.model).generate({ seed: 'd', temperature: 0 })).toBe('dog');
  });

  it('refuses model files of another task or without a tokenizer', async () => {
    const plain = sequential(textModel(7));
    const other = join(dir, 'other.safetensors');
    await plain.save(other, { metadata: { gyre: { task: 'forecast' } } });
    const loadOther = TextGenerator.load(other);
    await expect(loadOther).rejects.toThrow(InvalidArgumentError);
    await expect(loadOther).rejects.toThrow("the model file is a 'forecast' model, not a text model");
    const none = join(dir, 'none.safetensors');
    await plain.save(none);
    await expect(TextGenerator.load(none)).rejects.toThrow(/has no gyre metadata/);
    const noTok = join(dir, 'notok.safetensors');
    await plain.save(noTok, { metadata: { gyre: { task: 'text' } } });
    await expect(TextGenerator.load(noTok)).rejects.toThrow(/has no tokenizer/);
    const gen = join(dir, 'gen2.safetensors');
    await (await trained).save(gen);
    await expect(TextClassifier.load(gen)).rejects.toThrow("the model file is a 'text' model, not a text classification model");
  });

  it('trains a word-level generator that reproduces a sentence with its punctuation', async () => {
    const sentences = ['Red apples grow slowly.', 'Blue birds sing, loudly!'];
    const events: ProgressEvent[] = [];
    const gen = await TextGenerator.train(Array.from({ length: 30 }, () => sentences).flat(), {
      tokenizer: 'word',
      cell: 'gru',
      hiddenSize: 24,
      epochs: 15,
      batchSize: 12,
      learningRate: 0.02,
      onProgress: (e) => events.push(e),
    });
    expect(gen.tokenizer.kind).toBe('word');
    expect(events.filter((e) => e.kind === 'epoch')).toHaveLength(15);
    expect(gen.generate({ seed: 'Red', temperature: 0 })).toBe('Red apples grow slowly.');
    expect(gen.generate({ seed: 'blue birds', temperature: 0 })).toBe('blue birds sing, loudly!');
  });

  it('uses a given tokenizer and rejects bad options', async () => {
    const tok = CharTokenizer.fromCorpus('abcdef');
    const gen = await TextGenerator.train(['abc', 'def'], { tokenizer: tok, cell: 'rnn', hiddenSize: 4, epochs: 1, embeddingDim: 3 });
    expect(gen.tokenizer).toBe(tok);
    expect(gen.model.config.layers[0]).toEqual({ type: 'embedding', dim: 3 });
    await expect(TextGenerator.train(['abc'], { hiddenSize: 0 })).rejects.toThrow(/hiddenSize must be a positive integer, got 0/);
    await expect(TextGenerator.train(['abc'], { cell: 'transformer' as never })).rejects.toThrow(/cell.*"transformer"/);
    await expect(TextGenerator.train(['abc'], { learningRate: -1 })).rejects.toThrow(/learningRate/);
    await expect(TextGenerator.train(['abc'], { tokenizer: 'bpe' as never })).rejects.toThrow(InvalidArgumentError);
    await expect(TextGenerator.train(['abc'], { epoch: 3 } as never)).rejects.toThrow(/unknown option epoch/);
    await expect(TextGenerator.train([])).rejects.toThrow(InvalidArgumentError);
    await expect(TextGenerator.train(['', ''])).rejects.toThrow(/corpus is empty/);
    expect(() => new TextGenerator(sequential(textModel(5)), tok)).toThrow(InvalidArgumentError);
  });
});

describe('TextClassifier', () => {
  const texts: string[] = [];
  const labels: string[] = [];
  for (let n = 1; n <= 8; n++) {
    texts.push('a'.repeat(n), 'b'.repeat(n));
    labels.push('as', 'bs');
  }
  const trained = TextClassifier.train(texts, labels, { hiddenSize: 8, epochs: 40, batchSize: 8, learningRate: 0.05 });

  it("learns 'a' strings from 'b' strings to accuracy 1", async () => {
    const clf = await trained;
    expect(clf.labels).toEqual(['as', 'bs']);
    expect(clf.tokenizer.kind).toBe('char');
    const history = clf.history!.epochs;
    expect(history[history.length - 1]!.loss).toBeLessThan(history[0]!.loss);
    const r = clf.evaluate(texts, labels);
    expect(r.accuracy).toBe(1);
    expect(r.loss).toBeLessThan(0.2);
    const out = clf.classify(['aaaa', 'bbb', 'a']);
    expect(out.map((o) => o.label)).toEqual(['as', 'bs', 'as']);
    for (const o of out) {
      expect(o.probabilities).toHaveLength(2);
      expect(o.probabilities[0]! + o.probabilities[1]!).toBeCloseTo(1, 6);
      expect(Math.max(...o.probabilities)).toBeGreaterThan(0.8);
    }
  });

  it('saves and loads with its labels and tokenizer', async () => {
    const clf = await trained;
    const path = join(dir, 'clf.safetensors');
    await clf.save(path);
    const back = await TextClassifier.load(path);
    expect(back.labels).toEqual(clf.labels);
    expect(back.classify(['aa', 'bbbbb'])).toEqual(clf.classify(['aa', 'bbbbb']));
    expect(back.model.metadata).toEqual({ gyre: { task: 'classify', tokenizer: clf.tokenizer.toJSON(), labels: ['as', 'bs'] } });
    await expect(TextGenerator.load(path)).rejects.toThrow("the model file is a 'classify' model, not a text model");
  });

  it('maps labels to class ids in sorted order, numbers before strings', async () => {
    const opts = { hiddenSize: 4, epochs: 1 };
    expect((await TextClassifier.train(['x', 'y', 'z'], [10, 2, 10], opts)).labels).toEqual([2, 10]);
    expect((await TextClassifier.train(['x', 'y', 'z'], ['spam', 'ham', 1], opts)).labels).toEqual([1, 'ham', 'spam']);
  });

  it('rejects mismatched lengths, empty texts and unknown labels', async () => {
    await expect(TextClassifier.train(['a', 'b'], ['x'])).rejects.toThrow(ShapeMismatchError);
    await expect(TextClassifier.train(['a', 'b', ''], ['x', 'y', 'x'])).rejects.toThrow(/texts\[2\] is empty/);
    await expect(TextClassifier.train(['a', 'b'], ['x', 'x'])).rejects.toThrow(/at least 2 distinct labels/);
    await expect(TextClassifier.train(['a', 'b'], ['x', null as never])).rejects.toThrow(/labels\[1\]/);
    const clf = await trained;
    expect(invalid(() => clf.classify(['aa', '']))).toMatch(/texts\[1\]/);
    expect(() => clf.evaluate(['aa'], ['as', 'bs'])).toThrow(ShapeMismatchError);
    expect(invalid(() => clf.evaluate(['aa'], ['cs']))).toMatch(/labels\[0\] "cs" is not one of/);
    // Unknown characters read as the unknown id rather than failing.
    expect(clf.classify(['aza'])).toHaveLength(1);
  });

  it("weighs labels by classWeight: 'balanced' is n / (K·n_k), a label's weight reaches training, and recurrentDropout is the layer's", async () => {
    // 3 texts of label 'x', 1 of 'y': balanced weights 4 / (2·3) and 4 / (2·1).
    const few = ['ab', 'abc', 'ba', 'cc'];
    const tags = ['x', 'x', 'x', 'y'];
    const opts = { hiddenSize: 4, epochs: 2, batchSize: 2, seed: 3, recurrentDropout: 0.2 };
    const probs = async (classWeight?: 'balanced' | Record<string, number>) => {
      const clf = await TextClassifier.train(few, tags, { ...opts, ...(classWeight === undefined ? {} : { classWeight }) });
      expect(clf.model.config.layers[1]).toMatchObject({ recurrentDropout: 0.2 });
      return clf.classify(few).flatMap((c) => c.probabilities);
    };
    const plain = await probs();
    const balanced = await probs('balanced');
    expect(balanced).toEqual(await probs({ x: 4 / 6, y: 2 }));
    expect(balanced).not.toEqual(plain);
    // The loss is a weighted mean: scaling every weight by 2 (exact in floats) changes nothing;
    // a label left out weighs 1.
    expect(await probs({ x: 4 / 3, y: 4 })).toEqual(balanced);
    expect(await probs({ x: 1 })).toEqual(plain);
    expect(await probs({ y: 3 })).not.toEqual(plain);
    // Numbers as labels are keyed by their string.
    const numeric = await TextClassifier.train(few, [1, 1, 1, 2], { ...opts, classWeight: { 2: 3 } });
    expect(numeric.classify(few).flatMap((c) => c.probabilities)).toEqual(await probs({ y: 3 }));
    await expect(TextClassifier.train(few, tags, { classWeight: { z: 2 } })).rejects.toThrow(
      /classWeight\.z: "z" is not one of the labels "x", "y"/,
    );
    await expect(TextClassifier.train(few, tags, { classWeight: { x: 0 } })).rejects.toThrow(
      /classWeight\.x must be a positive finite number, got 0/,
    );
    await expect(TextClassifier.train(few, tags, { classWeight: 'even' as never })).rejects.toThrow(InvalidArgumentError);
  });
});
