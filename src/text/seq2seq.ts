/**
 * {@link Seq2Seq}: an encoder–decoder with attention over text pairs (transliteration,
 * pronunciation, spelling, normalization): train, transduce with beam search, evaluate, save,
 * load. The model is native (`gyre_core::seq2seq`); training and decoding run off the event loop.
 */
import { InvalidArgumentError } from '../errors.js';
import * as native from '../native.js';
import { describe, finite, intIn, numberIn, oneOf, optBool, optInt, options } from '../util/check.js';
import { about, readBytes, writeAtomically } from '../util/files.js';
import { seededRandom } from '../util/random.js';
import { CharTokenizer, END_ID, type Tokenizer, tokenizerFromJSON, WordTokenizer } from './tokenizers.js';
import { checkTokenizer } from './tokenizers.js';

/** A source text and its target text. */
export type TextPair = readonly [source: string, target: string];

/** How {@link Seq2Seq.train} builds the model (and, through {@link Seq2SeqFitOptions}, trains it). */
export interface Seq2SeqTrainOptions extends Seq2SeqFitOptions {
  /** Tokenizer of the sources: `'char'` (default), `'word'`, or one built beforehand. */
  sourceTokenizer?: 'char' | 'word' | Tokenizer;
  /** Tokenizer of the targets: `'char'` (default), `'word'`, or one built beforehand. */
  targetTokenizer?: 'char' | 'word' | Tokenizer;
  /** The encoder's and decoder's cell. Default `'lstm'`. */
  cell?: 'lstm' | 'gru' | 'rnn';
  /** Width of the source and target embeddings. Default 64. */
  embeddingDim?: number;
  /** The encoder's hidden size per direction (the decoder's is this times the directions). Default 128. */
  hiddenSize?: number;
  /** Stacked encoder layers. Default 1. */
  numLayers?: number;
  /** A bidirectional encoder, whose two final states are concatenated into the decoder's. Default true. */
  bidirectional?: boolean;
  /** The attention score: Luong's `'dot'` or `'general'` (default), Bahdanau's `'additive'`. */
  attention?: 'dot' | 'general' | 'additive';
  /** Units of the additive score. Default: the decoder's hidden size. */
  attentionUnits?: number;
  /** Feed the previous attentional vector into the decoder's next input (Luong et al. 2015). Default true. */
  inputFeeding?: boolean;
}

/**
 * How {@link Seq2Seq.fit} (and {@link Seq2Seq.train}) trains. A model that has trained before
 * (its `history`, kept in its file) goes on with its schedule: unless `learningRate` is given,
 * the learning rate of its last epoch (halved when that epoch did not improve the validation
 * loss), and the best validation loss and the count of epochs without improvement go on from its
 * history; epochs are numbered on from it, and the seeds of each epoch follow that number, so
 * training resumed from a checkpoint gives the weights an uninterrupted run gives.
 */
export interface Seq2SeqFitOptions {
  /** Epochs at most (in this call). Default 20. */
  epochs?: number;
  /** Pairs per step. Default 64. */
  batchSize?: number;
  /** Adam's learning rate. Default: the schedule's next one for a model that has trained, else 0.002. */
  learningRate?: number;
  /** Label smoothing ε in [0, 1). Default 0. */
  labelSmoothing?: number;
  /**
   * Dropout probability in [0, 1) in training: on the source and target embeddings, between
   * encoder layers and on the attentional vector before the output layer (inverted dropout,
   * seeded). Default 0.
   */
  dropout?: number;
  /** Clip the gradient's global norm to this. Default 5. */
  clipNorm?: number;
  /**
   * Held-out pairs for validation: a fraction in [0, 1) of the pairs (default 0.1, taken at
   * random by `seed`) or the pairs themselves. With validation, the learning rate is halved after
   * an epoch whose validation loss does not improve, training stops after `patience` such
   * epochs, and the model of the best epoch is kept (when that epoch is one of this call's).
   */
  validation?: number | readonly TextPair[];
  /** Epochs without improvement before stopping. Default 3. */
  patience?: number;
  /** Seeds the weights, the validation split and the order of the pairs. Default 0. */
  seed?: number;
  /** Called after every epoch. */
  onEpoch?: (event: Seq2SeqEpoch) => void;
  /**
   * A file written (atomically, with the optimizer state and the history) at the end of every
   * epoch: the model as that epoch left it, from which `Seq2Seq.load(path)` and `fit` resume.
   */
  checkpoint?: string;
}

/** What {@link Seq2SeqFitOptions.onEpoch} receives. */
export interface Seq2SeqEpoch {
  /** 1-based, counted over every call that trained the model. */
  epoch: number;
  /** Mean training loss per target token (label smoothing included). */
  loss: number;
  /** Mean validation cross-entropy per target token, when there is validation. */
  validationLoss?: number;
  /** The learning rate of this epoch. */
  learningRate: number;
  /** Wall-clock seconds of the epoch's training (validation not included). */
  seconds: number;
}

/** How {@link Seq2Seq.transduce} decodes. */
export interface TransduceOptions {
  /** Beams kept per text (1: greedy). Default 1. */
  beamWidth?: number;
  /** Outputs per text, best first (≤ beamWidth). Default 1. */
  nBest?: number;
  /** Wu et al.'s (2016) length penalty α: scores are log P / ((5 + length) / 6)^α. Default 0. */
  lengthPenalty?: number;
  /** The most target tokens per output, its end included. Default: twice the longest source, plus 10. */
  maxLength?: number;
  /**
   * Other models that decode with this one, as an ensemble: each encodes the texts and steps its
   * own decoder, and a token's log-probability is the mean of the models' (`logProb` and `score`
   * are then the ensemble's; `attention` the models' mean). They must have this model's source and
   * target tokenizers, and are busy until the call settles. Default: none.
   */
  ensemble?: readonly Seq2Seq[];
}

/** One decoded output. */
export interface Transduction {
  /** The output text (the end token not included). */
  text: string;
  /** Its target tokens. */
  tokens: string[];
  /** The model's log-probability of the output and its end. */
  logProb: number;
  /** The ranking score (`logProb` under the length penalty). */
  score: number;
  /** False when the output reached `maxLength` before its end token. */
  finished: boolean;
  /** `[output token][source token]`: where the decoder looked for each output token (its end included). */
  attention: number[][];
}

/** {@link Seq2Seq.transduce}'s result for one text: the best output and, with `nBest`, the others. */
export interface TransduceResult extends Transduction {
  /** The source's tokens (the attention's columns). */
  sourceTokens: string[];
  /** All `nBest` outputs, best first (the first is this one). */
  nBest: Transduction[];
}

/** {@link Seq2Seq.evaluate}'s figures. */
export interface Seq2SeqEvaluation {
  /** Pairs evaluated. */
  count: number;
  /** Share of outputs equal to their target. */
  exactMatch: number;
  /** Token error rate: the edit distance of every output to its target, summed, over the targets' tokens. */
  tokenErrorRate: number;
  /** Mean teacher-forced cross-entropy per target token (its end included), in nats. */
  loss: number;
}

const FIT_KEYS = [
  'epochs',
  'batchSize',
  'learningRate',
  'labelSmoothing',
  'dropout',
  'clipNorm',
  'validation',
  'patience',
  'seed',
  'onEpoch',
  'checkpoint',
];

const TRAIN_KEYS = [
  'sourceTokenizer',
  'targetTokenizer',
  'cell',
  'embeddingDim',
  'hiddenSize',
  'numLayers',
  'bidirectional',
  'attention',
  'attentionUnits',
  'inputFeeding',
  ...FIT_KEYS,
];

function pairList(what: string, pairs: unknown): TextPair[] {
  if (!Array.isArray(pairs))
    throw new InvalidArgumentError(`${what} must be an array of [source, target] string pairs, got ${describe(pairs)}`);
  pairs.forEach((p, i) => {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string' || typeof p[1] !== 'string') {
      throw new InvalidArgumentError(`${what}[${i}] must be a [source, target] pair of strings, got ${describe(p)}`);
    }
    if (p[0].length === 0) throw new InvalidArgumentError(`${what}[${i}][0] (the source) must not be empty`);
  });
  return pairs as TextPair[];
}

/** {@link Seq2SeqFitOptions} checked, with the defaults, and the pairs split for validation. */
interface CheckedFit {
  epochs: number;
  batchSize: number;
  /** Undefined: the schedule's next one. */
  learningRate: number | undefined;
  labelSmoothing: number;
  dropout: number;
  clipNorm: number;
  patience: number;
  seed: number;
  onEpoch: ((e: Seq2SeqEpoch) => void) | undefined;
  checkpoint: string | undefined;
  train: TextPair[];
  held: TextPair[];
}

function checkFit(o: Seq2SeqFitOptions, all: TextPair[], history: readonly Seq2SeqEpoch[]): CheckedFit {
  const seed = optInt('seed', o.seed, 0, 0, 0xffffffff);
  const onEpoch = o.onEpoch;
  if (onEpoch !== undefined && typeof onEpoch !== 'function')
    throw new InvalidArgumentError(`onEpoch must be a function, got ${describe(onEpoch)}`);
  if (o.checkpoint !== undefined && (typeof o.checkpoint !== 'string' || o.checkpoint.length === 0))
    throw new InvalidArgumentError(`checkpoint must be a file path, got ${describe(o.checkpoint)}`);
  // The validation split.
  let train = all;
  let held: TextPair[] = [];
  if (Array.isArray(o.validation)) {
    held = pairList('validation', o.validation);
  } else {
    const fraction = o.validation === undefined ? (all.length >= 20 ? 0.1 : 0) : numberIn('validation', o.validation, 0, 1, '[)');
    const count = Math.floor(all.length * fraction);
    if (count > 0) {
      const random = seededRandom(seed);
      const order = all.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const heldSet = new Set(order.slice(0, count));
      held = all.filter((_, i) => heldSet.has(i));
      train = all.filter((_, i) => !heldSet.has(i));
    }
  }
  return {
    epochs: optInt('epochs', o.epochs, 20, 1),
    batchSize: optInt('batchSize', o.batchSize, 64, 1),
    learningRate:
      o.learningRate === undefined
        ? history.length === 0
          ? 0.002
          : undefined
        : numberIn('learningRate', o.learningRate, 0, Number.POSITIVE_INFINITY, '()'),
    labelSmoothing: o.labelSmoothing === undefined ? 0 : numberIn('labelSmoothing', o.labelSmoothing, 0, 1, '[)'),
    dropout: o.dropout === undefined ? 0 : numberIn('dropout', o.dropout, 0, 1, '[)'),
    clipNorm: o.clipNorm === undefined ? 5 : numberIn('clipNorm', o.clipNorm, 0, Number.POSITIVE_INFINITY, '()'),
    patience: optInt('patience', o.patience, 3, 1),
    seed,
    onEpoch,
    checkpoint: o.checkpoint,
    train,
    held,
  };
}

/** The history kept in a file (an empty one when the file has none or it is malformed). */
function historyFrom(v: unknown): Seq2SeqEpoch[] {
  if (!Array.isArray(v)) return [];
  const ok = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
  const out: Seq2SeqEpoch[] = [];
  for (const e of v as Record<string, unknown>[]) {
    if (typeof e !== 'object' || e === null || !ok(e.epoch) || !ok(e.learningRate) || !ok(e.seconds)) return [];
    // A non-finite loss was written as null.
    if (!ok(e.loss) && e.loss !== null) return [];
    if (e.validationLoss !== undefined && !ok(e.validationLoss)) return [];
    const event: Seq2SeqEpoch = {
      epoch: e.epoch as number,
      loss: ok(e.loss) ? (e.loss as number) : Number.NaN,
      learningRate: e.learningRate as number,
      seconds: e.seconds as number,
    };
    if (e.validationLoss !== undefined) event.validationLoss = e.validationLoss as number;
    out.push(event);
  }
  return out;
}

function tokenizerFor(what: string, v: unknown, texts: string[]): Tokenizer {
  if (v === undefined || v === 'char') return CharTokenizer.fromCorpus(texts);
  if (v === 'word') return WordTokenizer.fromCorpus(texts);
  if (typeof v === 'string') throw new InvalidArgumentError(`${what} must be 'char', 'word' or a Tokenizer, got ${describe(v)}`);
  return checkTokenizer(what, v);
}

/** Concatenated ids and their lengths, as the native calls take them. */
function packed(seqs: number[][]): { ids: Uint32Array; lengths: Uint32Array } {
  const lengths = Uint32Array.from(seqs, (s) => s.length);
  const ids = new Uint32Array(lengths.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const s of seqs) {
    ids.set(s, at);
    at += s.length;
  }
  return { ids, lengths };
}

/**
 * A decoder stream ({@link Seq2Seq.stream}): the encoder has read the sources; each
 * {@link Seq2SeqStream.step} feeds one target id per source and returns the log-probabilities of
 * the next one, for serving a token at a time (your own search, constraints, streaming output).
 */
export class Seq2SeqStream {
  /** Sources (rows) of the stream. */
  readonly batch: number;
  /** Target ids: the target tokenizer's plus the start id. */
  readonly vocabSize: number;
  /** The id the decoder reads first (the default of the first step). */
  readonly startId: number;
  /** The id that ends an output. */
  readonly endId: number;
  /** Each source's tokens (the attention's columns). */
  readonly sourceLengths: number[];
  readonly #native: native.NativeSeq2SeqStream;

  /** @internal */
  constructor(n: native.NativeSeq2SeqStream, vocabSize: number, startId: number) {
    this.#native = n;
    this.sourceLengths = native.guard(() => n.sourceLengths);
    this.batch = this.sourceLengths.length;
    this.vocabSize = vocabSize;
    this.startId = startId;
    this.endId = END_ID;
  }

  /** Tokens stepped so far. */
  get steps(): number {
    return native.guard(() => this.#native.steps);
  }

  /**
   * Feeds one target id per source (default: the start id for every source) and returns, per
   * source, the log-probabilities of the next id (`vocabSize` values) and the attention over its
   * source tokens.
   * @throws {InvalidArgumentError} for ids out of range or not one per source (the stream is unchanged).
   */
  step(tokens?: readonly number[]): { logProbs: Float64Array[]; attention: Float32Array[] } {
    const ids = tokens ?? Array<number>(this.batch).fill(this.startId);
    if (!Array.isArray(ids) || ids.length !== this.batch) {
      throw new InvalidArgumentError(`tokens must be ${this.batch} target id(s), one per source, got ${describe(tokens)}`);
    }
    ids.forEach((t, i) => {
      intIn(`tokens[${i}]`, t, 0, this.vocabSize - 1);
    });
    const r = native.guard(() => this.#native.step(Uint32Array.from(ids)));
    const width = r.attention.length / this.batch;
    return {
      logProbs: Array.from({ length: this.batch }, (_, i) => r.logProbs.slice(i * this.vocabSize, (i + 1) * this.vocabSize)),
      attention: Array.from({ length: this.batch }, (_, i) => r.attention.slice(i * width, i * width + this.sourceLengths[i]!)),
    };
  }
}

/** Levenshtein distance between two token lists. */
export function editDistance<T>(a: readonly T[], b: readonly T[]): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 0; i < a.length; i++) {
    const cur = [i + 1];
    for (let j = 0; j < b.length; j++) cur.push(Math.min(prev[j]! + (a[i] === b[j] ? 0 : 1), prev[j + 1]! + 1, cur[j]! + 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * An encoder–decoder with attention over text pairs, in one object:
 * `await Seq2Seq.train(pairs)` then `await s.transduce('word', { beamWidth: 5 })`.
 *
 * The model (`gyre_core::seq2seq`): source and target embeddings, a (stacked, by default
 * bidirectional) recurrent encoder whose top layer's final states, concatenated, start a
 * recurrent decoder with attention over the encoder's outputs (masked by each source's length),
 * Luong's attentional combination `h̃ = tanh(W_c[context; h] + b_c)` and input feeding, and a
 * dense output over the target tokens. Trained with teacher forcing on the cross-entropy of every
 * target token and its end, Adam and gradient clipping.
 */
export class Seq2Seq {
  /** The tokenizer of the sources. */
  readonly sourceTokenizer: Tokenizer;
  /** The tokenizer of the targets (the model's output ids are its ids, plus one start id). */
  readonly targetTokenizer: Tokenizer;
  /** The per-epoch figures of every {@link Seq2Seq.train} and {@link Seq2Seq.fit} call (kept in the file). */
  readonly history: Seq2SeqEpoch[];
  #native: native.NativeSeq2Seq;

  private constructor(n: native.NativeSeq2Seq, source: Tokenizer, target: Tokenizer, history: Seq2SeqEpoch[] = []) {
    this.#native = n;
    this.sourceTokenizer = source;
    this.targetTokenizer = target;
    this.history = history;
  }

  /**
   * Builds tokenizers (unless given) and a model, and trains it on `pairs` ({@link Seq2Seq.fit});
   * see {@link Seq2SeqTrainOptions} for the defaults. Runs off the event loop.
   * @throws {InvalidArgumentError} for empty or malformed pairs or a bad option (naming it).
   */
  static async train(pairs: readonly TextPair[], options_: Seq2SeqTrainOptions = {}): Promise<Seq2Seq> {
    const all = pairList('pairs', pairs);
    if (all.length === 0) throw new InvalidArgumentError('pairs must hold at least one pair, got none');
    const o = options('options', options_, TRAIN_KEYS);
    const fitOptions: Seq2SeqFitOptions = {};
    for (const k of FIT_KEYS) if (o[k] !== undefined) (fitOptions as Record<string, unknown>)[k] = o[k];
    const fit = checkFit(fitOptions, all, []);
    const source = tokenizerFor(
      'sourceTokenizer',
      o.sourceTokenizer,
      fit.train.map((p) => p[0]),
    );
    const target = tokenizerFor(
      'targetTokenizer',
      o.targetTokenizer,
      fit.train.map((p) => p[1]),
    );
    const hidden = optInt('hiddenSize', o.hiddenSize, 128, 1);
    const bidirectional = optBool('bidirectional', o.bidirectional, true);
    const attention = oneOf('attention', o.attention ?? 'general', ['dot', 'general', 'additive']);
    const decoderHidden = hidden * (bidirectional ? 2 : 1);
    if (o.attentionUnits !== undefined && attention !== 'additive') {
      throw new InvalidArgumentError(`attentionUnits applies to attention 'additive', not '${attention}'`);
    }
    const score =
      attention === 'additive' ? { additive: { units: optInt('attentionUnits', o.attentionUnits, decoderHidden, 1) } } : attention;
    const config = {
      cell: oneOf('cell', o.cell ?? 'lstm', ['lstm', 'gru', 'rnn']),
      sourceVocab: source.vocabSize,
      targetVocab: target.vocabSize + 1,
      embedding: optInt('embeddingDim', o.embeddingDim, 64, 1),
      hidden,
      layers: optInt('numLayers', o.numLayers, 1, 1),
      bidirectional,
      score,
      inputFeeding: optBool('inputFeeding', o.inputFeeding, true),
      start: target.vocabSize,
      end: END_ID,
    };
    const n = native.guard(() => new native.NativeSeq2Seq(JSON.stringify(config), fit.seed));
    const s = new Seq2Seq(n, source, target);
    await s.#fit(fit);
    return s;
  }

  /**
   * Trains on `pairs` for up to `epochs` more epochs, from the weights and Adam's state the model
   * has (a checkpoint, or a file saved with `includeOptimizer`, resumes exactly; see
   * {@link Seq2SeqFitOptions}), appending to {@link Seq2Seq.history}. Runs off the event loop;
   * with validation, the model of the best epoch of this call is kept.
   * @throws {InvalidArgumentError} for empty or malformed pairs or a bad option (naming it).
   */
  async fit(pairs: readonly TextPair[], options_: Seq2SeqFitOptions = {}): Promise<Seq2Seq> {
    const all = pairList('pairs', pairs);
    if (all.length === 0) throw new InvalidArgumentError('pairs must hold at least one pair, got none');
    await this.#fit(checkFit(options('options', options_, FIT_KEYS) as Seq2SeqFitOptions, all, this.history));
    return this;
  }

  async #fit(f: CheckedFit): Promise<void> {
    const data = this.#pairs('pairs', f.train);
    const validation = f.held.length > 0 ? this.#pairs('validation', f.held) : undefined;
    // The schedule goes on from the history (see Seq2SeqFitOptions).
    let best = Number.POSITIVE_INFINITY;
    let bad = 0;
    for (const e of this.history) {
      if (e.validationLoss === undefined) continue;
      if (e.validationLoss < best) {
        best = e.validationLoss;
        bad = 0;
      } else bad++;
    }
    const last = this.history[this.history.length - 1];
    let learningRate =
      f.learningRate ??
      (last === undefined ? 0.002 : last.validationLoss !== undefined && bad > 0 ? last.learningRate / 2 : last.learningRate);
    let bestBytes: Uint8Array | undefined;
    let restore = false;
    const optimizer = JSON.stringify({ type: 'adam', learningRate });
    for (let i = 0; i < f.epochs; i++) {
      const n = this.#native;
      const epoch =
        Math.max(
          native.guard(() => n.epochs),
          this.history[this.history.length - 1]?.epoch ?? 0,
        ) + 1;
      const started = performance.now();
      const loss = await native.settle(
        native.guard(() =>
          n.trainEpoch(data.src.ids, data.src.lengths, data.tgt.ids, data.tgt.lengths, {
            batchSize: f.batchSize,
            learningRate,
            clipNorm: f.clipNorm,
            labelSmoothing: f.labelSmoothing,
            dropout: f.dropout,
            seed: (f.seed + epoch) >>> 0,
            optimizer,
          }),
        ),
      );
      const event: Seq2SeqEpoch = { epoch, loss, learningRate, seconds: (performance.now() - started) / 1000 };
      this.history.push(event);
      if (validation) {
        const v = await native.settle(
          native.guard(() => n.loss(validation.src.ids, validation.src.lengths, validation.tgt.ids, validation.tgt.lengths, 0)),
        );
        event.validationLoss = v;
        if (v < best) {
          best = v;
          bad = 0;
          restore = false;
          bestBytes = this.toBuffer({ includeOptimizer: true });
        } else {
          bad++;
          restore = bestBytes !== undefined;
          learningRate /= 2;
        }
      }
      if (f.checkpoint !== undefined) await this.save(f.checkpoint, { includeOptimizer: true });
      if (f.onEpoch) f.onEpoch(event);
      if (bad >= f.patience) break;
    }
    if (restore && bestBytes !== undefined) {
      const restored = native.guard(() => native.NativeSeq2Seq.fromSafetensors(bestBytes));
      this.#native.dispose();
      this.#native = restored;
    }
  }

  /** Encodes pairs with the tokenizers (unknown tokens map to id 0). */
  #pairs(
    what: string,
    pairs: readonly TextPair[],
  ): { src: { ids: Uint32Array; lengths: Uint32Array }; tgt: { ids: Uint32Array; lengths: Uint32Array } } {
    const src = pairs.map((p, i) => this.#source(`${what}[${i}][0]`, p[0]));
    const tgt = pairs.map((p) => this.targetTokenizer.encode(p[1]));
    return { src: packed(src), tgt: packed(tgt) };
  }

  #source(what: string, text: string): number[] {
    const ids = this.sourceTokenizer.encode(text);
    if (ids.length === 0) throw new InvalidArgumentError(`${what} must have at least one token, got ${describe(text)}`);
    return ids;
  }

  /** The model's configuration (camelCase JSON of `gyre_core::seq2seq::Seq2SeqConfig`). */
  get config(): Record<string, unknown> {
    return JSON.parse(native.guard(() => this.#native.configJson)) as Record<string, unknown>;
  }

  /** Scalar parameters. */
  get parameterCount(): number {
    return native.guard(() => this.#native.paramCount);
  }

  /** Epochs trained. */
  get epochs(): number {
    return native.guard(() => this.#native.epochs);
  }

  /** Every parameter's name and shape (PyTorch's names where PyTorch has the module). */
  parameterShapes(): { name: string; shape: number[] }[] {
    return native.guard(() => this.#native.paramShapes());
  }

  /**
   * A decoder stream over `texts` (the encoder runs now): step it a token at a time
   * ({@link Seq2SeqStream}). Stepping the start id and then each most likely id gives
   * `transduce`'s greedy output and log-probability. The encoder's outputs are those of the
   * weights the model has now; each step decodes with the weights the model has then (the
   * decoder's weights are prepared once and kept while they do not change).
   * @throws {InvalidArgumentError} for a text without tokens.
   */
  stream(texts: string | readonly string[]): Seq2SeqStream {
    const list = typeof texts === 'string' ? [texts] : texts;
    if (!Array.isArray(list) || list.length === 0 || list.some((t) => typeof t !== 'string')) {
      throw new InvalidArgumentError(`texts must be a string or a non-empty array of strings, got ${describe(texts)}`);
    }
    const src = packed(list.map((t, i) => this.#source(`texts[${i}]`, t)));
    const n = native.guard(() => this.#native.stream(src.ids, src.lengths));
    return new Seq2SeqStream(n, this.targetTokenizer.vocabSize + 1, this.targetTokenizer.vocabSize);
  }

  /** Every parameter by name (copies; PyTorch's names where PyTorch has the module), with its shape. */
  parameters(): Record<string, { data: Float32Array; shape: number[] }> {
    const out: Record<string, { data: Float32Array; shape: number[] }> = {};
    for (const p of native.guard(() => this.#native.params())) out[p.name] = { data: p.values, shape: p.shape };
    return out;
  }

  /** The native models of a `transduce` ensemble, checked: Seq2Seq models with this one's tokenizers. */
  #ensemble(models: unknown): native.NativeSeq2Seq[] | undefined {
    if (models === undefined) return undefined;
    if (!Array.isArray(models)) throw new InvalidArgumentError(`ensemble must be an array of Seq2Seq models, got ${describe(models)}`);
    const vocab = (t: Tokenizer) => JSON.stringify(t.toJSON());
    return models.map((m: unknown, i) => {
      if (!(m instanceof Seq2Seq)) throw new InvalidArgumentError(`ensemble[${i}] must be a Seq2Seq model, got ${describe(m)}`);
      if (vocab(m.sourceTokenizer) !== vocab(this.sourceTokenizer) || vocab(m.targetTokenizer) !== vocab(this.targetTokenizer)) {
        throw new InvalidArgumentError(`ensemble[${i}] must have this model's source and target tokenizers (the same vocabularies)`);
      }
      return m.#native;
    });
  }

  /**
   * Decodes each text by beam search (greedy with `beamWidth: 1`), off the event loop.
   * @throws {InvalidArgumentError} for a text without tokens or a bad option.
   */
  async transduce(texts: string | readonly string[], options_: TransduceOptions = {}): Promise<TransduceResult[]> {
    const list = typeof texts === 'string' ? [texts] : texts;
    if (!Array.isArray(list) || list.some((t) => typeof t !== 'string')) {
      throw new InvalidArgumentError(`texts must be a string or an array of strings, got ${describe(texts)}`);
    }
    const o = options('options', options_, ['beamWidth', 'nBest', 'lengthPenalty', 'maxLength', 'ensemble']);
    const ensemble = this.#ensemble(o.ensemble);
    const beamWidth = optInt('beamWidth', o.beamWidth, 1, 1, 1024);
    const nBest = optInt('nBest', o.nBest, 1, 1, beamWidth);
    const lengthPenalty = o.lengthPenalty === undefined ? 0 : finite('lengthPenalty', o.lengthPenalty);
    if (lengthPenalty < 0) throw new InvalidArgumentError(`lengthPenalty must be ≥ 0, got ${lengthPenalty}`);
    if (list.length === 0) return [];
    const ids = list.map((t, i) => this.#source(`texts[${i}]`, t));
    const longest = Math.max(...ids.map((s) => s.length));
    const maxLength = o.maxLength === undefined ? 2 * longest + 10 : intIn('maxLength', o.maxLength, 1);
    const src = packed(ids);
    const found = await native.settle(
      native.guard(() => this.#native.transduce(src.ids, src.lengths, { beamWidth, maxLength, lengthPenalty, nBest }, ensemble)),
    );
    return found.map((hyps, i) => {
      const sourceTokens = ids[i]!.map((id) => this.sourceTokenizer.tokenOf(id));
      const outs = hyps.map((h): Transduction => {
        const body = h.finished ? h.tokens.slice(0, -1) : h.tokens;
        const attention: number[][] = [];
        for (let r = 0; r < h.tokens.length; r++)
          attention.push(Array.from(h.attention.subarray(r * h.sourceLength, (r + 1) * h.sourceLength)));
        return {
          text: this.targetTokenizer.decode(body),
          tokens: body.map((id) => this.targetTokenizer.tokenOf(id)),
          logProb: h.logProb,
          score: h.score,
          finished: h.finished,
          attention,
        };
      });
      return { ...outs[0]!, sourceTokens, nBest: outs };
    });
  }

  /**
   * Decodes every source and compares with its target: exact-match rate, token error rate (edit
   * distance over target tokens) and the teacher-forced loss.
   */
  async evaluate(pairs: readonly TextPair[], options_: TransduceOptions = {}): Promise<Seq2SeqEvaluation> {
    const list = pairList('pairs', pairs);
    if (list.length === 0) throw new InvalidArgumentError('pairs must hold at least one pair, got none');
    const out = await this.transduce(
      list.map((p) => p[0]),
      options_,
    );
    let exact = 0;
    let edits = 0;
    let total = 0;
    list.forEach((p, i) => {
      const want = this.targetTokenizer.encode(p[1]).map((id) => this.targetTokenizer.tokenOf(id));
      const got = out[i]!.tokens;
      if (got.length === want.length && got.every((t, k) => t === want[k])) exact++;
      edits += editDistance(got, want);
      total += want.length;
    });
    const data = this.#pairs('pairs', list);
    const loss = await native.settle(
      native.guard(() => this.#native.loss(data.src.ids, data.src.lengths, data.tgt.ids, data.tgt.lengths, 0)),
    );
    return { count: list.length, exactMatch: exact / list.length, tokenErrorRate: total === 0 ? 0 : edits / total, loss };
  }

  /** The file's bytes: weights, configuration and both tokenizers (and, when asked, Adam's state). */
  toBuffer(options_: { includeOptimizer?: boolean } = {}): Buffer {
    const o = options('options', options_, ['includeOptimizer']);
    const user = JSON.stringify({
      gyre: {
        task: 'seq2seq',
        sourceTokenizer: this.sourceTokenizer.toJSON(),
        targetTokenizer: this.targetTokenizer.toJSON(),
        history: this.history,
      },
    });
    return native.guard(() => this.#native.toSafetensors(optBool('includeOptimizer', o.includeOptimizer, false), user));
  }

  /** Writes {@link Seq2Seq.toBuffer} to `path` atomically (a temporary file renamed over it). */
  async save(path: string, options_: { includeOptimizer?: boolean } = {}): Promise<void> {
    await writeAtomically(path, this.toBuffer(options_), 'write model file');
  }

  /**
   * A model from {@link Seq2Seq.toBuffer}'s bytes.
   * @throws `GYRE_BAD_FILE` for a damaged file or another kind of model; {@link InvalidArgumentError} without tokenizers.
   */
  static fromBuffer(bytes: Uint8Array): Seq2Seq {
    const n = native.guard(() => native.NativeSeq2Seq.fromSafetensors(bytes));
    let meta: { gyre?: { task?: unknown; sourceTokenizer?: unknown; targetTokenizer?: unknown; history?: unknown } } = {};
    try {
      meta = JSON.parse(n.user ?? '{}');
    } catch {
      meta = {};
    }
    const g = meta.gyre;
    if (g?.task !== 'seq2seq' || g.sourceTokenizer === undefined || g.targetTokenizer === undefined) {
      throw new InvalidArgumentError('the model file has no seq2seq tokenizers (it was not written by Seq2Seq.save)');
    }
    return new Seq2Seq(n, tokenizerFromJSON(g.sourceTokenizer), tokenizerFromJSON(g.targetTokenizer), historyFrom(g.history));
  }

  /** Reads a file written by {@link Seq2Seq.save}. */
  static async load(path: string): Promise<Seq2Seq> {
    const bytes = await readBytes(path, 'read model file');
    return about(path, () => Seq2Seq.fromBuffer(bytes));
  }

  /** Frees the native weights now; later calls fail with `GYRE_DISPOSED`. */
  dispose(): void {
    native.guard(() => this.#native.dispose());
  }
}
