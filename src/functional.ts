/**
 * The low-level functional API: the native RNN, LSTM and GRU kernels with explicit weights.
 *
 * Every array is a flat, row-major `Float32Array` or `Float64Array`; the dtype of the results
 * follows the input. Shapes (`B` batch, `T` steps, `I` inputSize, `H` hiddenSize, `G` gate
 * blocks: 1 RNN, 4 LSTM, 3 GRU):
 *
 * | argument | shape |
 * | --- | --- |
 * | `input` | `[B, T, I]` (batch-first) |
 * | `h0`, `c0`, `hN`, `cN` | `[B, H]` |
 * | `output` | `[B, T, H]` |
 * | `weights.weight_ih_l0` | `[G*H, I]` |
 * | `weights.weight_hh_l0` | `[G*H, H]` |
 * | `weights.bias_ih_l0`, `weights.bias_hh_l0` | `[G*H]` |
 *
 * Weights follow PyTorch's `torch.nn.RNN` / `LSTM` / `GRU`: the same names, layout and gate
 * order (LSTM `i, f, g, o`; GRU `r, z, n`).
 */
import * as check from './util/check.js';
import { describe } from './util/check.js';
import { GyreError, InvalidArgumentError, MissingArgumentError } from './errors.js';
import * as native from './native.js';
import { RECURRENT_ACTIVATIONS, type RecurrentActivation } from './model/spec.js';

/** A flat float array; results have the same type as the input. */
export type FloatArray = Float32Array | Float64Array;

/** The four tensors of one recurrent layer (layer 0, one direction), by their PyTorch names. */
export interface RecurrentWeights<T extends FloatArray = FloatArray> {
  /** `[G*H, I]` input-to-hidden weights, gate blocks stacked along the rows. */
  weight_ih_l0: T;
  /** `[G*H, H]` hidden-to-hidden weights. */
  weight_hh_l0: T;
  /** `[G*H]` input-to-hidden bias. */
  bias_ih_l0: T;
  /** `[G*H]` hidden-to-hidden bias. */
  bias_hh_l0: T;
}

/** Arguments shared by every forward and backward function. */
export interface RecurrentArgs<T extends FloatArray = FloatArray> {
  /** `[B, T, I]` input sequences, batch-first. */
  input: T;
  /** Batch size `B`, a positive integer. */
  batch: number;
  /** Time steps `T`, a positive integer. */
  steps: number;
  /** Input features `I`, a positive integer. */
  inputSize: number;
  /** Hidden size `H`, a positive integer. */
  hiddenSize: number;
  /** The layer's weights by PyTorch name; all four are required. */
  weights: RecurrentWeights<T>;
  /** `[B, H]` initial hidden state. Default: zeros. */
  h0?: T;
  /**
   * `[B]` each sequence's steps (1 … `T`): the steps past them are padding (outputs 0 there,
   * inputs unread; `hN` is taken at the sequence's own last step). Default: all `T`.
   */
  lengths?: readonly number[] | Uint32Array;
  /**
   * Run each sequence from its last step to its first (the backward half of a bidirectional
   * layer; outputs stay at their steps, `hN` is the state after the first step). Default `false`.
   */
  reverse?: boolean;
}

/** Arguments of {@link rnnForward}. */
export interface RnnArgs<T extends FloatArray = FloatArray> extends RecurrentArgs<T> {
  /** Activation, as PyTorch's `nonlinearity`. Default: `'tanh'`. */
  nonlinearity?: 'tanh' | 'relu';
}

/** Arguments of {@link lstmForward}. */
export interface LstmArgs<T extends FloatArray = FloatArray> extends RecurrentArgs<T> {
  /** `[B, H]` initial cell state. Default: zeros. */
  c0?: T;
  /** Activation of the `i`, `f`, `o` gates ({@link RecurrentActivation}). Default: `'sigmoid'`. */
  recurrentActivation?: RecurrentActivation;
}

/** Arguments of {@link gruForward}. */
export interface GruArgs<T extends FloatArray = FloatArray> extends RecurrentArgs<T> {
  /**
   * Apply the reset gate after the recurrent matrix product (PyTorch, Keras `reset_after=True`,
   * ONNX `linear_before_reset=1`). `false` applies it before (tfjs, Keras `reset_after=False`).
   * Default: `true`.
   */
  resetAfter?: boolean;
  /** Activation of the `r`, `z` gates ({@link RecurrentActivation}). Default: `'sigmoid'`. */
  recurrentActivation?: RecurrentActivation;
}

/** Gradients of a loss with respect to the forward outputs; each defaults to zeros. */
export interface OutputGradients<T extends FloatArray = FloatArray> {
  /** `[B, T, H]` gradient of `output`. */
  gradOutput?: T;
  /** `[B, H]` gradient of `hN`. */
  gradHN?: T;
}

/** Arguments of {@link rnnBackward}: those of the forward call plus output gradients. */
export type RnnBackwardArgs<T extends FloatArray = FloatArray> = RnnArgs<T> & OutputGradients<T>;
/** Arguments of {@link lstmBackward}: those of the forward call plus output gradients. */
export type LstmBackwardArgs<T extends FloatArray = FloatArray> = LstmArgs<T> &
  OutputGradients<T> & {
    /** `[B, H]` gradient of `cN`. Default: zeros. */
    gradCN?: T;
  };
/** Arguments of {@link gruBackward}: those of the forward call plus output gradients. */
export type GruBackwardArgs<T extends FloatArray = FloatArray> = GruArgs<T> & OutputGradients<T>;

/** Result of a forward call. */
export interface RecurrentOutput<T extends FloatArray = FloatArray> {
  /** `[B, T, H]` hidden state after every step. */
  output: T;
  /** `[B, H]` hidden state after the last step. */
  hN: T;
}

/** Result of {@link lstmForward}. */
export interface LstmOutput<T extends FloatArray = FloatArray> extends RecurrentOutput<T> {
  /** `[B, H]` cell state after the last step. */
  cN: T;
}

/** Result of a backward call: the gradient of every input of the forward call. */
export interface RecurrentGradients<T extends FloatArray = FloatArray> {
  /** `[B, T, I]` gradient of `input`. */
  gradInput: T;
  /** `[B, H]` gradient of `h0`. */
  gradH0: T;
  /** Gradients of the weights, same names and shapes. */
  gradWeights: RecurrentWeights<T>;
}

/** Result of {@link lstmBackward}. */
export interface LstmGradients<T extends FloatArray = FloatArray> extends RecurrentGradients<T> {
  /** `[B, H]` gradient of `c0`. */
  gradC0: T;
}

type CellName = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru' | 'gru_reset_before';
const WEIGHT_NAMES = ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0'] as const;
const BASE_KEYS = ['input', 'batch', 'steps', 'inputSize', 'hiddenSize', 'weights', 'h0', 'lengths', 'reverse'];
const GRAD_KEYS = ['gradOutput', 'gradHN'];

function isFloatArray(v: unknown): v is FloatArray {
  return v instanceof Float32Array || v instanceof Float64Array;
}

function checkKeys(fn: string, what: string, obj: object, allowed: readonly string[]): void {
  named(fn, () => check.checkKeys(what, obj, allowed));
}

/** Checks the arguments and builds the native call's spec and tensors. */
function prepare(fn: string, cell: CellName, a: Record<string, unknown>, allowed: readonly string[]) {
  if (a === null || typeof a !== 'object') {
    throw new InvalidArgumentError(`${fn}: expected an options object, got ${describe(a)}`);
  }
  checkKeys(fn, '', a, allowed);
  const input = a.input;
  if (!isFloatArray(input)) {
    throw new InvalidArgumentError(`${fn}: input must be a Float32Array or Float64Array, got ${describe(input)}`);
  }
  const dtype = input.constructor as typeof Float32Array | typeof Float64Array;
  const ra = a.recurrentActivation;
  if (ra !== undefined && !(typeof ra === 'string' && (RECURRENT_ACTIVATIONS as readonly string[]).includes(ra))) {
    throw new InvalidArgumentError(`${fn}: recurrentActivation must be one of ${RECURRENT_ACTIVATIONS.join(', ')}, got ${describe(ra)}`);
  }
  const reverse = a.reverse ?? false;
  if (typeof reverse !== 'boolean') throw new InvalidArgumentError(`${fn}: reverse must be a boolean, got ${describe(a.reverse)}`);
  const spec = {
    cell,
    recurrentActivation: ra as RecurrentActivation | undefined,
    reverse,
    batch: check.positiveInt(`${fn}: batch`, a.batch, 0xffffffff),
    steps: check.positiveInt(`${fn}: steps`, a.steps, 0xffffffff),
    inputSize: check.positiveInt(`${fn}: inputSize`, a.inputSize, 0xffffffff),
    hiddenSize: check.positiveInt(`${fn}: hiddenSize`, a.hiddenSize, 0xffffffff),
  };
  const tensor = (name: string, v: unknown, required: boolean): FloatArray | undefined => {
    if (v === undefined) {
      if (required) throw new MissingArgumentError(`${fn}: ${name} is required`);
      return undefined;
    }
    if (!(v instanceof dtype)) {
      throw new InvalidArgumentError(`${fn}: ${name} must be a ${dtype.name} like input, got ${describe(v)}`);
    }
    return v;
  };
  const w = a.weights;
  if (w === undefined) throw new MissingArgumentError(`${fn}: weights is required`);
  if (w === null || typeof w !== 'object' || isFloatArray(w)) {
    throw new InvalidArgumentError(`${fn}: weights must be an object of tensors by PyTorch name, got ${describe(w)}`);
  }
  checkKeys(fn, 'weights.', w, WEIGHT_NAMES);
  const weights = w as Record<string, unknown>;
  let lengths: Uint32Array | undefined;
  if (a.lengths !== undefined) {
    const l = a.lengths;
    if (!(l instanceof Uint32Array) && !Array.isArray(l)) {
      throw new InvalidArgumentError(`${fn}: lengths must be an array of ${spec.batch} integers, got ${describe(l)}`);
    }
    lengths = Uint32Array.from(l as ArrayLike<number>, (v, i) => check.intIn(`${fn}: lengths[${i}]`, v, 1, spec.steps));
    if (lengths.length !== spec.batch) {
      throw new InvalidArgumentError(`${fn}: lengths must have ${spec.batch} entries (one per sequence), got ${lengths.length}`);
    }
  }
  const tensors = {
    input,
    lengths,
    h0: tensor('h0', a.h0, false),
    c0: tensor('c0', a.c0, false),
    weightIh: tensor('weights.weight_ih_l0', weights.weight_ih_l0, true)!,
    weightHh: tensor('weights.weight_hh_l0', weights.weight_hh_l0, true)!,
    biasIh: tensor('weights.bias_ih_l0', weights.bias_ih_l0, true)!,
    biasHh: tensor('weights.bias_hh_l0', weights.bias_hh_l0, true)!,
    gradOutput: tensor('gradOutput', a.gradOutput, false),
    gradHN: tensor('gradHN', a.gradHN, false),
    gradCN: tensor('gradCN', a.gradCN, false),
  };
  return { spec, tensors, f64: input instanceof Float64Array };
}

/** Runs a native call, naming the public function in the message of any error it throws. */
function named<R>(fn: string, call: () => R): R {
  try {
    return call();
  } catch (err) {
    if (err instanceof GyreError && !err.message.startsWith(`${fn}:`)) err.message = `${fn}: ${err.message}`;
    throw err;
  }
}

function forward(fn: string, cell: CellName, a: Record<string, unknown>, allowed: readonly string[]) {
  const { spec, tensors, f64 } = prepare(fn, cell, a, allowed);
  return named(fn, () =>
    f64
      ? native.recurrentForwardF64(spec, tensors as native.RecurrentTensorsF64)
      : native.recurrentForwardF32(spec, tensors as native.RecurrentTensorsF32),
  );
}

function backward(fn: string, cell: CellName, a: Record<string, unknown>, allowed: readonly string[]) {
  const { spec, tensors, f64 } = prepare(fn, cell, a, allowed);
  const r = named(fn, () =>
    f64
      ? native.recurrentBackwardF64(spec, tensors as native.RecurrentTensorsF64)
      : native.recurrentBackwardF32(spec, tensors as native.RecurrentTensorsF32),
  );
  return {
    gradInput: r.gradInput,
    gradH0: r.gradH0,
    gradC0: r.gradC0,
    gradWeights: {
      weight_ih_l0: r.gradWeightIh,
      weight_hh_l0: r.gradWeightHh,
      bias_ih_l0: r.gradBiasIh,
      bias_hh_l0: r.gradBiasHh,
    },
  };
}

function rnnCell(fn: string, nonlinearity: unknown): CellName {
  if (nonlinearity === undefined || nonlinearity === 'tanh') return 'rnn_tanh';
  if (nonlinearity === 'relu') return 'rnn_relu';
  throw new InvalidArgumentError(`${fn}: nonlinearity must be 'tanh' or 'relu', got ${describe(nonlinearity)}`);
}

function gruCell(fn: string, resetAfter: unknown): CellName {
  if (resetAfter === undefined || resetAfter === true) return 'gru';
  if (resetAfter === false) return 'gru_reset_before';
  throw new InvalidArgumentError(`${fn}: resetAfter must be a boolean, got ${describe(resetAfter)}`);
}

const RNN_KEYS = [...BASE_KEYS, 'nonlinearity'];
const LSTM_KEYS = [...BASE_KEYS, 'c0', 'recurrentActivation'];
const GRU_KEYS = [...BASE_KEYS, 'resetAfter', 'recurrentActivation'];

/**
 * Elman RNN over a batch of sequences: `h_t = act(x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh)`.
 * @returns `output: [B, T, H]`, `hN: [B, H]`, same dtype as `input`.
 * @throws {GyreError} naming the argument when a size, type or shape is wrong.
 */
export function rnnForward<T extends FloatArray>(args: RnnArgs<T>): RecurrentOutput<T> {
  const a = args as unknown as Record<string, unknown>;
  const r = forward('rnnForward', rnnCell('rnnForward', a?.nonlinearity), a, RNN_KEYS);
  return { output: r.output as T, hN: r.hN as T };
}

/**
 * Gradients of an Elman RNN (backpropagation through time); recomputes the forward pass.
 * @returns `gradInput: [B, T, I]`, `gradH0: [B, H]` and `gradWeights` by PyTorch name.
 */
export function rnnBackward<T extends FloatArray>(args: RnnBackwardArgs<T>): RecurrentGradients<T> {
  const a = args as unknown as Record<string, unknown>;
  const r = backward('rnnBackward', rnnCell('rnnBackward', a?.nonlinearity), a, [...RNN_KEYS, ...GRAD_KEYS]);
  return { gradInput: r.gradInput as T, gradH0: r.gradH0 as T, gradWeights: r.gradWeights as RecurrentWeights<T> };
}

/**
 * LSTM over a batch of sequences (gate order `i, f, g, o`).
 * @returns `output: [B, T, H]`, `hN: [B, H]`, `cN: [B, H]`, same dtype as `input`.
 * @throws {GyreError} naming the argument when a size, type or shape is wrong.
 */
export function lstmForward<T extends FloatArray>(args: LstmArgs<T>): LstmOutput<T> {
  const r = forward('lstmForward', 'lstm', args as unknown as Record<string, unknown>, LSTM_KEYS);
  return { output: r.output as T, hN: r.hN as T, cN: r.cN as T };
}

/**
 * Gradients of an LSTM (backpropagation through time); recomputes the forward pass.
 * @returns `gradInput: [B, T, I]`, `gradH0`, `gradC0: [B, H]` and `gradWeights` by PyTorch name.
 */
export function lstmBackward<T extends FloatArray>(args: LstmBackwardArgs<T>): LstmGradients<T> {
  const r = backward('lstmBackward', 'lstm', args as unknown as Record<string, unknown>, [...LSTM_KEYS, ...GRAD_KEYS, 'gradCN']);
  return {
    gradInput: r.gradInput as T,
    gradH0: r.gradH0 as T,
    gradC0: r.gradC0 as T,
    gradWeights: r.gradWeights as RecurrentWeights<T>,
  };
}

/**
 * GRU over a batch of sequences (gate order `r, z, n`; see {@link GruArgs.resetAfter}).
 * @returns `output: [B, T, H]`, `hN: [B, H]`, same dtype as `input`.
 * @throws {GyreError} naming the argument when a size, type or shape is wrong.
 */
export function gruForward<T extends FloatArray>(args: GruArgs<T>): RecurrentOutput<T> {
  const a = args as unknown as Record<string, unknown>;
  const r = forward('gruForward', gruCell('gruForward', a?.resetAfter), a, GRU_KEYS);
  return { output: r.output as T, hN: r.hN as T };
}

/**
 * Gradients of a GRU (backpropagation through time); recomputes the forward pass.
 * @returns `gradInput: [B, T, I]`, `gradH0: [B, H]` and `gradWeights` by PyTorch name.
 */
export function gruBackward<T extends FloatArray>(args: GruBackwardArgs<T>): RecurrentGradients<T> {
  const a = args as unknown as Record<string, unknown>;
  const r = backward('gruBackward', gruCell('gruBackward', a?.resetAfter), a, [...GRU_KEYS, ...GRAD_KEYS]);
  return { gradInput: r.gradInput as T, gradH0: r.gradH0 as T, gradWeights: r.gradWeights as RecurrentWeights<T> };
}

/** How {@link attentionForward} scores a query against a memory step. */
export type AttentionScoreName = 'dot' | 'general' | 'additive';

/**
 * The parameters of an attention score: none for `'dot'`; `weight: [Hq, Hk]` for `'general'`;
 * `query_weight: [A, Hq]`, `key_weight: [A, Hk]`, `bias: [A]`, `v: [A]` for `'additive'`.
 */
export interface AttentionParams<T extends FloatArray = FloatArray> {
  weight?: T;
  query_weight?: T;
  key_weight?: T;
  bias?: T;
  v?: T;
}

/** Arguments of {@link attentionForward}. */
export interface AttentionArgs<T extends FloatArray = FloatArray> {
  /**
   * `'dot'`: `s = q·k` (Luong; `Hq = Hk`); `'general'`: `s = q·(W k)` (Luong);
   * `'additive'`: `s = v·tanh(W_q q + W_k k + b)` (Bahdanau).
   */
  score: AttentionScoreName;
  /** `[B, Tq, Hq]` the queries (a decoder's states). */
  query: T;
  /** `[B, Tk, Hk]` the memory attended over (an encoder's outputs). */
  memory: T;
  /** Sequences `B`. */
  batch: number;
  /** Query steps `Tq`. */
  querySteps: number;
  /** Query width `Hq`. */
  querySize: number;
  /** Memory steps `Tk`. */
  memorySteps: number;
  /** Memory width `Hk`. */
  memorySize: number;
  /** `[B]` each sequence's valid memory steps (0 … `Tk`; padded steps get weight 0). Default: all `Tk`. */
  lengths?: readonly number[] | Uint32Array;
  /** The score's parameters by name ({@link AttentionParams}); none for `'dot'`. */
  params?: AttentionParams<T>;
}

/** Arguments of {@link attentionBackward}: those of the forward call plus output gradients. */
export interface AttentionBackwardArgs<T extends FloatArray = FloatArray> extends AttentionArgs<T> {
  /** `[B, Tq, Hk]` gradient of `context`. Default: zeros. */
  gradContext?: T;
  /** `[B, Tq, Tk]` gradient of the attention `weights`. Default: zeros. */
  gradWeights?: T;
}

/** Result of {@link attentionForward}. */
export interface AttentionOutput<T extends FloatArray = FloatArray> {
  /** `[B, Tq, Hk]` each query's context `Σ_j α_ij k_j`. */
  context: T;
  /** `[B, Tq, Tk]` the attention weights `α` (softmax over the valid steps; 0 past a sequence's length). */
  weights: T;
}

/** Result of {@link attentionBackward}. */
export interface AttentionGradients<T extends FloatArray = FloatArray> {
  /** `[B, Tq, Hq]` */
  gradQuery: T;
  /** `[B, Tk, Hk]` (0 at padded steps) */
  gradMemory: T;
  /** The parameters' gradients, by the same names and shapes. */
  gradParams: AttentionParams<T>;
}

const ATTENTION_KEYS = ['score', 'query', 'memory', 'batch', 'querySteps', 'querySize', 'memorySteps', 'memorySize', 'lengths', 'params'];
const ATTENTION_PARAMS: Record<AttentionScoreName, readonly (keyof AttentionParams)[]> = {
  dot: [],
  general: ['weight'],
  additive: ['query_weight', 'key_weight', 'bias', 'v'],
};

/** The score parameters' gradients of a native result, by name, for the score's parameters `names`. */
function scoreGrads<T extends FloatArray>(
  r: { gradWeight?: FloatArray; gradQueryWeight?: FloatArray; gradKeyWeight?: FloatArray; gradBias?: FloatArray; gradV?: FloatArray },
  names: readonly (keyof AttentionParams)[],
): AttentionParams<T> {
  const byName: AttentionParams<FloatArray> = {
    weight: r.gradWeight,
    query_weight: r.gradQueryWeight,
    key_weight: r.gradKeyWeight,
    bias: r.gradBias,
    v: r.gradV,
  };
  const out: AttentionParams<T> = {};
  for (const name of names) out[name] = byName[name] as T;
  return out;
}

function prepareAttention(fn: string, a: Record<string, unknown>, allowed: readonly string[]) {
  if (a === null || typeof a !== 'object') throw new InvalidArgumentError(`${fn}: expected an options object, got ${describe(a)}`);
  checkKeys(fn, '', a, allowed);
  const score = a.score;
  if (score !== 'dot' && score !== 'general' && score !== 'additive') {
    throw new InvalidArgumentError(`${fn}: score must be 'dot', 'general' or 'additive', got ${describe(score)}`);
  }
  const query = a.query;
  if (!isFloatArray(query)) throw new InvalidArgumentError(`${fn}: query must be a Float32Array or Float64Array, got ${describe(query)}`);
  const dtype = query.constructor as typeof Float32Array | typeof Float64Array;
  const tensor = (name: string, v: unknown): FloatArray | undefined => {
    if (v === undefined) return undefined;
    if (!(v instanceof dtype)) throw new InvalidArgumentError(`${fn}: ${name} must be a ${dtype.name} like query, got ${describe(v)}`);
    return v;
  };
  const memory = tensor('memory', a.memory);
  if (memory === undefined) throw new MissingArgumentError(`${fn}: memory is required`);
  const params = (a.params ?? {}) as Record<string, unknown>;
  if (params === null || typeof params !== 'object' || isFloatArray(params)) {
    throw new InvalidArgumentError(`${fn}: params must be an object of tensors by name, got ${describe(a.params)}`);
  }
  const names = ATTENTION_PARAMS[score];
  checkKeys(fn, 'params.', params, names);
  for (const name of names) {
    if (params[name] === undefined) throw new MissingArgumentError(`${fn}: params.${name} is required for the ${score} score`);
  }
  const batch = check.positiveInt(`${fn}: batch`, a.batch, 0xffffffff);
  const memorySteps = check.positiveInt(`${fn}: memorySteps`, a.memorySteps, 0xffffffff);
  let lengths: Uint32Array | undefined;
  if (a.lengths !== undefined) {
    const l = a.lengths;
    if (!(l instanceof Uint32Array) && !Array.isArray(l)) {
      throw new InvalidArgumentError(`${fn}: lengths must be an array of ${batch} integers, got ${describe(l)}`);
    }
    lengths = Uint32Array.from(l as ArrayLike<number>, (v, i) => check.intIn(`${fn}: lengths[${i}]`, v, 0, memorySteps));
    if (lengths.length !== batch)
      throw new InvalidArgumentError(`${fn}: lengths must have ${batch} entries (one per sequence), got ${lengths.length}`);
  }
  const v = tensor('params.v', params.v);
  const spec: native.AttentionSpec = {
    score,
    batch,
    querySteps: check.positiveInt(`${fn}: querySteps`, a.querySteps, 0xffffffff),
    querySize: check.positiveInt(`${fn}: querySize`, a.querySize, 0xffffffff),
    memorySteps,
    memorySize: check.positiveInt(`${fn}: memorySize`, a.memorySize, 0xffffffff),
    ...(score === 'additive' && v !== undefined ? { units: v.length } : {}),
  };
  const tensors = {
    query,
    memory,
    lengths,
    weight: tensor('params.weight', params.weight),
    queryWeight: tensor('params.query_weight', params.query_weight),
    keyWeight: tensor('params.key_weight', params.key_weight),
    bias: tensor('params.bias', params.bias),
    v,
    gradContext: tensor('gradContext', a.gradContext),
    gradWeights: tensor('gradWeights', a.gradWeights),
  };
  return { spec, tensors, f64: query instanceof Float64Array, names };
}

/**
 * Attention of a batch of queries (a decoder's states) over a memory (an encoder's outputs),
 * masked by each sequence's length: `α_i = softmax_j(s(q_i, k_j))` over `j < lengths[b]` and
 * `context_i = Σ_j α_ij k_j`. Sequences run side by side on the native pool.
 * @returns `context: [B, Tq, Hk]` and `weights: [B, Tq, Tk]`, same dtype as `query`.
 * @throws {GyreError} naming the argument when a size, type, shape or length is wrong.
 */
export function attentionForward<T extends FloatArray>(args: AttentionArgs<T>): AttentionOutput<T> {
  const fn = 'attentionForward';
  const { spec, tensors, f64 } = prepareAttention(fn, args as unknown as Record<string, unknown>, ATTENTION_KEYS);
  const r = named(fn, () =>
    f64
      ? native.attentionForwardF64(spec, tensors as native.AttentionTensorsF64)
      : native.attentionForwardF32(spec, tensors as native.AttentionTensorsF32),
  );
  return { context: r.context as T, weights: r.weights as T };
}

/**
 * Gradients of `L = Σ context·gradContext + Σ weights·gradWeights` with respect to the queries,
 * the memory and the score's parameters; recomputes the forward pass.
 * @returns `gradQuery: [B, Tq, Hq]`, `gradMemory: [B, Tk, Hk]`, `gradParams` by name.
 */
export function attentionBackward<T extends FloatArray>(args: AttentionBackwardArgs<T>): AttentionGradients<T> {
  const fn = 'attentionBackward';
  const { spec, tensors, f64, names } = prepareAttention(fn, args as unknown as Record<string, unknown>, [
    ...ATTENTION_KEYS,
    'gradContext',
    'gradWeights',
  ]);
  const r = named(fn, () =>
    f64
      ? native.attentionBackwardF64(spec, tensors as native.AttentionTensorsF64)
      : native.attentionBackwardF32(spec, tensors as native.AttentionTensorsF32),
  );
  const gradParams = scoreGrads<T>(r, names);
  return { gradQuery: r.gradQuery as T, gradMemory: r.gradMemory as T, gradParams };
}

/** The weights of an attention decoder: its cell's by PyTorch name, and the combination `W_c`, `b_c`. */
export interface DecoderWeights<T extends FloatArray = FloatArray> extends RecurrentWeights<T> {
  /** `[H, Hk + H]` the combination `h̃ = tanh(W_c [ctx; h] + b_c)`, the context's columns first. */
  combine_weight: T;
  /** `[H]` */
  combine_bias: T;
}

/** Arguments shared by {@link attentionDecoderForward}, {@link attentionDecoderBackward} and {@link beamSearch}. */
export interface DecoderBaseArgs<T extends FloatArray = FloatArray> {
  /** The cell: `'rnn'`, `'lstm'` or `'gru'`. */
  cell: 'rnn' | 'lstm' | 'gru';
  /** RNN only. Default `'tanh'`. */
  nonlinearity?: 'tanh' | 'relu';
  /** GRU only. Default `true`. */
  resetAfter?: boolean;
  /** LSTM and GRU gates ({@link RecurrentActivation}). Default `'sigmoid'`. */
  recurrentActivation?: RecurrentActivation;
  /** The attention score ({@link AttentionArgs.score}); queries are the cell's `h` (width `H`). */
  score: AttentionScoreName;
  /** Luong's input feeding: the cell reads `[x_t; h̃_{t−1}]` (`weight_ih_l0` then has `I + H` columns). Default `false`. */
  inputFeeding?: boolean;
  /** `[B, Tk, Hk]` the memory (an encoder's outputs). */
  memory: T;
  /** Sequences `B`. */
  batch: number;
  /** Input width `I`. */
  inputSize: number;
  /** Hidden size `H`. */
  hiddenSize: number;
  /** Memory steps `Tk`. */
  memorySteps: number;
  /** Memory width `Hk`. */
  memorySize: number;
  /** `[B]` valid memory steps per sequence. Default: all `Tk`. */
  lengths?: readonly number[] | Uint32Array;
  /** The cell's and the combination's weights. */
  weights: DecoderWeights<T>;
  /** The score's parameters ({@link AttentionParams}). */
  params?: AttentionParams<T>;
  /** `[B, H]` initial hidden state (e.g. the encoder's final one). Default: zeros. */
  h0?: T;
  /** `[B, H]` initial cell state, LSTM only. Default: zeros. */
  c0?: T;
}

/** Arguments of {@link attentionDecoderForward}. */
export interface DecoderArgs<T extends FloatArray = FloatArray> extends DecoderBaseArgs<T> {
  /** `[B, Tq, I]` the decoder's inputs (teacher forcing: the embedded previous targets). */
  input: T;
  /** Decoder steps `Tq`. */
  steps: number;
}

/** Arguments of {@link attentionDecoderBackward}. */
export interface DecoderBackwardArgs<T extends FloatArray = FloatArray> extends DecoderArgs<T> {
  /** `[B, Tq, H]` gradient of `output`. Default: zeros. */
  gradOutput?: T;
  /** `[B, Tq, Tk]` gradient of `attention`. Default: zeros. */
  gradAttention?: T;
  /** `[B, H]` gradient of `hN`. Default: zeros. */
  gradHN?: T;
  /** `[B, H]` gradient of `cN` (LSTM). Default: zeros. */
  gradCN?: T;
}

/** Result of {@link attentionDecoderForward}. */
export interface DecoderOutput<T extends FloatArray = FloatArray> {
  /** `[B, Tq, H]` the attentional states `h̃_t`. */
  output: T;
  /** `[B, Tq, Tk]` the attention weights of every step. */
  attention: T;
  /** `[B, H]` the cell's hidden state after the last step. */
  hN: T;
  /** `[B, H]` its cell state (LSTM only). */
  cN?: T;
}

/** Result of {@link attentionDecoderBackward}. */
export interface DecoderGradients<T extends FloatArray = FloatArray> {
  /** `[B, Tq, I]` */
  gradInput: T;
  /** `[B, Tk, Hk]` */
  gradMemory: T;
  /** `[B, H]` */
  gradH0: T;
  /** `[B, H]` (LSTM only) */
  gradC0?: T;
  /** By the names of {@link DecoderWeights}. */
  gradWeights: DecoderWeights<T>;
  /** By the names of {@link AttentionParams}. */
  gradParams: AttentionParams<T>;
}

/** Arguments of {@link attentionDecoderStep}: a decoder, the step's inputs and the state after the previous step. */
export interface DecoderStepArgs<T extends FloatArray = FloatArray> extends DecoderBaseArgs<T> {
  /** `[B, I]` this step's inputs (e.g. the embedded previous tokens). */
  input: T;
  /** `[B, H]` the previous step's `h̃` (its `hTilde`). Default: zeros (the first step). */
  hTilde?: T;
}

/** Result of {@link attentionDecoderStep}: the step's output and the state to pass to the next step. */
export interface DecoderStepOutput<T extends FloatArray = FloatArray> {
  /** `[B, H]` the step's `h̃`. */
  output: T;
  /** `[B, Tk]` its attention weights. */
  attention: T;
  /** `[B, H]` the next step's `h0`. */
  hN: T;
  /** `[B, H]` the next step's `c0` (LSTM only). */
  cN?: T;
  /** `[B, H]` the next step's `hTilde`. */
  hTilde: T;
}

/**
 * One step of the attention decoder, for serving a token at a time: the state after the
 * previous step goes in as `h0` (and `c0`) and `hTilde`, the next one comes out as `hN` (and
 * `cN`) and `hTilde`. Stepping through a sequence gives {@link attentionDecoderForward}'s outputs.
 * @throws {GyreError} naming the argument when a size, type or shape is wrong.
 */
export function attentionDecoderStep<T extends FloatArray>(args: DecoderStepArgs<T>): DecoderStepOutput<T> {
  const fn = 'attentionDecoderStep';
  const a = args as unknown as Record<string, unknown>;
  const { spec, tensors, f64 } = prepareDecoder(fn, a, [...DECODER_BASE_KEYS, 'input', 'hTilde'], false);
  const dtype = a.memory instanceof Float64Array ? Float64Array : Float32Array;
  for (const name of ['input', 'hTilde'] as const) {
    const v = a[name];
    if (v === undefined) {
      if (name === 'input') throw new MissingArgumentError(`${fn}: input is required`);
      continue;
    }
    if (!(v instanceof dtype)) throw new InvalidArgumentError(`${fn}: ${name} must be a ${dtype.name} like memory, got ${describe(v)}`);
  }
  const step = { ...tensors, input: a.input as FloatArray, hTilde: a.hTilde as FloatArray | undefined };
  const r = named(fn, () =>
    f64 ? native.decoderStepF64(spec, step as native.DecoderTensorsF64) : native.decoderStepF32(spec, step as native.DecoderTensorsF32),
  );
  return {
    output: r.output as T,
    attention: r.attention as T,
    hN: r.hN as T,
    ...(r.cN ? { cN: r.cN as T } : {}),
    hTilde: r.hTilde as T,
  };
}

/** Arguments of {@link beamSearch}: a decoder and its token side. */
export interface BeamSearchArgs<T extends FloatArray = FloatArray> extends DecoderBaseArgs<T> {
  /** `[V, I]` the embedding the decoder's input tokens are read from. */
  embedding: T;
  /** `[V, H]` the output layer scoring the next token from `h̃` (logits `W_o h̃ + b_o`). */
  outputWeight: T;
  /** `[V]` */
  outputBias: T;
  /** The token id decoding starts from. */
  start: number;
  /** The token id that ends a hypothesis. */
  end: number;
  /** Hypotheses kept per sequence (1: greedy decoding). Default 4. */
  beamWidth?: number;
  /** Tokens generated at most (the end token counts). */
  maxLength: number;
  /** Wu et al. (2016)'s `α`: finished hypotheses are ranked by `logProb / ((5 + |Y|) / 6)^α`. Default 0 (by `logProb`). */
  lengthPenalty?: number;
  /** Hypotheses returned per sequence (at most `beamWidth`). Default 1. */
  nBest?: number;
}

/** One output of {@link beamSearch}. */
export interface BeamHypothesis<T extends FloatArray = FloatArray> {
  /** The generated token ids, the end token last when `finished`. */
  tokens: number[];
  /** The model's log-probability of `tokens` (Σ of each token's log-softmax). */
  logProb: number;
  /** The ranking score: `logProb` over the length penalty. */
  score: number;
  /** It ended with the end token (else `maxLength` cut it). */
  finished: boolean;
  /** `[tokens.length, Tk]` the attention weights of each generated token's step. */
  attention: T;
}

const DECODER_BASE_KEYS = [
  'cell',
  'nonlinearity',
  'resetAfter',
  'recurrentActivation',
  'score',
  'inputFeeding',
  'memory',
  'batch',
  'inputSize',
  'hiddenSize',
  'memorySteps',
  'memorySize',
  'lengths',
  'weights',
  'params',
  'h0',
  'c0',
];
const DECODER_WEIGHT_NAMES = [...WEIGHT_NAMES, 'combine_weight', 'combine_bias'] as const;

function prepareDecoder(fn: string, a: Record<string, unknown>, allowed: readonly string[], withInput: boolean) {
  if (a === null || typeof a !== 'object') throw new InvalidArgumentError(`${fn}: expected an options object, got ${describe(a)}`);
  checkKeys(fn, '', a, allowed);
  const memory = a.memory;
  if (!isFloatArray(memory))
    throw new InvalidArgumentError(`${fn}: memory must be a Float32Array or Float64Array, got ${describe(memory)}`);
  // The score's parameters and lengths, checked as attentionForward checks them.
  const att = prepareAttention(
    fn,
    {
      score: a.score,
      query: memory,
      memory,
      batch: a.batch,
      querySteps: 1,
      querySize: a.hiddenSize,
      memorySteps: a.memorySteps,
      memorySize: a.memorySize,
      ...(a.lengths === undefined ? {} : { lengths: a.lengths }),
      ...(a.params === undefined ? {} : { params: a.params }),
    },
    ATTENTION_KEYS,
  );
  const dtype = memory.constructor as typeof Float32Array | typeof Float64Array;
  const tensor = (name: string, v: unknown, required: boolean): FloatArray | undefined => {
    if (v === undefined) {
      if (required) throw new MissingArgumentError(`${fn}: ${name} is required`);
      return undefined;
    }
    if (!(v instanceof dtype)) throw new InvalidArgumentError(`${fn}: ${name} must be a ${dtype.name} like memory, got ${describe(v)}`);
    return v;
  };
  const cellName = a.cell;
  let cell: CellName;
  if (cellName === 'lstm') cell = 'lstm';
  else if (cellName === 'gru') cell = gruCell(fn, a.resetAfter);
  else if (cellName === 'rnn') cell = rnnCell(fn, a.nonlinearity);
  else throw new InvalidArgumentError(`${fn}: cell must be 'rnn', 'lstm' or 'gru', got ${describe(cellName)}`);
  const ra = a.recurrentActivation;
  if (ra !== undefined && !(typeof ra === 'string' && (RECURRENT_ACTIVATIONS as readonly string[]).includes(ra))) {
    throw new InvalidArgumentError(`${fn}: recurrentActivation must be one of ${RECURRENT_ACTIVATIONS.join(', ')}, got ${describe(ra)}`);
  }
  const feeding = a.inputFeeding ?? false;
  if (typeof feeding !== 'boolean') throw new InvalidArgumentError(`${fn}: inputFeeding must be a boolean, got ${describe(feeding)}`);
  const w = a.weights;
  if (w === undefined) throw new MissingArgumentError(`${fn}: weights is required`);
  if (w === null || typeof w !== 'object' || isFloatArray(w)) {
    throw new InvalidArgumentError(`${fn}: weights must be an object of tensors by name, got ${describe(w)}`);
  }
  checkKeys(fn, 'weights.', w, DECODER_WEIGHT_NAMES);
  const weights = w as Record<string, unknown>;
  const spec: native.DecoderCallSpec = {
    cell,
    recurrentActivation: ra as RecurrentActivation | undefined,
    score: att.spec.score,
    inputFeeding: feeding,
    batch: att.spec.batch,
    steps: withInput ? check.positiveInt(`${fn}: steps`, a.steps, 0xffffffff) : 0,
    inputSize: check.positiveInt(`${fn}: inputSize`, a.inputSize, 0xffffffff),
    hiddenSize: att.spec.querySize,
    memorySteps: att.spec.memorySteps,
    memorySize: att.spec.memorySize,
    ...(att.spec.units === undefined ? {} : { units: att.spec.units }),
  };
  const tensors = {
    input: withInput ? tensor('input', a.input, true) : undefined,
    memory,
    lengths: att.tensors.lengths,
    h0: tensor('h0', a.h0, false),
    c0: tensor('c0', a.c0, false),
    weightIh: tensor('weights.weight_ih_l0', weights.weight_ih_l0, true)!,
    weightHh: tensor('weights.weight_hh_l0', weights.weight_hh_l0, true)!,
    biasIh: tensor('weights.bias_ih_l0', weights.bias_ih_l0, true)!,
    biasHh: tensor('weights.bias_hh_l0', weights.bias_hh_l0, true)!,
    combineWeight: tensor('weights.combine_weight', weights.combine_weight, true)!,
    combineBias: tensor('weights.combine_bias', weights.combine_bias, true)!,
    weight: att.tensors.weight,
    queryWeight: att.tensors.queryWeight,
    keyWeight: att.tensors.keyWeight,
    bias: att.tensors.bias,
    v: att.tensors.v,
    gradOutput: tensor('gradOutput', a.gradOutput, false),
    gradAttention: tensor('gradAttention', a.gradAttention, false),
    gradHN: tensor('gradHN', a.gradHN, false),
    gradCN: tensor('gradCN', a.gradCN, false),
    embedding: tensor('embedding', a.embedding, false),
    outputWeight: tensor('outputWeight', a.outputWeight, false),
    outputBias: tensor('outputBias', a.outputBias, false),
  };
  return { spec, tensors, f64: memory instanceof Float64Array, names: att.names };
}

/**
 * An attention decoder over a batch, with teacher forcing: at every step the cell reads `x_t`
 * (with input feeding `[x_t; h̃_{t−1}]`), its `h_t` attends over the memory (masked by
 * `lengths`) giving `ctx_t`, and the output is Luong's attentional state
 * `h̃_t = tanh(W_c [ctx_t; h_t] + b_c)`.
 * @returns `output: [B, Tq, H]`, `attention: [B, Tq, Tk]`, `hN` (and `cN`), same dtype as `memory`.
 * @throws {GyreError} naming the argument when a size, type, shape or length is wrong.
 */
export function attentionDecoderForward<T extends FloatArray>(args: DecoderArgs<T>): DecoderOutput<T> {
  const fn = 'attentionDecoderForward';
  const { spec, tensors, f64 } = prepareDecoder(
    fn,
    args as unknown as Record<string, unknown>,
    [...DECODER_BASE_KEYS, 'input', 'steps'],
    true,
  );
  const r = named(fn, () =>
    f64
      ? native.decoderForwardF64(spec, tensors as native.DecoderTensorsF64)
      : native.decoderForwardF32(spec, tensors as native.DecoderTensorsF32),
  );
  return { output: r.output as T, attention: r.attention as T, hN: r.hN as T, ...(r.cN ? { cN: r.cN as T } : {}) };
}

/**
 * Backpropagation through time of {@link attentionDecoderForward} (recomputed): the gradients of
 * `Σ output·gradOutput + Σ attention·gradAttention + Σ hN·gradHN (+ Σ cN·gradCN)`.
 * @returns `gradInput`, `gradMemory`, `gradH0` (and `gradC0`), `gradWeights` and `gradParams` by name.
 */
export function attentionDecoderBackward<T extends FloatArray>(args: DecoderBackwardArgs<T>): DecoderGradients<T> {
  const fn = 'attentionDecoderBackward';
  const keys = [...DECODER_BASE_KEYS, 'input', 'steps', 'gradOutput', 'gradAttention', 'gradHN', 'gradCN'];
  const { spec, tensors, f64, names } = prepareDecoder(fn, args as unknown as Record<string, unknown>, keys, true);
  const r = named(fn, () =>
    f64
      ? native.decoderBackwardF64(spec, tensors as native.DecoderTensorsF64)
      : native.decoderBackwardF32(spec, tensors as native.DecoderTensorsF32),
  );
  const gradParams = scoreGrads<T>(r, names);
  return {
    gradInput: r.gradInput as T,
    gradMemory: r.gradMemory as T,
    gradH0: r.gradH0 as T,
    ...(r.gradC0 ? { gradC0: r.gradC0 as T } : {}),
    gradWeights: {
      weight_ih_l0: r.gradWeightIh as T,
      weight_hh_l0: r.gradWeightHh as T,
      bias_ih_l0: r.gradBiasIh as T,
      bias_hh_l0: r.gradBiasHh as T,
      combine_weight: r.gradCombineWeight as T,
      combine_bias: r.gradCombineBias as T,
    },
    gradParams,
  };
}

/**
 * Beam search with an attention decoder: from `start`, each step embeds every live
 * hypothesis's last token, runs the decoder one step for all of them at once, scores the next
 * token by the log-softmax of `W_o h̃ + b_o`, and keeps the `beamWidth` best extensions per
 * sequence; a hypothesis ends at `end` or `maxLength`. Width 1 is greedy decoding.
 * @returns per sequence its `nBest` hypotheses, best first.
 * @throws {GyreError} naming the argument when a size, type, shape, token id or option is wrong.
 */
export function beamSearch<T extends FloatArray>(args: BeamSearchArgs<T>): BeamHypothesis<T>[][] {
  const fn = 'beamSearch';
  const a = args as unknown as Record<string, unknown>;
  const keys = [
    ...DECODER_BASE_KEYS,
    'embedding',
    'outputWeight',
    'outputBias',
    'start',
    'end',
    'beamWidth',
    'maxLength',
    'lengthPenalty',
    'nBest',
  ];
  const { spec, tensors, f64 } = prepareDecoder(fn, a, keys, false);
  for (const name of ['embedding', 'outputWeight', 'outputBias'] as const) {
    if (tensors[name] === undefined) throw new MissingArgumentError(`${fn}: ${name} is required`);
  }
  const vocabSize = tensors.embedding!.length / spec.inputSize;
  if (!Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new InvalidArgumentError(
      `${fn}: embedding must be [V, inputSize] (a whole number of rows of ${spec.inputSize}), got ${tensors.embedding!.length} values`,
    );
  }
  const lengthPenalty = a.lengthPenalty ?? 0;
  if (typeof lengthPenalty !== 'number' || !Number.isFinite(lengthPenalty) || lengthPenalty < 0) {
    throw new InvalidArgumentError(`${fn}: lengthPenalty must be a finite number ≥ 0, got ${describe(a.lengthPenalty)}`);
  }
  const options: native.BeamCallOptions = {
    vocabSize,
    beamWidth: check.positiveInt(`${fn}: beamWidth`, a.beamWidth ?? 4, 0xffffffff),
    maxLength: check.positiveInt(`${fn}: maxLength`, a.maxLength, 0xffffffff),
    start: check.intIn(`${fn}: start`, a.start, 0, vocabSize - 1),
    end: check.intIn(`${fn}: end`, a.end, 0, vocabSize - 1),
    lengthPenalty,
    nBest: check.positiveInt(`${fn}: nBest`, a.nBest ?? 1, 0xffffffff),
  };
  const found = named(fn, () =>
    f64
      ? native.beamSearchF64(spec, tensors as native.DecoderTensorsF64, options)
      : native.beamSearchF32(spec, tensors as native.DecoderTensorsF32, options),
  );
  return found.map((hyps) =>
    hyps.map((h) => ({
      tokens: Array.from(h.tokens),
      logProb: h.logProb,
      score: h.score,
      finished: h.finished,
      attention: h.attention as T,
    })),
  );
}
