/**
 * Text toolkit: character and word tokenizers, one-hot and next-token encodings, sampling
 * (temperature, top-k, top-p) with a seeded PRNG, text generation from any token model, and
 * brain.js-style {@link TextGenerator} and {@link TextClassifier} classes that tokenize, build,
 * train, save and load in one call.
 *
 * Token ids: `0` ({@link UNKNOWN_ID}) stands for any character or word outside the vocabulary
 * and decodes as `'\uFFFD'`; `1` ({@link END_ID}) marks the end of a text (and is the first
 * input when generating) and decodes as `'\n'`; real tokens start at `2`, the most frequent
 * first.
 */
import { InvalidArgumentError, MissingArgumentError, ShapeMismatchError } from '../errors.js';
import { loadModel, sequential, type FitHistory, type FitOptions, type LayerSpec, type Model, type SaveOptions } from '../model/model.js';
import { seededRandom } from '../util/random.js';
import { describe, intIn, numberIn, positiveInt, object, oneOf, optBool, optInt, options } from '../util/check.js';

/** Compares strings by code point (JavaScript's `<` compares UTF-16 code units). */
function compareCodePoints(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function codePoint(ch: string): string {
  return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// Tokenizers

/** Id of the unknown token: any character or word outside the vocabulary. Decodes as `'\uFFFD'`. */
export const UNKNOWN_ID = 0;
/** Id of the end-of-text marker: ends every training sequence and starts generation. Decodes as `'\n'`. */
export const END_ID = 1;
/** What {@link UNKNOWN_ID} decodes to: U+FFFD REPLACEMENT CHARACTER. */
export const UNKNOWN_TEXT = '\uFFFD';
/** What {@link END_ID} decodes to: a line break, so that texts generated past their end stay apart. */
export const END_TEXT = '\n';

/**
 * What `encode` does with a character or word outside the vocabulary: `'map'` (default) turns
 * it into {@link UNKNOWN_ID}, `'skip'` drops it, `'error'` throws an {@link InvalidArgumentError}
 * naming the token and its position.
 */
export type UnknownTokens = 'map' | 'skip' | 'error';

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Tokens outside the vocabulary; see {@link UnknownTokens}. Default `'map'`. */
  unknown?: UnknownTokens;
}

/** A tokenizer's vocabulary as JSON: what {@link Tokenizer.toJSON} returns and {@link tokenizerFromJSON} reads. */
export interface TokenizerJSON {
  type: 'char' | 'word';
  version: 1;
  /** Whether text is lowercased before it is split. */
  lowercase: boolean;
  /** The vocabulary from id 2 on: `tokens[i]` has id `i + 2`. */
  tokens: string[];
}

/**
 * Turns text into token ids and back. Ids are integers in `0..vocabSize-1`: `0` is the unknown
 * token ({@link UNKNOWN_ID}), `1` the end-of-text marker ({@link END_ID}), real tokens start at 2.
 */
export interface Tokenizer {
  /** Characters (code points) or words and punctuation. */
  readonly kind: 'char' | 'word';
  /** Number of ids, the two reserved ones included: the `vocabSize` of a model reading these ids. */
  readonly vocabSize: number;
  /** The id of tokens outside the vocabulary (0). */
  readonly unknownId: number;
  /** The end-of-text id (1). */
  readonly endId: number;
  /**
   * The ids of `text`, one per token (`number[]` of length = number of tokens, fewer with
   * `unknown: 'skip'`). Never contains {@link END_ID}.
   * @throws {InvalidArgumentError} with `unknown: 'error'`, naming the first unknown token and its position.
   */
  encode(text: string, options?: EncodeOptions): number[];
  /** The text of `ids` (integers in `0..vocabSize-1`); `0` decodes as `'\uFFFD'`, `1` as `'\n'`. */
  decode(ids: ArrayLike<number>): string;
  /** The id (≥ 2) of a vocabulary token, or undefined (reserved ids have no token). */
  idOf(token: string): number | undefined;
  /** The token of `id`: `'\uFFFD'` for 0, `'\n'` for 1. @throws {InvalidArgumentError} for an id outside `0..vocabSize-1`. */
  tokenOf(id: number): string;
  /** The vocabulary as JSON, to keep with a model; read back with {@link tokenizerFromJSON}. */
  toJSON(): TokenizerJSON;
}

/** Options of {@link CharTokenizer.fromCorpus} and {@link WordTokenizer.fromCorpus}. */
export interface CorpusOptions {
  /** Lowercase text before splitting (here and in every later `encode`). Default false for characters, true for words. */
  lowercase?: boolean;
  /** The largest `vocabSize`, the two reserved ids included (an integer ≥ 3): keeps the most frequent tokens. Default: no limit. */
  maxVocab?: number;
  /** Keep only tokens seen at least this many times (an integer ≥ 1). Default 1. */
  minCount?: number;
}

/** A token of a text with its position: its index among the text's tokens and its UTF-16 offset. */
interface Piece {
  token: string;
  offset: number;
}

const WORD = /[\p{L}\p{M}\p{N}_]+(?:['’][\p{L}\p{M}\p{N}_]+)*|\S/gu;
const NO_SPACE_BEFORE = /^[.,!?;:%)\]}…»”’\-/]$/u;
const NO_SPACE_AFTER = /^[([{«“‘¿¡\-/$#@]$/u;
const UNKNOWN_KEYS = ['unknown'];

function unknownMode(v: unknown): UnknownTokens {
  return v === undefined ? 'map' : oneOf('unknown', v, ['map', 'skip', 'error']);
}

/** Shared implementation of the two vocabulary tokenizers. */
abstract class VocabularyTokenizer implements Tokenizer {
  abstract readonly kind: 'char' | 'word';
  /** Whether text is lowercased before it is split. */
  readonly lowercase: boolean;
  readonly #tokens: readonly string[];
  readonly #ids: Map<string, number>;

  protected constructor(tokens: readonly string[], lowercase: boolean, kind: 'char' | 'word') {
    if (!Array.isArray(tokens)) throw new InvalidArgumentError(`tokens must be an array of strings, got ${describe(tokens)}`);
    if (typeof lowercase !== 'boolean') throw new InvalidArgumentError(`lowercase must be a boolean, got ${describe(lowercase)}`);
    if (tokens.length === 0) throw new InvalidArgumentError('tokens must hold at least one token, got an empty array');
    const ids = new Map<string, number>();
    tokens.forEach((t, i) => {
      if (typeof t !== 'string') throw new InvalidArgumentError(`tokens[${i}] must be a string, got ${describe(t)}`);
      const pieces = kind === 'char' ? Array.from(t) : Array.from(t.matchAll(WORD), (m) => m[0]);
      if (pieces.length !== 1 || pieces[0] !== t) {
        const what = kind === 'char' ? 'exactly one character (code point)' : 'one word or one punctuation mark, without spaces';
        throw new InvalidArgumentError(`tokens[${i}] of a ${kind} tokenizer must be ${what}, got ${describe(t)}`);
      }
      const seen = ids.get(t);
      if (seen !== undefined) throw new InvalidArgumentError(`tokens[${i}] ${describe(t)} duplicates tokens[${seen - 2}]`);
      ids.set(t, i + 2);
    });
    this.#tokens = Object.freeze([...tokens]);
    this.#ids = ids;
    this.lowercase = lowercase;
  }

  /** Number of ids: the vocabulary plus the two reserved ids. */
  get vocabSize(): number {
    return this.#tokens.length + 2;
  }

  /** {@link UNKNOWN_ID} (0). */
  get unknownId(): number {
    return UNKNOWN_ID;
  }

  /** {@link END_ID} (1). */
  get endId(): number {
    return END_ID;
  }

  /** The vocabulary from id 2 on (`tokens[i]` has id `i + 2`), most frequent first. */
  get tokens(): readonly string[] {
    return this.#tokens;
  }

  /** The text's tokens with their UTF-16 offsets (in the lowercased text when `lowercase`). */
  protected abstract split(text: string): Piece[];

  /** A token and its position, for messages. */
  protected abstract describePiece(piece: Piece, index: number): string;

  /**
   * The ids of `text` (`number[]`, one per token). Tokens outside the vocabulary become
   * {@link UNKNOWN_ID} (`unknown: 'map'`, the default), are dropped (`'skip'`) or throw an
   * {@link InvalidArgumentError} naming the token and its position (`'error'`).
   */
  encode(text: string, options_?: EncodeOptions): number[] {
    if (typeof text !== 'string') throw new InvalidArgumentError(`text must be a string, got ${describe(text)}`);
    const mode = unknownMode(options('encode options', options_, UNKNOWN_KEYS).unknown);
    const out: number[] = [];
    this.split(text).forEach((p, i) => {
      const id = this.#ids.get(p.token);
      if (id !== undefined) out.push(id);
      else if (mode === 'map') out.push(UNKNOWN_ID);
      else if (mode === 'error') {
        throw new InvalidArgumentError(
          `${this.describePiece(p, i)} is not in the vocabulary of ${this.#tokens.length} tokens; ` +
            "pass unknown: 'map' to encode it as the unknown id 0 or 'skip' to drop it",
        );
      }
    });
    return out;
  }

  /** The text of `ids`; `0` decodes as `'\uFFFD'`, `1` as `'\n'`. */
  decode(ids: ArrayLike<number>): string {
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
      throw new InvalidArgumentError(`ids must be an array of token ids, got ${describe(ids)}`);
    }
    const tokens: { token: string; end: boolean }[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = intIn(`ids[${i}]`, ids[i], 0, this.vocabSize - 1);
      tokens.push({ token: this.tokenOf(id), end: id === END_ID });
    }
    return this.join(tokens);
  }

  /** Joins decoded tokens. */
  protected abstract join(tokens: { token: string; end: boolean }[]): string;

  /** The id (≥ 2) of a vocabulary token, or undefined. */
  idOf(token: string): number | undefined {
    return typeof token === 'string' ? this.#ids.get(token) : undefined;
  }

  /** The token of `id` (`'\uFFFD'` for 0, `'\n'` for 1). */
  tokenOf(id: number): string {
    intIn('id', id, 0, this.vocabSize - 1);
    if (id === UNKNOWN_ID) return UNKNOWN_TEXT;
    if (id === END_ID) return END_TEXT;
    return this.#tokens[id - 2]!;
  }

  /** `{ type, version: 1, lowercase, tokens }` (tokens from id 2 on). */
  toJSON(): TokenizerJSON {
    return { type: this.kind, version: 1, lowercase: this.lowercase, tokens: [...this.#tokens] };
  }
}

const CORPUS_KEYS = ['lowercase', 'maxVocab', 'minCount'];

/** Counts the tokens of a corpus and orders them by decreasing count, then by code point. */
function vocabulary(
  texts: unknown,
  rawOptions: unknown,
  defaultLowercase: boolean,
  split: (text: string) => string[],
): { tokens: string[]; lowercase: boolean } {
  const o = options('corpus options', rawOptions, CORPUS_KEYS);
  const lowercase = optBool('lowercase', o.lowercase, defaultLowercase);
  const maxVocab = o.maxVocab === undefined ? Infinity : intIn('maxVocab', o.maxVocab, 3);
  const minCount = optInt('minCount', o.minCount, 1, 1);
  let list: Iterable<unknown>;
  if (typeof texts === 'string') list = [texts];
  else if (texts !== null && typeof texts === 'object' && typeof (texts as Iterable<unknown>)[Symbol.iterator] === 'function') {
    list = texts as Iterable<unknown>;
  } else {
    throw new InvalidArgumentError(`texts must be a string or an iterable of strings, got ${describe(texts)}`);
  }
  const counts = new Map<string, number>();
  let i = 0;
  for (const text of list) {
    if (typeof text !== 'string') throw new InvalidArgumentError(`texts[${i}] must be a string, got ${describe(text)}`);
    for (const t of split(lowercase ? text.toLowerCase() : text)) counts.set(t, (counts.get(t) ?? 0) + 1);
    i++;
  }
  if (counts.size === 0) {
    throw new InvalidArgumentError(`corpus is empty: the ${i} text(s) given hold no tokens to build a vocabulary from`);
  }
  const tokens = [...counts]
    .filter(([, c]) => c >= minCount)
    .sort((a, b) => b[1] - a[1] || compareCodePoints(a[0], b[0]))
    .slice(0, maxVocab - 2)
    .map(([t]) => t);
  if (tokens.length === 0) {
    throw new InvalidArgumentError(
      `no token of the corpus occurs minCount ${minCount} times (the most frequent occurs ${Math.max(...counts.values())} times)`,
    );
  }
  return { tokens, lowercase };
}

/**
 * Splits text into characters: one token per Unicode code point (`Array.from(text)`), so an
 * emoji or any other character outside the BMP (a surrogate pair) is one token. Combining
 * marks and the parts of a ZWJ sequence are tokens of their own.
 */
export class CharTokenizer extends VocabularyTokenizer {
  /** Always `'char'`. */
  readonly kind = 'char' as const;

  /**
   * A tokenizer with the given vocabulary: `tokens[i]` (one code point each, no duplicates) gets
   * id `i + 2`. Usually built with {@link CharTokenizer.fromCorpus}.
   */
  constructor(tokens: readonly string[], options_: { lowercase?: boolean } = {}) {
    super(tokens, optBool('lowercase', options('options', options_, ['lowercase']).lowercase, false), 'char');
  }

  /**
   * The characters of `texts` (one string or any iterable of strings), most frequent first (ties
   * by code point). `lowercase` defaults to false.
   * @throws {InvalidArgumentError} for an empty corpus, a non-string text or a bad option.
   */
  static fromCorpus(texts: string | Iterable<string>, options_: CorpusOptions = {}): CharTokenizer {
    const { tokens, lowercase } = vocabulary(texts, options_, false, (t) => Array.from(t));
    return new CharTokenizer(tokens, { lowercase });
  }

  protected override describePiece(piece: Piece, index: number): string {
    const lower = this.lowercase ? ' of the lowercased text' : '';
    return `character ${JSON.stringify(piece.token)} (${codePoint(piece.token)}) at position ${index}${lower} (UTF-16 offset ${piece.offset})`;
  }

  protected override split(text: string): Piece[] {
    const s = this.lowercase ? text.toLowerCase() : text;
    const out: Piece[] = [];
    let offset = 0;
    for (const ch of s) {
      out.push({ token: ch, offset });
      offset += ch.length;
    }
    return out;
  }

  protected override join(tokens: { token: string }[]): string {
    return tokens.map((t) => t.token).join('');
  }
}

/**
 * Splits text into words and punctuation: runs of letters, digits, marks and `_` (with inner
 * apostrophes, so "don't" is one word) and single other non-space characters (`.`, `,`, an
 * emoji, ...). Whitespace is not kept; {@link WordTokenizer.decode} puts single spaces between
 * words and attaches punctuation (no space before `.,!?;:)`…, none after `(`, quotes paired).
 */
export class WordTokenizer extends VocabularyTokenizer {
  /** Always `'word'`. */
  readonly kind = 'word' as const;

  /**
   * A tokenizer with the given vocabulary: `tokens[i]` (one word or punctuation mark each, no
   * duplicates) gets id `i + 2`. `lowercase` defaults to true. Usually built with {@link WordTokenizer.fromCorpus}.
   */
  constructor(tokens: readonly string[], options_: { lowercase?: boolean } = {}) {
    super(tokens, optBool('lowercase', options('options', options_, ['lowercase']).lowercase, true), 'word');
  }

  /**
   * The words and punctuation marks of `texts` (one string or any iterable of strings), most
   * frequent first (ties by code point order). `lowercase` defaults to true.
   * @throws {InvalidArgumentError} for an empty corpus, a non-string text or a bad option.
   */
  static fromCorpus(texts: string | Iterable<string>, options_: CorpusOptions = {}): WordTokenizer {
    const { tokens, lowercase } = vocabulary(texts, options_, true, (t) => Array.from(t.matchAll(WORD), (m) => m[0]));
    return new WordTokenizer(tokens, { lowercase });
  }

  protected override describePiece(piece: Piece, index: number): string {
    const lower = this.lowercase ? ' of the lowercased text' : '';
    return `word ${JSON.stringify(piece.token)} at position ${index} (token index; UTF-16 offset ${piece.offset}${lower})`;
  }

  protected override split(text: string): Piece[] {
    const s = this.lowercase ? text.toLowerCase() : text;
    return Array.from(s.matchAll(WORD), (m) => ({ token: m[0], offset: m.index ?? 0 }));
  }

  protected override join(tokens: { token: string; end: boolean }[]): string {
    let out = '';
    let attach = true;
    const open = new Set<string>();
    for (const { token, end } of tokens) {
      if (end) {
        out += token;
        attach = true;
        open.clear();
        continue;
      }
      let before = NO_SPACE_BEFORE.test(token);
      let after = NO_SPACE_AFTER.test(token);
      if (token === '"' || token === "'") {
        if (open.has(token)) {
          before = true;
          open.delete(token);
        } else {
          after = true;
          open.add(token);
        }
      }
      if (!attach && !before) out += ' ';
      out += token;
      attach = after;
    }
    return out;
  }
}

/**
 * A tokenizer from its JSON (a {@link TokenizerJSON} object, or that object as a JSON string).
 * @throws {InvalidArgumentError} for anything malformed: not an object, an unknown `type` or
 *   `version`, a non-boolean `lowercase`, `tokens` not an array, a non-string, empty or
 *   duplicate token, a token that is not one character (char) or one word (word), unknown keys.
 */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  let value = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json);
    } catch (err) {
      throw new InvalidArgumentError(`tokenizer JSON is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  const o = object('tokenizer JSON', value);
  for (const key of Object.keys(o)) {
    if (!['type', 'version', 'lowercase', 'tokens'].includes(key)) {
      throw new InvalidArgumentError(`tokenizer JSON has an unknown key ${JSON.stringify(key)}; expected type, version, lowercase, tokens`);
    }
  }
  oneOf('tokenizer JSON type', o.type, ['char', 'word']);
  if (o.version !== 1) throw new InvalidArgumentError(`tokenizer JSON version must be 1, got ${describe(o.version)}`);
  if (typeof o.lowercase !== 'boolean')
    throw new InvalidArgumentError(`tokenizer JSON lowercase must be a boolean, got ${describe(o.lowercase)}`);
  if (!Array.isArray(o.tokens))
    throw new InvalidArgumentError(`tokenizer JSON tokens must be an array of strings, got ${describe(o.tokens)}`);
  const tokens = o.tokens as string[];
  return o.type === 'char' ? new CharTokenizer(tokens, { lowercase: o.lowercase }) : new WordTokenizer(tokens, { lowercase: o.lowercase });
}

function checkTokenizer(what: string, t: unknown): Tokenizer {
  const o = object(what, t);
  for (const fn of ['encode', 'decode', 'toJSON']) {
    if (typeof o[fn] !== 'function') throw new InvalidArgumentError(`${what} must be a Tokenizer (it has no ${fn} method)`);
  }
  intIn(`${what}.vocabSize`, o.vocabSize, 3);
  return t as Tokenizer;
}

// ---------------------------------------------------------------------------------------------
// Encodings

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

// ---------------------------------------------------------------------------------------------
// Sampling

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

// ---------------------------------------------------------------------------------------------
// Generation

/** Options of {@link generateText} and {@link TextGenerator.generate}. */
export interface GenerateOptions {
  /** Text to start from (the model reads it first; it starts the result). Default `''`. */
  seed?: string;
  /** Most tokens to generate after the seed (an integer ≥ 0). Default 100. */
  maxLength?: number;
  /** See {@link SampleOptions.temperature}; 0 is greedy. Default 1. */
  temperature?: number;
  /** See {@link SampleOptions.topK}. */
  topK?: number;
  /** See {@link SampleOptions.topP}. */
  topP?: number;
  /** Seed of the sampling ({@link seededRandom}): the same seed gives the same text. Default: a random seed. */
  randomSeed?: number;
  /** How the seed text's unknown characters or words are encoded. Default `'map'`. */
  unknown?: UnknownTokens;
  /** Stop when the model produces the end-of-text id. Default true (false: END is decoded as `'\n'` and generation goes on). */
  stopAtEnd?: boolean;
}

const GENERATE_KEYS = ['seed', 'maxLength', 'temperature', 'topK', 'topP', 'randomSeed', 'unknown', 'stopAtEnd'];

function outputWidth(layers: Record<string, unknown>[]): number {
  const last = layers[layers.length - 1]!;
  if (last.type === 'dense') return last.units as number;
  if (last.type === 'embedding') return last.dim as number;
  const h = last.hiddenSize as number;
  return last.bidirectional && last.merge !== 'sum' ? 2 * h : h;
}

/**
 * Checks that `model` reads the tokenizer's ids and outputs one score per id; returns whether
 * the outputs are probabilities (a softmax last layer) rather than logits.
 */
function checkTokenModel(model: Model, tokenizer: Tokenizer): { probabilities: boolean } {
  if (model === null || typeof model !== 'object' || typeof (model as Model).createStream !== 'function') {
    throw new InvalidArgumentError(`model must be a gyre Model, got ${describe(model)}`);
  }
  const config = model.config;
  const input = config.input;
  if (input.type !== 'tokens') {
    throw new InvalidArgumentError(
      `the model reads ${String(input.size)} float features per step, not token ids: text generation needs a model built with ` +
        `input { vocabSize: ${tokenizer.vocabSize} } and an embedding first layer`,
    );
  }
  if (input.vocabSize !== tokenizer.vocabSize) {
    throw new InvalidArgumentError(
      `the model reads token ids below vocabSize ${String(input.vocabSize)} but the tokenizer has vocabSize ${tokenizer.vocabSize}; ` +
        'use the tokenizer the model was trained with',
    );
  }
  const width = outputWidth(config.layers);
  if (width !== tokenizer.vocabSize) {
    throw new InvalidArgumentError(
      `the model outputs ${width} values per step but the tokenizer has vocabSize ${tokenizer.vocabSize}: ` +
        `the last layer must be a dense layer with units ${tokenizer.vocabSize} (one score per token id)`,
    );
  }
  const last = config.layers[config.layers.length - 1]!;
  return { probabilities: last.type === 'dense' && last.activation === 'softmax' };
}

/**
 * Generates text with a token model (`embedding → recurrent layers → dense(vocabSize)`, linear
 * logits or softmax probabilities, read from `model.config`). Runs one stream: feeds
 * {@link END_ID}, then the ids of `seed`, then samples (see {@link sampleFrom}) up to
 * `maxLength` tokens, feeding each back, and stops at END when `stopAtEnd`.
 * @returns the seed text followed by the decoded generated tokens (a space between them when the
 *   word tokenizer puts one).
 * @throws {InvalidArgumentError} when the model does not read token ids with the tokenizer's
 *   vocabSize or does not output vocabSize values per step, or for a bad option.
 */
export function generateText(model: Model, tokenizer: Tokenizer, options_: GenerateOptions = {}): string {
  checkTokenizer('tokenizer', tokenizer);
  const o = options('options', options_, GENERATE_KEYS);
  const seed = o.seed ?? '';
  if (typeof seed !== 'string') throw new InvalidArgumentError(`seed must be a string, got ${describe(seed)}`);
  const maxLength = optInt('maxLength', o.maxLength, 100, 0);
  const randomSeed = o.randomSeed === undefined ? Math.floor(Math.random() * 2 ** 32) : o.randomSeed;
  if (typeof randomSeed !== 'number' || !Number.isSafeInteger(randomSeed)) {
    throw new InvalidArgumentError(`randomSeed must be an integer, got ${describe(randomSeed)}`);
  }
  const random = seededRandom(randomSeed);
  const stopAtEnd = optBool('stopAtEnd', o.stopAtEnd, true);
  const unknown = unknownMode(o.unknown);
  const { probabilities } = checkTokenModel(model, tokenizer);
  const sample: SampleOptions = { random, probabilities };
  if (o.temperature !== undefined) sample.temperature = o.temperature as number;
  if (o.topK !== undefined) sample.topK = o.topK as number;
  if (o.topP !== undefined) sample.topP = o.topP as number;
  // Checks the sampling options before any work.
  sampleFrom([1], { ...sample, random: () => 0 });

  const seedIds = tokenizer.encode(seed, { unknown });
  const stream = model.createStream(1);
  let out = stream.step(tokenizer.endId);
  for (const id of seedIds) out = stream.step(id);
  const generated: number[] = [];
  for (let i = 0; i < maxLength; i++) {
    const id = sampleFrom(out, sample);
    if (id === tokenizer.endId && stopAtEnd) break;
    generated.push(id);
    if (i + 1 < maxLength) out = stream.step(id);
  }
  if (generated.length === 0) return seed;
  // Decode with the seed's tokens in front, so the tokenizer decides the spacing between them.
  const prefix = tokenizer.decode(seedIds);
  const whole = tokenizer.decode([...seedIds, ...generated]);
  let tail = whole.startsWith(prefix) ? whole.slice(prefix.length) : tokenizer.decode(generated);
  if (seed.length === 0 || /\s$/u.test(seed)) tail = tail.replace(/^[ \t]+/u, '');
  return seed + tail;
}

// ---------------------------------------------------------------------------------------------
// Convenience classes

/** The recurrent cell of {@link TextGenerator} and {@link TextClassifier}. */
export type TextCell = 'lstm' | 'gru' | 'rnn';

/** Options shared by {@link TextGenerator.train} and {@link TextClassifier.train}. */
export interface TextModelOptions {
  /** `'char'`, `'word'` (built from the texts) or a ready tokenizer. Default `'char'`. */
  tokenizer?: 'char' | 'word' | Tokenizer;
  /** Default `'lstm'`. */
  cell?: TextCell;
  /** Hidden size of the recurrent layers. Default 128 (generator), 64 (classifier). */
  hiddenSize?: number;
  /** Stacked recurrent layers. Default 1. */
  numLayers?: number;
  /** Width of the token embedding. Default `min(64, vocabSize)`. */
  embeddingDim?: number;
  /** Default 10. */
  epochs?: number;
  /** Default 32. */
  batchSize?: number;
  /** Adam's learning rate. Default 0.005. */
  learningRate?: number;
  /** Seed of the weights, shuffling and dropout. Default 0. */
  seed?: number;
  /** Fraction of the sequences kept apart to report a validation loss; see {@link FitOptions.validationSplit}. */
  validationSplit?: number;
  /** Progress reports; see {@link FitOptions.onProgress}. */
  onProgress?: FitOptions['onProgress'];
  /** Stops training; `train` then rejects with a `TrainingAbortedError`. */
  signal?: AbortSignal;
}

/** Options of {@link TextGenerator.train}. */
export interface TextTrainOptions extends TextModelOptions {
  /** Steps per training sequence; longer texts are cut into chunks (see {@link textSequences}). Default 64. */
  maxLength?: number;
}

const MODEL_KEYS = [
  'tokenizer',
  'cell',
  'hiddenSize',
  'numLayers',
  'embeddingDim',
  'epochs',
  'batchSize',
  'learningRate',
  'seed',
  'validationSplit',
  'onProgress',
  'signal',
];

function stringArray(what: string, texts: unknown): string[] {
  if (!Array.isArray(texts)) throw new InvalidArgumentError(`${what} must be an array of strings, got ${describe(texts)}`);
  if (texts.length === 0) throw new InvalidArgumentError(`${what} must hold at least one text, got an empty array`);
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw new InvalidArgumentError(`${what}[${i}] must be a string, got ${describe(t)}`);
  });
  return texts as string[];
}

/** The tokenizer option: built from the texts, or checked. */
function makeTokenizer(v: unknown, texts: string[]): Tokenizer {
  if (v === undefined || v === 'char') return CharTokenizer.fromCorpus(texts);
  if (v === 'word') return WordTokenizer.fromCorpus(texts);
  if (typeof v === 'string') throw new InvalidArgumentError(`tokenizer must be 'char', 'word' or a Tokenizer, got ${describe(v)}`);
  return checkTokenizer('tokenizer', v);
}

/** Builds `embedding → cell → dense(units)` and trains it with cross-entropy and Adam. */
async function buildAndTrain(
  o: Record<string, unknown>,
  tokenizer: Tokenizer,
  units: number,
  returnSequences: boolean,
  defaultHidden: number,
  x: number[][],
  y: number[][] | number[],
): Promise<{ model: Model; history: FitHistory }> {
  const cell = oneOf<TextCell>('cell', o.cell ?? 'lstm', ['lstm', 'gru', 'rnn']);
  const hiddenSize = optInt('hiddenSize', o.hiddenSize, defaultHidden, 1);
  const numLayers = optInt('numLayers', o.numLayers, 1, 1);
  const embeddingDim = optInt('embeddingDim', o.embeddingDim, Math.min(64, tokenizer.vocabSize), 1);
  const epochs = optInt('epochs', o.epochs, 10, 1);
  const batchSize = optInt('batchSize', o.batchSize, 32, 1);
  const learningRate = o.learningRate === undefined ? 0.005 : numberIn('learningRate', o.learningRate, 0, Number.POSITIVE_INFINITY, '()');
  const seed = optInt('seed', o.seed, 0, 0, 0xffffffff);
  const layers: LayerSpec[] = [
    { type: 'embedding', dim: embeddingDim },
    { type: cell, hiddenSize, numLayers, returnSequences },
    { type: 'dense', units, activation: 'linear' },
  ];
  const model = sequential({ input: { vocabSize: tokenizer.vocabSize }, layers, seed });
  const fit: FitOptions = {
    loss: 'crossEntropy',
    epochs,
    batchSize,
    optimizer: { type: 'adam', learningRate },
    clipNorm: 5,
    seed,
  };
  if (o.validationSplit !== undefined) fit.validationSplit = o.validationSplit as number;
  if (o.onProgress !== undefined) fit.onProgress = o.onProgress as FitOptions['onProgress'];
  if (o.signal !== undefined) fit.signal = o.signal as AbortSignal;
  const history = await model.fit(x, y, fit);
  return { model, history };
}

/** Reads `metadata.gyre` of a model saved by the text classes, checking its task. */
function textMetadata(model: Model, task: 'text' | 'classify'): Record<string, unknown> {
  if (model === null || typeof model !== 'object' || typeof (model as Model).createStream !== 'function') {
    throw new InvalidArgumentError(`model must be a gyre Model, got ${describe(model)}`);
  }
  const name = task === 'text' ? 'a text model' : 'a text classification model';
  const saver = task === 'text' ? 'TextGenerator' : 'TextClassifier';
  const gyre = model.metadata.gyre;
  if (gyre === null || typeof gyre !== 'object' || Array.isArray(gyre)) {
    throw new InvalidArgumentError(`the model file has no gyre metadata, so it is not ${name} (save one with ${saver}.save)`);
  }
  const meta = gyre as Record<string, unknown>;
  if (meta.task !== task) {
    throw new InvalidArgumentError(`the model file is a '${String(meta.task)}' model, not ${name}`);
  }
  if (meta.tokenizer === undefined) throw new InvalidArgumentError(`the model file is ${name} but has no tokenizer in its metadata`);
  return meta;
}

/**
 * A character- or word-level language model in one object, in the spirit of brain.js's
 * `LSTMTimeStep`: `await TextGenerator.train(texts)` then `generate({ seed })`.
 */
export class TextGenerator {
  /** The model: `embedding → cell (returnSequences) → dense(vocabSize, linear)` or any compatible token model. */
  readonly model: Model;
  /** The tokenizer whose ids the model reads and predicts. */
  readonly tokenizer: Tokenizer;
  /** The training history when built by {@link TextGenerator.train}. */
  readonly history: FitHistory | undefined;

  /**
   * Wraps a token model and its tokenizer.
   * @throws {InvalidArgumentError} when the model does not read and output the tokenizer's vocabSize ids.
   */
  constructor(model: Model, tokenizer: Tokenizer, history?: FitHistory) {
    checkTokenizer('tokenizer', tokenizer);
    checkTokenModel(model, tokenizer);
    this.model = model;
    this.tokenizer = tokenizer;
    this.history = history;
  }

  /**
   * Builds a tokenizer from `texts` (or uses the one given), a model
   * `embedding(min(64, vocabSize)) → cell(hiddenSize, returnSequences) → dense(vocabSize)`, and
   * trains it on next-token pairs ({@link textSequences}, chunks of `maxLength`) with
   * cross-entropy, Adam and `clipNorm: 5`. Runs off the event loop.
   * @throws {InvalidArgumentError} for empty texts or a bad option (the Promise rejects).
   */
  static async train(texts: string[], options_: TextTrainOptions = {}): Promise<TextGenerator> {
    stringArray('texts', texts);
    const o = options('options', options_, [...MODEL_KEYS, 'maxLength']);
    const maxLength = optInt('maxLength', o.maxLength, 64, 1);
    const tokenizer = makeTokenizer(o.tokenizer, texts);
    const { x, y } = textSequences(texts, tokenizer, { maxLength });
    const { model, history } = await buildAndTrain(o, tokenizer, tokenizer.vocabSize, true, 128, x, y);
    return new TextGenerator(model, tokenizer, history);
  }

  /** Generates text; see {@link generateText}. */
  generate(options_: GenerateOptions = {}): string {
    return generateText(this.model, this.tokenizer, options_);
  }

  /** Writes the model with `metadata: { gyre: { task: 'text', tokenizer } }` (see `Model.save`). */
  async save(path: string, options_: Pick<SaveOptions, 'includeOptimizer'> = {}): Promise<void> {
    const o = options('options', options_, ['includeOptimizer']);
    const save: SaveOptions = { metadata: { gyre: { task: 'text', tokenizer: this.tokenizer.toJSON() } } };
    if (o.includeOptimizer !== undefined) save.includeOptimizer = o.includeOptimizer as boolean;
    await this.model.save(path, save);
  }

  /**
   * A generator from a file written by {@link TextGenerator.save}.
   * @throws {InvalidArgumentError} "the model file is a '<task>' model, not a text model" (or
   *   "has no gyre metadata" / "has no tokenizer") for other files; `GYRE_BAD_FILE` for broken ones.
   */
  static async load(path: string): Promise<TextGenerator> {
    return TextGenerator.fromModel(await loadModel(path));
  }

  /** A generator from a loaded model carrying the metadata {@link TextGenerator.save} writes; see {@link TextGenerator.load}. */
  static fromModel(model: Model): TextGenerator {
    const meta = textMetadata(model, 'text');
    return new TextGenerator(model, tokenizerFromJSON(meta.tokenizer));
  }
}

/** A label of {@link TextClassifier}. */
export type TextLabel = string | number;

/** One result of {@link TextClassifier.classify}. */
export interface Classification {
  /** The most probable label. */
  label: TextLabel;
  /** `[numClasses]`, in the order of {@link TextClassifier.labels}; sums to 1. */
  probabilities: number[];
}

function sortLabels(a: TextLabel, b: TextLabel): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return compareCodePoints(a, b);
}

function labelOf(what: string, v: unknown): TextLabel {
  if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) return v;
  throw new InvalidArgumentError(`${what} must be a string or a finite number, got ${describe(v)}`);
}

/**
 * A sequence classifier of texts: `await TextClassifier.train(texts, labels)` then
 * `classify(texts)`. Model: `embedding → cell (final state) → dense(numClasses, logits)`.
 */
export class TextClassifier {
  /** The model, reading token ids and giving `[numClasses]` logits per text. */
  readonly model: Model;
  /** The tokenizer of the texts. */
  readonly tokenizer: Tokenizer;
  /** The labels by class id: numbers ascending, then strings by code point. */
  readonly labels: readonly TextLabel[];
  /** The training history when built by {@link TextClassifier.train}. */
  readonly history: FitHistory | undefined;
  readonly #classes: Map<TextLabel, number>;

  /**
   * Wraps a classification model, its tokenizer and its labels (class id = index).
   * @throws {InvalidArgumentError} when the model does not read the tokenizer's ids, outputs
   *   other than `labels.length` values, or the labels are not distinct strings or numbers.
   */
  constructor(model: Model, tokenizer: Tokenizer, labels: readonly TextLabel[], history?: FitHistory) {
    checkTokenizer('tokenizer', tokenizer);
    if (model === null || typeof model !== 'object' || typeof (model as Model).createStream !== 'function') {
      throw new InvalidArgumentError(`model must be a gyre Model, got ${describe(model)}`);
    }
    if (!Array.isArray(labels) || labels.length < 2)
      throw new InvalidArgumentError(`labels must be an array of at least 2 labels, got ${describe(labels)}`);
    const classes = new Map<TextLabel, number>();
    labels.forEach((l, i) => {
      labelOf(`labels[${i}]`, l);
      if (classes.has(l)) throw new InvalidArgumentError(`labels[${i}] ${describe(l)} is a duplicate`);
      classes.set(l, i);
    });
    const config = model.config;
    if (config.input.type !== 'tokens' || config.input.vocabSize !== tokenizer.vocabSize) {
      throw new InvalidArgumentError(
        `the model must read token ids below the tokenizer's vocabSize ${tokenizer.vocabSize}, but its input is ${JSON.stringify(config.input)}`,
      );
    }
    const width = outputWidth(config.layers);
    if (width !== labels.length) throw new InvalidArgumentError(`the model outputs ${width} values but there are ${labels.length} labels`);
    this.model = model;
    this.tokenizer = tokenizer;
    this.labels = Object.freeze([...labels]);
    this.history = history;
    this.#classes = classes;
  }

  /**
   * Trains a classifier: a tokenizer from `texts` (char by default), labels mapped to class ids
   * in sorted order (see {@link TextClassifier.labels}), a model
   * `embedding → cell(hiddenSize, final state) → dense(numClasses)` trained with cross-entropy,
   * Adam and `clipNorm: 5` on the texts' ids (ragged: each text its own length).
   * @throws {ShapeMismatchError} when texts and labels differ in length;
   *   {@link InvalidArgumentError} for an empty text (naming its index), fewer than two
   *   distinct labels, or a bad option (the Promise rejects).
   */
  static async train(texts: string[], labels: TextLabel[], options_: TextModelOptions = {}): Promise<TextClassifier> {
    stringArray('texts', texts);
    if (!Array.isArray(labels)) throw new InvalidArgumentError(`labels must be an array of strings or numbers, got ${describe(labels)}`);
    if (labels.length !== texts.length)
      throw new ShapeMismatchError(`labels must have one entry per text (${texts.length}), got ${labels.length}`);
    const o = options('options', options_, MODEL_KEYS);
    const distinct = [...new Set(labels.map((l, i) => labelOf(`labels[${i}]`, l)))].sort(sortLabels);
    if (distinct.length < 2) throw new InvalidArgumentError(`labels must hold at least 2 distinct labels, got ${distinct.length}`);
    texts.forEach((t, i) => {
      if (t.length === 0) throw new InvalidArgumentError(`texts[${i}] is empty: every text needs at least one token`);
    });
    const tokenizer = makeTokenizer(o.tokenizer, texts);
    const x = TextClassifier.#encode(tokenizer, texts, 'texts');
    const ids = new Map(distinct.map((l, i) => [l, i]));
    const y = labels.map((l) => ids.get(l)!);
    const { model, history } = await buildAndTrain(o, tokenizer, distinct.length, false, 64, x, y);
    return new TextClassifier(model, tokenizer, distinct, history);
  }

  static #encode(tokenizer: Tokenizer, texts: unknown, what: string): number[][] {
    const list = stringArray(what, texts);
    return list.map((t, i) => {
      const ids = tokenizer.encode(t);
      if (ids.length === 0) throw new InvalidArgumentError(`${what}[${i}] ${describe(t)} is empty: every text needs at least one token`);
      return ids;
    });
  }

  /**
   * The most probable label of each text and the softmax probabilities of all labels.
   * Characters or words outside the vocabulary read as the unknown id.
   * @returns one {@link Classification} per text, in order.
   * @throws {InvalidArgumentError} for an empty text, naming its index.
   */
  classify(texts: string[]): Classification[] {
    const x = TextClassifier.#encode(this.tokenizer, texts, 'texts');
    const { data } = this.model.predictSync(x);
    const k = this.labels.length;
    return x.map((_, s) => {
      const row = Array.from(data.subarray(s * k, (s + 1) * k));
      const max = Math.max(...row);
      const exp = row.map((v) => Math.exp(v - max));
      const total = exp.reduce((a, b) => a + b, 0);
      const probabilities = exp.map((v) => v / total);
      let best = 0;
      for (let c = 1; c < k; c++) if (probabilities[c]! > probabilities[best]!) best = c;
      return { label: this.labels[best]!, probabilities };
    });
  }

  /**
   * Mean cross-entropy and accuracy over labelled texts.
   * @throws {ShapeMismatchError} when texts and labels differ in length; {@link InvalidArgumentError}
   *   for an empty text or a label the classifier does not know.
   */
  evaluate(texts: string[], labels: TextLabel[]): { loss: number; accuracy: number } {
    const x = TextClassifier.#encode(this.tokenizer, texts, 'texts');
    if (!Array.isArray(labels)) throw new InvalidArgumentError(`labels must be an array of strings or numbers, got ${describe(labels)}`);
    if (labels.length !== x.length) throw new ShapeMismatchError(`labels must have one entry per text (${x.length}), got ${labels.length}`);
    const y = labels.map((l, i) => {
      const c = this.#classes.get(l);
      if (c === undefined)
        throw new InvalidArgumentError(
          `labels[${i}] ${describe(l)} is not one of the classifier's labels ${this.labels.map(describe).join(', ')}`,
        );
      return c;
    });
    const r = this.model.evaluateSync(x, y, { loss: 'crossEntropy' });
    return { loss: r.loss, accuracy: r.accuracy ?? Number.NaN };
  }

  /** Writes the model with `metadata: { gyre: { task: 'classify', tokenizer, labels } }` (see `Model.save`). */
  async save(path: string, options_: Pick<SaveOptions, 'includeOptimizer'> = {}): Promise<void> {
    const o = options('options', options_, ['includeOptimizer']);
    const save: SaveOptions = { metadata: { gyre: { task: 'classify', tokenizer: this.tokenizer.toJSON(), labels: [...this.labels] } } };
    if (o.includeOptimizer !== undefined) save.includeOptimizer = o.includeOptimizer as boolean;
    await this.model.save(path, save);
  }

  /**
   * A classifier from a file written by {@link TextClassifier.save}.
   * @throws {InvalidArgumentError} "the model file is a '<task>' model, not a text
   *   classification model" (or "has no gyre metadata" / "has no tokenizer") for other files.
   */
  static async load(path: string): Promise<TextClassifier> {
    return TextClassifier.fromModel(await loadModel(path));
  }

  /** A classifier from a loaded model carrying the metadata {@link TextClassifier.save} writes; see {@link TextClassifier.load}. */
  static fromModel(model: Model): TextClassifier {
    const meta = textMetadata(model, 'classify');
    if (!Array.isArray(meta.labels))
      throw new InvalidArgumentError(`the model file is a text classification model but has no labels in its metadata`);
    return new TextClassifier(model, tokenizerFromJSON(meta.tokenizer), meta.labels as TextLabel[]);
  }
}
