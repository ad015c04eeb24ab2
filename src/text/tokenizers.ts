/**
 * Tokenizers: {@link CharTokenizer} (one token per code point) and {@link WordTokenizer}
 * (words and punctuation), built from a corpus, with their JSON form ({@link tokenizerFromJSON}).
 *
 * Token ids: `0` ({@link UNKNOWN_ID}) stands for any character or word outside the vocabulary
 * and decodes as `'\uFFFD'`; `1` ({@link END_ID}) marks the end of a text (and is the first
 * input when generating) and decodes as `'\n'`; real tokens start at `2`, the most frequent
 * first.
 */
import { InvalidArgumentError } from '../errors.js';
import { describe, intIn, object, oneOf, optBool, optInt, options } from '../util/check.js';

/** @internal */
export function compareCodePoints(a: string, b: string): number {
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

/** @internal */
export function unknownMode(v: unknown): UnknownTokens {
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

/** @internal */
export function checkTokenizer(what: string, t: unknown): Tokenizer {
  const o = object(what, t);
  for (const fn of ['encode', 'decode', 'toJSON']) {
    if (typeof o[fn] !== 'function') throw new InvalidArgumentError(`${what} must be a Tokenizer (it has no ${fn} method)`);
  }
  intIn(`${what}.vocabSize`, o.vocabSize, 3);
  return t as Tokenizer;
}
