/**
 * Sequential models: define from typed config objects, train with `await model.fit()` off the
 * event loop, evaluate and predict.
 */
import { Dataset, type Sample } from '../data/dataset.js';
import {
  type FlatSequences,
  flattenInput,
  flattenTargets,
  lengthsFromMask,
  type SequenceInput,
  sliceSequences,
  sliceTargets,
  type TargetInput,
} from '../data/flatten.js';
import { BusyError, GyreError, InvalidArgumentError, MissingArgumentError, ShapeMismatchError } from '../errors.js';
import * as native from '../native.js';
import { bool, checkKeys, describe, intIn, nonEmptyString, numberIn, object, oneOf, positiveInt, string } from '../util/check.js';
import { about, readBytes, writeAtomically } from '../util/files.js';
import { Checkpointer } from './checkpoint.js';
import { type ClassPrediction, classScoring, type ModelSummary, rankClasses, summarize, summaryText } from './summary.js';
import type { ModelSpec } from './spec.js';
import { Stream } from './stream.js';
import {
  checkSample,
  type EpochProgressEvent,
  type EvaluateOptions,
  type Evaluation,
  type FitDatasetOptions,
  type FitHistory,
  type FitOptions,
  isSample,
  LOSSES,
  type LossName,
  type MetricsOptions,
  nativeFitOptions,
  type Prediction,
  type PredictOptions,
  type ProgressEvent,
  progressThrew,
  toEpoch,
  toEvaluation,
  toProgress,
  TrainingAbortedError,
} from './training.js';

/** `options`, which `call` cannot do without: its absence says what to give (the loss at least). */
function requiredOptions(call: string, options: unknown): unknown {
  if (options === undefined) {
    throw new MissingArgumentError(`${call} needs options with at least loss: 'crossEntropy', 'mse' or 'binaryCrossEntropy'`);
  }
  return options;
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
  /** The input value that marks padding (the spec's `maskZero` / `maskValue`). */
  readonly #mask: number | undefined;
  #streaming = false;
  /** During an epoch event's `onProgress` call of `fit`: the model as it was at that epoch's end. */
  #epochSnapshot: Model | undefined;

  /** Use {@link sequential}, {@link loadModel} or {@link fromBuffer}. */
  constructor(spec: ModelSpec);
  /** @internal Wraps an existing native model (a loaded file). */
  constructor(handle: NativeHandle);
  constructor(spec: ModelSpec | NativeHandle) {
    const handle = spec !== null && typeof spec === 'object' && FROM_NATIVE in spec;
    // The native side checks the spec, names a bad option by its path and applies the defaults.
    this.#native = handle ? spec[FROM_NATIVE] : native.guard(() => new native.NativeModel(spec));
    const { input } = this.config;
    this.#tokens = 'vocabSize' in input;
    this.#features = 'features' in input ? input.features : 0;
    this.#mask = 'maskValue' in input ? input.maskValue : 'maskZero' in input && input.maskZero ? 0 : undefined;
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
    // Inside an epoch event's onProgress during fit: the model as it was at that epoch's end.
    if (this.#epochSnapshot) return this.#epochSnapshot.toBuffer(options);
    return native.guard(() => this.#native.toSafetensors(options.includeOptimizer ?? true, user));
  }

  /**
   * Writes the model to `path` (see {@link Model.toBuffer}). The bytes go to a temporary file
   * in the same folder, flushed to disk, then renamed over `path`: an interrupted save never
   * destroys the file that was there.
   */
  async save(path: string, options: SaveOptions = {}): Promise<void> {
    nonEmptyString('path', path);
    await writeAtomically(path, this.toBuffer(options), 'write model file');
  }

  /**
   * The model's specification with every layer default written out (JSON-compatible; the
   * weight seed is not kept): `sequential(model.config)` builds the same architecture.
   */
  get config(): ModelSpec {
    return native.guard(() => this.#native.spec());
  }

  /** Values per step (or per sequence) of the model's output: the width of its last layer. */
  get outputWidth(): number {
    return this.#native.outputWidth;
  }

  /** Whether the model outputs one row per step (`[samples, steps, units]`) rather than one per sequence. */
  get outputsSequence(): boolean {
    return this.#native.outputsSequence;
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

  /** The input flattened; without `lengths`, a masked model reads them from its mask. */
  #input(x: unknown, what = 'x'): FlatSequences {
    const flat = flattenInput(x, this.#tokens, this.#features, what);
    if (this.#mask !== undefined && flat.lengths === undefined) flat.lengths = lengthsFromMask(flat, this.#mask, what);
    return flat;
  }

  /** The loss must fit the last layer (the native model checks); checked before the targets are read. */
  #checkLoss(loss: unknown): LossName {
    oneOf('loss', loss, LOSSES);
    native.guard(() => this.#native.checkLoss(loss as LossName));
    return loss as LossName;
  }

  /**
   * The options shared by `fit` and `fitDataset`, checked: the loss, `onProgress`, `signal` here,
   * every other option by the native side, which returns them with their defaults applied.
   */
  #fitOptions(
    call: string,
    options: unknown,
  ): {
    o: Record<string, unknown>;
    loss: LossName;
    signal: AbortSignal | undefined;
    nativeOptions: native.FitOptions;
    settings: native.FitSettings;
  } {
    const o = object('options', requiredOptions(call, options));
    if (o.loss === undefined) throw new MissingArgumentError("options.loss is required: 'crossEntropy', 'mse' or 'binaryCrossEntropy'");
    const loss = this.#checkLoss(o.loss);
    if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
      throw new InvalidArgumentError(`onProgress must be a function, got ${describe(o.onProgress)}`);
    }
    const signal = o.signal as AbortSignal | undefined;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidArgumentError(`signal must be an AbortSignal, got ${describe(signal)}`);
    }
    const nativeOptions = nativeFitOptions(o);
    const settings = native.guard(() => this.#native.fitSettings(nativeOptions));
    return { o, loss, signal, nativeOptions, settings };
  }

  #data(x: unknown, y: unknown, loss: LossName, what = '', sampleWeight?: unknown): native.DataArgs {
    const p = what ? `${what}.` : '';
    const flat = this.#input(x, `${p}x`);
    const t = flattenTargets(y, loss === 'crossEntropy', this.outputWidth, flat.samples, flat.steps, this.outputsSequence, `${p}y`);
    if (sampleWeight !== undefined) return { ...flat, ...t, weights: sampleWeights(sampleWeight, flat.samples, `${p}sampleWeight`) };
    // Checked here, before training: the native loop finds a bad target only when it reaches its batch.
    const bad = loss === 'binaryCrossEntropy' && t.values ? t.values.findIndex((v) => !(v >= 0 && v <= 1)) : -1;
    if (bad >= 0)
      throw new InvalidArgumentError(`${p}y must hold binaryCrossEntropy targets in [0, 1], got ${t.values![bad]} at index ${bad}`);
    return { ...flat, ...t };
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
    const { o, loss, signal, nativeOptions } = this.#fitOptions('fit(x, y, options)', options);
    let data = this.#data(x, y, loss, '', o.sampleWeight);
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
        ...(data.weights ? { weights: data.weights.subarray(from, to) } : {}),
      });
      validation = cut(keep, data.samples);
      data = cut(0, keep);
    }
    if (signal?.aborted) throw new TrainingAbortedError({ epochs: [], stoppedEarly: false }, { cause: signal.reason });
    const onProgress = o.onProgress as ((e: ProgressEvent) => void) | undefined;
    const checkpoint = o.checkpoint === undefined ? undefined : new Checkpointer(o.checkpoint, validation !== undefined);
    let epochEvents = 0;
    // A throwing onProgress must not become an uncaught exception (it would end the process):
    // it stops training like an abort, and fit rejects with it as the cause.
    let thrown: { error: unknown } | undefined;
    const stop = () => this.#native.abortTraining();
    const callback =
      onProgress || checkpoint
        ? (e: native.ProgressEvent) => {
            if (e.kind === 'epoch') epochEvents++;
            // Epoch events carry a copy of the model as it was at the epoch's end.
            const snapshot = e.snapshot ? Model.fromNative(e.snapshot) : undefined;
            try {
              if (thrown) return;
              if (snapshot && checkpoint) checkpoint.consider(toEpoch(e), snapshot, stop);
              if (!onProgress) return;
              this.#epochSnapshot = snapshot;
              try {
                onProgress(toProgress(e));
              } catch (error) {
                thrown = { error };
                stop();
              } finally {
                this.#epochSnapshot = undefined;
              }
            } finally {
              snapshot?.dispose();
            }
          }
        : undefined;
    const promise = native.guard(() => this.#native.fit(data, validation, nativeOptions, callback, callback !== undefined));
    signal?.addEventListener('abort', stop, { once: true });
    try {
      let h: native.FitHistory;
      try {
        h = await native.settle(promise);
        // Progress events travel on their own queue: let the last ones arrive before resolving.
        for (let i = 0; callback && epochEvents < h.epochs.length && i < 1000; i++) {
          await new Promise((resolve) => setImmediate(resolve));
        }
      } finally {
        // Settle only once every checkpoint is on disk (or has failed).
        await checkpoint?.idle();
      }
      checkpoint?.rethrow();
      const history: FitHistory = { epochs: h.epochs.map(toEpoch), stoppedEarly: h.stoppedEarly };
      if (thrown) {
        throw progressThrew(history, thrown.error);
      }
      if (h.aborted) throw new TrainingAbortedError(history, { cause: signal?.reason });
      return history;
    } finally {
      signal?.removeEventListener('abort', stop);
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
    // Options of fit that a stream has no use for: it is shuffled, and split, as a dataset.
    const instead = { shuffle: 'shuffle the dataset itself (dataset.shuffle())', validationSplit: 'give validationData' };
    for (const [key, hint] of Object.entries(instead)) {
      if (options !== null && typeof options === 'object' && key in options) {
        throw new InvalidArgumentError(`unknown option ${key} of fitDataset; ${hint}`);
      }
    }
    const { o, loss, signal, nativeOptions, settings } = this.#fitOptions('fitDataset(data, options)', options);
    const { epochs, batchSize } = settings;
    const source = data instanceof Dataset ? data : Dataset.from(data as Iterable<Sample>);
    let validation: Dataset<Sample> | [SequenceInput, TargetInput] | undefined;
    if (o.validationData !== undefined) {
      const v = o.validationData;
      if (Array.isArray(v) && v.length === 2 && !isSample(v[0])) validation = v as [SequenceInput, TargetInput];
      else validation = v instanceof Dataset ? v : Dataset.from(v as Iterable<Sample>);
    }
    const onProgress = o.onProgress as ((e: ProgressEvent) => void) | undefined;
    const checkpoint = o.checkpoint === undefined ? undefined : new Checkpointer(o.checkpoint, validation !== undefined);
    const es = settings.earlyStopping ?? undefined;
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
          const r = await native.settle(native.guard(() => this.#native.trainBatch(args, nativeOptions, epoch, batchNo)));
          lossSum += r.loss * r.weight;
          count += r.weight;
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
        const event: EpochProgressEvent = {
          kind: 'epoch',
          epoch,
          loss: lossSum / Math.max(count, 1),
          learningRate,
          samplesPerSecond: seen / secs,
        };
        if (loss === 'crossEntropy') event.accuracy = correct / Math.max(count, 1);
        if (validation !== undefined) {
          const v = await this.#evaluateSource(validation, loss, batchSize, o.metrics as MetricsOptions | undefined);
          event.valLoss = v.loss;
          if (v.accuracy !== undefined) event.valAccuracy = v.accuracy;
          event.validation = v;
        }
        history.epochs.push(event);
        report(event);
        // Between batches the model is free: the checkpoint is written before the next epoch.
        if (checkpoint) await checkpoint.writeNow(event, this);
        if (es) {
          const monitored = event.valLoss ?? event.loss;
          if (monitored < best.loss - es.minDelta) {
            best = { loss: monitored, epoch, weights: es.restoreBest ? this.#weights() : undefined };
          } else if (epoch - best.epoch >= es.patience) {
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
      const weighted = samples.some((s) => s.weight !== undefined);
      return this.#data(
        samples.map((s) => s.x as number[][]),
        samples.map((s) => s.y) as TargetInput,
        loss,
        '',
        weighted ? samples.map((s) => s.weight ?? 1) : undefined,
      );
    } catch (err) {
      if (err instanceof GyreError) err.message = `${where}: ${err.message}`;
      throw err;
    }
  }

  /** Loss and metrics over a dataset read batch by batch, each batch weighted by the rows it counts. */
  async #evaluateSource(
    source: Dataset<Sample> | [SequenceInput, TargetInput],
    loss: LossName,
    batchSize: number,
    metrics: MetricsOptions | undefined,
  ): Promise<Evaluation> {
    if (!(source instanceof Dataset)) return this.evaluate(source[0], source[1], { loss, batchSize, ...(metrics ? { metrics } : {}) });
    const nativeMetrics = metricsOption(metrics);
    let [sum, weight, rows, hits, topK, abs, squares] = [0, 0, 0, 0, 0, 0, 0];
    let confusion: number[] | undefined;
    let batchNo = 0;
    for await (const batch of source.batch(batchSize)) {
      batchNo++;
      const args = this.#batchArgs(
        batch.map((s, i) => checkSample(s, `validation sample ${i}`)),
        loss,
        `validation batch ${batchNo}`,
      );
      const r = await native.settle(native.guard(() => this.#native.evaluate(args, loss, batchSize, nativeMetrics)));
      // The rows the metrics count (for mse, values): those of nonzero sample weight.
      const n = r.count;
      sum += r.loss * r.weight;
      weight += r.weight;
      rows += n;
      if (r.accuracy != null) hits += Math.round(r.accuracy * n);
      if (r.topKAccuracy != null) topK += Math.round(r.topKAccuracy * n);
      if (r.mae != null) abs += r.mae * n;
      if (r.rmse != null) squares += r.rmse * r.rmse * n;
      if (r.confusion != null) {
        confusion ??= new Array<number>(r.confusion.length).fill(0);
        r.confusion.forEach((v, i) => {
          confusion![i]! += v;
        });
      }
    }
    if (rows === 0) throw new InvalidArgumentError('the validation dataset yielded no samples');
    return toEvaluation({
      loss: weight > 0 ? sum / weight : 0,
      weight,
      count: rows,
      ...(loss === 'crossEntropy' ? { accuracy: hits / rows } : {}),
      ...(nativeMetrics?.topK !== undefined ? { topKAccuracy: topK / rows } : {}),
      ...(loss === 'mse' ? { mae: abs / rows, rmse: Math.sqrt(squares / rows) } : {}),
      ...(confusion ? { confusion } : {}),
    });
  }

  #prediction(flat: FlatSequences, r: native.PredictResult): Prediction {
    const rows = flat.samples;
    const units = this.outputWidth;
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

  /**
   * A classifier's predicted classes, off the event loop: per sequence (or, for a model that
   * outputs sequences, per real step of each sequence) the most probable class, its probability,
   * and the `topK` (default 1) most probable classes with theirs, most probable first. The last
   * layer must be a dense layer with softmax (its outputs are the probabilities), linear (its
   * outputs are logits, softmaxed here) or one sigmoid unit (P(class 1); classes 0 and 1).
   * @throws {InvalidArgumentError} for a model whose last layer is not such, or a bad `topK`.
   */
  async predictClasses(
    x: SequenceInput,
    options: PredictOptions & { topK?: number } = {},
  ): Promise<ClassPrediction[] | ClassPrediction[][]> {
    const { flat, scoring, topK, batchSize } = this.#classArgs(x, options);
    const r = await native.settle(native.guard(() => this.#native.predict(flat, batchSize)));
    return this.#classes(flat, this.#prediction(flat, r), scoring, topK);
  }

  /** {@link Model.predictClasses} on the calling thread. */
  predictClassesSync(x: SequenceInput, options: PredictOptions & { topK?: number } = {}): ClassPrediction[] | ClassPrediction[][] {
    const { flat, scoring, topK, batchSize } = this.#classArgs(x, options);
    const r = native.guard(() => this.#native.predictSync(flat, batchSize));
    return this.#classes(flat, this.#prediction(flat, r), scoring, topK);
  }

  #classArgs(x: SequenceInput, options: unknown) {
    const o = object('options', options);
    checkKeys('', o, ['batchSize', 'topK']);
    const scoring = classScoring(this.config);
    const topK = o.topK === undefined ? 1 : positiveInt('topK', o.topK);
    const batchSize = positiveInt('batchSize', o.batchSize ?? 64);
    return { flat: this.#input(x), scoring, topK, batchSize };
  }

  #classes(
    flat: FlatSequences,
    p: Prediction,
    scoring: 'probabilities' | 'logits' | 'binary',
    topK: number,
  ): ClassPrediction[] | ClassPrediction[][] {
    const width = this.outputWidth;
    const row = (r: number) => rankClasses(p.data.subarray(r * width, (r + 1) * width), width, scoring, topK);
    if (!this.outputsSequence) return Array.from({ length: flat.samples }, (_, s) => row(s));
    return Array.from({ length: flat.samples }, (_, s) =>
      Array.from({ length: flat.lengths ? flat.lengths[s]! : flat.steps }, (_, t) => row(s * flat.steps + t)),
    );
  }

  /**
   * Layer by layer: the output shape, the parameter count and whether training updates them,
   * with the totals; as JSON (default) or, with `{ format: 'text' }`, as an aligned table.
   */
  summary(): ModelSummary;
  summary(options: { format: 'json' }): ModelSummary;
  summary(options: { format: 'text' }): string;
  summary(options: { format?: 'json' | 'text' } = {}): ModelSummary | string {
    const o = object('options', options);
    checkKeys('', o, ['format']);
    const format = o.format === undefined ? 'json' : oneOf('format', o.format, ['json', 'text'] as const);
    const lengths = Object.fromEntries(Object.entries(this.parameters()).map(([k, v]) => [k, v.data.length]));
    const s = summarize(this.config, lengths);
    return format === 'text' ? summaryText(s) : s;
  }

  /**
   * Loss and metrics over a dataset, off the event loop: the mean loss, the accuracy
   * (crossEntropy), the mean absolute error and RMSE (mse), and with `metrics` the top-k
   * accuracy and the confusion matrix with precision, recall and F1 per class and their macro
   * means (crossEntropy).
   */
  async evaluate(x: SequenceInput, y: TargetInput, options: EvaluateOptions): Promise<Evaluation> {
    const { data, loss, batchSize, metrics } = this.#evaluateArgs('evaluate(x, y, options)', x, y, options);
    return toEvaluation(await native.settle(native.guard(() => this.#native.evaluate(data, loss, batchSize, metrics))));
  }

  /** Loss and metrics over a dataset, on the calling thread; see {@link Model.evaluate}. */
  evaluateSync(x: SequenceInput, y: TargetInput, options: EvaluateOptions): Evaluation {
    const { data, loss, batchSize, metrics } = this.#evaluateArgs('evaluateSync(x, y, options)', x, y, options);
    return toEvaluation(native.guard(() => this.#native.evaluateSync(data, loss, batchSize, metrics)));
  }

  #evaluateArgs(
    call: string,
    x: SequenceInput,
    y: TargetInput,
    options: EvaluateOptions,
  ): { data: native.DataArgs; loss: LossName; batchSize: number; metrics: native.MetricsOptions | undefined } {
    const o = object('options', requiredOptions(call, options));
    checkKeys('', o, ['batchSize', 'loss', 'metrics', 'sampleWeight']);
    const loss = this.#checkLoss(o.loss);
    const data = this.#data(x, y, loss, '', o.sampleWeight);
    const batchSize = positiveInt('batchSize', o.batchSize ?? 64);
    return { data, loss, batchSize, metrics: metricsOption(o.metrics) };
  }
}

/** `sampleWeight`: one finite non-negative number per sample, as float32. */
function sampleWeights(v: unknown, samples: number, what: string): Float32Array {
  if (!Array.isArray(v) && !(v instanceof Float32Array) && !(v instanceof Float64Array)) {
    throw new InvalidArgumentError(`${what} must be an array of numbers (one per sample), got ${describe(v)}`);
  }
  const w = v as ArrayLike<unknown>;
  if (w.length !== samples) throw new ShapeMismatchError(`${what} must have one weight per sample (${samples}), got ${w.length}`);
  const out = new Float32Array(samples);
  for (let i = 0; i < samples; i++) {
    const x = w[i];
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) {
      throw new InvalidArgumentError(`${what}[${i}] must be a finite non-negative number, got ${describe(x)}`);
    }
    out[i] = x;
  }
  return out;
}

/** The `metrics` option, checked (the native side checks that it fits the loss). */
function metricsOption(v: unknown): native.MetricsOptions | undefined {
  if (v === undefined) return undefined;
  const m = object('metrics', v);
  checkKeys('metrics.', m, ['topK', 'confusion']);
  const out: native.MetricsOptions = {};
  if (m.topK !== undefined) out.topK = positiveInt('metrics.topK', m.topK);
  if (m.confusion !== undefined) out.confusion = bool('metrics.confusion', m.confusion);
  return out;
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
  const bytes = await readBytes(path, 'read model file');
  return about(path, () => fromBuffer(bytes));
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

/**
 * Which build runs gyre's kernels: `'native'`, the platform's addon (`gyre-linux-x64-gnu`, ...),
 * or `'wasm'`, the WebAssembly package `gyre-wasm32-wasi` (the same Rust code, slower), which
 * loads where no addon fits the platform, or everywhere when the environment variable
 * `GYRE_WASM=1` asks for it (for tests and comparisons).
 */
export function backend(): 'native' | 'wasm' {
  return native.backend;
}

/**
 * The SIMD level gyre's f32 kernels run at: `'avx512'`, `'avx2'` (AVX2 with FMA), `'neon'`
 * (every arm64 CPU), `'simd128'` (the WebAssembly build) or `'scalar'` (portable code compiled
 * for the platform's baseline: the level of x86 CPUs without AVX2 and of other architectures).
 * It is the CPU's best, capped by the `GYRE_SIMD` environment variable (`scalar`, `avx2` or
 * `avx512`; on arm64 and in WebAssembly only `scalar` lowers it) read when native code first
 * needs it. Levels may round differently (the x86 and arm64 SIMD products use fused
 * multiply-adds; the portable code and `simd128` do not, and give the same bits).
 */
export function simdLevel(): 'avx512' | 'avx2' | 'neon' | 'simd128' | 'scalar' {
  return native.guard(() => native.simdLevel());
}
