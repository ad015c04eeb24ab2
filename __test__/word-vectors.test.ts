/**
 * Pretrained word vectors (`loadWordVectors`): GloVe and word2vec text files, plain and
 * gzipped, laid out over a WordTokenizer's ids with the stated rule for the rows the file
 * lacks and a coverage report; bad files are errors naming the file and the line; the weight
 * goes into an embedding that training leaves as it is when frozen.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { FileError, InvalidArgumentError, loadWordVectors, sequential, WordTokenizer } from 'gyre';

const dir = mkdtempSync(join(tmpdir(), 'gyre-vectors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GLOVE = ['the 0.1 0.2 0.3', 'cat -1 0.5 2', 'Sat 3 3 3', 'mat 0 0 1e-2', 'the 9 9 9', 'dog 1 1 1', ''].join('\n');
const tokenizer = new WordTokenizer(['the', 'cat', 'sat', 'on', 'mat', '.']);

function file(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

describe('loadWordVectors', () => {
  it('lays the vocabulary’s vectors out by id and reports coverage', async () => {
    const v = await loadWordVectors(file('glove.txt', GLOVE), tokenizer, { seed: 3 });
    expect(v.dim).toBe(3);
    expect(v.weight.length).toBe(tokenizer.vocabSize * 3);
    const row = (id: number) => Array.from(v.weight.subarray(id * 3, id * 3 + 3));
    const id = (w: string) => tokenizer.tokens.indexOf(w) + 2;
    // The first vector of a word wins; words are lowercased as the tokenizer lowercases.
    expect(row(id('the'))).toEqual(Array.from(Float32Array.of(0.1, 0.2, 0.3)));
    expect(row(id('cat'))).toEqual([-1, 0.5, 2]);
    expect(row(id('sat'))).toEqual([3, 3, 3]);
    expect(row(id('mat'))).toEqual(Array.from(Float32Array.of(0, 0, 1e-2)));
    expect(v.coverage).toEqual({ found: 4, total: 6, rate: 4 / 6, missing: ['on', '.'] });
    // The unknown id gets the mean of the rows found.
    const mean = [0, 1, 2].map((k) => [id('the'), id('cat'), id('sat'), id('mat')].reduce((s, i) => s + row(i)[k]!, 0) / 4);
    for (const [k, x] of row(0).entries()) expect(x).toBeCloseTo(mean[k]!, 6);
    // Missing rows are drawn (seeded), zeros when asked.
    expect(row(id('on')).some((x) => x !== 0)).toBe(true);
    const again = await loadWordVectors(file('glove.txt', GLOVE), tokenizer, { seed: 3 });
    expect(again.weight).toEqual(v.weight);
    const other = await loadWordVectors(file('glove.txt', GLOVE), tokenizer, { seed: 4 });
    expect(Array.from(other.weight.subarray(id('on') * 3, id('on') * 3 + 3))).not.toEqual(row(id('on')));
    const zeros = await loadWordVectors(file('glove.txt', GLOVE), tokenizer, { missing: 'zeros' });
    expect(Array.from(zeros.weight.subarray(id('on') * 3, id('on') * 3 + 3))).toEqual([0, 0, 0]);
    expect(Array.from(zeros.weight.subarray(3, 6))).toEqual([0, 0, 0]);
  });

  it('reads gzipped files and word2vec’s header line the same', async () => {
    const plain = await loadWordVectors(file('a.txt', GLOVE), tokenizer);
    const gz = await loadWordVectors(file('a.txt.gz', gzipSync(GLOVE)), tokenizer);
    const w2v = await loadWordVectors(file('w2v.txt', `6 3\n${GLOVE}`), tokenizer);
    expect(gz).toEqual(plain);
    expect(w2v).toEqual(plain);
  });

  it('is refused for bad files and options, naming the file and the line', async () => {
    await expect(loadWordVectors(file('short.txt', 'the 1 2 3\ncat 1 2\n'), tokenizer)).rejects.toThrow(
      /short\.txt: line 2: 2 values, but the first vector has 3/,
    );
    await expect(loadWordVectors(file('nan.txt', 'the 1 x 3\n'), tokenizer)).rejects.toThrow(
      /nan\.txt: line 1: value 2 of "the" is "x", not a finite number/,
    );
    await expect(loadWordVectors(file('empty.txt', '\n'), tokenizer)).rejects.toThrow(/empty\.txt: no word vectors/);
    await expect(loadWordVectors(join(dir, 'nope.txt'), tokenizer)).rejects.toBeInstanceOf(FileError);
    await expect(loadWordVectors(file('ok.txt', GLOVE), tokenizer, { missing: 'mean' as 'zeros' })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(loadWordVectors(file('ok.txt', GLOVE), null as unknown as WordTokenizer)).rejects.toThrow(/WordTokenizer/);
  });

  it('initializes an embedding that stays frozen while the rest trains', async () => {
    const v = await loadWordVectors(file('glove.txt', GLOVE), tokenizer);
    const model = sequential({
      input: { vocabSize: tokenizer.vocabSize },
      layers: [
        { type: 'embedding', dim: v.dim, trainable: false },
        { type: 'lstm', hiddenSize: 4, returnSequences: false },
        { type: 'dense', units: 2, activation: 'softmax' },
      ],
    });
    model.setParameters({ '0.weight': v.weight });
    const texts = ['the cat sat on the mat .', 'the mat sat .', 'cat on mat .', 'the cat .'];
    const ids = texts.map((t) => Array.from(tokenizer.encode(t)));
    await model.fit(ids, [0, 1, 0, 1], { loss: 'crossEntropy', epochs: 3, batchSize: 2 });
    expect(model.parameters()['0.weight']!.data).toEqual(v.weight);
  });
});
