/**
 * ONNX export of sequential models: `toOnnx(model)` returns the bytes of an ONNX model whose
 * output equals `model.predictSync(x)`; `saveOnnx(model, path)` writes them to a file.
 *
 * The graph (default opset 17, standard `ai.onnx` operators only):
 *
 * | name | type | shape |
 * | --- | --- | --- |
 * | input `input` | float32 features, or **int64** token ids when the model starts with an embedding | `[batch, time, features]` / `[batch, time]` |
 * | input `sequence_lens` | int32, each in `1..time` | `[batch]` |
 * | output `output` | float32 | `[batch, time, units]` (zeros at steps ≥ the sequence's length), or `[batch, units]` |
 * | inputs `initial_h.{i}.l{l}`, `initial_c.{i}.l{l}` (`state: true`) | float32 | `[batch, hiddenSize]` |
 * | outputs `Y_h.{i}.l{l}`, `Y_c.{i}.l{l}` (`state: true`) | float32 | `[batch, hiddenSize]` |
 *
 * `batch` and `time` are symbolic. Values at padded steps are ignored (padded token ids need not
 * be valid). Embeddings become `Gather`; recurrent layers become one ONNX `LSTM` / `GRU` / `RNN`
 * node per stacked layer (time-major, with `sequence_lens`, gates reordered from PyTorch's
 * order); dense layers become `MatMul` + `Add` + their activation.
 *
 * The protobuf encoding is written here, so the package keeps no runtime dependency.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, MissingArgumentError, ShapeMismatchError } from '../errors.js';
import type { Model } from '../model/index.js';
import type { Seq2Seq } from '../text/seq2seq.js';
import { positiveInt } from '../util/check.js';
import { fileError } from '../util/files.js';

/** Options of {@link toOnnx} and {@link saveOnnx}. */
export interface OnnxOptions {
  /** The `ai.onnx` opset to declare, {@link ONNX_MIN_OPSET}..{@link ONNX_MAX_OPSET}. Default {@link ONNX_DEFAULT_OPSET}. */
  opset?: number;
  /** `producer_name` of the model. Default `'gyre'`. */
  producer?: string;
  /**
   * Carry the recurrent state across runs: for each recurrent layer `i`, stacked layer `l` and
   * direction, the graph takes its starting state as inputs `initial_h.{i}.l{l}` (and
   * `initial_c.{i}.l{l}` for an LSTM; `_reverse` appended for the backward direction of a
   * bidirectional layer), `[batch, hiddenSize]` float32 each (zeros for a fresh start), and
   * returns each sequence's final state as outputs `Y_h.{i}.l{l}` / `Y_c.{i}.l{l}` (the state
   * after its last valid step; for the backward direction, after step 0), so that a server can
   * run a stream in chunks, feeding one run's `Y_*` outputs as the next run's `initial_*`
   * inputs (onnxruntime keeps no state between runs). Listed in {@link onnxStateNames}'s order,
   * which is {@link Stream.toArray}'s. Default `false`.
   */
  state?: boolean;
}

/** One recurrent state tensor of a {@link toOnnx} export with `state: true`. */
export interface OnnxStateName {
  /** The graph input that takes the starting state, e.g. `initial_h.0.l0`. */
  input: string;
  /** The graph output that returns the final state, e.g. `Y_h.0.l0`. */
  output: string;
  /** `'h'` the hidden state, `'c'` an LSTM's cell state. */
  kind: 'h' | 'c';
  /** Index of the recurrent layer in `model.config.layers`. */
  layer: number;
  /** Stacked layer within it, `0..numLayers − 1`. */
  stack: number;
  /** `'forward'`, or `'reverse'` for a bidirectional layer's backward direction. */
  direction: 'forward' | 'reverse';
  /** Its shape's second dimension: `[batch, hiddenSize]`. */
  hiddenSize: number;
}

/** The opset {@link toOnnx} declares by default. */
export const ONNX_DEFAULT_OPSET = 17;
/** The lowest opset the exported graph can declare (axes of Unsqueeze/Squeeze/ReduceSum as inputs). */
export const ONNX_MIN_OPSET = 13;
/** The highest opset the export knows the IR version of. */
export const ONNX_MAX_OPSET = 23;

/** The IR version that goes with each opset (onnx/docs/Versioning.md). */
function irVersion(opset: number): number {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

// ---------------------------------------------------------------------------------------------
// Protobuf encoding (just what onnx.proto needs here: varints and length-delimited fields).

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();

/** One protobuf message being written. */
class Message {
  readonly #parts: Uint8Array[] = [];
  #scratch: number[] = [];

  #flush(): void {
    if (this.#scratch.length) {
      this.#parts.push(Uint8Array.from(this.#scratch));
      this.#scratch = [];
    }
  }

  #varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    if (v < 0x80n) {
      this.#scratch.push(Number(v));
      return;
    }
    while (v >= 0x80n) {
      this.#scratch.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.#scratch.push(Number(v));
  }

  #tag(field: number, wire: 0 | 2): void {
    this.#varint((field << 3) | wire);
  }

  /** An int32/int64/enum field. */
  int(field: number, value: number | bigint): this {
    this.#tag(field, 0);
    this.#varint(value);
    return this;
  }

  /** A bytes field. */
  bytes(field: number, value: Uint8Array): this {
    this.#tag(field, 2);
    this.#varint(value.length);
    this.#flush();
    this.#parts.push(value);
    return this;
  }

  /** A string field. */
  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  /** An embedded message field. */
  message(field: number, value: Message): this {
    return this.bytes(field, value.finish());
  }

  /** A packed repeated float field. */
  packedFloats(field: number, values: readonly number[]): this {
    const bytes = new Uint8Array(4 * values.length);
    const view = new DataView(bytes.buffer);
    values.forEach((v, i) => {
      view.setFloat32(4 * i, v, true);
    });
    return this.bytes(field, bytes);
  }

  /** A packed repeated int64 field. */
  packedInts(field: number, values: readonly number[]): this {
    const inner = new Message();
    for (const v of values) inner.#varint(v);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    this.#flush();
    let n = 0;
    for (const p of this.#parts) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of this.#parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/** TensorProto.DataType. */
const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;
/** AttributeProto.AttributeType. */
const ATTR_INT = 2;
const ATTR_FLOATS = 6;
const ATTR_STRING = 3;
const ATTR_INTS = 7;
const ATTR_STRINGS = 8;

/** A list of floats (an int list is a plain `number[]`). */
class Floats {
  constructor(readonly values: readonly number[]) {}
}

type AttrValue = number | string | readonly number[] | readonly string[] | Floats;

function attribute(name: string, value: AttrValue): Message {
  const a = new Message().string(1, name);
  if (value instanceof Floats) return a.int(20, ATTR_FLOATS).packedFloats(7, value.values);
  if (typeof value === 'number') return a.int(20, ATTR_INT).int(3, value);
  if (typeof value === 'string') return a.int(20, ATTR_STRING).bytes(4, utf8.encode(value));
  if (value.length > 0 && typeof value[0] === 'string') {
    a.int(20, ATTR_STRINGS);
    for (const s of value as readonly string[]) a.bytes(9, utf8.encode(s));
    return a;
  }
  return a.int(20, ATTR_INTS).packedInts(8, value as readonly number[]);
}

function rawBytes(data: Float32Array | Int32Array | BigInt64Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float32Array) view.setFloat32(4 * i, data[i]!, true);
    else if (data instanceof Int32Array) view.setInt32(4 * i, data[i]!, true);
    else view.setBigInt64(8 * i, data[i]!, true);
  }
  return out;
}

function tensor(name: string, dims: readonly number[], data: Float32Array | Int32Array | BigInt64Array): Message {
  const type = data instanceof Float32Array ? FLOAT : data instanceof Int32Array ? INT32 : INT64;
  const t = new Message();
  if (dims.length) t.packedInts(1, dims);
  return t.int(2, type).string(8, name).bytes(9, rawBytes(data));
}

function valueInfo(name: string, elemType: number, dims: readonly (number | string)[]): Message {
  const shape = new Message();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  const tensorType = new Message().int(1, elemType).message(2, shape);
  return new Message().string(1, name).message(2, new Message().message(1, tensorType));
}

// ---------------------------------------------------------------------------------------------
// Graph building.

class Graph {
  readonly nodes: Message[] = [];
  readonly initializers: Message[] = [];
  readonly #used = new Set<string>();
  readonly #constants = new Map<string, string>();

  /** Reserves `name` exactly (a graph input or output); throws if it is taken. */
  claim(name: string): void {
    if (this.#used.has(name)) throw new Error(`toOnnx: value name ${name} is used twice`);
    this.#used.add(name);
  }

  /** A fresh value name. */
  name(base: string): string {
    let name = base;
    for (let i = 1; this.#used.has(name); i++) name = `${base}_${i}`;
    this.#used.add(name);
    return name;
  }

  /** Adds a node; returns its output names (`''` asks for no output in that position). */
  node(op: string, inputs: readonly string[], outputs: readonly string[], attrs: Record<string, AttrValue> = {}): string[] {
    const n = new Message();
    for (const i of inputs) n.string(1, i);
    for (const o of outputs) n.string(2, o);
    n.string(3, this.name(`${op}_${this.nodes.length}`)).string(4, op);
    for (const [k, v] of Object.entries(attrs)) n.message(5, attribute(k, v));
    this.nodes.push(n);
    return [...outputs];
  }

  /** Adds a node with one fresh output named after `base`; returns it. */
  op(op: string, inputs: readonly string[], base: string, attrs: Record<string, AttrValue> = {}): string {
    return this.node(op, inputs, [this.name(base)], attrs)[0]!;
  }

  /** An initializer; returns its name. */
  init(base: string, dims: readonly number[], data: Float32Array | Int32Array | BigInt64Array): string {
    const name = this.name(base);
    this.initializers.push(tensor(name, dims, data));
    return name;
  }

  /** A shared int64 constant (an initializer), scalar when `scalar`. */
  int64(values: readonly number[], scalar = false): string {
    const key = `${scalar ? 's' : 'v'}${values.join(',')}`;
    let name = this.#constants.get(key);
    if (!name) {
      const base = scalar
        ? `const_${values[0]! < 0 ? 'm' : ''}${Math.abs(values[0]!)}`
        : `const_${values.map((v) => (v < 0 ? `m${-v}` : v)).join('_')}`;
      name = this.init(
        base,
        scalar ? [] : [values.length],
        BigInt64Array.from(values, (v) => BigInt(v)),
      );
      this.#constants.set(key, name);
    }
    return name;
  }

  /** A shared float32 scalar constant. */
  float(value: number): string {
    const key = `f${value}`;
    let name = this.#constants.get(key);
    if (!name) {
      name = this.init(`const_f${value}`, [], Float32Array.of(value));
      this.#constants.set(key, name);
    }
    return name;
  }
}

// ---------------------------------------------------------------------------------------------
// The model.

type Layer = Record<string, unknown>;
type Params = Record<string, { data: Float32Array; shape: number[] }>;

// `trainable` and the dropouts are about training: the export leaves them out.
const RECURRENT_KEYS = [
  'type',
  'hiddenSize',
  'numLayers',
  'bidirectional',
  'merge',
  'returnSequences',
  'dropout',
  'inputDropout',
  'recurrentDropout',
  'goBackwards',
  'trainable',
];
const LAYER_KEYS: Record<string, readonly string[]> = {
  embedding: ['type', 'dim', 'trainable'],
  rnn: [...RECURRENT_KEYS, 'nonlinearity'],
  lstm: [...RECURRENT_KEYS, 'recurrentActivation'],
  gru: [...RECURRENT_KEYS, 'resetAfter', 'recurrentActivation'],
  dense: ['type', 'units', 'activation', 'trainable'],
};
const ACTIVATIONS: Record<string, string | undefined> = {
  linear: undefined,
  relu: 'Relu',
  tanh: 'Tanh',
  sigmoid: 'Sigmoid',
  softmax: 'Softmax',
};
/**
 * ONNX `HardSigmoid` (`max(0, min(1, alpha·x + beta))`) alpha and beta of each hard sigmoid
 * gate activation: TensorFlow.js's exactly; Keras 3's `relu6(x + 3) / 6` as `x/6 + 1/2`, equal
 * but for the rounding of one multiplication.
 */
const HARD_SIGMOID: Record<string, readonly [number, number] | undefined> = {
  hardSigmoidTfjs: [0.2, 0.5],
  hardSigmoidKeras3: [1 / 6, 0.5],
};
/** PyTorch gate blocks in ONNX order: LSTM i,f,g,o → i,o,f,c; GRU r,z,n → z,r,h. */
const GATE_ORDER: Record<string, readonly number[]> = { rnn: [0], lstm: [0, 3, 1, 2], gru: [1, 0, 2] };
const ONNX_OP: Record<string, string> = { rnn: 'RNN', lstm: 'LSTM', gru: 'GRU' };

function unsupported(where: string, what: string): InvalidArgumentError {
  return new InvalidArgumentError(`toOnnx: ${where} cannot be exported to ONNX: ${what}`);
}

function parameter(params: Params, name: string, shape: readonly number[]): Float32Array {
  const p = params[name];
  if (!p) throw new MissingArgumentError(`toOnnx: the model has no parameter ${name}`);
  if (p.shape.length !== shape.length || p.shape.some((d, i) => d !== shape[i]) || p.data.length !== shape.reduce((a, b) => a * b, 1)) {
    throw new ShapeMismatchError(`toOnnx: parameter ${name} must have shape [${shape.join(', ')}], got [${p.shape.join(', ')}]`);
  }
  return p.data;
}

/** Reorders gate blocks of `rows` rows × `cols` values each: block `order[k]` of `data` becomes block `k`. */
function reorderGates(data: Float32Array, rows: number, cols: number, order: readonly number[]): Float32Array {
  const block = rows * cols;
  const out = new Float32Array(data.length);
  order.forEach((from, to) => {
    out.set(data.subarray(from * block, (from + 1) * block), to * block);
  });
  return out;
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A value flowing through the graph: `[B, T, w]` (or `[T, B, w]` when `timeMajor`), or `[B, w]`. */
interface Flow {
  name: string;
  width: number;
  sequence: boolean;
  timeMajor: boolean;
}

function batchMajor(g: Graph, x: Flow): Flow {
  if (!x.sequence || !x.timeMajor) return x;
  return { ...x, name: g.op('Transpose', [x.name], 'batch_major', { perm: [1, 0, 2] }), timeMajor: false };
}

function timeMajor(g: Graph, x: Flow): Flow {
  if (!x.sequence || x.timeMajor) return x;
  return { ...x, name: g.op('Transpose', [x.name], 'time_major', { perm: [1, 0, 2] }), timeMajor: true };
}

function checkLayer(where: string, layer: Layer): void {
  const keys = LAYER_KEYS[layer.type as string];
  if (!keys) throw unsupported(where, `layer type ${JSON.stringify(layer.type)} has no ONNX mapping`);
  if (typeof layer.zoneout === 'number' && layer.zoneout > 0) {
    throw unsupported(
      where,
      `zoneout ${layer.zoneout} has no ONNX mapping (ONNX's recurrent operators have no zoneout, whose inference is an expectation)`,
    );
  }
  for (const key of Object.keys(layer)) {
    if (!keys.includes(key)) throw unsupported(where, `option ${key} has no ONNX mapping`);
  }
}

/** The state names of stacked layer `l` of recurrent layer `index`, direction `d`. */
function stateName(prefix: string, index: number, l: number, d: number): string {
  return `${prefix}.${index}.l${l}${d === 1 ? '_reverse' : ''}`;
}

/** The starting state `[D, B, H]` of one stacked layer from its per-direction graph inputs `[B, H]`. */
function stateInput(g: Graph, kind: 'h' | 'c', index: number, l: number, dirs: number): string {
  const parts = Array.from({ length: dirs }, (_, d) => {
    const name = stateName(`initial_${kind}`, index, l, d);
    g.claim(name);
    return g.op('Unsqueeze', [name, g.int64([0])], `${name}_1bh`);
  });
  return dirs === 1 ? parts[0]! : g.op('Concat', parts, `initial_${kind}_l${index}_${l}`, { axis: 0 });
}

/** The per-direction graph outputs `[B, H]` of one stacked layer's final state `[D, B, H]`. */
function stateOutput(g: Graph, kind: 'h' | 'c', value: string, index: number, l: number, dirs: number): void {
  for (let d = 0; d < dirs; d++) {
    const name = stateName(`Y_${kind}`, index, l, d);
    g.claim(name);
    g.node('Gather', [value, g.int64([d], true)], [name], { axis: 0 });
  }
}

function recurrent(g: Graph, where: string, index: number, layer: Layer, input: Flow, params: Params, state: boolean): Flow {
  const type = layer.type as 'rnn' | 'lstm' | 'gru';
  const h = positiveInt(`toOnnx: ${where}: hiddenSize`, layer.hiddenSize);
  const numLayers = positiveInt(`toOnnx: ${where}: numLayers`, layer.numLayers ?? 1);
  const bidirectional = layer.bidirectional === true;
  const merge = layer.merge ?? 'concat';
  if (merge !== 'concat' && merge !== 'sum') throw unsupported(where, `merge ${JSON.stringify(merge)} has no ONNX mapping`);
  const returnSequences = layer.returnSequences !== false;
  const goBackwards = layer.goBackwards === true;
  if (goBackwards && (bidirectional || numLayers > 1)) throw unsupported(where, 'goBackwards on a bidirectional or stacked layer');
  const attrs: Record<string, AttrValue> = {
    hidden_size: h,
    direction: bidirectional ? 'bidirectional' : goBackwards ? 'reverse' : 'forward',
  };
  const dirs = bidirectional ? 2 : 1;
  if (type === 'rnn') {
    const nl = layer.nonlinearity ?? 'tanh';
    if (nl !== 'tanh' && nl !== 'relu') throw unsupported(where, `nonlinearity ${JSON.stringify(nl)} has no ONNX mapping`);
    attrs.activations = Array<string>(dirs).fill(nl === 'relu' ? 'Relu' : 'Tanh');
  }
  if (type === 'gru') {
    const ra = layer.resetAfter ?? true;
    if (typeof ra !== 'boolean') throw unsupported(where, `resetAfter must be a boolean, got ${String(ra)}`);
    attrs.linear_before_reset = ra ? 1 : 0;
  }
  if (type === 'lstm' || type === 'gru') {
    // The gates' activation: ONNX's `activations` (f, g[, h] per direction) with HardSigmoid's
    // alpha and beta, in the order the functions take them.
    const act = layer.recurrentActivation ?? 'sigmoid';
    const hard = typeof act === 'string' && Object.hasOwn(HARD_SIGMOID, act) ? HARD_SIGMOID[act] : undefined;
    if (act !== 'sigmoid' && !hard) throw unsupported(where, `recurrentActivation ${JSON.stringify(act)} has no ONNX mapping`);
    if (hard) {
      const perDirection = type === 'lstm' ? ['HardSigmoid', 'Tanh', 'Tanh'] : ['HardSigmoid', 'Tanh'];
      attrs.activations = Array.from({ length: dirs }, () => perDirection).flat();
      attrs.activation_alpha = new Floats(Array<number>(dirs).fill(hard[0]));
      attrs.activation_beta = new Floats(Array<number>(dirs).fill(hard[1]));
    }
  }
  if (!input.sequence)
    throw unsupported(where, 'a recurrent layer needs a sequence input, but the layer before outputs one row per sequence');
  const order = GATE_ORDER[type]!;
  const gh = order.length * h;
  let x = timeMajor(g, input);
  for (let l = 0; l < numLayers; l++) {
    const inWidth = l === 0 ? x.width : dirs * h;
    const w: Float32Array[] = [];
    const r: Float32Array[] = [];
    const b: Float32Array[] = [];
    for (let d = 0; d < dirs; d++) {
      const s = `${index}.`;
      const sfx = `_l${l}${d === 1 ? '_reverse' : ''}`;
      w.push(reorderGates(parameter(params, `${s}weight_ih${sfx}`, [gh, inWidth]), h, inWidth, order));
      r.push(reorderGates(parameter(params, `${s}weight_hh${sfx}`, [gh, h]), h, h, order));
      b.push(reorderGates(parameter(params, `${s}bias_ih${sfx}`, [gh]), h, 1, order));
      b.push(reorderGates(parameter(params, `${s}bias_hh${sfx}`, [gh]), h, 1, order));
    }
    const base = `l${index}_${type}${l}`;
    const W = g.init(`${base}_W`, [dirs, gh, inWidth], concat(w));
    const R = g.init(`${base}_R`, [dirs, gh, h], concat(r));
    const B = g.init(`${base}_B`, [dirs, 2 * gh], concat(b));
    const top = l === numLayers - 1;
    const wantY = !top || returnSequences;
    const Y = wantY ? g.name(`${base}_Y`) : '';
    const Yh = (top && !returnSequences) || state ? g.name(`${base}_Y_h`) : '';
    const inputs = [x.name, W, R, B, 'sequence_lens'];
    const outputs = Yh ? [Y, Yh] : [Y];
    if (state) {
      inputs.push(stateInput(g, 'h', index, l, dirs));
      if (type === 'lstm') {
        inputs.push(stateInput(g, 'c', index, l, dirs));
        outputs.push(g.name(`${base}_Y_c`));
      }
    }
    g.node(ONNX_OP[type]!, inputs, outputs, attrs);
    if (state) {
      stateOutput(g, 'h', Yh, index, l, dirs);
      if (type === 'lstm') stateOutput(g, 'c', outputs[2]!, index, l, dirs);
    }
    if (top && !returnSequences) {
      // Y_h [D, B, H]: each sequence's final state (forward at its last step, reverse at step 0).
      if (dirs === 2 && merge === 'sum')
        return { name: g.op('ReduceSum', [Yh, g.int64([0])], `${base}_sum`, { keepdims: 0 }), width: h, sequence: false, timeMajor: false };
      if (dirs === 1) return { name: g.op('Squeeze', [Yh, g.int64([0])], `${base}_h`), width: h, sequence: false, timeMajor: false };
      const t = g.op('Transpose', [Yh], `${base}_h_bdh`, { perm: [1, 0, 2] });
      return { name: g.op('Reshape', [t, g.int64([0, dirs * h])], `${base}_h`), width: dirs * h, sequence: false, timeMajor: false };
    }
    // Y [T, D, B, H] → [T, B, D·H] (or the sum of the directions at the layer's output).
    if (top && dirs === 2 && merge === 'sum') {
      return { name: g.op('ReduceSum', [Y, g.int64([1])], `${base}_sum`, { keepdims: 0 }), width: h, sequence: true, timeMajor: true };
    }
    if (dirs === 1 && goBackwards) {
      // Keras' order: the steps as the layer ran them, each sequence's last step first.
      const y = g.op('Squeeze', [Y, g.int64([1])], `${base}_aligned`);
      const lens = g.op('Cast', ['sequence_lens'], `${base}_lens64`, { to: INT64 });
      const out = g.op('ReverseSequence', [y, lens], `${base}_out`, { batch_axis: 1, time_axis: 0 });
      x = { name: out, width: h, sequence: true, timeMajor: true };
    } else if (dirs === 1) {
      x = { name: g.op('Squeeze', [Y, g.int64([1])], `${base}_out`), width: h, sequence: true, timeMajor: true };
    } else {
      const t = g.op('Transpose', [Y], `${base}_tbdh`, { perm: [0, 2, 1, 3] });
      x = { name: g.op('Reshape', [t, g.int64([0, 0, dirs * h])], `${base}_out`), width: dirs * h, sequence: true, timeMajor: true };
    }
  }
  return x;
}

/**
 * The model as an ONNX model (protobuf bytes). Its output equals {@link Model.predictSync}'s on
 * the same padded batch: run it with `input` (`[batch, time, features]` float32, or
 * `[batch, time]` **int64** token ids for a model that starts with an embedding) and
 * `sequence_lens` (int32 `[batch]`, each length in `1..time`; give `time` for unpadded batches).
 * Padded steps are ignored and come out as zeros. Dropout is a training-time option and is
 * left out. Declares opset {@link ONNX_DEFAULT_OPSET} unless `options.opset` says otherwise.
 * With `options.state`, the recurrent layers start from state inputs and return their final
 * states as outputs ({@link OnnxOptions.state}, {@link onnxStateNames}): running a sequence in
 * chunks, each run fed the previous run's final states, gives the outputs of one run over the
 * whole sequence.
 * @throws {InvalidArgumentError} for bad options, or (naming the layer) a layer or option the
 *   export has no ONNX mapping for.
 */
export function toOnnx(model: Model, options: OnnxOptions = {}): Uint8Array {
  checkModel('toOnnx', model);
  if (options === null || typeof options !== 'object')
    throw new InvalidArgumentError(`toOnnx: options must be an object, got ${String(options)}`);
  for (const key of Object.keys(options)) {
    if (key !== 'opset' && key !== 'producer' && key !== 'state')
      throw new InvalidArgumentError(`unknown option ${key}; expected one of opset, producer, state`);
  }
  const withState = options.state ?? false;
  if (typeof withState !== 'boolean') throw new InvalidArgumentError(`state must be a boolean, got ${String(withState)}`);
  const opset = options.opset ?? ONNX_DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < ONNX_MIN_OPSET || opset > ONNX_MAX_OPSET) {
    throw new InvalidArgumentError(`opset must be an integer in ${ONNX_MIN_OPSET}..${ONNX_MAX_OPSET}, got ${String(opset)}`);
  }
  const producer = options.producer ?? 'gyre';
  if (typeof producer !== 'string') throw new InvalidArgumentError(`producer must be a string, got ${String(producer)}`);

  const config = model.config;
  // Read as plain records: every key is checked below, whatever the types promise.
  const layers = config.layers as unknown as Layer[];
  const input = config.input as unknown as Record<string, unknown>;
  let tokens: boolean;
  let width: number;
  if ('features' in input) {
    tokens = false;
    width = positiveInt('toOnnx: input: features', input.features);
  } else if ('vocabSize' in input) {
    tokens = true;
    width = positiveInt('toOnnx: input: vocabSize', input.vocabSize);
  } else {
    throw unsupported('input', `input ${JSON.stringify(input)} has no ONNX mapping`);
  }
  if (!Array.isArray(layers) || layers.length === 0) throw unsupported('the model', 'it has no layers');
  layers.forEach((layer, i) => {
    checkLayer(`layers[${i}] (${String(layer.type)})`, layer);
  });
  if (tokens !== (layers[0]!.type === 'embedding')) {
    throw unsupported('layers[0]', 'a token model must start with an embedding, and only a token model may');
  }
  const states = withState ? stateNames(layers) : [];
  if (withState && states.length === 0)
    throw new InvalidArgumentError('state must be false for a model without recurrent layers (it has no state to carry), got true');
  const params = model.parameters();

  const g = new Graph();
  g.name('input');
  g.name('sequence_lens');
  g.name('output');
  // mask [B, T] bool: step < sequence_lens; built when first needed.
  let maskName: string | undefined;
  const mask = (): string => {
    if (maskName === undefined) {
      const shape = g.op('Shape', ['input'], 'input_shape');
      const steps = g.op('Gather', [shape, g.int64([1], true)], 'time', { axis: 0 });
      const range = g.op('Range', [g.int64([0], true), steps, g.int64([1], true)], 'steps');
      const lens = g.op('Cast', ['sequence_lens'], 'lens64', { to: INT64 });
      maskName = g.op(
        'Less',
        [g.op('Unsqueeze', [range, g.int64([0])], 'steps_1t'), g.op('Unsqueeze', [lens, g.int64([1])], 'lens_b1')],
        'mask',
      );
    }
    return maskName;
  };

  let x: Flow = { name: 'input', width, sequence: true, timeMajor: false };
  layers.forEach((layer, i) => {
    const where = `layers[${i}] (${String(layer.type)})`;
    switch (layer.type) {
      case 'embedding': {
        if (i !== 0 || !tokens) throw unsupported(where, 'an embedding must be the first layer of a token model');
        const dim = positiveInt(`toOnnx: ${where}: dim`, layer.dim);
        const weight = g.init(`l${i}_embedding`, [width, dim], parameter(params, `${i}.weight`, [width, dim]));
        // Padded steps may hold anything: look up token 0 there instead.
        let ids = g.op('Where', [mask(), 'input', g.int64([0], true)], 'ids');
        const next = layers[i + 1]?.type;
        const toTime = next === 'rnn' || next === 'lstm' || next === 'gru';
        if (toTime) ids = g.op('Transpose', [ids], 'ids_tb', { perm: [1, 0] });
        x = { name: g.op('Gather', [weight, ids], `l${i}_embedded`, { axis: 0 }), width: dim, sequence: true, timeMajor: toTime };
        break;
      }
      case 'rnn':
      case 'lstm':
      case 'gru':
        x = recurrent(g, where, i, layer, x, params, withState);
        break;
      case 'dense': {
        const units = positiveInt(`toOnnx: ${where}: units`, layer.units);
        const activation = (layer.activation ?? 'linear') as string;
        if (!Object.hasOwn(ACTIVATIONS, activation))
          throw unsupported(where, `activation ${JSON.stringify(activation)} has no ONNX mapping`);
        const w = parameter(params, `${i}.weight`, [units, x.width]);
        const wt = new Float32Array(w.length);
        for (let u = 0; u < units; u++) for (let k = 0; k < x.width; k++) wt[k * units + u] = w[u * x.width + k]!;
        const W = g.init(`l${i}_dense_W`, [x.width, units], wt);
        const B = g.init(`l${i}_dense_b`, [units], parameter(params, `${i}.bias`, [units]).slice());
        let y = g.op('Add', [g.op('MatMul', [x.name, W], `l${i}_matmul`), B], `l${i}_linear`);
        const op = ACTIVATIONS[activation];
        if (op) y = g.op(op, [y], `l${i}_${activation}`, op === 'Softmax' ? { axis: -1 } : {});
        x = { ...x, name: y, width: units };
        break;
      }
      default:
        throw unsupported(where, `layer type ${JSON.stringify(layer.type)} has no ONNX mapping`);
    }
  });

  if (x.sequence) {
    // Zeros at padded steps, as predictSync gives.
    x = batchMajor(g, x);
    const m = g.op('Unsqueeze', [mask(), g.int64([2])], 'mask_bt1');
    g.node('Where', [m, x.name, g.float(0)], ['output']);
  } else {
    g.node('Identity', [x.name], ['output']);
  }

  const graph = new Message();
  for (const n of g.nodes) graph.message(1, n);
  graph.string(2, 'gyre');
  for (const t of g.initializers) graph.message(5, t);
  graph.string(
    10,
    'input: ' +
      (tokens ? 'int64 token ids [batch, time]' : 'float32 features [batch, time, features]') +
      '; sequence_lens: int32 [batch], each in 1..time; output: ' +
      (x.sequence ? 'float32 [batch, time, units], zeros at padded steps' : 'float32 [batch, units]'),
  );
  graph.message(11, valueInfo('input', tokens ? INT64 : FLOAT, tokens ? ['batch', 'time'] : ['batch', 'time', width]));
  graph.message(11, valueInfo('sequence_lens', INT32, ['batch']));
  for (const s of states) graph.message(11, valueInfo(s.input, FLOAT, ['batch', s.hiddenSize]));
  graph.message(12, valueInfo('output', FLOAT, x.sequence ? ['batch', 'time', x.width] : ['batch', x.width]));
  for (const s of states) graph.message(12, valueInfo(s.output, FLOAT, ['batch', s.hiddenSize]));

  const m = new Message().int(1, irVersion(opset)).string(2, producer);
  const version = gyreVersion();
  if (version) m.string(3, version);
  m.message(7, graph);
  m.message(8, new Message().string(1, '').int(2, opset));
  m.message(14, new Message().string(1, 'gyre.config').string(2, JSON.stringify(config)));
  if (withState) m.message(14, new Message().string(1, 'gyre.state').string(2, JSON.stringify(states)));
  return m.finish();
}

function checkModel(fn: string, model: Model): void {
  if (model === null || typeof model !== 'object' || !('config' in model)) {
    throw new InvalidArgumentError(
      `${fn}: model must be a gyre Model, got ${model === null ? 'null' : typeof model === 'object' ? 'an object without a config' : typeof model}`,
    );
  }
}

/** The state tensors of the recurrent layers among `layers`, in {@link Stream.toArray}'s order. */
function stateNames(layers: readonly Layer[]): OnnxStateName[] {
  const hidden: OnnxStateName[] = [];
  const cell: OnnxStateName[] = [];
  if (!Array.isArray(layers)) return hidden;
  layers.forEach((layer, i) => {
    const type = layer.type;
    if (type !== 'rnn' && type !== 'lstm' && type !== 'gru') return;
    const where = `layers[${i}] (${type})`;
    const hiddenSize = positiveInt(`toOnnx: ${where}: hiddenSize`, layer.hiddenSize);
    const numLayers = positiveInt(`toOnnx: ${where}: numLayers`, layer.numLayers ?? 1);
    const dirs = layer.bidirectional === true ? 2 : 1;
    for (let l = 0; l < numLayers; l++) {
      for (let d = 0; d < dirs; d++) {
        const at = { layer: i, stack: l, direction: d === 1 ? ('reverse' as const) : ('forward' as const), hiddenSize };
        hidden.push({ input: stateName('initial_h', i, l, d), output: stateName('Y_h', i, l, d), kind: 'h', ...at });
        if (type === 'lstm') cell.push({ input: stateName('initial_c', i, l, d), output: stateName('Y_c', i, l, d), kind: 'c', ...at });
      }
    }
  });
  return [...hidden, ...cell];
}

/**
 * The recurrent state inputs and outputs of `toOnnx(model, { state: true })`, hidden states
 * first, then LSTM cell states, each by layer, stacked layer and direction: the order of
 * {@link Stream.toArray}, so that a stream's saved state (`[batch, hiddenSize]` blocks, one after
 * another) splits into the `initial_*` feeds in this order, and the `Y_*` outputs concatenated in
 * this order are a state for {@link Model.restoreStream}. The export also stores this list as
 * the metadata entry `gyre.state` (JSON).
 * @throws {InvalidArgumentError} if `model` is not a gyre model.
 */
export function onnxStateNames(model: Model): OnnxStateName[] {
  checkModel('onnxStateNames', model);
  return stateNames(model.config.layers as unknown as Layer[]);
}

let cachedVersion: string | null | undefined;
function gyreVersion(): string | null {
  if (cachedVersion === undefined) {
    try {
      cachedVersion = String(JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version);
    } catch {
      cachedVersion = null;
    }
  }
  return cachedVersion;
}

/**
 * Writes {@link toOnnx}'s bytes to `path`: to a temporary file in the same directory first,
 * renamed over `path` once complete, so a reader never sees a partial model.
 */
export async function saveOnnx(model: Model, path: string, options: OnnxOptions = {}): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError(`path must be a non-empty string, got ${String(path)}`);
  const bytes = toOnnx(model, options);
  const tmp = join(dirname(path), `.${process.pid}.${randomBytes(6).toString('hex')}.onnx.tmp`);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw fileError(e, 'write ONNX file', path);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoder–decoders.

/** {@link seq2seqToOnnx}'s two models. */
export interface Seq2SeqOnnx {
  /**
   * The encoder: inputs `source` (int64 token ids `[batch, time]`) and `sequence_lens` (int32
   * `[batch]`, each in `1..time`); outputs `memory` (`[batch, time, D]`, zeros past each
   * length), `h0` (`[batch, D]`: the top layer's final states, forward then backward) and, for
   * an LSTM, `c0`.
   */
  encoder: Uint8Array;
  /**
   * One decoder step: inputs `token` (int64 `[batch]`: the start id first, then each row's last
   * token), `h`, `c` (LSTM), `h_tilde` (input feeding; zeros at the first step), all
   * `[batch, D]`, `memory` and `sequence_lens` (the encoder's, one row per decoded row); outputs
   * `log_probs` (`[batch, targetVocab]`, the log-softmax of the next token), `h_next`,
   * `c_next` (LSTM), `h_tilde_next` and `attention` (`[batch, time]`). Run in a beam loop it
   * gives `Seq2Seq.transduce`'s outputs and log-probabilities.
   */
  decoderStep: Uint8Array;
}

/** A model's protobuf bytes around a built graph. */
function finishModel(
  g: Graph,
  name: string,
  doc: string,
  inputs: Message[],
  outputs: Message[],
  opset: number,
  meta: Record<string, string>,
): Uint8Array {
  const graph = new Message();
  for (const n of g.nodes) graph.message(1, n);
  graph.string(2, name);
  for (const t of g.initializers) graph.message(5, t);
  graph.string(10, doc);
  for (const i of inputs) graph.message(11, i);
  for (const o of outputs) graph.message(12, o);
  const m = new Message().int(1, irVersion(opset)).string(2, 'gyre');
  const version = gyreVersion();
  if (version) m.string(3, version);
  m.message(7, graph);
  m.message(8, new Message().string(1, '').int(2, opset));
  for (const [k, v] of Object.entries(meta)) m.message(14, new Message().string(1, k).string(2, v));
  return m.finish();
}

/** `W` `[rows, cols]` row-major, transposed to `[cols, rows]`. */
function transposed(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c]!;
  return out;
}

/** The ONNX attributes of a recurrent node of `cell` (PyTorch's GRU resets after the product). */
function cellAttrs(cell: string, hidden: number, dirs: number): Record<string, AttrValue> {
  const attrs: Record<string, AttrValue> = { hidden_size: hidden, direction: dirs === 2 ? 'bidirectional' : 'forward' };
  if (cell === 'gru') attrs.linear_before_reset = 1;
  if (cell === 'rnn') attrs.activations = Array<string>(dirs).fill('Tanh');
  return attrs;
}

/**
 * An encoder–decoder as two ONNX models (default opset 17, standard operators): the encoder
 * over whole sources, and one decoder step for a beam loop in onnxruntime (it keeps no state:
 * the step's states go in and come out). See {@link Seq2SeqOnnx} for the inputs and outputs.
 * @throws {InvalidArgumentError} for a bad option.
 */
export function seq2seqToOnnx(model: Seq2Seq, options: { opset?: number } = {}): Seq2SeqOnnx {
  if (model === null || typeof model !== 'object' || typeof (model as Partial<Seq2Seq>).parameters !== 'function') {
    throw new InvalidArgumentError(`seq2seqToOnnx: model must be a Seq2Seq, got ${String(model)}`);
  }
  for (const key of Object.keys(options ?? {})) {
    if (key !== 'opset') throw new InvalidArgumentError(`unknown option ${key}; expected opset`);
  }
  const opset = options.opset ?? ONNX_DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < ONNX_MIN_OPSET || opset > ONNX_MAX_OPSET) {
    throw new InvalidArgumentError(`opset must be an integer in ${ONNX_MIN_OPSET}..${ONNX_MAX_OPSET}, got ${String(opset)}`);
  }
  const c = model.config as {
    cell: 'lstm' | 'gru' | 'rnn';
    sourceVocab: number;
    targetVocab: number;
    embedding: number;
    hidden: number;
    layers: number;
    bidirectional: boolean;
    score: 'dot' | 'general' | { additive: { units: number } };
    inputFeeding: boolean;
  };
  const params = model.parameters();
  const dirs = c.bidirectional ? 2 : 1;
  const h = c.hidden;
  const d = h * dirs;
  const e = c.embedding;
  const order = GATE_ORDER[c.cell]!;
  const gates = order.length;
  const lstm = c.cell === 'lstm';
  const meta = { 'gyre.seq2seq': JSON.stringify(c) };

  // The encoder.
  const g = new Graph();
  for (const n of ['source', 'sequence_lens', 'memory', 'h0', 'c0']) g.claim(n);
  const shape = g.op('Shape', ['source'], 'source_shape');
  const steps = g.op('Gather', [shape, g.int64([1], true)], 'time', { axis: 0 });
  const range = g.op('Range', [g.int64([0], true), steps, g.int64([1], true)], 'steps');
  const lens = g.op('Cast', ['sequence_lens'], 'lens64', { to: INT64 });
  const mask = g.op(
    'Less',
    [g.op('Unsqueeze', [range, g.int64([0])], 'steps_1t'), g.op('Unsqueeze', [lens, g.int64([1])], 'lens_b1')],
    'mask',
  );
  const ids = g.op('Transpose', [g.op('Where', [mask, 'source', g.int64([0], true)], 'ids')], 'ids_tb', { perm: [1, 0] });
  const srcEmb = g.init('source_embedding', [c.sourceVocab, e], parameter(params, 'encoder.embedding.weight', [c.sourceVocab, e]));
  let x = g.op('Gather', [srcEmb, ids], 'embedded', { axis: 0 });
  let yh = '';
  let yc = '';
  for (let l = 0; l < c.layers; l++) {
    const inWidth = l === 0 ? e : d;
    const w: Float32Array[] = [];
    const r: Float32Array[] = [];
    const b: Float32Array[] = [];
    for (let k = 0; k < dirs; k++) {
      const sfx = `_l${l}${k === 1 ? '_reverse' : ''}`;
      w.push(reorderGates(parameter(params, `encoder.rnn.weight_ih${sfx}`, [gates * h, inWidth]), h, inWidth, order));
      r.push(reorderGates(parameter(params, `encoder.rnn.weight_hh${sfx}`, [gates * h, h]), h, h, order));
      b.push(reorderGates(parameter(params, `encoder.rnn.bias_ih${sfx}`, [gates * h]), h, 1, order));
      b.push(reorderGates(parameter(params, `encoder.rnn.bias_hh${sfx}`, [gates * h]), h, 1, order));
    }
    const W = g.init(`encoder_W${l}`, [dirs, gates * h, inWidth], concat(w));
    const R = g.init(`encoder_R${l}`, [dirs, gates * h, h], concat(r));
    const B = g.init(`encoder_B${l}`, [dirs, 2 * gates * h], concat(b));
    const Y = g.name(`encoder_Y${l}`);
    yh = g.name(`encoder_Y_h${l}`);
    const outs = [Y, yh];
    if (lstm) {
      yc = g.name(`encoder_Y_c${l}`);
      outs.push(yc);
    }
    g.node(ONNX_OP[c.cell]!, [x, W, R, B, 'sequence_lens'], outs, cellAttrs(c.cell, h, dirs));
    // Y [T, dirs, B, H] → [T, B, dirs·H].
    const t = g.op('Transpose', [Y], `encoder_tbdh${l}`, { perm: [0, 2, 1, 3] });
    x = g.op('Reshape', [t, g.int64([0, 0, d])], `encoder_out${l}`);
  }
  g.node('Transpose', [x], ['memory'], { perm: [1, 0, 2] });
  // Final states [dirs, B, H] → [B, dirs·H]: forward then backward, side by side.
  const joinStates = (value: string, out: string) => {
    g.node('Reshape', [g.op('Transpose', [value], `${out}_bdh`, { perm: [1, 0, 2] }), g.int64([0, d])], [out]);
  };
  joinStates(yh, 'h0');
  if (lstm) joinStates(yc, 'c0');
  const encInputs = [valueInfo('source', INT64, ['batch', 'time']), valueInfo('sequence_lens', INT32, ['batch'])];
  const encOutputs = [valueInfo('memory', FLOAT, ['batch', 'time', d]), valueInfo('h0', FLOAT, ['batch', d])];
  if (lstm) encOutputs.push(valueInfo('c0', FLOAT, ['batch', d]));
  const encoder = finishModel(
    g,
    'gyre_seq2seq_encoder',
    'source: int64 token ids [batch, time]; sequence_lens: int32 [batch]; memory [batch, time, D]; h0 (and c0) [batch, D]',
    encInputs,
    encOutputs,
    opset,
    meta,
  );

  // One decoder step.
  const s = new Graph();
  for (const n of ['token', 'h', 'c', 'h_tilde', 'memory', 'sequence_lens', 'log_probs', 'h_next', 'c_next', 'h_tilde_next', 'attention'])
    s.claim(n);
  const tgtEmb = s.init('target_embedding', [c.targetVocab, e], parameter(params, 'decoder.embedding.weight', [c.targetVocab, e]));
  let input = s.op('Gather', [tgtEmb, 'token'], 'embedded', { axis: 0 });
  const cellIn = e + (c.inputFeeding ? d : 0);
  if (c.inputFeeding) input = s.op('Concat', [input, 'h_tilde'], 'fed', { axis: 1 });
  const W = s.init(
    'decoder_W',
    [1, gates * d, cellIn],
    reorderGates(parameter(params, 'decoder.rnn.weight_ih', [gates * d, cellIn]), d, cellIn, order),
  );
  const R = s.init('decoder_R', [1, gates * d, d], reorderGates(parameter(params, 'decoder.rnn.weight_hh', [gates * d, d]), d, d, order));
  const B = s.init(
    'decoder_B',
    [1, 2 * gates * d],
    concat([
      reorderGates(parameter(params, 'decoder.rnn.bias_ih', [gates * d]), d, 1, order),
      reorderGates(parameter(params, 'decoder.rnn.bias_hh', [gates * d]), d, 1, order),
    ]),
  );
  const x1 = s.op('Unsqueeze', [input, s.int64([0])], 'x_1bi');
  const cellInputs = [x1, W, R, B, '', s.op('Unsqueeze', ['h', s.int64([0])], 'h_1bd')];
  const cellOutputs = ['', s.name('Y_h')];
  if (lstm) {
    cellInputs.push(s.op('Unsqueeze', ['c', s.int64([0])], 'c_1bd'));
    cellOutputs.push(s.name('Y_c'));
  }
  s.node(ONNX_OP[c.cell]!, cellInputs, cellOutputs, cellAttrs(c.cell, d, 1));
  const hn = s.op('Squeeze', [cellOutputs[1]!, s.int64([0])], 'h_new');
  // Scores [B, T] of h over the memory, masked past each length.
  let scores: string;
  if (c.score === 'dot' || c.score === 'general') {
    const q =
      c.score === 'dot'
        ? hn
        : s.op('MatMul', [hn, s.init('attention_W', [d, d], parameter(params, 'decoder.attention.weight', [d, d]))], 'query');
    scores = s.op(
      'Squeeze',
      [s.op('MatMul', ['memory', s.op('Unsqueeze', [q, s.int64([2])], 'query_bd1')], 'scores_bt1'), s.int64([2])],
      'scores',
    );
  } else {
    const a = c.score.additive.units;
    const wq = s.init('attention_Wq_t', [d, a], transposed(parameter(params, 'decoder.attention.query_weight', [a, d]), a, d));
    const wk = s.init('attention_Wk_t', [d, a], transposed(parameter(params, 'decoder.attention.key_weight', [a, d]), a, d));
    const bias = s.init('attention_b', [a], parameter(params, 'decoder.attention.bias', [a]).slice());
    const v = s.init('attention_v', [a, 1], parameter(params, 'decoder.attention.v', [a]).slice());
    const qa = s.op('Unsqueeze', [s.op('MatMul', [hn, wq], 'query_a'), s.int64([1])], 'query_b1a');
    const ka = s.op('MatMul', ['memory', wk], 'keys_a');
    const t = s.op('Tanh', [s.op('Add', [s.op('Add', [ka, qa], 'keys_query'), bias], 'pre')], 'energy');
    scores = s.op('Squeeze', [s.op('MatMul', [t, v], 'scores_bt1'), s.int64([2])], 'scores');
  }
  const mshape = s.op('Shape', ['memory'], 'memory_shape');
  const msteps = s.op('Gather', [mshape, s.int64([1], true)], 'time', { axis: 0 });
  const mrange = s.op('Range', [s.int64([0], true), msteps, s.int64([1], true)], 'steps');
  const mlens = s.op('Cast', ['sequence_lens'], 'lens64', { to: INT64 });
  const valid = s.op(
    'Less',
    [s.op('Unsqueeze', [mrange, s.int64([0])], 'steps_1t'), s.op('Unsqueeze', [mlens, s.int64([1])], 'lens_b1')],
    'valid',
  );
  const masked = s.op('Where', [valid, scores, s.float(Number.NEGATIVE_INFINITY)], 'masked');
  s.node('Softmax', [masked], ['attention'], { axis: -1 });
  const context = s.op(
    'Squeeze',
    [s.op('MatMul', [s.op('Unsqueeze', ['attention', s.int64([1])], 'attention_b1t'), 'memory'], 'context_b1d'), s.int64([1])],
    'context',
  );
  const joined = s.op('Concat', [context, hn], 'joined', { axis: 1 });
  const wc = s.init('combine_W_t', [2 * d, d], transposed(parameter(params, 'decoder.combine.weight', [d, 2 * d]), d, 2 * d));
  const bc = s.init('combine_b', [d], parameter(params, 'decoder.combine.bias', [d]).slice());
  s.node('Tanh', [s.op('Add', [s.op('MatMul', [joined, wc], 'combined'), bc], 'combined_b')], ['h_tilde_next']);
  const wo = s.init(
    'output_W_t',
    [d, c.targetVocab],
    transposed(parameter(params, 'decoder.output.weight', [c.targetVocab, d]), c.targetVocab, d),
  );
  const bo = s.init('output_b', [c.targetVocab], parameter(params, 'decoder.output.bias', [c.targetVocab]).slice());
  s.node('LogSoftmax', [s.op('Add', [s.op('MatMul', ['h_tilde_next', wo], 'logits_w'), bo], 'logits')], ['log_probs'], { axis: -1 });
  s.node('Identity', [hn], ['h_next']);
  if (lstm) s.node('Squeeze', [cellOutputs[2]!, s.int64([0])], ['c_next']);
  const stepInputs = [valueInfo('token', INT64, ['batch']), valueInfo('h', FLOAT, ['batch', d])];
  if (lstm) stepInputs.push(valueInfo('c', FLOAT, ['batch', d]));
  if (c.inputFeeding) stepInputs.push(valueInfo('h_tilde', FLOAT, ['batch', d]));
  stepInputs.push(valueInfo('memory', FLOAT, ['batch', 'time', d]), valueInfo('sequence_lens', INT32, ['batch']));
  const stepOutputs = [valueInfo('log_probs', FLOAT, ['batch', c.targetVocab]), valueInfo('h_next', FLOAT, ['batch', d])];
  if (lstm) stepOutputs.push(valueInfo('c_next', FLOAT, ['batch', d]));
  stepOutputs.push(valueInfo('h_tilde_next', FLOAT, ['batch', d]), valueInfo('attention', FLOAT, ['batch', 'time']));
  const decoderStep = finishModel(
    s,
    'gyre_seq2seq_decoder_step',
    'one decoder step: token int64 [batch], h (c, h_tilde) [batch, D], memory [batch, time, D], sequence_lens int32 [batch] → log_probs [batch, V], h_next (c_next), h_tilde_next, attention [batch, time]',
    stepInputs,
    stepOutputs,
    opset,
    meta,
  );
  return { encoder, decoderStep };
}
