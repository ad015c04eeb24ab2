/**
 * What {@link TextGenerator} and {@link TextClassifier} share: their options, the tokenizer
 * option, building and training `embedding → cell → dense`, and reading their saved metadata.
 */
import { InvalidArgumentError } from '../errors.js';
import { type FitHistory, type FitOptions, type LayerSpec, type Model, sequential } from '../model/index.js';
import { describe, numberIn, oneOf, optInt } from '../util/check.js';
import { CharTokenizer, checkTokenizer, type Tokenizer, WordTokenizer } from './tokenizers.js';
import type { TextClassifier } from './classifier.js';
import type { TextGenerator } from './generator.js';
import type { textSequences } from './encoding.js';

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
  /** Stop when the validation loss stops improving and keep the best epoch; see {@link FitOptions.earlyStopping}. */
  earlyStopping?: FitOptions['earlyStopping'];
  /** Dropout on the recurrent layer's input (the embedding's output; one mask per sequence) and between stacked recurrent layers. Default 0. */
  dropout?: number;
  /** Dropout on the hidden state the recurrent layer's products read; see {@link RecurrentLayerSpec.recurrentDropout}. Default 0. */
  recurrentDropout?: number;
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

/** @internal */
export const MODEL_KEYS = [
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
  'earlyStopping',
  'dropout',
  'recurrentDropout',
  'onProgress',
  'signal',
];

/** @internal */
export function stringArray(what: string, texts: unknown): string[] {
  if (!Array.isArray(texts)) throw new InvalidArgumentError(`${what} must be an array of strings, got ${describe(texts)}`);
  if (texts.length === 0) throw new InvalidArgumentError(`${what} must hold at least one text, got an empty array`);
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw new InvalidArgumentError(`${what}[${i}] must be a string, got ${describe(t)}`);
  });
  return texts as string[];
}

/** @internal The tokenizer option: built from the texts, or checked. */
export function makeTokenizer(v: unknown, texts: string[]): Tokenizer {
  if (v === undefined || v === 'char') return CharTokenizer.fromCorpus(texts);
  if (v === 'word') return WordTokenizer.fromCorpus(texts);
  if (typeof v === 'string') throw new InvalidArgumentError(`tokenizer must be 'char', 'word' or a Tokenizer, got ${describe(v)}`);
  return checkTokenizer('tokenizer', v);
}

/** @internal Builds `embedding → cell → dense(units)` and trains it with cross-entropy and Adam. */
export async function buildAndTrain(
  o: Record<string, unknown>,
  tokenizer: Tokenizer,
  units: number,
  returnSequences: boolean,
  defaultHidden: number,
  x: number[][],
  y: number[][] | number[],
  classWeight?: number[],
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
    {
      type: cell,
      hiddenSize,
      numLayers,
      returnSequences,
      ...(o.dropout === undefined ? {} : { dropout: o.dropout as number, inputDropout: o.dropout as number }),
      ...(o.recurrentDropout === undefined ? {} : { recurrentDropout: o.recurrentDropout as number }),
    },
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
  if (classWeight !== undefined) fit.classWeight = classWeight;
  if (o.validationSplit !== undefined) fit.validationSplit = o.validationSplit as number;
  if (o.earlyStopping !== undefined) fit.earlyStopping = o.earlyStopping as FitOptions['earlyStopping'];
  if (o.onProgress !== undefined) fit.onProgress = o.onProgress as FitOptions['onProgress'];
  if (o.signal !== undefined) fit.signal = o.signal as AbortSignal;
  const history = await model.fit(x, y, fit);
  return { model, history };
}

/** @internal Reads `metadata.gyre` of a model saved by the text classes, checking its task. */
export function textMetadata(model: Model, task: 'text' | 'classify'): Record<string, unknown> {
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
