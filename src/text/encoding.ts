/** Encodings of token ids: one-hot rows ({@link oneHot}) and the next-token pairs a language model trains on ({@link textSequences}). */
import { InvalidArgumentError } from '../errors.js';
import { describe, intIn, options } from '../util/check.js';
import { checkTokenizer, type Tokenizer, type UnknownTokens, unknownMode } from './tokenizers.js';

/**
 * One-hot rows of `ids`: `data` is `[ids.length, vocabSize]` row-major floats with a single 1
 * per row at the id's column.
 * @throws {InvalidArgumentError} for a vocabSize that is not an integer ≥ 1 or an id outside `0..vocabSize-1`.
 */
export function oneHot(ids: ArrayLike<number>, vocabSize: number): { data: Float32Array; shape: [number, number] } {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
    throw new InvalidArgumentError(`ids must be an array of token ids, got ${describe(ids)}`);
  }
  intIn('vocabSize', vocabSize, 1);
  const data = new Float32Array(ids.length * vocabSize);
  for (let i = 0; i < ids.length; i++) data[i * vocabSize + intIn(`ids[${i}]`, ids[i], 0, vocabSize - 1)] = 1;
  return { data, shape: [ids.length, vocabSize] };
}

/** Options of {@link textSequences}. */
export interface TextSequenceOptions {
  /** Steps per sequence (an integer ≥ 1): longer texts are cut into consecutive chunks. Default: no limit. */
  maxLength?: number;
  /** Tokens outside the vocabulary; see {@link UnknownTokens}. Default `'map'`. */
  unknown?: UnknownTokens;
}

/**
 * Next-token training pairs of a language model. A text with ids `t1..tn` gives input
 * `[END, t1, ..., tn]` and target `[t1, ..., tn, END]` (n + 1 steps; `END` is {@link END_ID}).
 * With `maxLength`, those n + 1 steps are cut into consecutive chunks of at most `maxLength`
 * steps; each chunk's input starts with the token before it (`END` for the first chunk).
 * Texts without tokens (empty strings) are skipped.
 * @returns `x` and `y`: `[sequences][steps]` ragged token ids, the same lengths; ready for
 *   `model.fit(x, y, { loss: 'crossEntropy' })` of a model with `returnSequences: true`.
 * @throws {InvalidArgumentError} when no text has tokens, or for a bad option or text.
 */
export function textSequences(texts: string[], tokenizer: Tokenizer, options_: TextSequenceOptions = {}): { x: number[][]; y: number[][] } {
  if (!Array.isArray(texts)) throw new InvalidArgumentError(`texts must be an array of strings, got ${describe(texts)}`);
  checkTokenizer('tokenizer', tokenizer);
  const o = options('options', options_, ['maxLength', 'unknown']);
  const maxLength = o.maxLength === undefined ? Infinity : intIn('maxLength', o.maxLength, 1);
  const unknown = unknownMode(o.unknown);
  const end = tokenizer.endId;
  const x: number[][] = [];
  const y: number[][] = [];
  texts.forEach((text, i) => {
    if (typeof text !== 'string') throw new InvalidArgumentError(`texts[${i}] must be a string, got ${describe(text)}`);
    const ids = tokenizer.encode(text, { unknown });
    if (ids.length === 0) return;
    const input = [end, ...ids];
    const target = [...ids, end];
    for (let from = 0; from < input.length; from += maxLength) {
      x.push(input.slice(from, from + maxLength));
      y.push(target.slice(from, from + maxLength));
    }
  });
  if (x.length === 0)
    throw new InvalidArgumentError(`texts must hold at least one non-empty text; the ${texts.length} given have no tokens`);
  return { x, y };
}
