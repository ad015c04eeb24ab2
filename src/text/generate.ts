/** Text generation from any token model, one token at a time through a stream ({@link generateText}). */
import { InvalidArgumentError } from '../errors.js';
import type { Model } from '../model/index.js';
import { describe, optBool, optInt, options } from '../util/check.js';
import { seededRandom } from '../util/random.js';
import { type SampleOptions, sampleFrom } from './sampling.js';
import { checkTokenizer, type Tokenizer, type UnknownTokens, unknownMode } from './tokenizers.js';

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

/**
 * Checks that `model` reads the tokenizer's ids and outputs one score per id; returns whether
 * the outputs are probabilities (a softmax last layer) rather than logits.
 * @internal
 */
export function checkTokenModel(model: Model, tokenizer: Tokenizer): { probabilities: boolean } {
  if (model === null || typeof model !== 'object' || typeof (model as Model).createStream !== 'function') {
    throw new InvalidArgumentError(`model must be a gyre Model, got ${describe(model)}`);
  }
  const config = model.config;
  const input = config.input;
  if (!('vocabSize' in input)) {
    throw new InvalidArgumentError(
      `the model reads ${input.features} float features per step, not token ids: text generation needs a model built with ` +
        `input { vocabSize: ${tokenizer.vocabSize} } and an embedding first layer`,
    );
  }
  if (input.vocabSize !== tokenizer.vocabSize) {
    throw new InvalidArgumentError(
      `the model reads token ids below vocabSize ${input.vocabSize} but the tokenizer has vocabSize ${tokenizer.vocabSize}; ` +
        'use the tokenizer the model was trained with',
    );
  }
  const width = model.outputWidth;
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
