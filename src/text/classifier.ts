/** {@link TextClassifier}: a sequence classifier of texts in one object (train, classify, evaluate, save, load). */
import { InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { type Evaluation, type FitHistory, loadModel, type Model, type SaveOptions } from '../model/index.js';
import { describe, options } from '../util/check.js';
import { checkTokenizer, compareCodePoints, type Tokenizer, tokenizerFromJSON } from './tokenizers.js';
import { buildAndTrain, MODEL_KEYS, makeTokenizer, stringArray, type TextModelOptions, textMetadata } from './training.js';

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

/** Options of {@link TextClassifier.train}. */
export interface TextClassifierOptions extends TextModelOptions {
  /**
   * Each label's weight in the training loss (PyTorch's weighted mean; see
   * `FitOptions.classWeight`): `'balanced'` gives label `k` the weight
   * `n / (K · n_k)` (`n` texts, `K` labels, `n_k` texts with label `k`: scikit-learn's rule, so
   * every label weighs as much in all), or an object from label (as its string) to a positive
   * weight, labels left out weighing 1. Default: 1 for every label.
   */
  classWeight?: 'balanced' | Record<string, number>;
}

/** The per-class weights of {@link TextClassifierOptions.classWeight}, in class-id order. */
function classWeights(v: unknown, labels: readonly TextLabel[], y: number[]): number[] | undefined {
  if (v === undefined) return undefined;
  if (v === 'balanced') {
    const counts = labels.map(() => 0);
    for (const c of y) counts[c]!++;
    return counts.map((n) => y.length / (labels.length * n));
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new InvalidArgumentError(`classWeight must be 'balanced' or an object from label to weight, got ${describe(v)}`);
  }
  const byName = new Map(labels.map((l, i) => [String(l), i]));
  const weights = labels.map(() => 1);
  for (const [key, w] of Object.entries(v)) {
    const i = byName.get(key);
    if (i === undefined) {
      throw new InvalidArgumentError(
        `classWeight.${key}: ${JSON.stringify(key)} is not one of the labels ${labels.map(describe).join(', ')}`,
      );
    }
    if (typeof w !== 'number' || !Number.isFinite(w) || w <= 0) {
      throw new InvalidArgumentError(`classWeight.${key} must be a positive finite number, got ${describe(w)}`);
    }
    weights[i] = w;
  }
  return weights;
}

/** What {@link TextClassifier.evaluate} returns. */
export interface ClassifierEvaluation {
  /** Mean cross-entropy. */
  loss: number;
  /** The fraction of texts given their label. */
  accuracy: number;
  /** Unweighted means over the labels that occur (as a label or a prediction); see {@link Evaluation.macro}. */
  macro: { precision: number; recall: number; f1: number };
  /** Per label, in {@link TextClassifier.labels} order: precision, recall, F1 and the texts that have it. */
  perLabel: { label: TextLabel; precision: number; recall: number; f1: number; support: number }[];
  /** `confusion[label][predicted]`, both in {@link TextClassifier.labels} order. */
  confusion: number[][];
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
    if (!('vocabSize' in config.input) || config.input.vocabSize !== tokenizer.vocabSize) {
      throw new InvalidArgumentError(
        `the model must read token ids below the tokenizer's vocabSize ${tokenizer.vocabSize}, but its input is ${JSON.stringify(config.input)}`,
      );
    }
    const width = model.outputWidth;
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
  static async train(texts: string[], labels: TextLabel[], options_: TextClassifierOptions = {}): Promise<TextClassifier> {
    stringArray('texts', texts);
    if (!Array.isArray(labels)) throw new InvalidArgumentError(`labels must be an array of strings or numbers, got ${describe(labels)}`);
    if (labels.length !== texts.length)
      throw new ShapeMismatchError(`labels must have one entry per text (${texts.length}), got ${labels.length}`);
    const o = options('options', options_, [...MODEL_KEYS, 'classWeight']);
    const distinct = [...new Set(labels.map((l, i) => labelOf(`labels[${i}]`, l)))].sort(sortLabels);
    if (distinct.length < 2) throw new InvalidArgumentError(`labels must hold at least 2 distinct labels, got ${distinct.length}`);
    texts.forEach((t, i) => {
      if (t.length === 0) throw new InvalidArgumentError(`texts[${i}] is empty: every text needs at least one token`);
    });
    const tokenizer = makeTokenizer(o.tokenizer, texts);
    const x = TextClassifier.#encode(tokenizer, texts, 'texts');
    const ids = new Map(distinct.map((l, i) => [l, i]));
    const y = labels.map((l) => ids.get(l)!);
    const weights = classWeights(o.classWeight, distinct, y);
    const { model, history } = await buildAndTrain(o, tokenizer, distinct.length, false, 64, x, y, weights);
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
   * Mean cross-entropy, accuracy, and per label precision, recall and F1 (with their macro
   * means and the confusion matrix, rows and columns in {@link TextClassifier.labels} order)
   * over labelled texts.
   * @throws {ShapeMismatchError} when texts and labels differ in length; {@link InvalidArgumentError}
   *   for an empty text or a label the classifier does not know.
   */
  evaluate(texts: string[], labels: TextLabel[]): ClassifierEvaluation {
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
    const r = this.model.evaluateSync(x, y, { loss: 'crossEntropy', metrics: { confusion: true } });
    const confusion = r.confusion!;
    return {
      loss: r.loss,
      accuracy: r.accuracy ?? Number.NaN,
      macro: r.macro!,
      perLabel: this.labels.map((label, k) => ({
        label,
        precision: r.precision![k]!,
        recall: r.recall![k]!,
        f1: r.f1![k]!,
        support: confusion[k]!.reduce((a, b) => a + b, 0),
      })),
      confusion,
    };
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
