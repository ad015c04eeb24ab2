/**
 * Importing Keras / TensorFlow.js Layers models: a tfjs `model.json` (a `tf.sequential()`
 * saved by tfjs, or a Keras 2 / Keras 3 Sequential model converted by `tensorflowjs_converter`)
 * and its weight data become a gyre {@link Model} with the same architecture and weights.
 *
 * Mapping, per Keras layer (one gyre layer per Keras layer, in order):
 * - `InputLayer` (and `batch_input_shape` / `batch_shape` / `input_shape` on the first layer):
 *   the input's feature count; skipped.
 * - `Embedding` (first layer): `{ type: 'embedding' }`; `embeddings` `[vocab, dim]` →
 *   `i.weight` as is; the model reads token ids (`input: { vocabSize }`); `mask_zero` →
 *   `input.maskZero`.
 * - `Masking` (before the first other layer) → `input.maskValue`. gyre reads a mask as each
 *   sequence's length (its steps up to the last that is not padding): outputs at the real steps
 *   are Keras', and at padding steps zeros (Keras repeats the last output there); padding
 *   before a real step is an error when the model reads it.
 * - `SimpleRNN`, `LSTM`, `GRU`: `{ type: 'rnn' | 'lstm' | 'gru', numLayers: 1 }` with
 *   `returnSequences` = `return_sequences`. `kernel [I, G·H]` → `weight_ih_l0 [G·H, I]` and
 *   `recurrent_kernel [H, G·H]` → `weight_hh_l0 [G·H, H]` (transposed); gate blocks reordered
 *   from Keras' LSTM `i,f,c,o` (already PyTorch's `i,f,g,o`) and GRU `z,r,h` to PyTorch's `r,z,n`.
 *   `bias` → `bias_ih_l0` with `bias_hh_l0 = 0`, except GRU `reset_after=True` whose `bias
 *   [2, 3H]` gives `bias_ih_l0` (row 0) and `bias_hh_l0` (row 1). SimpleRNN `activation`
 *   `tanh`/`relu` → `nonlinearity`; GRU `reset_after` → `resetAfter` (read from the bias
 *   shape when the config does not say); `go_backwards` → `goBackwards`.
 * - `Bidirectional` (merge_mode `concat` or `sum`): the wrapped layer with `bidirectional:
 *   true`; the `backward_…` weights get the `_reverse` suffix.
 * - `Dense` (also inside `TimeDistributed`): `kernel [in, units]` → `weight [units, in]`.
 * - `Dropout`, `SpatialDropout1D`, `GaussianDropout`, `GaussianNoise`, `AlphaDropout` (also
 *   inside `TimeDistributed`): identity at inference; skipped.
 * - `stateful: true` recurrent layers: imported as they are. A Keras stateful model carries its
 *   state from one batch to the next; in gyre that state is a stream's ({@link Model.createStream}):
 *   stepping a stream through the batches' steps in order gives the stateful model's outputs,
 *   and `predict` gives them from a fresh state (as after Keras' `reset_states()`).
 *
 * A layer's `trainable: false` (or that of the layer a wrapper holds) → `trainable: false`.
 * `use_bias: false` maps to zero biases (the same function; training in gyre may then move
 * them). A recurrent layer's `dropout` (on its inputs, one mask per sequence) → `inputDropout`,
 * its `recurrent_dropout` (on the state the recurrent products read) → `recurrentDropout`: both
 * act in training only. `recurrent_activation` `sigmoid` or `hard_sigmoid` → `recurrentActivation`:
 * `hard_sigmoid` is `'hardSigmoidTfjs'` (`clip(0.2·x + 0.5, 0, 1)`) in a model.json written by
 * tfjs (`keras_version` `tfjs-layers …`, or none) or Keras 2, and `'hardSigmoidKeras3'`
 * (`relu6(x + 3) / 6`) in one converted from Keras 3; absent, it is tfjs' default
 * (`hardSigmoid`) for tfjs and Keras' (`sigmoid`) for Keras. Everything else that would change
 * the function is an error naming the layer and the option: another `recurrent_activation`, an
 * `activation` other than `tanh` (SimpleRNN also `relu`), `go_backwards` inside a
 * `Bidirectional`, `return_state`, `time_major`, other merge modes, other layer classes
 * and non-Sequential models. Missing, duplicated or unknown weights are one error listing them.
 * Optimizer weights (tfjs' `group: 'optimizer'`, Keras 3's `optimizer/…`) and random-generator
 * state (`seed_generator…`) are ignored.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { GyreError, InternalError, InvalidArgumentError, MissingArgumentError, ShapeMismatchError } from '../errors.js';
import { sequential, type LayerSpec, type Model, type ModelSpec, type RecurrentActivation } from '../model/index.js';
import { describe, positiveInt } from '../util/check.js';
import { fileError, readBytes } from '../util/files.js';

/** One weight of a tfjs weights manifest. */
export interface TfjsWeightEntry {
  name: string;
  shape: number[];
  /** The decoded dtype; gyre reads `float32` weights. */
  dtype: string;
  /** tfjs marks optimizer weights `'optimizer'`; they are ignored. */
  group?: string;
  /** Weights stored quantized by `tensorflowjs_converter --quantize_*`. */
  quantization?: { dtype: string; scale?: number; min?: number };
}

/** A tfjs `model.json` (or tfjs `ModelArtifacts`, with `weightSpecs` instead of `weightsManifest`). */
export interface TfjsModelJson {
  modelTopology: object;
  weightsManifest?: { paths: string[]; weights: TfjsWeightEntry[] }[];
  weightSpecs?: TfjsWeightEntry[];
  format?: string;
}

/** The weight bytes: all shards of all manifest groups, concatenated in manifest order (or as a list). */
export type TfjsWeightData = ArrayBuffer | ArrayBufferView | readonly (ArrayBuffer | ArrayBufferView)[];

/** What {@link convertTfjs} returns: a gyre spec and the parameters to load into it. */
export interface TfjsConversion {
  spec: ModelSpec;
  /** gyre parameter name → values (PyTorch layout). */
  parameters: Record<string, Float32Array>;
}

/** @internal */
export type Json = Record<string, unknown>;
/** @internal */
export type Variable = 'kernel' | 'recurrent_kernel' | 'bias' | 'embeddings';
/** @internal */
export type Direction = 'forward' | 'backward';
/** @internal */
export type CellClass = 'SimpleRNN' | 'LSTM' | 'GRU';

/** @internal */
export const CELLS: Record<CellClass, { type: 'rnn' | 'lstm' | 'gru'; gates: number; perm: number[] }> = {
  SimpleRNN: { type: 'rnn', gates: 1, perm: [0] },
  // Keras i, f, c, o is PyTorch's i, f, g, o.
  LSTM: { type: 'lstm', gates: 4, perm: [0, 1, 2, 3] },
  // PyTorch block k (r, z, n) is Keras block perm[k] of (z, r, h).
  GRU: { type: 'gru', gates: 3, perm: [1, 0, 2] },
};

/** @internal */
export const IDENTITY_CLASSES = ['Dropout', 'SpatialDropout1D', 'GaussianDropout', 'GaussianNoise', 'AlphaDropout'];
const SUPPORTED_CLASSES = [
  'InputLayer',
  'Embedding',
  'SimpleRNN',
  'LSTM',
  'GRU',
  'Bidirectional',
  'Dense',
  'TimeDistributed',
  ...IDENTITY_CLASSES,
];

interface RecurrentOptions {
  cell: CellClass;
  units: number;
  relu: boolean;
  useBias: boolean;
  returnSequences: boolean;
  /** undefined: not in the config, read from the bias shape. */
  resetAfter: boolean | undefined;
  /** The gates' activation (LSTM, GRU). */
  recurrentActivation: RecurrentActivation;
  /** Runs from the last step to the first (a plain layer's `go_backwards`). */
  goBackwards: boolean;
  /** Keras' `dropout` (on the inputs, one mask per sequence): gyre's `inputDropout`. */
  inputDropout: number;
  /** Keras' `recurrent_dropout` (on the state the products read): gyre's `recurrentDropout`. */
  recurrentDropout: number;
  /** Keras' `return_state` (a functional model's layers only: {@link importTfjsGraph}). */
  returnState: boolean;
}

/** Who wrote the model.json, which decides what `hard_sigmoid` means. */
/** @internal */
export type Producer = 'tfjs' | 'keras2' | 'keras3';

/**
 * The producer from `modelTopology.keras_version`: `tfjs-layers …` (tfjs' `model.save`),
 * `2.…` or `3.…` (Keras through `tensorflowjs_converter`). Without one, tfjs.
 */
/** @internal */
export function producerOf(json: Json): Producer {
  const topology = isObject(json.modelTopology) ? json.modelTopology : {};
  const v = topology.keras_version;
  if (typeof v === 'string' && /^3\./.test(v)) return 'keras3';
  if (typeof v === 'string' && /^2\./.test(v)) return 'keras2';
  return 'tfjs';
}

/** @internal */
export type Parsed =
  | { kind: 'embedding'; vocab: number; dim: number; maskZero: boolean }
  | { kind: 'recurrent'; opts: RecurrentOptions; bidirectional: boolean; merge: 'concat' | 'sum' }
  | { kind: 'dense'; units: number; activation: 'linear' | 'relu' | 'tanh' | 'sigmoid' | 'softmax'; useBias: boolean };

/** A Keras layer that becomes a gyre layer. */
/** @internal */
export interface Layer {
  label: string;
  /** The Keras layer's name (tfjs / Keras 2 weight paths start with it). */
  name: string;
  /** Keras 3's weight path key: the snake-case class name, numbered per class (`lstm`, `lstm_1`). */
  keras3Key: string;
  parsed: Parsed;
  /** Variables in creation order (Keras 3's `vars/0`, `vars/1`, ...). */
  variables: Variable[];
  /** Keras' `trainable` (of the layer or the layer a wrapper holds). */
  trainable: boolean;
  directions: (Direction | undefined)[];
}

/** @internal One stored weight: its name (a path in the file), shape, and values when it is a float. */
export interface Entry {
  name: string;
  shape: number[];
  values: Float32Array | undefined;
  dtype: string;
  group: string | undefined;
}

/** @internal */
export function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** @internal */
export function fail(message: string): never {
  throw new InvalidArgumentError(`tfjs import: ${message}`);
}

/** Keras' `to_snake_case` (Keras 3 names saved weights by it). */
/** @internal */
export function snakeCase(name: string): string {
  return name
    .replace(/\W+/g, '')
    .replace(/(.)([A-Z][a-z]+)/g, '$1_$2')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

/** An activation as serialized by tfjs, Keras 2 or Keras 3, normalized (`hard_sigmoid` → `hardsigmoid`). */
function activationName(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  let s: unknown = v;
  if (isObject(v)) s = typeof v.config === 'string' ? v.config : v.class_name;
  if (typeof s !== 'string') return JSON.stringify(v);
  return s.replace(/_/g, '').toLowerCase();
}

/** An option's value as written in model.json, for messages. */
function raw(v: unknown): string {
  return v === undefined ? 'undefined' : JSON.stringify(v);
}

/** @internal */
export function shapeOf(v: unknown): unknown[] | undefined {
  return Array.isArray(v) ? v : undefined;
}

/** The Sequential config's layer list, from tfjs' or the converter's topology (or Keras 3's config.json). */
/** @internal */
export function sequentialLayers(topology: unknown): unknown[] {
  if (!isObject(topology)) fail(`model.json has no modelTopology object (got ${describe(topology)}); only Layers models can be imported`);
  const t = isObject(topology.model_config) ? topology.model_config : topology;
  if (t.class_name !== 'Sequential') {
    fail(
      `only Sequential models can be imported as a sequential model; the model is a ${describe(t.class_name)}` +
        (t.class_name === 'Model' || t.class_name === 'Functional'
          ? ' (a functional model: import it with importTfjsGraph, or loadKerasGraph for a Keras file)'
          : ''),
    );
  }
  if (Array.isArray(t.config)) return t.config;
  if (isObject(t.config) && Array.isArray(t.config.layers)) return t.config.layers;
  return fail('the Sequential config has no layers array');
}

/** @internal */
export function weightEntries(modelJson: Json): TfjsWeightEntry[] {
  const list: unknown[] = [];
  if (Array.isArray(modelJson.weightsManifest)) {
    for (const [g, group] of modelJson.weightsManifest.entries()) {
      if (!isObject(group) || !Array.isArray(group.weights)) fail(`weightsManifest[${g}] has no weights array`);
      list.push(...group.weights);
    }
  } else if (Array.isArray(modelJson.weightSpecs)) {
    list.push(...modelJson.weightSpecs);
  } else {
    fail('model.json has no weightsManifest (nor weightSpecs)');
  }
  return list.map((e, i) => {
    if (!isObject(e) || typeof e.name !== 'string' || !Array.isArray(e.shape) || typeof e.dtype !== 'string') {
      return fail(`weights manifest entry ${i} must have a name, a shape and a dtype`);
    }
    for (const d of e.shape) {
      if (typeof d !== 'number' || !Number.isInteger(d) || d < 0)
        fail(`weight ${JSON.stringify(e.name)} has a bad shape ${JSON.stringify(e.shape)}`);
    }
    return e as unknown as TfjsWeightEntry;
  });
}

/** @internal */
export function concatBytes(data: TfjsWeightData): Uint8Array {
  const toBytes = (b: unknown, what: string): Uint8Array => {
    if (b instanceof ArrayBuffer) return new Uint8Array(b);
    if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    return fail(`${what} must be an ArrayBuffer or a typed array, got ${describe(b)}`);
  };
  if (!Array.isArray(data)) return toBytes(data, 'weightData');
  const parts = (data as readonly unknown[]).map((b, i) => toBytes(b, `weightData[${i}]`));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Splits the weight bytes by the manifest and decodes float weights (float32 or quantized). */
/** @internal */
export function decodeEntries(specs: TfjsWeightEntry[], bytes: Uint8Array): Entry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  const out: Entry[] = [];
  for (const spec of specs) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const q = spec.quantization;
    const stored = q ? q.dtype : spec.dtype;
    const width = { float32: 4, int32: 4, uint32: 4, float16: 2, uint16: 2, uint8: 1, bool: 1, complex64: 8 }[stored];
    if (width === undefined) fail(`weight ${JSON.stringify(spec.name)} has dtype ${JSON.stringify(stored)}, which cannot be read`);
    const size = count * width;
    if (offset + size > bytes.length) {
      const need = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1) * 4, 0);
      throw new ShapeMismatchError(
        `tfjs import: the weight data has ${bytes.length} bytes, too few for the manifest (it ends inside weight ${JSON.stringify(spec.name)}; float32 weights alone need ${need})`,
      );
    }
    let values: Float32Array | undefined;
    if (spec.dtype === 'float32') {
      values = new Float32Array(count);
      if (stored === 'float32') {
        for (let i = 0; i < count; i++) values[i] = view.getFloat32(offset + 4 * i, true);
      } else if (stored === 'float16') {
        for (let i = 0; i < count; i++) values[i] = halfToFloat(view.getUint16(offset + 2 * i, true));
      } else if ((stored === 'uint8' || stored === 'uint16') && typeof q?.scale === 'number' && typeof q.min === 'number') {
        for (let i = 0; i < count; i++) {
          const v = stored === 'uint8' ? view.getUint8(offset + i) : view.getUint16(offset + 2 * i, true);
          values[i] = v * q.scale + q.min;
        }
      } else {
        fail(`weight ${JSON.stringify(spec.name)}: quantization ${JSON.stringify(q)} is not supported`);
      }
    }
    out.push({ name: spec.name, shape: spec.shape, values, dtype: spec.dtype, group: spec.group });
    offset += size;
  }
  if (offset !== bytes.length) {
    throw new ShapeMismatchError(`tfjs import: the weight data has ${bytes.length} bytes but the manifest describes ${offset}`);
  }
  return out;
}

/** Checks a SimpleRNN / LSTM / GRU config; `backward` allows `go_backwards` (Bidirectional's backward layer). */
function recurrentOptions(label: string, cls: CellClass, c: Json, producer: Producer, backward = false): RecurrentOptions {
  const units = positiveInt(`tfjs import: ${label}: units`, c.units);
  const act = activationName(c.activation) ?? 'tanh';
  let relu = false;
  if (cls === 'SimpleRNN' && act === 'relu') relu = true;
  else if (act !== 'tanh') {
    fail(`${label}: activation ${raw(c.activation)} is not supported; gyre's ${cls} uses 'tanh'${cls === 'SimpleRNN' ? " or 'relu'" : ''}`);
  }
  let recurrentActivation: RecurrentActivation = 'sigmoid';
  if (cls !== 'SimpleRNN') {
    // Absent: each producer's default (tfjs: hardSigmoid; Keras: sigmoid).
    const rec = activationName(c.recurrent_activation) ?? (producer === 'tfjs' ? 'hardsigmoid' : 'sigmoid');
    if (rec === 'hardsigmoid') recurrentActivation = producer === 'keras3' ? 'hardSigmoidKeras3' : 'hardSigmoidTfjs';
    else if (rec !== 'sigmoid') {
      fail(
        `${label}: recurrent_activation ${raw(c.recurrent_activation)} is not supported; gyre's gates take 'sigmoid' or 'hard_sigmoid' ` +
          `(TensorFlow.js' and Keras 2's clip(0.2·x + 0.5, 0, 1), Keras 3's relu6(x + 3) / 6)`,
      );
    }
  }
  if (backward && !c.go_backwards) fail(`${label}: the backward layer of a Bidirectional must have go_backwards true`);
  // `stateful` is accepted: the layer computes the same function, and the state a Keras
  // stateful model carries from one batch to the next is what a gyre stream carries.
  if (c.time_major) fail(`${label}: time_major true is not supported`);
  let resetAfter: boolean | undefined;
  if (cls === 'GRU' && c.reset_after !== undefined && c.reset_after !== null) resetAfter = Boolean(c.reset_after);
  const probability = (key: 'dropout' | 'recurrent_dropout'): number => {
    const d = c[key] ?? 0;
    if (typeof d !== 'number' || !(d >= 0 && d < 1)) fail(`${label}: ${key} must be a number in [0, 1), got ${raw(c[key])}`);
    return d;
  };
  return {
    inputDropout: probability('dropout'),
    recurrentDropout: probability('recurrent_dropout'),
    cell: cls,
    units,
    relu,
    useBias: c.use_bias !== false,
    returnSequences: Boolean(c.return_sequences),
    resetAfter,
    recurrentActivation,
    goBackwards: !backward && c.go_backwards === true,
    returnState: c.return_state === true,
  };
}

function wrapped(label: string, c: Json, key: string): { cls: string; config: Json } {
  const inner = c[key];
  if (!isObject(inner) || typeof inner.class_name !== 'string' || !isObject(inner.config))
    fail(`${label}: ${key} must be a {class_name, config} object`);
  return { cls: inner.class_name, config: inner.config };
}

/** Parses one Keras layer into its gyre form. */
/** @internal */
export function parseLayer(label: string, cls: string, c: Json, first: boolean, producer: Producer): Parsed {
  switch (cls) {
    case 'Embedding': {
      if (!first) fail(`${label}: an Embedding must be the model's first layer (of a Sequential; a functional model's reads an input)`);
      return {
        kind: 'embedding',
        maskZero: c.mask_zero === true,
        vocab: positiveInt(`tfjs import: ${label}: input_dim`, c.input_dim),
        dim: positiveInt(`tfjs import: ${label}: output_dim`, c.output_dim),
      };
    }
    case 'SimpleRNN':
    case 'LSTM':
    case 'GRU':
      return { kind: 'recurrent', opts: recurrentOptions(label, cls, c, producer), bidirectional: false, merge: 'concat' };
    case 'Bidirectional': {
      const inner = wrapped(label, c, 'layer');
      const innerLabel = `${label} wrapping ${describe(inner.config.name)} (${inner.cls})`;
      if (!(inner.cls in CELLS)) fail(`${innerLabel}: Bidirectional must wrap a SimpleRNN, LSTM or GRU`);
      const opts = recurrentOptions(innerLabel, inner.cls as CellClass, inner.config, producer);
      if (opts.goBackwards) fail(`${innerLabel}: go_backwards true inside a Bidirectional is not supported`);
      if (c.backward_layer !== undefined && c.backward_layer !== null) {
        const back = wrapped(label, c, 'backward_layer');
        const backLabel = `${label} backward_layer ${describe(back.config.name)} (${back.cls})`;
        if (back.cls !== inner.cls) fail(`${backLabel}: must be a ${inner.cls} like the forward layer`);
        const b = recurrentOptions(backLabel, back.cls as CellClass, back.config, producer, true);
        for (const key of [
          'units',
          'relu',
          'useBias',
          'returnSequences',
          'resetAfter',
          'recurrentActivation',
          'inputDropout',
          'recurrentDropout',
        ] as const) {
          if (b[key] !== opts[key]) fail(`${backLabel}: its options must match the forward layer's (${key} differs)`);
        }
      }
      const merge = c.merge_mode;
      if (merge !== 'concat' && merge !== 'sum')
        fail(`${label}: merge_mode ${describe(merge)} is not supported; gyre merges directions by 'concat' or 'sum'`);
      return { kind: 'recurrent', opts, bidirectional: true, merge };
    }
    case 'TimeDistributed': {
      const inner = wrapped(label, c, 'layer');
      if (inner.cls !== 'Dense')
        fail(`${label}: TimeDistributed is supported around a Dense layer (or a dropout or noise layer, skipped) only, got ${inner.cls}`);
      return parseLayer(`${label} wrapping ${describe(inner.config.name)} (Dense)`, 'Dense', inner.config, first, producer);
    }
    case 'Dense': {
      const act = activationName(c.activation) ?? 'linear';
      if (!['linear', 'relu', 'tanh', 'sigmoid', 'softmax'].includes(act)) {
        fail(`${label}: activation ${raw(c.activation)} is not supported; gyre's dense layers take linear, relu, tanh, sigmoid or softmax`);
      }
      return {
        kind: 'dense',
        units: positiveInt(`tfjs import: ${label}: units`, c.units),
        activation: act as 'linear' | 'relu' | 'tanh' | 'sigmoid' | 'softmax',
        useBias: c.use_bias !== false,
      };
    }
    case 'Masking':
      return fail(`${label}: a Masking layer must come first (gyre reads the mask as the lengths of the model's input sequences)`);
    default:
      return fail(`${label}: layer class ${JSON.stringify(cls)} is not supported; supported: ${SUPPORTED_CLASSES.join(', ')}`);
  }
}

/** The Keras layers that become gyre layers, and the input feature count if the config gives it. */
function parseTopology(
  layers: unknown[],
  producer: Producer,
): { layers: Layer[]; features: number | undefined; maskValue: number | undefined } {
  const out: Layer[] = [];
  let maskValue: number | undefined;
  const perClass = new Map<string, number>();
  let features: number | undefined;
  let seenInput = false;
  for (const [i, l] of layers.entries()) {
    if (!isObject(l) || typeof l.class_name !== 'string' || !isObject(l.config)) fail(`layers[${i}] must be a {class_name, config} object`);
    const cls = l.class_name;
    const c = l.config;
    const name = typeof c.name === 'string' ? c.name : `${snakeCase(cls)}_${i}`;
    const label = `layer ${JSON.stringify(name)} (${cls}, layers[${i}])`;
    const snake = snakeCase(cls);
    const n = perClass.get(snake) ?? 0;
    perClass.set(snake, n + 1);
    const keras3Key = n === 0 ? snake : `${snake}_${n}`;
    if (out.length === 0 && features === undefined) {
      const build = isObject(l.build_config) ? l.build_config.input_shape : undefined;
      const shape =
        shapeOf(c.batch_input_shape) ??
        shapeOf(c.batch_shape) ??
        (shapeOf(c.input_shape) ? [null, ...(c.input_shape as unknown[])] : shapeOf(build));
      if (shape && shape.length === 3 && typeof shape[2] === 'number') features = shape[2];
    }
    if (cls === 'InputLayer') {
      if (seenInput || out.length > 0) fail(`${label}: an InputLayer must come first`);
      seenInput = true;
      continue;
    }
    if (IDENTITY_CLASSES.includes(cls)) continue;
    if (cls === 'Masking' && out.length === 0 && maskValue === undefined) {
      const v = c.mask_value ?? 0;
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${label}: mask_value must be a finite number, got ${raw(c.mask_value)}`);
      maskValue = v;
      continue;
    }
    if (cls === 'TimeDistributed' && isObject(c.layer) && IDENTITY_CLASSES.includes(String(c.layer.class_name))) continue;
    const parsed = parseLayer(label, cls, c, out.length === 0, producer);
    if (parsed.kind === 'recurrent' && parsed.opts.returnState) {
      fail(`${label}: return_state true is not supported in a Sequential model (a functional model's states import with importTfjsGraph)`);
    }
    const { variables, directions } = variablesOf(parsed);
    const inner = isObject(c.layer) && isObject(c.layer.config) ? c.layer.config : {};
    const trainable = c.trainable !== false && inner.trainable !== false;
    out.push({ label, name, keras3Key, parsed, variables, directions, trainable });
  }
  if (out.length === 0) fail('the model has no layers to import');
  if (maskValue !== undefined && out[0]!.parsed.kind === 'embedding') fail('a Masking layer cannot come before an Embedding');
  return { layers: out, features, maskValue };
}

/** @internal The variables a parsed layer stores, and its directions. */
export function variablesOf(parsed: Parsed): { variables: Variable[]; directions: (Direction | undefined)[] } {
  if (parsed.kind === 'embedding') return { variables: ['embeddings'], directions: [undefined] };
  if (parsed.kind === 'dense') return { variables: parsed.useBias ? ['kernel', 'bias'] : ['kernel'], directions: [undefined] };
  return {
    variables: parsed.opts.useBias ? ['kernel', 'recurrent_kernel', 'bias'] : ['kernel', 'recurrent_kernel'],
    directions: parsed.bidirectional ? ['forward', 'backward'] : [undefined],
  };
}

const slotKey = (layer: number, dir: Direction | undefined, v: Variable): string => `${layer}/${dir ?? ''}/${v}`;

/** Assigns every manifest weight to a (layer, direction, variable) slot by its name. */
/** @internal */
export function assignWeights(layers: Layer[], entries: Entry[]): Map<string, Entry> {
  const keras3 = entries.some((e) => /(^|\/)vars\/\d+$/.test(e.name));
  const slots = new Map<string, Entry>();
  const extra: string[] = [];
  for (const e of entries) {
    const parts = e.name.replace(/:\d+$/, '').split('/');
    if (e.group === 'optimizer' || parts.some((p) => p.startsWith('seed_generator'))) continue;
    let owner = -1;
    let rest: string[] = [];
    if (keras3) {
      // Keras 3 (.keras converted): layers/<class key>/[forward_layer|backward_layer/][cell|layer/]vars/<i>; the rest is training state.
      if (parts[0] !== 'layers') continue;
      owner = layers.findIndex((l) => l.keras3Key === parts[1]);
      if (owner < 0) owner = layers.findIndex((l) => l.name === parts[1]);
      rest = parts.slice(2);
    } else {
      // tfjs / Keras 2: <layer name>/[forward_<inner>|backward_<inner>/][<cell>/]<variable>
      for (let k = 0; k < parts.length && owner < 0; k++) {
        owner = layers.findIndex((l) => l.name === parts[k]);
        rest = parts.slice(k + 1);
      }
    }
    const layer = layers[owner];
    if (!layer) {
      extra.push(e.name);
      continue;
    }
    let dir: Direction | undefined;
    if (layer.directions.length === 2) {
      const d = rest.find((p) => p.startsWith('forward') || p.startsWith('backward'));
      dir = d === undefined ? undefined : d.startsWith('forward') ? 'forward' : 'backward';
    }
    const last = rest[rest.length - 1] ?? '';
    let variable: Variable | undefined;
    if (/^\d+$/.test(last) && rest[rest.length - 2] === 'vars') variable = layer.variables[Number(last)];
    else {
      const plain = last.replace(/_\d+$/, '');
      variable = layer.variables.find((v) => v === last) ?? layer.variables.find((v) => v === plain);
    }
    const key = variable && layer.directions.includes(dir) ? slotKey(owner, dir, variable) : undefined;
    if (key === undefined || slots.has(key)) extra.push(e.name);
    else slots.set(key, e);
  }
  const missing: string[] = [];
  layers.forEach((l, i) => {
    for (const dir of l.directions) {
      for (const v of l.variables) if (!slots.has(slotKey(i, dir, v))) missing.push(`${l.label}${dir ? ` ${dir}` : ''} ${v}`);
    }
  });
  if (missing.length > 0 || extra.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing weights: ${missing.join('; ')}`);
    if (extra.length > 0)
      parts.push(`unexpected weights (no layer of the model takes them): ${extra.map((n) => JSON.stringify(n)).join(', ')}`);
    const message = `tfjs import: ${parts.join('. ')}. The manifest has ${entries.map((e) => JSON.stringify(e.name)).join(', ')}`;
    throw missing.length > 0 ? new MissingArgumentError(message) : new InvalidArgumentError(message);
  }
  return slots;
}

function take(
  slots: Map<string, Entry>,
  layers: Layer[],
  i: number,
  dir: Direction | undefined,
  v: Variable,
  shape: (number | undefined)[],
): Float32Array {
  const e = slots.get(slotKey(i, dir, v));
  const layer = layers[i]!;
  if (!e) throw new InternalError(`tfjs import: ${layer.label}: no ${v}`);
  const what = `${layer.label}${dir ? ` ${dir}` : ''} ${v} (${JSON.stringify(e.name)})`;
  if (!e.values) fail(`${what} has dtype ${e.dtype}; float32 weights are needed`);
  if (e.shape.length !== shape.length || shape.some((d, k) => d !== undefined && d !== e.shape[k])) {
    const want = shape.map((d) => d ?? '?').join(', ');
    throw new ShapeMismatchError(`tfjs import: ${what} has shape [${e.shape.join(', ')}], expected [${want}]`);
  }
  return e.values;
}

/** `src` `[rows, G·H]` → `[G·H, rows]` with PyTorch block k taken from source block perm[k]. */
function transposeBlocks(src: Float32Array, rows: number, h: number, perm: number[]): Float32Array {
  const cols = perm.length * h;
  const out = new Float32Array(rows * cols);
  perm.forEach((from, g) => {
    for (let j = 0; j < h; j++) {
      const o = (g * h + j) * rows;
      const c = from * h + j;
      for (let r = 0; r < rows; r++) out[o + r] = src[r * cols + c]!;
    }
  });
  return out;
}

function reorderBias(src: Float32Array, offset: number, h: number, perm: number[]): Float32Array {
  const out = new Float32Array(perm.length * h);
  perm.forEach((from, g) => {
    out.set(src.subarray(offset + from * h, offset + (from + 1) * h), g * h);
  });
  return out;
}

/** `trainable` as `model.config` writes it: absent when true. */
/** @internal */
export function frozen(layer: Layer): { trainable?: false } {
  return layer.trainable ? {} : { trainable: false };
}

/** `recurrentActivation` as `model.config` writes it: absent for the sigmoid. */
/** @internal */
export function gateOption(a: RecurrentActivation): { recurrentActivation?: RecurrentActivation } {
  return a === 'sigmoid' ? {} : { recurrentActivation: a };
}

/** @internal */
export function parseModelJson(modelJson: object | string): Json {
  if (typeof modelJson === 'string') {
    try {
      modelJson = JSON.parse(modelJson) as object;
    } catch (err) {
      throw new InvalidArgumentError(`tfjs import: model.json is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  if (!isObject(modelJson)) fail(`modelJson must be an object or a JSON string, got ${describe(modelJson)}`);
  return modelJson;
}

/**
 * @internal Layer `i`'s weights in gyre's layout under `prefix` (`{prefix}.weight_ih_l0`,
 * `{prefix}.weight`, …), added to `out`; `width` is its input width when known. Returns the
 * input width the kernel has and, for a GRU, whether the reset gate comes after the product.
 */
export function layerParameters(
  slots: Map<string, Entry>,
  layers: Layer[],
  i: number,
  width: number | undefined,
  prefix: string,
  out: Record<string, Float32Array>,
): { inWidth: number; resetAfter: boolean | undefined } {
  const p = layers[i]!.parsed;
  if (p.kind === 'embedding') {
    out[`${prefix}.weight`] = take(slots, layers, i, undefined, 'embeddings', [p.vocab, p.dim]);
    return { inWidth: p.vocab, resetAfter: undefined };
  }
  if (p.kind === 'dense') {
    const kernel = take(slots, layers, i, undefined, 'kernel', [width, p.units]);
    const inWidth = kernel.length / p.units;
    out[`${prefix}.weight`] = transposeBlocks(kernel, inWidth, p.units, [0]);
    out[`${prefix}.bias`] = p.useBias ? take(slots, layers, i, undefined, 'bias', [p.units]) : new Float32Array(p.units);
    return { inWidth, resetAfter: undefined };
  }
  const o = p.opts;
  const { gates, perm } = CELLS[o.cell];
  const h = o.units;
  let resetAfter = o.resetAfter;
  let inWidth = width ?? 0;
  for (const dir of layers[i]!.directions) {
    const suffix = dir === 'backward' ? '_reverse' : '';
    const kernel = take(slots, layers, i, dir, 'kernel', [width, gates * h]);
    inWidth = kernel.length / (gates * h);
    const recurrent = take(slots, layers, i, dir, 'recurrent_kernel', [h, gates * h]);
    out[`${prefix}.weight_ih_l0${suffix}`] = transposeBlocks(kernel, inWidth, h, perm);
    out[`${prefix}.weight_hh_l0${suffix}`] = transposeBlocks(recurrent, h, h, perm);
    let bih: Float32Array = new Float32Array(gates * h);
    let bhh: Float32Array = new Float32Array(gates * h);
    if (o.useBias) {
      const e = slots.get(slotKey(i, dir, 'bias'))!;
      if (o.cell === 'GRU' && resetAfter === undefined) resetAfter = e.shape.length === 2;
      const twoRows = o.cell === 'GRU' && resetAfter === true;
      const bias = take(slots, layers, i, dir, 'bias', twoRows ? [2, gates * h] : [gates * h]);
      bih = reorderBias(bias, 0, h, perm);
      if (twoRows) bhh = reorderBias(bias, gates * h, h, perm);
    }
    out[`${prefix}.bias_ih_l0${suffix}`] = bih;
    out[`${prefix}.bias_hh_l0${suffix}`] = bhh;
  }
  return { inWidth, resetAfter };
}

/**
 * Converts a tfjs Layers model (model.json and its weight bytes) into a gyre spec and gyre
 * parameters without building the model. See {@link importTfjs}.
 */
export function convertTfjs(modelJson: object | string, weightData: TfjsWeightData): TfjsConversion {
  const json = parseModelJson(modelJson);
  const layers = sequentialLayers(json.modelTopology);
  return convertLayers(layers, producerOf(json), () => decodeEntries(weightEntries(json), concatBytes(weightData)));
}

/**
 * @internal A Keras Sequential config's layer list (from tfjs' model.json or Keras' own
 * config.json) and its stored weights (read only once the layers are known to convert) → a gyre
 * spec and parameters.
 */
export function convertLayers(configLayers: unknown[], producer: Producer, readEntries: () => Entry[]): TfjsConversion {
  const { layers, features: configFeatures, maskValue } = parseTopology(configLayers, producer);
  const slots = assignWeights(layers, readEntries());

  const specLayers: LayerSpec[] = [];
  const parameters: Record<string, Float32Array> = {};
  let input: ModelSpec['input'] | undefined;
  let width: number | undefined = configFeatures;
  layers.forEach((layer, i) => {
    const p = layer.parsed;
    const converted = layerParameters(slots, layers, i, width, String(i), parameters);
    if (i === 0)
      input =
        p.kind === 'embedding'
          ? p.maskZero
            ? { vocabSize: p.vocab, maskZero: true }
            : { vocabSize: p.vocab }
          : { features: converted.inWidth };
    if (p.kind === 'embedding') {
      specLayers.push({ type: 'embedding', dim: p.dim, ...frozen(layer) });
      width = p.dim;
      return;
    }
    if (p.kind === 'dense') {
      specLayers.push({ type: 'dense', units: p.units, activation: p.activation, ...frozen(layer) });
      width = p.units;
      return;
    }
    const o = p.opts;
    const { type } = CELLS[o.cell];
    const h = o.units;
    const resetAfter = converted.resetAfter;
    const common = {
      hiddenSize: h,
      numLayers: 1,
      bidirectional: p.bidirectional,
      ...(p.bidirectional ? { merge: p.merge } : {}),
      returnSequences: o.returnSequences,
      ...(o.goBackwards ? { goBackwards: true } : {}),
      ...(o.inputDropout > 0 ? { inputDropout: o.inputDropout } : {}),
      ...(o.recurrentDropout > 0 ? { recurrentDropout: o.recurrentDropout } : {}),
      ...frozen(layer),
    };
    const spec: LayerSpec =
      type === 'rnn'
        ? { type, ...common, nonlinearity: o.relu ? 'relu' : 'tanh' }
        : type === 'gru'
          ? { type, ...common, resetAfter: resetAfter ?? false, ...gateOption(o.recurrentActivation) }
          : { type, ...common, ...gateOption(o.recurrentActivation) };
    specLayers.push(spec);
    width = p.bidirectional && p.merge === 'concat' ? 2 * h : h;
  });
  if (input === undefined) throw new InternalError('tfjs import: no input size');
  if (maskValue !== undefined && 'features' in input) input = { ...input, maskValue };
  return { spec: { input, layers: specLayers }, parameters };
}

/**
 * Builds a gyre model from a TensorFlow.js Layers model: `modelJson` is model.json (its
 * `modelTopology`, a Keras Sequential, and `weightsManifest`; tfjs `ModelArtifacts` with
 * `weightSpecs` work too) and `weightData` the weight files' bytes concatenated in manifest
 * order (or given as a list). See the module documentation for what maps how.
 * @throws {InvalidArgumentError} for an unsupported layer or option (the message names the
 *   layer and the option) or unexpected weights; {@link MissingArgumentError} for missing
 *   weights; {@link ShapeMismatchError} for weights of the wrong shape or too few/many bytes.
 */
export function importTfjs(modelJson: object | string, weightData: TfjsWeightData): Model {
  return modelOf(convertTfjs(modelJson, weightData));
}

/** @internal The gyre model of a conversion, its parameters loaded. */
export function modelOf({ spec, parameters }: TfjsConversion): Model {
  const model = sequential(spec);
  const expected = model.parameters();
  const names = Object.keys(expected);
  const mismatch = names.filter((n) => parameters[n]?.length !== expected[n]!.data.length);
  const unknown = Object.keys(parameters).filter((n) => !(n in expected));
  if (mismatch.length > 0 || unknown.length > 0) {
    throw new InternalError(`tfjs import: converted parameters do not fit the gyre model (${[...mismatch, ...unknown].join(', ')})`);
  }
  model.setParameters(parameters);
  return model;
}

/**
 * Reads a TensorFlow.js Layers model from disk (model.json and the weight files its manifest
 * names, relative to it, as written by tfjs or `tensorflowjs_converter`) and builds a gyre
 * model with {@link importTfjs}.
 */
export async function loadTfjs(modelJsonPath: string): Promise<Model> {
  const { json, shards } = await readTfjs(modelJsonPath);
  try {
    return importTfjs(json, shards);
  } catch (err) {
    // Name the file: `tfjs import (path/model.json): layer "lstm" (...): ...`.
    if (err instanceof GyreError) err.message = err.message.replace(/^tfjs import: /, `tfjs import (${modelJsonPath}): `);
    throw err;
  }
}

/** @internal model.json and the weight files its manifest names, relative to it. */
export async function readTfjs(modelJsonPath: string): Promise<{ json: Json; shards: Uint8Array[] }> {
  if (typeof modelJsonPath !== 'string') throw new InvalidArgumentError(`modelJsonPath must be a string, got ${describe(modelJsonPath)}`);
  const json = parseModelJson((await readBytes(modelJsonPath, 'read tfjs model.json')).toString('utf8'));
  const dir = dirname(resolve(modelJsonPath));
  const shards: Uint8Array[] = [];
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) fail(`${modelJsonPath} has no weightsManifest`);
  for (const [g, group] of manifest.entries()) {
    const paths = isObject(group) ? group.paths : undefined;
    if (!Array.isArray(paths)) fail(`${modelJsonPath}: weightsManifest[${g}] has no paths array`);
    for (const p of paths) {
      if (typeof p !== 'string') fail(`${modelJsonPath}: weightsManifest[${g}].paths has a non-string entry ${describe(p)}`);
      const file = resolve(dir, p);
      try {
        shards.push(await readFile(file));
      } catch (err) {
        const e = fileError(err, 'read tfjs weight file', file);
        if (e instanceof GyreError) e.message += `, named by ${modelJsonPath}`;
        throw e;
      }
    }
  }
  return { json, shards };
}
