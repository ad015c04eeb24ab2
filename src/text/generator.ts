/** {@link TextGenerator}: a character- or word-level language model in one object (train, generate, save, load). */
import { type FitHistory, loadModel, type Model, type SaveOptions } from '../model/index.js';
import { InvalidArgumentError } from '../errors.js';
import { describe, optInt, options } from '../util/check.js';
import { textSequences } from './encoding.js';
import { checkTokenModel, type GenerateOptions, generateText } from './generate.js';
import { NgramModel } from './ngram.js';
import { checkTokenizer, type Tokenizer, tokenizerFromJSON } from './tokenizers.js';
import { buildAndTrain, MODEL_KEYS, makeTokenizer, stringArray, type TextTrainOptions, textMetadata } from './training.js';

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
  async save(path: string, options_: Pick<SaveOptions, 'includeOptimizer'> & { baseline?: NgramModel } = {}): Promise<void> {
    const o = options('options', options_, ['includeOptimizer', 'baseline']);
    const gyre: Record<string, unknown> = { task: 'text', tokenizer: this.tokenizer.toJSON() };
    if (o.baseline !== undefined) {
      if (!(o.baseline instanceof NgramModel))
        throw new InvalidArgumentError(`baseline must be an NgramModel, got ${describe(o.baseline)}`);
      gyre.baseline = o.baseline.toJSON();
    }
    const save: SaveOptions = { metadata: { gyre } };
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
