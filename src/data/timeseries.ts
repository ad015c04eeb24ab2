/**
 * Time series: validated series input, sliding windows, per-feature normalization whose
 * statistics travel with the model, and a {@link Forecaster} that trains a recurrent model on a
 * series and forecasts one or many steps ahead (directly, or recursively beyond its horizon).
 */
import { about, readBytes } from '../util/files.js';
import { checkKeys, describe, finite, intIn, nonEmptyString, numberIn, object, oneOf } from '../util/check.js';
import { InvalidArgumentError, MissingArgumentError, ShapeMismatchError } from '../errors.js';
import { fromBuffer, sequential, type FitHistory, type FitOptions, type Model } from '../model/index.js';

/** A series as one flat, row-major array: `[time, features]`. */
export interface SeriesTensor {
  /** `time × features` values, time-major (step 0's features, then step 1's, ...). */
  data: Float32Array | Float64Array;
  /** `[time, features]`. */
  shape: readonly [number, number] | readonly number[];
}

/**
 * A time series: `number[]` (one feature, `[time]`), `number[][]` (`[time][feature]`), or a
 * {@link SeriesTensor} `{ data, shape: [time, features] }`.
 */
export type SeriesInput = ArrayLike<number> | number[] | number[][] | SeriesTensor;

/** A validated series: `data` holds `shape[0] × shape[1]` finite values, time-major. */
export interface Series {
  data: Float32Array;
  /** `[time, features]`. */
  shape: [number, number];
}

// ---------------------------------------------------------------------------------------------
// Series input
// ---------------------------------------------------------------------------------------------

/**
 * Validates a series and returns it as a `Float32Array` with its shape `[time, features]`.
 *
 * Takes `number[]` or a bare Float32Array/Float64Array (one feature: shape `[time, 1]`), `number[][]` (`[time][feature]`, every
 * row the same length) or `{ data: Float32Array | Float64Array, shape: [time, features] }`.
 * `what` names the argument in error messages.
 * @throws {InvalidArgumentError} for an empty series or a value that is not a finite number,
 *   naming its step and feature: `series[12][1] must be a finite number, got NaN`.
 * @throws {ShapeMismatchError} for ragged rows (`series[5] has 2 features, expected 3`) or a
 *   `data` length that disagrees with `shape`.
 */
export function toSeries(x: SeriesInput, what = 'series'): Series {
  if (x === undefined || x === null) throw new MissingArgumentError(`${what} is required`);
  if (Array.isArray(x)) return fromArray(x, what);
  if (typeof x === 'object' && 'data' in x && 'shape' in x && !ArrayBuffer.isView(x)) return fromTensor(x as SeriesTensor, what);
  if (x instanceof Float32Array || x instanceof Float64Array) return fromArray(Array.from(x), what);
  throw new InvalidArgumentError(
    `${what} must be number[] (one feature), number[][] ([time][feature]) or { data, shape: [time, features] }, got ${describe(x)}`,
  );
}

function badValue(what: string, t: number, f: number, v: unknown): never {
  throw new InvalidArgumentError(`${what}[${t}][${f}] must be a finite number, got ${describe(v)}`);
}

function fromArray(x: unknown[], what: string): Series {
  const time = x.length;
  if (time === 0) throw new InvalidArgumentError(`${what} must have at least one time step, got an empty array`);
  if (!Array.isArray(x[0])) {
    // One feature: every entry must be a number.
    const data = new Float32Array(time);
    for (let t = 0; t < time; t++) {
      const v = x[t];
      if (Array.isArray(v)) {
        throw new ShapeMismatchError(
          `${what}[${t}] is an array but ${what}[0] is not: give every step as a number or every step as an array of features`,
        );
      }
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new InvalidArgumentError(`${what}[${t}] must be a finite number, got ${describe(v)}`);
      data[t] = v;
    }
    return { data, shape: [time, 1] };
  }
  const features = (x[0] as unknown[]).length;
  if (features === 0) throw new InvalidArgumentError(`${what}[0] must have at least one feature, got an empty array`);
  const data = new Float32Array(time * features);
  for (let t = 0; t < time; t++) {
    const row = x[t];
    if (!Array.isArray(row)) throw new ShapeMismatchError(`${what}[${t}] must be an array of ${features} features, got ${describe(row)}`);
    if (row.length !== features) throw new ShapeMismatchError(`${what}[${t}] has ${row.length} features, expected ${features}`);
    for (let f = 0; f < features; f++) {
      const v: unknown = row[f];
      if (typeof v !== 'number' || !Number.isFinite(v)) badValue(what, t, f, v);
      data[t * features + f] = v;
    }
  }
  return { data, shape: [time, features] };
}

function fromTensor(x: SeriesTensor, what: string): Series {
  const shape = Array.isArray(x.shape) || ArrayBuffer.isView(x.shape) ? Array.from(x.shape as ArrayLike<number>) : null;
  if (shape?.length !== 2 || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeMismatchError(
      `${what}.shape must be [time, features] of non-negative integers, got ${shape ? `[${shape.join(', ')}]` : describe(x.shape)}`,
    );
  }
  const [time, features] = shape as [number, number];
  if (time === 0) throw new InvalidArgumentError(`${what} must have at least one time step, got shape [${time}, ${features}]`);
  if (features === 0) throw new InvalidArgumentError(`${what} must have at least one feature, got shape [${time}, ${features}]`);
  if (!(x.data instanceof Float32Array || x.data instanceof Float64Array)) {
    throw new InvalidArgumentError(`${what}.data must be a Float32Array or Float64Array, got ${describe(x.data)}`);
  }
  if (x.data.length !== time * features) {
    throw new ShapeMismatchError(`${what}.data must hold ${time * features} values for shape [${time}, ${features}], got ${x.data.length}`);
  }
  for (let i = 0; i < x.data.length; i++) {
    if (!Number.isFinite(x.data[i])) badValue(what, Math.floor(i / features), i % features, x.data[i]);
  }
  const data = x.data instanceof Float32Array ? x.data.slice() : Float32Array.from(x.data);
  return { data, shape: [time, features] };
}

// ---------------------------------------------------------------------------------------------
// Sliding windows
// ---------------------------------------------------------------------------------------------

/** Options of {@link windows}. */
export interface WindowOptions {
  /** Steps each window reads (`T` of the model input). */
  inputLength: number;
  /** Steps after each window to predict. Default 1. */
  horizon?: number;
  /** Steps between the starts of consecutive windows. Default 1. */
  stride?: number;
  /** Indices of the features to predict, in the order they appear in `y`. Default all features. */
  targets?: number[];
}

/** Model inputs and targets cut from a series by {@link windows}. */
export interface Windows {
  /** Inputs `[n, inputLength, features]`. */
  x: { data: Float32Array; shape: [number, number, number] };
  /** Targets `[n, horizon × targets.length]`, step-major: horizon step 0's targets, then step 1's, ... */
  y: { data: Float32Array; shape: [number, number] };
}

function checkTargets(what: string, v: unknown, features: number): number[] {
  if (v === undefined) return Array.from({ length: features }, (_, i) => i);
  if (!Array.isArray(v) || v.length === 0)
    throw new InvalidArgumentError(`${what} must be a non-empty array of feature indices, got ${describe(v)}`);
  const seen = new Set<number>();
  v.forEach((f, i) => {
    intIn(`${what}[${i}]`, f, 0, features - 1);
    if (seen.has(f as number)) throw new InvalidArgumentError(`${what} lists feature ${f} twice`);
    seen.add(f as number);
  });
  return [...(v as number[])];
}

/** Differencing lags: a positive integer or a list of them (absent: none). */
function checkLags(what: string, v: unknown): number[] {
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((lag, i) => intIn(Array.isArray(v) ? `${what}[${i}]` : what, lag, 1, 100000));
}

/** The validated window geometry. */
function windowPlan(series: Series, options: WindowOptions, what: string) {
  const o = object('options', options);
  checkKeys('', o, ['inputLength', 'horizon', 'stride', 'targets']);
  if (o.inputLength === undefined) throw new MissingArgumentError('inputLength is required: the number of steps each window reads');
  const inputLength = intIn('inputLength', o.inputLength, 1);
  const horizon = intIn('horizon', o.horizon ?? 1, 1);
  const stride = intIn('stride', o.stride ?? 1, 1);
  const [time, features] = series.shape;
  const targets = checkTargets('targets', o.targets, features);
  const need = inputLength + horizon;
  if (time < need) {
    throw new InvalidArgumentError(
      `${what} is too short for one window: it needs at least ${need} steps (inputLength ${inputLength} + horizon ${horizon}), got ${time}`,
    );
  }
  const n = Math.floor((time - need) / stride) + 1;
  return { inputLength, horizon, stride, targets, time, features, n };
}

/**
 * Cuts a series into overlapping training windows.
 *
 * Window `i` reads steps `i·stride .. i·stride + inputLength - 1` (all features); its targets
 * are the `horizon` steps right after it, for the `targets` features only, step-major.
 * @param series `[time, features]` in any {@link SeriesInput} form.
 * @returns `x` shaped `[n, inputLength, features]` and `y` shaped `[n, horizon × targets.length]`,
 *   with `n = floor((time - inputLength - horizon) / stride) + 1`.
 * @throws {InvalidArgumentError} when the series is shorter than `inputLength + horizon`
 *   (saying both lengths), or for an option outside its domain (naming it and its value).
 */
export function windows(series: SeriesInput, options: WindowOptions): Windows {
  const s = toSeries(series);
  const p = windowPlan(s, options, 'series');
  const { inputLength, horizon, stride, targets, features, n } = p;
  const x = new Float32Array(n * inputLength * features);
  const width = horizon * targets.length;
  const y = new Float32Array(n * width);
  for (let i = 0; i < n; i++) {
    const start = i * stride;
    x.set(s.data.subarray(start * features, (start + inputLength) * features), i * inputLength * features);
    for (let h = 0; h < horizon; h++) {
      const row = (start + inputLength + h) * features;
      for (let j = 0; j < targets.length; j++) y[i * width + h * targets.length + j] = s.data[row + targets[j]!]!;
    }
  }
  return { x: { data: x, shape: [n, inputLength, features] }, y: { data: y, shape: [n, width] } };
}

// ---------------------------------------------------------------------------------------------
// Normalization
// ---------------------------------------------------------------------------------------------

/**
 * How a {@link Normalizer} scales each feature: `'zscore'` (subtract the mean, divide by the
 * population standard deviation), `'minmax'` (map min..max to 0..1) or `'none'` (identity).
 */
export type NormalizeMethod = 'zscore' | 'minmax' | 'none';

/** A {@link Normalizer} as JSON: `normalized = (value - offset[f]) / scale[f]` per feature `f`. */
export interface NormalizerJSON {
  type: 'normalizer';
  version: 1;
  method: NormalizeMethod;
  /** Per feature: the mean (`zscore`), the minimum (`minmax`) or 0 (`none`). */
  offset: number[];
  /** Per feature, positive: the standard deviation (`zscore`), max - min (`minmax`) or 1; 1 for a constant feature. */
  scale: number[];
}

const METHODS: readonly NormalizeMethod[] = ['zscore', 'minmax', 'none'];

/**
 * Per-feature normalization: `normalized = (value - offset) / scale`. Fit it on training data
 * with {@link Normalizer.fit}, keep it with the model as {@link Normalizer.toJSON} (a
 * {@link Forecaster} does this for you), and map predictions back with {@link Normalizer.inverse}.
 */
export class Normalizer {
  /** The method the statistics were computed with. */
  readonly method: NormalizeMethod;
  /** Number of features `F` the series it takes must have. */
  readonly features: number;
  readonly #offset: Float64Array;
  readonly #scale: Float64Array;

  private constructor(method: NormalizeMethod, offset: ArrayLike<number>, scale: ArrayLike<number>) {
    this.method = method;
    this.features = offset.length;
    this.#offset = Float64Array.from(offset);
    this.#scale = Float64Array.from(scale);
  }

  /**
   * Computes per-feature statistics of a series `[time, features]`. A constant feature gets
   * scale 1 (it is only shifted), so nothing is divided by 0.
   * @param options.method default `'zscore'`.
   */
  static fit(series: SeriesInput, options: { method?: NormalizeMethod } = {}): Normalizer {
    checkKeys('', object('options', options), ['method']);
    const method = oneOf('method', options.method ?? 'zscore', METHODS);
    const s = toSeries(series);
    const [time, features] = s.shape;
    const offset = new Float64Array(features);
    const scale = new Float64Array(features).fill(1);
    if (method === 'none') return new Normalizer(method, offset, scale);
    for (let f = 0; f < features; f++) {
      let min = Infinity;
      let max = -Infinity;
      let sum = 0;
      for (let t = 0; t < time; t++) {
        const v = s.data[t * features + f]!;
        if (v < min) min = v;
        if (v > max) max = v;
        sum += v;
      }
      if (method === 'minmax') {
        offset[f] = min;
        scale[f] = max > min ? max - min : 1;
      } else {
        const mean = sum / time;
        let sq = 0;
        for (let t = 0; t < time; t++) {
          const d = s.data[t * features + f]! - mean;
          sq += d * d;
        }
        const std = Math.sqrt(sq / time);
        offset[f] = mean;
        scale[f] = max > min && std > 0 && Number.isFinite(std) ? std : 1;
      }
    }
    return new Normalizer(method, offset, scale);
  }

  /**
   * Reads {@link Normalizer.toJSON}'s output back (also after `JSON.parse`).
   * @throws {InvalidArgumentError} unless `json` is `{ type: 'normalizer', version: 1, method,
   *   offset, scale }` with equally long, non-empty arrays of finite numbers and positive scales.
   */
  static fromJSON(json: unknown): Normalizer {
    const o = object('normalizer JSON', json);
    if (o.type !== 'normalizer') throw new InvalidArgumentError(`normalizer JSON must have type 'normalizer', got ${describe(o.type)}`);
    if (o.version !== 1) throw new InvalidArgumentError(`normalizer JSON version must be 1, got ${describe(o.version)}`);
    const method = oneOf('normalizer JSON method', o.method, METHODS);
    const numbers = (key: 'offset' | 'scale'): number[] => {
      const a = o[key];
      if (!Array.isArray(a) || a.length === 0)
        throw new InvalidArgumentError(`normalizer JSON ${key} must be a non-empty array of numbers, got ${describe(a)}`);
      return a.map((v, i) => finite(`normalizer JSON ${key}[${i}]`, v));
    };
    const offset = numbers('offset');
    const scale = numbers('scale');
    if (offset.length !== scale.length) {
      throw new InvalidArgumentError(`normalizer JSON offset and scale must have equal lengths, got ${offset.length} and ${scale.length}`);
    }
    scale.forEach((v, i) => {
      if (!(v > 0)) throw new InvalidArgumentError(`normalizer JSON scale[${i}] must be positive, got ${v}`);
    });
    return new Normalizer(method, offset, scale);
  }

  /** The statistics as JSON-compatible data; {@link Normalizer.fromJSON} reads it back. */
  toJSON(): NormalizerJSON {
    return { type: 'normalizer', version: 1, method: this.method, offset: Array.from(this.#offset), scale: Array.from(this.#scale) };
  }

  /** Per-feature offsets (a copy). */
  get offset(): number[] {
    return Array.from(this.#offset);
  }

  /** Per-feature scales (a copy). */
  get scale(): number[] {
    return Array.from(this.#scale);
  }

  #series(series: SeriesInput, what: string): Series {
    const s = toSeries(series, what);
    if (s.shape[1] !== this.features) {
      throw new ShapeMismatchError(`${what} has ${s.shape[1]} feature(s) per step, but the normalizer was fitted on ${this.features}`);
    }
    return s;
  }

  /**
   * Normalizes a series `[time, features]`: `(value - offset[f]) / scale[f]`.
   * @returns a new `{ data, shape: [time, features] }`.
   * @throws {ShapeMismatchError} when the series has another number of features.
   */
  transform(series: SeriesInput): Series {
    const s = this.#series(series, 'series');
    const f = this.features;
    const out = new Float32Array(s.data.length);
    for (let i = 0; i < out.length; i++) out[i] = (s.data[i]! - this.#offset[i % f]!) / this.#scale[i % f]!;
    return { data: out, shape: s.shape };
  }

  /**
   * Maps a normalized series `[time, features]` back to original units: `value · scale[f] + offset[f]`.
   * @returns a new `{ data, shape: [time, features] }`.
   * @throws {ShapeMismatchError} when the series has another number of features.
   */
  inverse(series: SeriesInput): Series {
    const s = this.#series(series, 'series');
    const f = this.features;
    const out = new Float32Array(s.data.length);
    for (let i = 0; i < out.length; i++) out[i] = s.data[i]! * this.#scale[i % f]! + this.#offset[i % f]!;
    return { data: out, shape: s.shape };
  }

  #feature(feature: number): number {
    return intIn('feature', feature, 0, this.features - 1);
  }

  /** Normalizes one value of feature `feature` (0-based). */
  transformValue(v: number, feature: number): number {
    const f = this.#feature(feature);
    return (finite('value', v) - this.#offset[f]!) / this.#scale[f]!;
  }

  /** Maps one normalized value of feature `feature` (0-based) back to original units. */
  inverseValue(v: number, feature: number): number {
    const f = this.#feature(feature);
    return finite('value', v) * this.#scale[f]! + this.#offset[f]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Differencing
// ---------------------------------------------------------------------------------------------

/**
 * @internal The coefficients of the differencing operator `Π (1 − B^lag)` over `lags` (`B` the
 * backshift): `d_t = Σ_j c[j]·v_{t−j}`, `c[0] = 1`, `c.length − 1` the steps it consumes.
 * `[1]` is the first difference, `[24]` a seasonal one, `[1, 24]` both.
 */
export function differenceCoefficients(lags: readonly number[]): number[] {
  let c = [1];
  for (const lag of lags) {
    const next = new Array<number>(c.length + lag).fill(0);
    c.forEach((v, j) => {
      next[j]! += v;
      next[j + lag]! -= v;
    });
    c = next;
  }
  return c;
}

/** @internal `[time, f]` → `[time − D, f]`: row `r` is `d` at step `r + D` (`D = c.length − 1`). */
export function differenced(s: Series, c: readonly number[]): Series {
  const [time, f] = s.shape;
  const D = c.length - 1;
  const out = new Float32Array(Math.max(0, time - D) * f);
  for (let t = D; t < time; t++) {
    for (let k = 0; k < f; k++) {
      let d = 0;
      for (let j = 0; j <= D; j++) if (c[j] !== 0) d += c[j]! * s.data[(t - j) * f + k]!;
      out[(t - D) * f + k] = d;
    }
  }
  return { data: out, shape: [time - D, f] };
}

/** @internal `v_t = d_t − Σ_{j≥1} c[j]·v_{t−j}`: a value from its difference and the values before it (`past(j)` = `v_{t−j}`). */
export function undifference(d: number, c: readonly number[], past: (j: number) => number): number {
  let v = d;
  for (let j = 1; j < c.length; j++) if (c[j] !== 0) v -= c[j]! * past(j);
  return v;
}

/**
 * @internal The season of a series' feature `feature`, if it has a clear one: among the peaks
 * of the autocorrelation of its first differences over lags `2..time/3` (at most 1000), after
 * the first lag where it turns negative, the shortest within 10% of the highest, when that
 * reaches 0.2 (then it or a neighbour, whichever has the smallest mean |v_t − v_{t−lag}|);
 * else undefined.
 */
export function detectPeriod(s: Series, feature: number): number | undefined {
  const [time, f] = s.shape;
  const x: number[] = [];
  for (let t = 1; t < time; t++) x.push(s.data[t * f + feature]! - s.data[(t - 1) * f + feature]!);
  const n = x.length;
  const mean = x.reduce((a, b) => a + b, 0) / Math.max(n, 1);
  const dev = x.map((v) => v - mean);
  const var0 = dev.reduce((a, v) => a + v * v, 0);
  if (!(var0 > 0)) return undefined;
  const r: number[] = [];
  const top = Math.min(Math.floor(n / 3), 1000);
  for (let lag = 2; lag <= top; lag++) {
    let acc = 0;
    for (let t = 0; t + lag < n; t++) acc += dev[t]! * dev[t + lag]!;
    r.push(acc / var0);
  }
  // Past the first dip below zero (a smooth series correlates with itself over short lags),
  // the peaks: a season's multiples correlate about as well as the season itself, so the
  // shortest peak within 10% of the highest.
  const dip = r.findIndex((v) => v < 0);
  if (dip < 0) return undefined;
  const peaks: number[] = [];
  for (let i = dip + 1; i + 1 < r.length; i++) if (r[i]! >= r[i - 1]! && r[i]! >= r[i + 1]!) peaks.push(i);
  const max = Math.max(-Infinity, ...peaks.map((i) => r[i]!));
  if (!(max >= 0.2)) return undefined;
  const peak = 2 + peaks.find((i) => r[i]! >= 0.9 * max)!;
  // Noise moves a peak by a step: of it and its neighbours, the lag whose seasonal difference
  // v_t − v_{t−lag} is smallest on average.
  const spread = (lag: number) => {
    let acc = 0;
    for (let t = lag; t < time; t++) acc += Math.abs(s.data[t * f + feature]! - s.data[(t - lag) * f + feature]!);
    return acc / (time - lag);
  };
  return [peak - 1, peak, peak + 1].filter((lag) => lag >= 2).reduce((a, b) => (spread(b) < spread(a) ? b : a));
}

// ---------------------------------------------------------------------------------------------
// Forecasting
// ---------------------------------------------------------------------------------------------

/** Options of {@link Forecaster.train}. */
export interface ForecasterTrainOptions {
  /** Past steps the model reads for each forecast. */
  inputLength: number;
  /** Steps the model predicts at once. Default 1. */
  horizon?: number;
  /** Steps between the starts of consecutive training windows. Default 1. */
  stride?: number;
  /** Indices of the features to forecast. Default all (needed for recursive forecasts beyond `horizon`). */
  targets?: number[];
  /** Normalization fitted on the training series. Default `'zscore'`. */
  normalize?: NormalizeMethod;
  /**
   * Difference the series before normalizing, at these lags: `[1]` models the changes from one
   * step to the next (a series with a trend leaves the range it was fitted on; its changes do
   * not), `[24]` the changes from one season to the next (seasonal differencing), `[1, 24]` both.
   * Forecasts add the differences back onto the history. Default none.
   */
  difference?: number | number[];
  /**
   * The season length, for the seasonal-naive baseline {@link Forecaster.evaluate} reports.
   * Default: detected from the autocorrelation of the training series' first differences.
   */
  period?: number;
  /** The recurrent cell. Default `'lstm'`. */
  cell?: 'lstm' | 'gru' | 'rnn';
  /** Hidden size of the recurrent layer. Default 32. */
  hiddenSize?: number;
  /** Stacked recurrent layers. Default 1. */
  numLayers?: number;
  /** Passes over the windows. Default 20. */
  epochs?: number;
  /** Windows per batch. Default 32. */
  batchSize?: number;
  /** Adam's learning rate. Default 0.01. */
  learningRate?: number;
  /** Seed of the weight initialisation and of shuffling. Default 0. */
  seed?: number;
  /** Fraction of the windows, the latest ones, held out to report a validation loss. */
  validationSplit?: number;
  /** Called after every batch and epoch (see {@link FitOptions.onProgress}). */
  onProgress?: FitOptions['onProgress'];
  /** Stops training; `train` then rejects with a `TrainingAbortedError`. */
  signal?: AbortSignal;
}

const TRAIN_KEYS = [
  'inputLength',
  'horizon',
  'stride',
  'targets',
  'normalize',
  'difference',
  'period',
  'cell',
  'hiddenSize',
  'numLayers',
  'epochs',
  'batchSize',
  'learningRate',
  'seed',
  'validationSplit',
  'onProgress',
  'signal',
];

/** What {@link Forecaster.evaluate} returns: errors in the series' original units. */
export interface ForecastEvaluation {
  /** Mean squared error of the model's direct forecasts over every window, horizon step and target. */
  mse: number;
  /** Mean absolute error of the same forecasts. */
  mae: number;
  /** Mean squared error of the naive forecast: every target repeats its last observed value. */
  naiveMse: number;
  /** Mean absolute error of the naive forecast, the baseline to beat. */
  naiveMae: number;
  /** The season length of the seasonal-naive baseline (given to `train` or detected), when there is one. */
  period?: number;
  /** Mean squared error of the seasonal-naive forecast: every target repeats its value one season before (the last season observed). */
  seasonalNaiveMse?: number;
  /** Mean absolute error of the seasonal-naive forecast. */
  seasonalNaiveMae?: number;
  /** Number of windows evaluated (stride 1). */
  windows: number;
}

/** The `gyre` entry of a forecasting model's metadata. */
export interface ForecastMetadata {
  task: 'forecast';
  normalizer: NormalizerJSON;
  inputLength: number;
  horizon: number;
  targets: number[];
  features: number;
  /** The differencing lags (absent: none). */
  difference?: number[];
  /** The season of the seasonal-naive baseline (absent: none). */
  period?: number;
}

/**
 * A recurrent model that forecasts a time series, with the normalization and window geometry it
 * was trained with. Train one with {@link Forecaster.train}; load one with
 * {@link Forecaster.load} or {@link Forecaster.fromModel}.
 *
 * The model reads `[samples, inputLength, features]` normalized windows and outputs
 * `[samples, horizon × targets.length]`, step-major.
 */
export class Forecaster {
  /** The underlying model (recurrent layer, then a dense layer of `horizon × targets.length` units). */
  readonly model: Model;
  /** The normalization fitted on the training series. */
  readonly normalizer: Normalizer;
  /** Past steps each forecast reads. */
  readonly inputLength: number;
  /** Steps the model predicts at once. */
  readonly horizon: number;
  /** Indices of the forecast features, in output order. */
  readonly targets: number[];
  /** Features per step of the series. */
  readonly features: number;
  /** The differencing lags (empty: none); the model reads and predicts the differenced, normalized series. */
  readonly difference: number[];
  /** The season length of the seasonal-naive baseline, when there is one. */
  readonly period: number | undefined;
  /** The training history; null for a forecaster that was loaded. */
  readonly history: FitHistory | null;
  /** {@link differenceCoefficients} of `difference`. */
  readonly #c: number[];

  /** Use {@link Forecaster.train}, {@link Forecaster.load} or {@link Forecaster.fromModel}. */
  private constructor(parts: {
    model: Model;
    normalizer: Normalizer;
    inputLength: number;
    horizon: number;
    targets: number[];
    features: number;
    difference: number[];
    period: number | undefined;
    history: FitHistory | null;
  }) {
    this.model = parts.model;
    this.normalizer = parts.normalizer;
    this.inputLength = parts.inputLength;
    this.horizon = parts.horizon;
    this.targets = parts.targets;
    this.features = parts.features;
    this.difference = parts.difference;
    this.period = parts.period;
    this.history = parts.history;
    this.#c = differenceCoefficients(parts.difference);
  }

  /** Steps of history the differencing consumes before the first differenced value. */
  get #lag(): number {
    return this.#c.length - 1;
  }

  /**
   * Trains a forecaster on a series `[time, features]`: fits a {@link Normalizer} on it,
   * normalizes it, cuts it into {@link windows} and trains
   * `sequential({ input: { features }, layers: [{ type: cell, hiddenSize, numLayers, returnSequences: false }, { type: 'dense', units: horizon × targets.length }] })`
   * with MSE and Adam, off the event loop.
   * @throws {InvalidArgumentError} for a series too short for one window or a bad option;
   *   whatever {@link Model.fit} throws (e.g. `TrainingAbortedError`).
   */
  static async train(series: SeriesInput, options: ForecasterTrainOptions): Promise<Forecaster> {
    const o = object('options', options);
    checkKeys('', o, TRAIN_KEYS);
    const s = toSeries(series);
    const features = s.shape[1];
    const normalize = oneOf('normalize', o.normalize ?? 'zscore', METHODS);
    const cell = oneOf('cell', o.cell ?? 'lstm', ['lstm', 'gru', 'rnn'] as const);
    const hiddenSize = intIn('hiddenSize', o.hiddenSize ?? 32, 1);
    const numLayers = intIn('numLayers', o.numLayers ?? 1, 1);
    const epochs = intIn('epochs', o.epochs ?? 20, 1);
    const batchSize = intIn('batchSize', o.batchSize ?? 32, 1);
    const learningRate = numberIn('learningRate', o.learningRate ?? 0.01, 0, Number.POSITIVE_INFINITY, '()');
    const seed = intIn('seed', o.seed ?? 0, 0, 0xffffffff);
    const geometry: WindowOptions = { inputLength: o.inputLength as number };
    for (const key of ['horizon', 'stride', 'targets'] as const) if (o[key] !== undefined) geometry[key] = o[key] as never;
    const difference = checkLags('difference', o.difference);
    const c = differenceCoefficients(difference);
    const D = c.length - 1;
    const inputLength = intIn('inputLength', o.inputLength, 1);
    if (D > 0 && s.shape[0] <= D + inputLength) {
      throw new InvalidArgumentError(
        `series is too short: differencing at lags [${difference.join(', ')}] uses its first ${D} steps, leaving ${Math.max(0, s.shape[0] - D)} for windows of inputLength ${inputLength} and the horizon`,
      );
    }
    const ds = D > 0 ? differenced(s, c) : s;
    const plan = windowPlan(ds, geometry, D > 0 ? 'the differenced series' : 'series');
    const period = o.period === undefined ? detectPeriod(s, plan.targets[0]!) : intIn('period', o.period, 2);
    const normalizer = Normalizer.fit(ds, { method: normalize });
    const w = windows(normalizer.transform(ds), geometry);
    const model = sequential({
      input: { features },
      layers: [
        { type: cell, hiddenSize, numLayers, returnSequences: false },
        { type: 'dense', units: plan.horizon * plan.targets.length },
      ],
      seed,
    });
    const fit: FitOptions = { loss: 'mse', epochs, batchSize, seed, optimizer: { type: 'adam', learningRate } };
    if (o.validationSplit !== undefined) fit.validationSplit = o.validationSplit as number;
    if (o.onProgress !== undefined) fit.onProgress = o.onProgress as FitOptions['onProgress'];
    if (o.signal !== undefined) fit.signal = o.signal as AbortSignal;
    const history = await model.fit(w.x, w.y, fit);
    return new Forecaster({
      model,
      normalizer,
      inputLength: plan.inputLength,
      horizon: plan.horizon,
      targets: plan.targets,
      features,
      difference,
      period,
      history,
    });
  }

  /**
   * A forecaster around a model saved by {@link Forecaster.save}, read from its metadata.
   * @throws {InvalidArgumentError} "the model file is a '<task>' model, not a forecasting model"
   *   when the metadata is missing or belongs to another task; or naming a malformed entry.
   */
  static fromModel(model: Model): Forecaster {
    const meta = model.metadata;
    const gyre = meta.gyre;
    const task =
      gyre !== null && typeof gyre === 'object' && typeof (gyre as Record<string, unknown>).task === 'string'
        ? ((gyre as Record<string, unknown>).task as string)
        : undefined;
    if (task !== 'forecast') {
      throw new InvalidArgumentError(
        task === undefined
          ? "the model file is a 'plain' model, not a forecasting model: its metadata has no gyre.task (save forecasters with Forecaster.save)"
          : `the model file is a '${task}' model, not a forecasting model`,
      );
    }
    const g = gyre as Record<string, unknown>;
    const p = 'forecasting metadata: gyre.';
    const normalizer = Normalizer.fromJSON(g.normalizer);
    const inputLength = intIn(`${p}inputLength`, g.inputLength, 1);
    const horizon = intIn(`${p}horizon`, g.horizon, 1);
    const features = intIn(`${p}features`, g.features, 1);
    if (g.targets === undefined) throw new InvalidArgumentError(`${p}targets is missing`);
    const targets = checkTargets(`${p}targets`, g.targets, features);
    if (normalizer.features !== features) {
      throw new InvalidArgumentError(`${p}normalizer has ${normalizer.features} feature(s), but gyre.features is ${features}`);
    }
    const config = model.config;
    const modelFeatures = 'features' in config.input ? config.input.features : undefined;
    if (modelFeatures !== features) {
      throw new InvalidArgumentError(`${p}features is ${features}, but the model reads ${describe(modelFeatures)} features per step`);
    }
    const last = config.layers[config.layers.length - 1];
    if (last?.type !== 'dense' || last.units !== horizon * targets.length) {
      throw new InvalidArgumentError(
        `the model must end in a dense layer of horizon × targets = ${horizon * targets.length} units, got ${last ? `${last.type} (${describe('units' in last ? last.units : undefined)} units)` : 'no layers'}`,
      );
    }
    const difference = g.difference === undefined ? [] : checkLags(`${p}difference`, g.difference);
    const period = g.period === undefined ? undefined : intIn(`${p}period`, g.period, 2);
    return new Forecaster({ model, normalizer, inputLength, horizon, targets, features, difference, period, history: null });
  }

  /** Reads a forecaster written by {@link Forecaster.save}; see {@link Forecaster.fromModel}. */
  static async load(path: string): Promise<Forecaster> {
    nonEmptyString('path', path);
    const bytes = await readBytes(path, 'read model file');
    return about(path, () => Forecaster.fromModel(fromBuffer(bytes)));
  }

  /** A forecaster from the bytes of {@link Forecaster.toBuffer}; see {@link Forecaster.fromModel}. */
  static fromBuffer(bytes: Uint8Array): Forecaster {
    return Forecaster.fromModel(fromBuffer(bytes));
  }

  /** The metadata {@link Forecaster.save} stores under `gyre`. */
  get metadata(): ForecastMetadata {
    const m: ForecastMetadata = {
      task: 'forecast',
      normalizer: this.normalizer.toJSON(),
      inputLength: this.inputLength,
      horizon: this.horizon,
      targets: [...this.targets],
      features: this.features,
    };
    if (this.difference.length > 0) m.difference = [...this.difference];
    if (this.period !== undefined) m.period = this.period;
    return m;
  }

  /**
   * Writes the model to `path` with the forecasting metadata (normalizer, window geometry) under
   * `metadata.gyre`, so {@link Forecaster.load} restores everything.
   * @param options.includeOptimizer keep the optimizer state (default false: a smaller file).
   */
  async save(path: string, options: { includeOptimizer?: boolean } = {}): Promise<void> {
    checkKeys('', object('options', options), ['includeOptimizer']);
    await this.model.save(path, { includeOptimizer: options.includeOptimizer ?? false, metadata: { gyre: this.metadata } });
  }

  /** The model file's bytes, as {@link Forecaster.save} writes them. */
  toBuffer(options: { includeOptimizer?: boolean } = {}): Uint8Array {
    checkKeys('', object('options', options), ['includeOptimizer']);
    return this.model.toBuffer({ includeOptimizer: options.includeOptimizer ?? false, metadata: { gyre: this.metadata } });
  }

  /** Normalized copy of the last `inputLength` steps of `history`. */
  #window(history: SeriesInput, what: string): Float32Array {
    const s = toSeries(history, what);
    const [time, features] = s.shape;
    if (features !== this.features) {
      throw new ShapeMismatchError(`${what} has ${features} feature(s) per step, but the forecaster was trained on ${this.features}`);
    }
    if (time < this.inputLength) {
      throw new InvalidArgumentError(`${what} has ${time} steps, but the forecaster needs at least inputLength = ${this.inputLength}`);
    }
    const last = s.data.subarray((time - this.inputLength) * features);
    return this.normalizer.transform({ data: last, shape: [this.inputLength, features] }).data;
  }

  /**
   * Forecasts the `steps` steps after `history`, in original units.
   *
   * Reads the last `inputLength` steps of `history` (`[time, features]`, `time ≥ inputLength`).
   * With `steps ≤ horizon` it returns the first `steps` rows of the model's direct prediction;
   * with `steps > horizon` it forecasts recursively, appending each predicted chunk of `horizon`
   * steps to the window, which needs every feature to be a target.
   * @param steps default `horizon`.
   * @returns `{ data, shape: [steps, targets.length] }`, row `k` the forecast `k + 1` steps ahead.
   * @throws {InvalidArgumentError} for a history shorter than `inputLength`, or `steps > horizon`
   *   when some feature is not forecast.
   * @throws {ShapeMismatchError} for a history with another number of features.
   */
  forecast(history: SeriesInput, steps: number = this.horizon): { data: Float32Array; shape: [number, number] } {
    intIn('steps', steps, 1);
    const k = this.targets.length;
    const f = this.features;
    if (steps > this.horizon && k !== f) {
      throw new InvalidArgumentError(
        `steps ${steps} is beyond the model's horizon ${this.horizon}: recursive forecasting feeds predictions back as input, so it needs every feature predicted, but this forecaster predicts ${k} of ${f} features (targets [${this.targets.join(', ')}])`,
      );
    }
    if (this.#lag > 0) return this.#forecastDifferenced(history, steps);
    const window = this.#window(history, 'history');
    const L = this.inputLength;
    const out = new Float32Array(steps * k);
    for (let done = 0; done < steps; ) {
      const pred = this.model.predictSync({ data: window, shape: [1, L, f] }).data;
      const take = Math.min(this.horizon, steps - done);
      out.set(pred.subarray(0, take * k), done * k);
      done += take;
      if (done >= steps) break;
      // Slide the window by `horizon` steps, appending the predicted chunk (all features are targets).
      const h = this.horizon;
      if (h >= L) {
        for (let t = 0; t < L; t++) {
          for (let j = 0; j < k; j++) window[t * f + this.targets[j]!] = pred[(h - L + t) * k + j]!;
        }
      } else {
        window.copyWithin(0, h * f);
        for (let t = 0; t < h; t++) {
          for (let j = 0; j < k; j++) window[(L - h + t) * f + this.targets[j]!] = pred[t * k + j]!;
        }
      }
    }
    for (let i = 0; i < out.length; i++) {
      const feat = this.targets[i % k]!;
      out[i] = this.normalizer.inverseValue(out[i]!, feat);
    }
    return { data: out, shape: [steps, k] };
  }

  /** {@link Forecaster.forecast} of a differencing forecaster: each predicted difference added back onto the values before it. */
  #forecastDifferenced(history: SeriesInput, steps: number): { data: Float32Array; shape: [number, number] } {
    const s = toSeries(history, 'history');
    const [time, f] = s.shape;
    if (f !== this.features) {
      throw new ShapeMismatchError(`history has ${f} feature(s) per step, but the forecaster was trained on ${this.features}`);
    }
    const D = this.#lag;
    const L = this.inputLength;
    const need = L + D;
    if (time < need) {
      throw new InvalidArgumentError(
        `history has ${time} steps, but the forecaster needs at least inputLength + ${D} = ${need} (its differencing at lags [${this.difference.join(', ')}] uses ${D} steps before the window)`,
      );
    }
    const k = this.targets.length;
    const hist = Array.from(s.data.subarray((time - need) * f));
    const out = new Float32Array(steps * k);
    for (let done = 0; done < steps; ) {
      const rows = hist.length / f;
      const recent = { data: Float32Array.from(hist.slice((rows - need) * f)), shape: [need, f] as [number, number] };
      const window = this.normalizer.transform(differenced(recent, this.#c)).data;
      const pred = this.model.predictSync({ data: window, shape: [1, L, f] }).data;
      const take = Math.min(this.horizon, steps - done);
      const next = new Array<number>(take * f).fill(0);
      const at = (t: number, feat: number) => (t < rows ? hist[t * f + feat]! : next[(t - rows) * f + feat]!);
      for (let step = 0; step < take; step++) {
        for (let j = 0; j < k; j++) {
          const feat = this.targets[j]!;
          const d = this.normalizer.inverseValue(pred[step * k + j]!, feat);
          const v = undifference(d, this.#c, (back) => at(rows + step - back, feat));
          next[step * f + feat] = v;
          out[(done + step) * k + j] = v;
        }
      }
      done += take;
      // Recursive forecasts (every feature a target, checked by forecast): the predicted rows join the history.
      hist.push(...next);
    }
    return { data: out, shape: [steps, k] };
  }

  #evaluation(series: SeriesInput) {
    const s = toSeries(series);
    if (s.shape[1] !== this.features) {
      throw new ShapeMismatchError(`series has ${s.shape[1]} feature(s) per step, but the forecaster was trained on ${this.features}`);
    }
    const geometry = { inputLength: this.inputLength, horizon: this.horizon, targets: this.targets };
    const D = this.#lag;
    if (D > 0 && s.shape[0] < D + this.inputLength + this.horizon) {
      throw new InvalidArgumentError(
        `series is too short for one window: it needs at least ${D + this.inputLength + this.horizon} steps (differencing ${D} + inputLength ${this.inputLength} + horizon ${this.horizon}), got ${s.shape[0]}`,
      );
    }
    const w = windows(this.normalizer.transform(D > 0 ? differenced(s, this.#c) : s), geometry);
    const score = (pred: Float32Array): ForecastEvaluation => {
      const [n, width] = w.y.shape;
      const k = this.targets.length;
      const f = this.features;
      const P = this.period;
      // The seasonal-naive baseline needs a whole season before the first window's end.
      const seasonal = P !== undefined && D + this.inputLength >= P;
      let [se, ae, naiveSe, naiveAe, seasonalSe, seasonalAe] = [0, 0, 0, 0, 0, 0];
      const recon = new Array<number>(this.horizon * f).fill(0);
      for (let i = 0; i < n; i++) {
        // The window's last observed step, in the series' own steps.
        const last = i + D + this.inputLength - 1;
        for (let c = 0; c < width; c++) {
          const step = Math.floor(c / k);
          const feat = this.targets[c % k]!;
          const t = last + 1 + step;
          const truth = s.data[t * f + feat]!;
          let v = this.normalizer.inverseValue(pred[i * width + c]!, feat);
          if (D > 0) {
            v = undifference(v, this.#c, (back) =>
              t - back <= last ? s.data[(t - back) * f + feat]! : recon[(t - back - last - 1) * f + feat]!,
            );
            recon[step * f + feat] = v;
          }
          const d = v - truth;
          const dn = s.data[last * f + feat]! - truth;
          se += d * d;
          ae += Math.abs(d);
          naiveSe += dn * dn;
          naiveAe += Math.abs(dn);
          if (seasonal) {
            const ds = s.data[(t - P! * Math.ceil((t - last) / P!)) * f + feat]! - truth;
            seasonalSe += ds * ds;
            seasonalAe += Math.abs(ds);
          }
        }
      }
      const count = n * width;
      const out: ForecastEvaluation = {
        mse: se / count,
        mae: ae / count,
        naiveMse: naiveSe / count,
        naiveMae: naiveAe / count,
        windows: n,
      };
      if (seasonal) {
        Object.assign(out, { period: P, seasonalNaiveMse: seasonalSe / count, seasonalNaiveMae: seasonalAe / count });
      }
      return out;
    };
    return { x: w.x, score };
  }

  /**
   * Scores the model's direct forecasts (its own horizon, no recursion) over every window of a
   * series `[time, features]` (stride 1), in original units, next to the naive baseline that
   * repeats each target's last observed value and, with a `period`, the seasonal-naive one that
   * repeats the value one season before. The series is the context and the test together: the
   * first forecast is of step `inputLength` (plus the differencing's steps), so pass a held-out
   * test part with the `inputLength` (+ differencing) steps before it. Runs off the event loop.
   * @throws {InvalidArgumentError} for a series shorter than `inputLength + horizon`.
   * @throws {ShapeMismatchError} for a series with another number of features.
   */
  async evaluate(series: SeriesInput): Promise<ForecastEvaluation> {
    const e = this.#evaluation(series);
    return e.score((await this.model.predict(e.x)).data);
  }

  /** {@link Forecaster.evaluate} on the calling thread (for small series). */
  evaluateSync(series: SeriesInput): ForecastEvaluation {
    const e = this.#evaluation(series);
    return e.score(this.model.predictSync(e.x).data);
  }
}
