/**
 * The options, events and results of training and inference ({@link FitOptions},
 * {@link ProgressEvent}, {@link FitHistory}, {@link Prediction}, ...), and their checks before
 * they cross to the native training loop.
 */
import type { Sample } from '../data/dataset.js';
import type { SequenceInput, TargetInput } from '../data/flatten.js';
import { GyreError, InvalidArgumentError } from '../errors.js';
import type * as native from '../native.js';
import { describe } from '../util/check.js';
import type { Dataset } from '../data/dataset.js';

/** The loss a model trains on. */
export type LossName = 'crossEntropy' | 'mse' | 'binaryCrossEntropy';

/** @internal */
export const LOSSES: readonly LossName[] = ['crossEntropy', 'mse', 'binaryCrossEntropy'];

/**
 * An optimizer and its hyperparameters (PyTorch semantics and defaults: `learningRate` 0.001,
 * for `rmsprop` 0.01). The native side checks them and applies the defaults.
 */
export type OptimizerSpec =
  | { type: 'sgd'; learningRate?: number; momentum?: number; dampening?: number; nesterov?: boolean; weightDecay?: number }
  | { type: 'adam'; learningRate?: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number }
  | { type: 'adamw'; learningRate?: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number }
  | { type: 'rmsprop'; learningRate?: number; alpha?: number; eps?: number; momentum?: number; centered?: boolean; weightDecay?: number };

/** A learning-rate schedule over epochs. */
export type ScheduleSpec =
  | { type: 'constant' }
  | { type: 'step'; stepSize: number; gamma: number }
  | { type: 'exponential'; gamma: number }
  | { type: 'cosine'; tMax: number; etaMin?: number }
  /**
   * PyTorch's `ReduceLROnPlateau` (mode `'min'`) on the validation loss (else the training
   * loss), ticked at each epoch's end: the rate is multiplied by `factor` (not below `minLr`)
   * when the loss has not improved (below `best·(1 − threshold)`, or `best − threshold` with
   * `thresholdMode: 'abs'`) for more than `patience` epochs; then `cooldown` epochs pass before
   * counting again. Its state is kept with the model (and saved), so training resumes exactly.
   * Defaults: `factor` 0.1, `patience` 10, `threshold` 1e-4, `thresholdMode` `'rel'`,
   * `cooldown` 0, `minLr` 0.
   */
  | {
      type: 'reduceOnPlateau';
      factor?: number;
      patience?: number;
      threshold?: number;
      thresholdMode?: 'rel' | 'abs';
      cooldown?: number;
      minLr?: number;
    };

/** What every {@link ProgressEvent} carries. */
interface ProgressBase {
  /** 1-based epoch, counted across `fit` calls and save/load. */
  epoch: number;
  /** Loss of the batch, or the epoch's mean loss. */
  loss: number;
  /** Training samples per second. */
  samplesPerSecond: number;
}

/** Reported after every batch. */
export interface BatchProgressEvent extends ProgressBase {
  kind: 'batch';
  /** 1-based batch within the epoch. */
  batch: number;
  /** Batches per epoch (`fit`; absent in `fitDataset`, where a stream's length is unknown). */
  batches?: number;
}

/** Reported after every epoch; {@link FitHistory.epochs} holds one per completed epoch. */
export interface EpochProgressEvent extends ProgressBase {
  kind: 'epoch';
  /** Epoch training accuracy (cross-entropy). */
  accuracy?: number;
  /** Validation loss (with validation data). */
  valLoss?: number;
  /** Validation accuracy (cross-entropy with validation data). */
  valAccuracy?: number;
  /** The whole validation evaluation, every metric of `fit`'s `metrics` option included (with validation data). */
  validation?: Evaluation;
  /** The epoch's learning rate. */
  learningRate: number;
}

/**
 * One progress report of {@link Model.fit} and {@link Model.fitDataset}, told apart by `kind`:
 * on `kind: 'batch'` events `batch` is a number, on `kind: 'epoch'` events `learningRate` is.
 */
export type ProgressEvent = BatchProgressEvent | EpochProgressEvent;

/** Options of {@link Model.fit}. */
export interface FitOptions {
  /** The loss. `crossEntropy` takes integer class targets; the others float targets. */
  loss: LossName;
  /** Passes over the data. Default 1. */
  epochs?: number;
  /** Sequences per batch. Default 32. */
  batchSize?: number;
  /** Default `{ type: 'adam', learningRate: 0.001 }`. */
  optimizer?: OptimizerSpec;
  /** Learning rate per epoch. Default constant. */
  schedule?: ScheduleSpec;
  /** Epochs of linear learning-rate warmup. Default 0. */
  warmupEpochs?: number;
  /** Shuffle every epoch (seeded). Default true. */
  shuffle?: boolean;
  /** Seed of shuffling and dropout. Default 0. */
  seed?: number;
  /** Clip the global gradient norm. */
  clipNorm?: number;
  /** Clip every gradient element to [-v, v]. */
  clipValue?: number;
  /** Truncated BPTT: update every this many steps, carrying the state (sequence outputs only). */
  tbpttSteps?: number;
  /** Data to report the loss on after every epoch. */
  validationData?: [SequenceInput, TargetInput];
  /** Fraction of the samples, taken from the end before shuffling, used as validation data. */
  validationSplit?: number;
  /** Stop when the validation loss (else the training loss) stops improving. Defaults: patience 1, minDelta 0, restoreBest true. */
  earlyStopping?: { patience?: number; minDelta?: number; restoreBest?: boolean };
  /** Metrics of each epoch's validation evaluation beyond the loss (its event's `validation`). */
  metrics?: MetricsOptions;
  /**
   * Weights of the training loss by target, PyTorch's `weight` of `CrossEntropyLoss`: one
   * non-negative number per class (crossEntropy), or `[w0, w1]` (binaryCrossEntropy: each value
   * weighs `w1·y + w0·(1 - y)`). A batch's loss is then `Σ w·l / Σ w`. Evaluation and the
   * validation loss are not weighted by it (as Keras' `class_weight`).
   */
  classWeight?: number[];
  /**
   * Each training sample's weight in the loss (one finite non-negative number per sample; every
   * step of a sequence weighs its sample's weight): `Σ w·l / Σ w`, times the class weight. With
   * `validationSplit` the held-out samples keep theirs, and the validation loss is weighted.
   */
  sampleWeight?: readonly number[] | Float32Array | Float64Array;
  /** Writes the model to a file at epoch ends; see {@link CheckpointOptions}. */
  checkpoint?: CheckpointOptions;
  /**
   * Called on the event loop after every batch and epoch. From an epoch event's call,
   * `model.save()` and `model.toBuffer()` work while `fit` goes on: they give the model as it
   * was at that epoch's end (weights, optimizer state, epochs trained); other calls on the model
   * are busy until `fit` settles.
   */
  onProgress?: (event: ProgressEvent) => void;
  /** Stops training before the next batch; fit then rejects with a {@link TrainingAbortedError}. */
  signal?: AbortSignal;
}

/**
 * Checkpoints: `fit` and `fitDataset` write the model (as {@link Model.save} does: atomically,
 * the optimizer state included, so training resumes exactly from the file) at the end of
 * epochs, while training goes on. `fit` settles only once the last checkpoint is on disk; a
 * checkpoint that cannot be written stops training and `fit` rejects with its `FileError`.
 */
export interface CheckpointOptions {
  /** The file; `{epoch}` in it is replaced by the epoch's number (one file per epoch). */
  path: string;
  /**
   * What `saveBestOnly` compares: `'valLoss'` (needs validation data) or `'loss'`. Default:
   * `'valLoss'` when there is validation data, else `'loss'`.
   */
  monitor?: 'loss' | 'valLoss';
  /** Write only when the monitored loss is lower than at every earlier checkpointed epoch of this call. Default false. */
  saveBestOnly?: boolean;
  /** Consider the epochs whose number (counted across calls, as `trainedEpochs`) is a multiple of this. Default 1: every epoch. */
  every?: number;
  /** Keep the optimizer state in the file (default true), as {@link SaveOptions.includeOptimizer}. */
  includeOptimizer?: boolean;
}

/** What {@link Model.fit} resolves to. */
export interface FitHistory {
  /** One entry per completed epoch. */
  epochs: EpochProgressEvent[];
  /** Whether early stopping ended training. */
  stoppedEarly: boolean;
}

/**
 * Metrics computed beyond the loss, for the crossEntropy loss (the accuracy, and for mse the
 * mean absolute error and RMSE, come without asking): `evaluate`'s `metrics` option, and
 * `fit`'s for each epoch's validation evaluation.
 */
export interface MetricsOptions {
  /** Top-k accuracy: the fraction of rows whose target's output is among their k largest. */
  topK?: number;
  /** The confusion matrix, and precision, recall and F1 per class and their macro means. Default false. */
  confusion?: boolean;
}

/**
 * Loss and metrics over a dataset. The loss is the mean training minimizes; the metrics count
 * every row the loss counts (a sequence, or a real step of one for a model that outputs
 * sequences), each once.
 */
export interface Evaluation {
  loss: number;
  /** The fraction of rows whose largest output is the target class (crossEntropy). */
  accuracy?: number;
  /** The fraction of rows whose target is among the `metrics.topK` largest outputs (fewer than k outputs larger than it). */
  topKAccuracy?: number;
  /** Mean absolute error over every output value (mse). */
  mae?: number;
  /** Root mean squared error over every output value (mse). */
  rmse?: number;
  /** `confusion[target][predicted]`: rows counted by their target class and largest output (`metrics.confusion`). */
  confusion?: number[][];
  /** Per class: right predictions of it ÷ predictions of it (0 when it is never predicted). */
  precision?: number[];
  /** Per class: right predictions of it ÷ rows of it (0 when no row has it). */
  recall?: number[];
  /** Per class: 2·precision·recall ÷ (precision + recall) (0 when both are 0). */
  f1?: number[];
  /**
   * Unweighted means of `precision`, `recall` and `f1` over the classes that occur as a target
   * or a prediction (scikit-learn's `average='macro'` with `zero_division=0`).
   */
  macro?: { precision: number; recall: number; f1: number };
}

/** @internal An evaluation as the native side returns it, with the class metrics derived from its confusion matrix. */
export function toEvaluation(r: native.EvaluationResult): Evaluation {
  const out: Evaluation = { loss: r.loss };
  if (r.accuracy != null) out.accuracy = r.accuracy;
  if (r.topKAccuracy != null) out.topKAccuracy = r.topKAccuracy;
  if (r.mae != null) out.mae = r.mae;
  if (r.rmse != null) out.rmse = r.rmse;
  if (r.confusion != null) Object.assign(out, classMetrics(r.confusion));
  return out;
}

/** @internal The confusion matrix of `flat` (`[C × C]`, row = target) and the per-class and macro metrics from it. */
export function classMetrics(flat: ArrayLike<number>): Required<Pick<Evaluation, 'confusion' | 'precision' | 'recall' | 'f1' | 'macro'>> {
  const c = Math.round(Math.sqrt(flat.length));
  const confusion = Array.from({ length: c }, (_, t) => Array.from({ length: c }, (_, p) => flat[t * c + p]!));
  const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);
  const precision: number[] = [];
  const recall: number[] = [];
  const f1: number[] = [];
  let [sp, sr, sf, present] = [0, 0, 0, 0];
  for (let k = 0; k < c; k++) {
    const tp = confusion[k]![k]!;
    let [rows, predicted] = [0, 0];
    for (let j = 0; j < c; j++) {
      rows += confusion[k]![j]!;
      predicted += confusion[j]![k]!;
    }
    const p = ratio(tp, predicted);
    const r = ratio(tp, rows);
    const f = ratio(2 * p * r, p + r);
    precision.push(p);
    recall.push(r);
    f1.push(f);
    if (rows > 0 || predicted > 0) {
      sp += p;
      sr += r;
      sf += f;
      present++;
    }
  }
  return { confusion, precision, recall, f1, macro: { precision: ratio(sp, present), recall: ratio(sr, present), f1: ratio(sf, present) } };
}

/** Options of {@link Model.evaluate}. */
export interface EvaluateOptions extends PredictOptions {
  /** The loss, as for `fit`. */
  loss: LossName;
  /** Metrics beyond the loss. */
  metrics?: MetricsOptions;
  /** Each sample's weight in the loss, as `fit`'s `sampleWeight` (the metrics are not weighted). */
  sampleWeight?: readonly number[] | Float32Array | Float64Array;
}

/** Options of {@link Model.predict} and {@link Model.evaluate}. */
export interface PredictOptions {
  /** Sequences per native batch. Default 64. */
  batchSize?: number;
}

/** Thrown (rejected) when an AbortSignal stops {@link Model.fit}; the model keeps the weights of the last completed batch. */
export class TrainingAbortedError extends GyreError {
  /** The epochs completed before the abort. */
  readonly history: FitHistory;

  constructor(history: FitHistory, options?: { cause?: unknown }) {
    super('GYRE_ABORTED', `training was aborted after ${history.epochs.length} complete epoch(s)`, options);
    this.history = history;
  }
}

/** @internal The error that ends training when `onProgress` throws `error`: an abort, caused by it. */
export function progressThrew(history: FitHistory, error: unknown): TrainingAbortedError {
  const err = new TrainingAbortedError(history, { cause: error });
  err.message = `onProgress threw (${error instanceof Error ? error.message : String(error)}); ${err.message}`;
  return err;
}

/** The model's output: `data` is `[samples, steps, units]` (zeros at padded steps) or `[samples, units]`. */
export interface Prediction {
  data: Float32Array;
  shape: number[];
  /**
   * Each sequence's final state (at its own last step; for a backward direction, its first),
   * one entry per recurrent layer in order: `hidden` (and `cell` for an LSTM) shaped
   * `[numLayers × directions, samples, hiddenSize]`, PyTorch's `h_n` / `c_n` layout.
   */
  states: { hidden: { data: Float32Array; shape: number[] }; cell?: { data: Float32Array; shape: number[] } }[];
}

/** @internal The options of `fit` read in TypeScript; the native side checks every other one (and applies its default). */
const TS_KEYS: readonly string[] = ['validationData', 'validationSplit', 'onProgress', 'signal', 'checkpoint', 'sampleWeight'];

/** @internal */
export function isSample(v: unknown): v is Sample {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && 'x' in v && 'y' in v;
}

/** @internal */
export function checkSample(v: unknown, where: string): Sample {
  if (!isSample(v)) throw new InvalidArgumentError(`${where} must be a sample { x, y }, got ${describe(v)}`);
  return v;
}

/**
 * @internal The training options of `fit`/`fitDataset` for the native side: every key
 * but those read in TypeScript. The native side checks them (unknown keys, types, ranges, NaN
 * and infinities, each named by its path) and applies the defaults.
 */
export function nativeFitOptions(o: Record<string, unknown>): native.FitOptions {
  const nativeOptions: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(o)) if (!TS_KEYS.includes(key)) nativeOptions[key] = value;
  return nativeOptions as unknown as native.FitOptions;
}

/** Options of {@link Model.fitDataset}: those of `fit`, with validation data as a dataset. */
export interface FitDatasetOptions extends Omit<FitOptions, 'validationData' | 'validationSplit' | 'shuffle' | 'sampleWeight'> {
  /** Data to report the loss on after every epoch: a dataset of samples, or `[x, y]` arrays. */
  validationData?: Dataset<Sample> | Iterable<Sample> | AsyncIterable<Sample> | [SequenceInput, TargetInput];
}

/** @internal The event as the public type says it: batch events have `batch`, epoch events `learningRate`. */
export function toProgress(e: native.ProgressEvent): ProgressEvent {
  const base = { epoch: e.epoch, loss: e.loss, samplesPerSecond: e.samplesPerSecond };
  if (e.kind === 'batch') {
    const out: BatchProgressEvent = { kind: 'batch', ...base, batch: e.batch ?? 0 };
    if (e.batches != null) out.batches = e.batches;
    return out;
  }
  return toEpoch(e);
}

/** @internal An epoch event of the native loop (its history holds only those). */
export function toEpoch(e: native.ProgressEvent): EpochProgressEvent {
  const out: EpochProgressEvent = {
    kind: 'epoch',
    epoch: e.epoch,
    loss: e.loss,
    samplesPerSecond: e.samplesPerSecond,
    learningRate: e.learningRate ?? Number.NaN,
  };
  if (e.accuracy != null) out.accuracy = e.accuracy;
  if (e.valLoss != null) out.valLoss = e.valLoss;
  if (e.valAccuracy != null) out.valAccuracy = e.valAccuracy;
  if (e.validation != null) out.validation = toEvaluation(e.validation);
  return out;
}
