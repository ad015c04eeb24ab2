/**
 * Sequential models: define from typed config objects, train with `await model.fit()` off the
 * event loop, evaluate and predict.
 */
import {
  bool,
  checkKeys,
  describe,
  intIn,
  nonEmptyString,
  nonNegativeInt,
  numberIn,
  object,
  oneOf,
  positiveInt,
  string,
} from '../util/check.js';
import {
  flattenInput,
  flattenTargets,
  sliceSequences,
  sliceTargets,
  type FlatSequences,
  type SequenceInput,
  type TargetInput,
} from '../data/flatten.js';
import { BusyError, GyreError, InvalidArgumentError, MissingArgumentError, ShapeMismatchError } from '../errors.js';
import { Dataset, type Sample } from '../data/dataset.js';
import * as native from '../native.js';

/** Token ids below `vocabSize` per step; the first layer must be an embedding. */
export interface TokenInputSpec {
  vocabSize: number;
}

/** `features` floats per step. */
export interface FeatureInputSpec {
  features: number;
}

/** Options shared by the recurrent layers. */
export interface RecurrentLayerSpec {
  /** Hidden size `H`. */
  hiddenSize: number;
  /** Stacked layers. Default 1. */
  numLayers?: number;
  /** Add a second cell running from the last step to the first. Default false. */
  bidirectional?: boolean;
  /** How the two directions combine in the output: side by side (`2H` features) or summed. Default `'concat'`. */
  merge?: 'concat' | 'sum';
  /** Output every step `[S, T, ·]` (true) or each sequence's final state `[S, ·]` (false). Default true. */
  returnSequences?: boolean;
  /** Dropout between stacked layers while training, in [0, 1). Default 0. */
  dropout?: number;
}

/** A layer of a {@link ModelSpec}. */
export type LayerSpec =
  | {
      /** Token ids to `dim`-vectors; first layer of a token model. */
      type: 'embedding';
      dim: number;
    }
  | (RecurrentLayerSpec & {
      type: 'rnn';
      /** Default `'tanh'`. */
      nonlinearity?: 'tanh' | 'relu';
    })
  | (RecurrentLayerSpec & { type: 'lstm' })
  | (RecurrentLayerSpec & {
      type: 'gru';
      /** Reset gate after the recurrent product (PyTorch). Default true. */
      resetAfter?: boolean;
    })
  | {
      /** `act(x·Wᵀ + b)`, applied at every step of a sequence. */
      type: 'dense';
      units: number;
      /** Default `'linear'`. */
      activation?: 'linear' | 'relu' | 'tanh' | 'sigmoid' | 'softmax';
    };

/** A sequential model's architecture. */
export interface ModelSpec {
  /** What the model reads. */
  input: TokenInputSpec | FeatureInputSpec;
  /** Layers, first to last. */
  layers: LayerSpec[];
  /** Seed of the weight initialisation. Default 0. */
  seed?: number;
}

/** The loss a model trains on. */
export type LossName = 'crossEntropy' | 'mse' | 'binaryCrossEntropy';

const LOSSES: readonly LossName[] = ['crossEntropy', 'mse', 'binaryCrossEntropy'];

/** An optimizer and its hyperparameters (PyTorch semantics and defaults). */
export type OptimizerSpec =
  | { type: 'sgd'; learningRate: number; momentum?: number; dampening?: number; nesterov?: boolean; weightDecay?: number }
  | { type: 'adam'; learningRate: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number }
  | { type: 'adamw'; learningRate: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number }
  | { type: 'rmsprop'; learningRate: number; alpha?: number; eps?: number; momentum?: number; centered?: boolean; weightDecay?: number };

/** A learning-rate schedule over epochs. */
export type ScheduleSpec =
  | { type: 'constant' }
  | { type: 'step'; stepSize: number; gamma: number }
  | { type: 'exponential'; gamma: number }
  | { type: 'cosine'; tMax: number; etaMin?: number };

/** One progress report of {@link Model.fit}. */
export interface ProgressEvent {
  /** After every batch or every epoch. */
  kind: 'batch' | 'epoch';
  /** 1-based epoch. */
  epoch: number;
  /** 1-based batch (batch events). */
  batch?: number;
  /** Batches per epoch (batch events). */
  batches?: number;
  /** Loss of the batch, or the epoch's mean loss. */
  loss: number;
  /** Epoch training accuracy (cross-entropy). */
  accuracy?: number;
  /** Validation loss (epoch events with validation data). */
  valLoss?: number;
  /** Validation accuracy (cross-entropy). */
  valAccuracy?: number;
  /** The epoch's learning rate (epoch events). */
  learningRate?: number;
  /** Training samples per second. */
  samplesPerSecond: number;
}

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
  /** Stop when the validation loss (else the training loss) stops improving. */
  earlyStopping?: { patience?: number; minDelta?: number; restoreBest?: boolean };
  /** Called on the event loop after every batch and epoch. */
  onProgress?: (event: ProgressEvent) => void;
  /** Stops training before the next batch; fit then rejects with a {@link TrainingAbortedError}. */
  signal?: AbortSignal;
}

/** What {@link Model.fit} resolves to. */
export interface FitHistory {
  /** One entry per completed epoch. */
  epochs: ProgressEvent[];
  /** Whether early stopping ended training. */
  stoppedEarly: boolean;
}

/** Loss and accuracy over a dataset. */
export interface Evaluation {
  loss: number;
  /** Cross-entropy only. */
  accuracy?: number;
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

/** The error that ends training when `onProgress` throws `error`: an abort, caused by it. */
function progressThrew(history: FitHistory, error: unknown): TrainingAbortedError {
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

/** Every number inside `v` must be finite: JSON would turn NaN and Infinity into null. */
function assertFinite(path: string, v: unknown): void {
  if (typeof v === 'number' && !Number.isFinite(v)) throw new InvalidArgumentError(`${path} must be a finite number, got ${v}`);
  if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v)) {
    for (const [k, x] of Object.entries(v)) assertFinite(path ? `${path}.${k}` : k, x);
  }
}

const RECURRENT_KEYS = ['type', 'hiddenSize', 'numLayers', 'bidirectional', 'merge', 'returnSequences', 'dropout'];
const LAYER_KEYS: Record<string, string[]> = {
  embedding: ['type', 'dim'],
  rnn: [...RECURRENT_KEYS, 'nonlinearity'],
  lstm: RECURRENT_KEYS,
  gru: [...RECURRENT_KEYS, 'resetAfter'],
  dense: ['type', 'units', 'activation'],
};

/** Checks a spec in TypeScript (types, unknown keys) and returns its JSON for the native model. */
function specJson(spec: ModelSpec): { json: string; seed: number; tokens: boolean; features: number } {
  const s = object('model spec', spec);
  checkKeys('', s, ['input', 'layers', 'seed']);
  const input = object('input', s.input);
  let tokens: boolean;
  let features = 0;
  if ('vocabSize' in input) {
    checkKeys('input.', input, ['vocabSize']);
    tokens = true;
    positiveInt('input.vocabSize', input.vocabSize);
  } else if ('features' in input) {
    checkKeys('input.', input, ['features']);
    tokens = false;
    features = positiveInt('input.features', input.features);
  } else {
    throw new MissingArgumentError('input must give either vocabSize (token ids) or features (floats per step)');
  }
  if (!Array.isArray(s.layers) || s.layers.length === 0) {
    throw new InvalidArgumentError(`layers must be a non-empty array, got ${describe(s.layers)}`);
  }
  const layers = s.layers.map((l: unknown, i: number) => {
    const layer = object(`layers[${i}]`, l);
    const keys = LAYER_KEYS[oneOf(`layers[${i}].type`, layer.type, Object.keys(LAYER_KEYS))]!;
    checkKeys(`layers[${i}].`, layer, keys);
    const size = layer.type === 'embedding' ? 'dim' : layer.type === 'dense' ? 'units' : 'hiddenSize';
    if (layer[size] === undefined) throw new MissingArgumentError(`layers[${i}].${size} is required`);
    for (const key of ['dim', 'hiddenSize', 'units', 'numLayers']) {
      if (key in layer) positiveInt(`layers[${i}].${key}`, layer[key]);
    }
    for (const key of ['bidirectional', 'returnSequences', 'resetAfter']) {
      if (key in layer) bool(`layers[${i}].${key}`, layer[key]);
    }
    if ('dropout' in layer) numberIn(`layers[${i}].dropout`, layer.dropout, 0, 1, '[)');
    return layer;
  });
  const seed = s.seed === undefined ? 0 : nonNegativeInt('seed', s.seed);
  const nativeInput = tokens ? { type: 'tokens', vocabSize: input.vocabSize } : { type: 'features', size: features };
  return { json: JSON.stringify({ input: nativeInput, layers }), seed, tokens, features };
}

const FIT_KEYS = [
  'loss',
  'epochs',
  'batchSize',
  'optimizer',
  'schedule',
  'warmupEpochs',
  'shuffle',
  'seed',
  'clipNorm',
  'clipValue',
  'tbpttSteps',
  'validationData',
  'validationSplit',
  'earlyStopping',
  'onProgress',
  'signal',
];

function isSample(v: unknown): v is Sample {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && 'x' in v && 'y' in v;
}

function checkSample(v: unknown, where: string): Sample {
  if (!isSample(v)) throw new InvalidArgumentError(`${where} must be a sample { x, y }, got ${describe(v)}`);
  return v;
}

/** The native training options of `fit`/`fitDataset`, checked (finite numbers, integer counts). */
function nativeFitOptions(o: Record<string, unknown>, loss: LossName): Record<string, unknown> {
  const nativeOptions: Record<string, unknown> = {
    epochs: o.epochs ?? 1,
    batchSize: o.batchSize ?? 32,
    shuffle: o.shuffle ?? true,
    seed: o.seed ?? 0,
    loss,
    optimizer: o.optimizer ?? { type: 'adam', learningRate: 0.001 },
  };
  for (const key of ['schedule', 'warmupEpochs', 'clipNorm', 'clipValue', 'tbpttSteps', 'earlyStopping']) {
    if (o[key] !== undefined) nativeOptions[key] = o[key];
  }
  assertFinite('', nativeOptions);
  for (const key of ['epochs', 'batchSize', 'seed', 'warmupEpochs', 'tbpttSteps']) {
    if (nativeOptions[key] !== undefined) intIn(key, nativeOptions[key], key === 'seed' || key === 'warmupEpochs' ? 0 : 1);
  }
  return nativeOptions;
}

/** Options of {@link Model.fitDataset}: those of `fit`, with validation data as a dataset. */
export interface FitDatasetOptions extends Omit<FitOptions, 'validationData' | 'validationSplit' | 'shuffle'> {
  /** Data to report the loss on after every epoch: a dataset of samples, or `[x, y]` arrays. */
  validationData?: Dataset<Sample> | Iterable<Sample> | AsyncIterable<Sample> | [SequenceInput, TargetInput];
}

const FIT_DATASET_KEYS = FIT_KEYS.filter((k) => k !== 'validationSplit' && k !== 'shuffle');

function toProgress(e: native.ProgressEvent): ProgressEvent {
  const out: ProgressEvent = { kind: e.kind as 'batch' | 'epoch', epoch: e.epoch, loss: e.loss, samplesPerSecond: e.samplesPerSecond };
  if (e.batch != null) out.batch = e.batch;
  if (e.batches != null) out.batches = e.batches;
  if (e.accuracy != null) out.accuracy = e.accuracy;
  if (e.valLoss != null) out.valLoss = e.valLoss;
  if (e.valAccuracy != null) out.valAccuracy = e.valAccuracy;
  if (e.learningRate != null) out.learningRate = e.learningRate;
  return out;
}

/** Marks the constructor argument that wraps an existing native model (loading a file). */
const FROM_NATIVE = Symbol('fromNative');
type NativeHandle = { [FROM_NATIVE]: native.NativeModel };

/** Options of {@link Model.save} and {@link Model.toBuffer}. */
export interface SaveOptions {
  /** Also store the optimizer's state so a later `fit` continues exactly. Default true. */
  includeOptimizer?: boolean;
  /** JSON-compatible data to keep with the model (tokenizer, normalization, notes); see {@link Model.metadata}. */
  metadata?: Record<string, unknown>;
}

/**
 * A sequential model. Build one with {@link sequential}; its weights live in native memory
 * under PyTorch-style names (`0.weight_ih_l0`, `0.weight_hh_l1_reverse`, `1.weight`).
 */
export class Model {
  readonly #native: native.NativeModel;
  readonly #tokens: boolean;
  readonly #features: number;
  #streaming = false;
  /** The layers' configuration, parsed once on first use (it never changes). */
  #layersCache: Record<string, unknown>[] | undefined;

  /** Use {@link sequential}, {@link loadModel} or {@link fromBuffer}. */
  constructor(spec: ModelSpec | NativeHandle) {
    if (spec !== null && typeof spec === 'object' && FROM_NATIVE in spec) {
      this.#native = spec[FROM_NATIVE];
      const input = (JSON.parse(native.guard(() => this.#native.configJson())) as { input: Record<string, unknown> }).input;
      this.#tokens = input.type === 'tokens';
      this.#features = this.#tokens ? 0 : (input.size as number);
      return;
    }
    const { json, seed, tokens, features } = specJson(spec);
    this.#native = native.guard(() => new native.NativeModel(json, seed));
    this.#tokens = tokens;
    this.#features = features;
  }

  /**
   * Layer `layer`'s weights as a `.safetensors` file named as the PyTorch module's
   * `state_dict`: `weight_ih_l0`, ... for `torch.nn.RNN`/`LSTM`/`GRU` (build the module with
   * `batch_first=True` and the same sizes), `weight`/`bias` for `nn.Linear`, `weight` for
   * `nn.Embedding`. Load it with `module.load_state_dict(safetensors.torch.load_file(path))`.
   */
  exportPyTorch(layer: number): Uint8Array {
    return native.guard(() => this.#native.exportLayer(intIn('layer', layer, 0, 0xffffffff)));
  }

  /**
   * Reads a PyTorch module's `state_dict` saved with `safetensors.torch.save_file` into layer
   * `layer`. Tensor names are the module's own (`weight_ih_l0`, ...) after `prefix` (e.g.
   * `'rnn.'` when the module was a submodule named `rnn`; other names are then ignored). Every
   * tensor must be there with the layer's exact shape; nothing changes otherwise.
   * @throws {BadFileError} listing missing and extra tensors, or naming a shape and the layer's.
   */
  importPyTorch(layer: number, bytes: Uint8Array, options: { prefix?: string } = {}): void {
    checkKeys('', object('options', options), ['prefix']);
    const prefix = string('prefix', options.prefix ?? '');
    if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError(`bytes must be a Uint8Array or Buffer, got ${describe(bytes)}`);
    native.guard(() => this.#native.importLayer(intIn('layer', layer, 0, 0xffffffff), bytes, prefix));
  }

  /** @internal Wraps a native model. */
  static fromNative(n: native.NativeModel): Model {
    return new Model({ [FROM_NATIVE]: n });
  }

  /**
   * Frees the model's native memory now rather than when it is garbage-collected. Every later
   * call throws {@link DisposedError}; refused with `GYRE_BUSY` while training.
   */
  dispose(): void {
    native.guard(() => this.#native.dispose());
  }

  /** Bytes of native memory the model holds (weights, optimizer state), reported to V8 as external memory so garbage collection accounts for it. */
  get nativeBytes(): number {
    return this.#native.nativeBytes;
  }

  /** Whether {@link Model.dispose} was called. */
  get isDisposed(): boolean {
    return this.#native.isDisposed;
  }

  /** Epochs trained so far, across `fit` calls and save/load. */
  get trainedEpochs(): number {
    return native.guard(() => this.#native.trainedEpochs());
  }

  /** The JSON data saved with the model (`save(path, { metadata })`), or `{}`. */
  get metadata(): Record<string, unknown> {
    const m = native.guard(() => this.#native.userMetadata());
    return m ? (JSON.parse(m) as Record<string, unknown>) : {};
  }

  /**
   * The model as the bytes of one `.safetensors` file: every weight under its PyTorch-style
   * name, the configuration (and format version) in `__metadata__`, the optimizer state unless
   * `includeOptimizer: false`, and `metadata`.
   */
  toBuffer(options: SaveOptions = {}): Uint8Array {
    const o = object('options', options);
    checkKeys('', o, ['includeOptimizer', 'metadata']);
    if (o.includeOptimizer !== undefined) bool('includeOptimizer', o.includeOptimizer);
    let user: string | undefined;
    if (o.metadata !== undefined) {
      object('metadata', o.metadata);
      user = JSON.stringify(o.metadata);
    }
    return native.guard(() => this.#native.toSafetensors(options.includeOptimizer ?? true, user));
  }

  /**
   * Writes the model to `path` (see {@link Model.toBuffer}). The bytes go to a temporary file
   * in the same folder, flushed to disk, then renamed over `path`: an interrupted save never
   * destroys the file that was there.
   */
  async save(path: string, options: SaveOptions = {}): Promise<void> {
    nonEmptyString('path', path);
    const bytes = this.toBuffer(options);
    const { open, rename, rm } = await import('node:fs/promises');
    const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
    try {
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** The architecture with every default written out (JSON-compatible). */
  get config(): { input: Record<string, unknown>; layers: Record<string, unknown>[] } {
    return JSON.parse(native.guard(() => this.#native.configJson()));
  }

  /** Whether a fit is running. */
  get isTraining(): boolean {
    return this.#native.isTraining;
  }

  /** Total number of weights. */
  get parameterCount(): number {
    return native.guard(() => this.#native.parameterCount());
  }

  /** The parameter tensors by name: copies of their values and their shapes. */
  parameters(): Record<string, { data: Float32Array; shape: number[] }> {
    const out: Record<string, { data: Float32Array; shape: number[] }> = {};
    for (const name of native.guard(() => this.#native.parameterNames())) {
      out[name] = {
        data: native.guard(() => this.#native.getParameter(name)),
        shape: native.guard(() => this.#native.parameterShape(name)),
      };
    }
    return out;
  }

  /** Replaces parameter values by name (lengths must match; unknown names are errors). */
  setParameters(values: Record<string, Float32Array>): void {
    const names = native.guard(() => this.#native.parameterNames());
    for (const [name, v] of Object.entries(object('values', values))) {
      if (!names.includes(name))
        throw new InvalidArgumentError(`unknown parameter ${JSON.stringify(name)}; the model has ${names.join(', ')}`);
      if (!(v instanceof Float32Array)) throw new InvalidArgumentError(`${name} must be a Float32Array, got ${describe(v)}`);
      // Every tensor is checked before any is written, so a failed call leaves the model as it was.
      const shape = native.guard(() => this.#native.parameterShape(name));
      const n = shape.reduce((a, b) => a * b, 1);
      if (v.length !== n)
        throw new ShapeMismatchError(`${name} must have shape [${shape.join(', ')}] (${n} values), got ${v.length} values`);
      const bad = v.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) throw new InvalidArgumentError(`${name}[${bad}] must be a finite number, got ${v[bad]}`);
    }
    for (const [name, v] of Object.entries(values)) native.guard(() => this.#native.setParameter(name, v));
  }

  #input(x: unknown, what = 'x'): FlatSequences {
    return flattenInput(x, this.#tokens, this.#features, what);
  }

  /** The loss must fit the last layer; checked before the targets are read. */
  #checkLoss(loss: unknown): LossName {
    oneOf('loss', loss, LOSSES);
    const layers = this.#layers();
    const last = layers[layers.length - 1]!;
    const act = last.type === 'dense' ? (last.activation as string) : undefined;
    if (loss === 'crossEntropy' && !(act === 'linear' || act === 'softmax')) {
      throw new InvalidArgumentError(
        `loss crossEntropy needs a last dense layer with 'linear' or 'softmax' activation, got ${act ?? last.type}`,
      );
    }
    if (loss === 'binaryCrossEntropy' && !(act === 'linear' || act === 'sigmoid')) {
      throw new InvalidArgumentError(
        `loss binaryCrossEntropy needs a last dense layer with 'linear' or 'sigmoid' activation, got ${act ?? last.type}`,
      );
    }
    return loss as LossName;
  }

  /** The options shared by `fit` and `fitDataset`, checked: keys, the loss, `onProgress`, `signal`. */
  #fitOptions(options: unknown, keys: readonly string[]): { o: Record<string, unknown>; loss: LossName; signal: AbortSignal | undefined } {
    const o = object('options', options);
    checkKeys('', o, keys);
    if (o.loss === undefined) throw new MissingArgumentError("options.loss is required: 'crossEntropy', 'mse' or 'binaryCrossEntropy'");
    const loss = this.#checkLoss(o.loss);
    if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
      throw new InvalidArgumentError(`onProgress must be a function, got ${describe(o.onProgress)}`);
    }
    const signal = o.signal as AbortSignal | undefined;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidArgumentError(`signal must be an AbortSignal, got ${describe(signal)}`);
    }
    return { o, loss, signal };
  }

  #data(x: unknown, y: unknown, loss: LossName, what = ''): native.DataArgs {
    const p = what ? `${what}.` : '';
    const flat = this.#input(x, `${p}x`);
    const layers = this.#layers();
    const perStep = this.#perStep(layers);
    const width = this.#outputWidth(layers);
    const t = flattenTargets(y, loss === 'crossEntropy', width, flat.samples, flat.steps, perStep, `${p}y`);
    // Checked here, before training: the native loop finds a bad target only when it reaches its batch.
    const bad = loss === 'binaryCrossEntropy' && t.values ? t.values.findIndex((v) => !(v >= 0 && v <= 1)) : -1;
    if (bad >= 0)
      throw new InvalidArgumentError(`${p}y must hold binaryCrossEntropy targets in [0, 1], got ${t.values![bad]} at index ${bad}`);
    return { ...flat, ...t };
  }

  #layers(): Record<string, unknown>[] {
    this.#layersCache ??= this.config.layers;
    return this.#layersCache;
  }

  /** Whether the model's output (and so its targets) has one row per step. */
  #perStep(layers: Record<string, unknown>[]): boolean {
    const last = layers[layers.length - 1]!;
    return last.type === 'dense' ? this.#outputsSequence(layers) : Boolean(last.returnSequences);
  }

  #outputsSequence(layers: Record<string, unknown>[]): boolean {
    let seq = true;
    for (const l of layers) if (l.type === 'rnn' || l.type === 'lstm' || l.type === 'gru') seq = Boolean(l.returnSequences);
    return seq;
  }

  #outputWidth(layers: Record<string, unknown>[]): number {
    const last = layers[layers.length - 1]!;
    if (last.type === 'dense') return last.units as number;
    if (last.type === 'embedding') return last.dim as number;
    const h = last.hiddenSize as number;
    return last.bidirectional && last.merge !== 'sum' ? 2 * h : h;
  }

  /**
   * Trains the model. The whole loop (shuffle, batches, forward, backward, update) runs in
   * native threads; the event loop stays free and `onProgress` is called on it.
   * @throws {GyreError} for bad options or data (synchronously checked, the Promise rejects);
   *   `GYRE_BUSY` if this model is already training; `GYRE_NON_FINITE` if the loss or a
   *   gradient becomes NaN/infinite (the weights stay those of the last good batch);
   *   {@link TrainingAbortedError} when `signal` aborts.
   */
  async fit(x: SequenceInput, y: TargetInput, options: FitOptions): Promise<FitHistory> {
    const { o, loss, signal } = this.#fitOptions(options, FIT_KEYS);
    let data = this.#data(x, y, loss);
    let validation: native.DataArgs | undefined;
    if (o.validationData !== undefined) {
      if (o.validationSplit !== undefined) throw new InvalidArgumentError('give validationData or validationSplit, not both');
      if (!Array.isArray(o.validationData) || o.validationData.length !== 2) {
        throw new InvalidArgumentError(`validationData must be [x, y], got ${describe(o.validationData)}`);
      }
      validation = this.#data(o.validationData[0], o.validationData[1], loss, 'validationData');
    } else if (o.validationSplit !== undefined) {
      const split = numberIn('validationSplit', o.validationSplit, 0, 1, '()');
      const keep = data.samples - Math.round(data.samples * split);
      if (keep < 1 || keep >= data.samples) {
        throw new InvalidArgumentError(`validationSplit ${split} of ${data.samples} samples leaves no training or no validation data`);
      }
      const cut = (from: number, to: number): native.DataArgs => ({
        ...sliceSequences(data as FlatSequences, from, to),
        ...sliceTargets(data, data.samples, from, to),
      });
      validation = cut(keep, data.samples);
      data = cut(0, keep);
    }
    const nativeOptions = nativeFitOptions(o, loss);
    if (signal?.aborted) throw new TrainingAbortedError({ epochs: [], stoppedEarly: false }, { cause: signal.reason });
    const onProgress = o.onProgress as ((e: ProgressEvent) => void) | undefined;
    let epochEvents = 0;
    // A throwing onProgress must not become an uncaught exception (it would end the process):
    // it stops training like an abort, and fit rejects with it as the cause.
    let thrown: { error: unknown } | undefined;
    const callback = onProgress
      ? (e: native.ProgressEvent) => {
          if (e.kind === 'epoch') epochEvents++;
          if (thrown) return;
          try {
            onProgress(toProgress(e));
          } catch (error) {
            thrown = { error };
            this.#native.abortTraining();
          }
        }
      : undefined;
    const promise = native.guard(() => this.#native.fit(data, validation, JSON.stringify(nativeOptions), callback));
    const abort = () => this.#native.abortTraining();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      const h = await native.settle(promise);
      // Progress events travel on their own queue: let the last ones arrive before resolving.
      for (let i = 0; callback && epochEvents < h.epochs.length && i < 1000; i++) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      const history = { epochs: h.epochs.map(toProgress), stoppedEarly: h.stoppedEarly };
      if (thrown) {
        throw progressThrew(history, thrown.error);
      }
      if (h.aborted) throw new TrainingAbortedError(history, { cause: signal?.reason });
      return history;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /**
   * Trains on a {@link Dataset} (or any iterable / async iterable) of samples, or of batches
   * (arrays of samples, e.g. from `dataset.batch(n)`), reading it as it goes: only the current
   * batch (plus whatever the dataset's own shuffle buffer holds) is in memory, so the data can
   * be a file or a database cursor larger than memory. Each batch runs forward, backward and the
   * update in native threads off the event loop. Shuffle with `dataset.shuffle(...)`; for more
   * than one epoch the dataset must be readable again (arrays, files, `Dataset.from(() => ...)`).
   * Epochs are numbered across calls as in {@link Model.fit}; `onProgress` gets the same events
   * (batch events have no `batches` total: a stream's length is unknown).
   * @throws {GyreError} as {@link Model.fit}; a bad sample's error names its batch and epoch.
   */
  async fitDataset(
    data: Dataset<Sample | Sample[]> | Iterable<Sample | Sample[]> | AsyncIterable<Sample | Sample[]>,
    options: FitDatasetOptions,
  ): Promise<FitHistory> {
    const { o, loss, signal } = this.#fitOptions(options, FIT_DATASET_KEYS);
    const json = JSON.stringify(nativeFitOptions(o, loss));
    const epochs = (o.epochs as number | undefined) ?? 1;
    const batchSize = (o.batchSize as number | undefined) ?? 32;
    const source = data instanceof Dataset ? data : Dataset.from(data as Iterable<Sample>);
    let validation: Dataset<Sample> | [SequenceInput, TargetInput] | undefined;
    if (o.validationData !== undefined) {
      const v = o.validationData;
      if (Array.isArray(v) && v.length === 2 && !isSample(v[0])) validation = v as [SequenceInput, TargetInput];
      else validation = v instanceof Dataset ? v : Dataset.from(v as Iterable<Sample>);
    }
    const onProgress = o.onProgress as ((e: ProgressEvent) => void) | undefined;
    const es = o.earlyStopping as { patience?: number; minDelta?: number; restoreBest?: boolean } | undefined;
    if (es !== undefined) {
      checkKeys('earlyStopping.', object('earlyStopping', es), ['patience', 'minDelta', 'restoreBest']);
    }
    if (this.#streaming) throw new BusyError('the model is already training from a dataset; wait for fitDataset() to settle');
    this.#streaming = true;
    const history: FitHistory = { epochs: [], stoppedEarly: false };
    const report = (e: ProgressEvent) => {
      if (!onProgress) return;
      try {
        onProgress(e);
      } catch (error) {
        throw progressThrew(history, error);
      }
    };
    try {
      const first = this.trainedEpochs + 1;
      let best = { loss: Infinity, epoch: first - 1, weights: undefined as Record<string, Float32Array> | undefined };
      for (let epoch = first; epoch < first + epochs; epoch++) {
        const started = performance.now();
        let [lossSum, count, correct, seen, batchNo, learningRate] = [0, 0, 0, 0, 0, NaN];
        const run = async (samples: Sample[]) => {
          if (signal?.aborted) throw new TrainingAbortedError(history, { cause: signal.reason });
          batchNo++;
          const args = this.#batchArgs(
            samples,
            loss,
            `batch ${batchNo} of epoch ${epoch} (samples ${seen}..${seen + samples.length - 1} of the epoch)`,
          );
          const r = await native.settle(native.guard(() => this.#native.trainBatch(args, json, epoch, batchNo)));
          lossSum += r.loss * r.count;
          count += r.count;
          correct += r.correct;
          seen += samples.length;
          learningRate = r.learningRate;
          const secs = Math.max((performance.now() - started) / 1000, 1e-9);
          report({ kind: 'batch', epoch, batch: batchNo, loss: r.loss, samplesPerSecond: seen / secs });
        };
        let pending: Sample[] = [];
        for await (const item of source) {
          if (Array.isArray(item)) {
            await run(item.map((s, i) => checkSample(s, `batch item ${i}`)));
            continue;
          }
          pending.push(checkSample(item, `sample ${seen + pending.length}`));
          if (pending.length === batchSize) {
            const batch = pending;
            pending = [];
            await run(batch);
          }
        }
        if (pending.length > 0) await run(pending);
        if (batchNo === 0) throw new InvalidArgumentError(`the dataset yielded no samples in epoch ${epoch}; nothing to train on`);
        native.guard(() => this.#native.setTrainedEpochs(epoch));
        const secs = Math.max((performance.now() - started) / 1000, 1e-9);
        const event: ProgressEvent = {
          kind: 'epoch',
          epoch,
          loss: lossSum / Math.max(count, 1),
          learningRate,
          samplesPerSecond: seen / secs,
        };
        if (loss === 'crossEntropy') event.accuracy = correct / Math.max(count, 1);
        if (validation !== undefined) {
          const v = await this.#evaluateSource(validation, loss, batchSize);
          event.valLoss = v.loss;
          if (v.accuracy !== undefined) event.valAccuracy = v.accuracy;
        }
        history.epochs.push(event);
        report(event);
        if (es) {
          const monitored = event.valLoss ?? event.loss;
          if (monitored < best.loss - (es.minDelta ?? 0)) {
            best = { loss: monitored, epoch, weights: es.restoreBest ? this.#weights() : undefined };
          } else if (epoch - best.epoch >= (es.patience ?? 0)) {
            history.stoppedEarly = true;
            if (best.weights) this.setParameters(best.weights);
            break;
          }
        }
      }
      return history;
    } finally {
      this.#streaming = false;
    }
  }

  #weights(): Record<string, Float32Array> {
    return Object.fromEntries(Object.entries(this.parameters()).map(([k, v]) => [k, v.data]));
  }

  /** Native arrays of a batch of samples; a bad sample's error names the batch. */
  #batchArgs(samples: Sample[], loss: LossName, where: string): native.DataArgs {
    try {
      return this.#data(
        samples.map((s) => s.x as number[][]),
        samples.map((s) => s.y) as TargetInput,
        loss,
      );
    } catch (err) {
      if (err instanceof GyreError) err.message = `${where}: ${err.message}`;
      throw err;
    }
  }

  /** Loss (and accuracy) over a dataset read batch by batch, weighted by the rows each batch counts. */
  async #evaluateSource(source: Dataset<Sample> | [SequenceInput, TargetInput], loss: LossName, batchSize: number): Promise<Evaluation> {
    if (!(source instanceof Dataset)) return this.evaluate(source[0], source[1], { loss, batchSize });
    let [sum, rows, hits] = [0, 0, 0];
    let batchNo = 0;
    for await (const batch of source.batch(batchSize)) {
      batchNo++;
      const args = this.#batchArgs(
        batch.map((s, i) => checkSample(s, `validation sample ${i}`)),
        loss,
        `validation batch ${batchNo}`,
      );
      const r = await native.settle(native.guard(() => this.#native.evaluate(args, loss, batchSize)));
      const n = this.#countedRows(args, loss);
      sum += r.loss * n;
      rows += n;
      if (r.accuracy != null) hits += r.accuracy * n;
    }
    if (rows === 0) throw new InvalidArgumentError('the validation dataset yielded no samples');
    return loss === 'crossEntropy' ? { loss: sum / rows, accuracy: hits / rows } : { loss: sum / rows };
  }

  /** Rows a batch's mean loss averages over: sequences or steps, times the output width for float losses. */
  #countedRows(args: native.DataArgs, loss: LossName): number {
    const layers = this.#layers();
    const perStep = this.#perStep(layers);
    const rows = perStep ? (args.lengths ? args.lengths.reduce((a, b) => a + b, 0) : args.samples * args.steps) : args.samples;
    return loss === 'crossEntropy' ? rows : rows * this.#outputWidth(layers);
  }

  #prediction(flat: FlatSequences, r: native.PredictResult): Prediction {
    const rows = flat.samples;
    const layers = this.#layers();
    const units = this.#outputWidth(layers);
    const shape = r.output.length === rows * units ? [rows, units] : [rows, flat.steps, units];
    const states = r.states.map((st) => {
      const h = st.hidden.length / (st.count * rows);
      const entry: Prediction['states'][number] = { hidden: { data: st.hidden, shape: [st.count, rows, h] } };
      if (st.cell) entry.cell = { data: st.cell, shape: [st.count, rows, h] };
      return entry;
    });
    return { data: r.output, shape, states };
  }

  /** A stream of `batch` independent sequences, all starting from the zero state. */
  createStream(batch = 1): Stream {
    intIn('batch', batch, 1, 0xffffffff);
    return new Stream(
      this.#native,
      native.guard(() => this.#native.createState(batch)),
      this.#tokens,
      this.#features,
    );
  }

  /** A stream restored from {@link Stream.toArray}. */
  restoreStream(values: Float32Array, batch = 1): Stream {
    intIn('batch', batch, 1, 0xffffffff);
    if (!(values instanceof Float32Array)) throw new InvalidArgumentError(`values must be a Float32Array, got ${describe(values)}`);
    return new Stream(
      this.#native,
      native.guard(() => this.#native.stateFromArray(batch, values)),
      this.#tokens,
      this.#features,
    );
  }

  /** The model's output for each sequence, computed off the event loop. */
  async predict(x: SequenceInput, options: PredictOptions = {}): Promise<Prediction> {
    checkKeys('', object('options', options), ['batchSize']);
    const flat = this.#input(x);
    const r = await native.settle(native.guard(() => this.#native.predict(flat, positiveInt('batchSize', options.batchSize ?? 64))));
    return this.#prediction(flat, r);
  }

  /** The model's output for each sequence, on the calling thread (for small inputs). */
  predictSync(x: SequenceInput, options: PredictOptions = {}): Prediction {
    checkKeys('', object('options', options), ['batchSize']);
    const flat = this.#input(x);
    const r = native.guard(() => this.#native.predictSync(flat, positiveInt('batchSize', options.batchSize ?? 64)));
    return this.#prediction(flat, r);
  }

  /** Mean loss (and accuracy for cross-entropy) over a dataset, off the event loop. */
  async evaluate(x: SequenceInput, y: TargetInput, options: PredictOptions & { loss: LossName }): Promise<Evaluation> {
    const o = object('options', options);
    checkKeys('', o, ['batchSize', 'loss']);
    const data = this.#data(x, y, this.#checkLoss(o.loss));
    const r = await native.settle(
      native.guard(() => this.#native.evaluate(data, options.loss, positiveInt('batchSize', options.batchSize ?? 64))),
    );
    return r.accuracy == null ? { loss: r.loss } : { loss: r.loss, accuracy: r.accuracy };
  }

  /** Mean loss (and accuracy for cross-entropy) over a dataset, on the calling thread. */
  evaluateSync(x: SequenceInput, y: TargetInput, options: PredictOptions & { loss: LossName }): Evaluation {
    const o = object('options', options);
    checkKeys('', o, ['batchSize', 'loss']);
    const data = this.#data(x, y, this.#checkLoss(o.loss));
    const r = native.guard(() => this.#native.evaluateSync(data, options.loss, positiveInt('batchSize', options.batchSize ?? 64)));
    return r.accuracy == null ? { loss: r.loss } : { loss: r.loss, accuracy: r.accuracy };
  }
}

/**
 * The live state of `batch` independent sequences for step-by-step inference: feed one time
 * step at a time with {@link Stream.step}. Create with {@link Model.createStream}.
 */
export class Stream {
  readonly #model: native.NativeModel;
  readonly #state: native.StreamState;
  readonly #tokens: boolean;
  readonly #features: number;

  /** @internal */
  constructor(model: native.NativeModel, state: native.StreamState, tokens: boolean, features: number) {
    this.#model = model;
    this.#state = state;
    this.#tokens = tokens;
    this.#features = features;
  }

  /** Number of independent sequences. */
  get batch(): number {
    return this.#state.batch;
  }

  /**
   * Advances every sequence by one step. `input`: per sequence one feature vector
   * (`number[][]` `[batch][features]`, `number[]` when batch is 1, or a flat Float32Array), or
   * one token id (`number[]` / Uint32Array, or a number when batch is 1).
   * @returns the model's output for this step, `[batch, units]` flat.
   */
  step(input: number | number[] | number[][] | Float32Array | Uint32Array): Float32Array {
    const b = this.batch;
    if (this.#tokens) {
      const ids = typeof input === 'number' ? [input] : input;
      if (!(ids instanceof Uint32Array) && !(Array.isArray(ids) && ids.every((v) => typeof v === 'number'))) {
        throw new InvalidArgumentError(`step input must be ${b} token id(s), got ${describe(input)}`);
      }
      const arr = ids instanceof Uint32Array ? ids : Uint32Array.from(ids as number[], (v, i) => intIn(`input[${i}]`, v, 0, 0xfffffffe));
      return native.guard(() => this.#model.step(this.#state, undefined, arr));
    }
    let flat: Float32Array;
    if (input instanceof Float32Array) flat = input;
    else if (Array.isArray(input) && input.every((v) => typeof v === 'number') && b === 1) flat = Float32Array.from(input as number[]);
    else if (Array.isArray(input) && input.every(Array.isArray)) flat = Float32Array.from((input as number[][]).flat());
    else throw new InvalidArgumentError(`step input must be ${b} vector(s) of ${this.#features} features, got ${describe(input)}`);
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isFinite(flat[i])) throw new InvalidArgumentError(`step input[${i}] must be a finite number, got ${flat[i]}`);
    }
    return native.guard(() => this.#model.step(this.#state, flat, undefined));
  }

  /** Starts every sequence afresh (zero state). */
  reset(): void {
    this.#state.reset();
  }

  /** An independent copy of this stream's state. */
  copy(): Stream {
    return new Stream(this.#model, this.#state.copy(), this.#tokens, this.#features);
  }

  /** The state as one array, to keep elsewhere and restore with {@link Model.restoreStream}. */
  toArray(): Float32Array {
    return this.#state.toArray();
  }
}

/**
 * A model from the bytes of a file written by {@link Model.toBuffer} / {@link Model.save}.
 * @throws {GyreError} `GYRE_BAD_FILE` naming what is wrong (not a safetensors file, missing or
 *   extra tensors by name, a shape that disagrees with the configuration, ...).
 */
export function fromBuffer(bytes: Uint8Array): Model {
  if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError(`bytes must be a Uint8Array or Buffer, got ${describe(bytes)}`);
  return Model.fromNative(native.guard(() => native.NativeModel.fromSafetensors(bytes)));
}

/** Reads a model file written by {@link Model.save}; see {@link fromBuffer}. */
export async function loadModel(path: string): Promise<Model> {
  nonEmptyString('path', path);
  const { readFile } = await import('node:fs/promises');
  return fromBuffer(await readFile(path));
}

/** Builds a sequential model from its spec (typed; unknown options are rejected). */
export function sequential(spec: ModelSpec): Model {
  return new Model(spec);
}

/** Sets the number of threads native work runs on (default: the `GYRE_NUM_THREADS` environment variable, else every CPU). */
export function setNumThreads(threads: number): void {
  intIn('threads', threads, 1, 1024);
  native.guard(() => native.setNumThreads(threads));
}

/** The number of threads native work runs on. */
export function getNumThreads(): number {
  return native.guard(() => native.getNumThreads());
}
