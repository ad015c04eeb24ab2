/**
 * The functional form: a model graph in which layers are applied to named inputs and to each
 * other's outputs, with several inputs and outputs, and recurrent layers that return their
 * final states (`returnState`) and start from another layer's (`initialState`). Build one with
 * {@link graph}; {@link GraphModel} trains, evaluates, predicts, saves and loads it. The graph
 * runs natively (`gyre_core::graph`), off the event loop. A sequential model is the case of
 * one chain.
 */
import { InvalidArgumentError, MissingArgumentError } from '../errors.js';
import { flattenInput, flattenTargets, type SequenceInput, type TargetInput } from '../data/flatten.js';
import * as native from '../native.js';
import { describe, nonEmptyString, numberIn, oneOf, optBool, optInt, options, positiveInt } from '../util/check.js';
import { about, readBytes, writeAtomically } from '../util/files.js';
import type { Model } from './model.js';
import type { OptimizerSpec } from './training.js';

/** A graph input: float steps (`features`) or token ids (`vocabSize`). */
export type GraphInputSpec = { name: string; features: number } | { name: string; vocabSize: number };

/** The attention score: Luong's `'dot'` and `'general'`, Bahdanau's additive with its units. */
export type GraphAttentionScore = 'dot' | 'general' | { additive: { units: number } };

/** A layer of a graph, by `type` (the JSON form a model file stores). */
export type GraphLayerSpec =
  | { type: 'embedding'; embeddingDim: number }
  | {
      type: 'lstm' | 'gru' | 'rnn';
      hiddenSize: number;
      numLayers?: number;
      bidirectional?: boolean;
      returnSequences?: boolean;
      returnState?: boolean;
      nonlinearity?: 'tanh' | 'relu';
      resetAfter?: boolean;
      recurrentActivation?: 'sigmoid' | 'hardSigmoidTfjs' | 'hardSigmoidKeras3';
    }
  | { type: 'dense'; units: number; activation?: 'linear' | 'relu' | 'tanh' | 'sigmoid' | 'softmax' }
  | { type: 'concatenate' }
  | { type: 'attention'; score?: GraphAttentionScore }
  | { type: 'dropout'; rate: number };

/** A node of a graph: a layer applied to earlier inputs and nodes, by name. */
export interface GraphNodeSpec {
  name: string;
  layer: GraphLayerSpec;
  inputs: string[];
  /** A recurrent node: the recurrent node (with `returnState: true`) whose final states it starts from. */
  initialState?: string;
}

/** A model graph's JSON form: inputs, nodes (each after what it reads), output node names, seed. */
export interface GraphSpec {
  inputs: GraphInputSpec[];
  nodes: GraphNodeSpec[];
  outputs: string[];
  seed?: number;
}

/** What a value in a graph being built is. */
export type GraphValueKind = 'tokens' | 'sequence' | 'vector';

/** A value in a graph being built: an input or a node's output. */
export interface GraphValue {
  /** The input's or node's name. */
  readonly name: string;
  /** Token ids, a sequence `[N, T, width]` or a vector `[N, width]`. */
  readonly kind: GraphValueKind;
  /** Its width (the vocabulary size for token ids). */
  readonly width: number;
}

/** A recurrent layer's output; with `returnState`, also its final states for another layer's `initialState`. */
export interface RecurrentValue extends GraphValue {
  /** The final states (per stacked layer, a bidirectional layer's directions concatenated). */
  readonly state: GraphStateRef | undefined;
}

/** A recurrent node's final states, to start another recurrent layer from. */
export interface GraphStateRef {
  /** The node whose states these are. */
  readonly node: string;
}

/** Options of a recurrent layer in {@link GraphBuilder}. */
export interface GraphRecurrentOptions {
  /** `H`, per direction. */
  hiddenSize: number;
  /** Stacked layers (1). */
  numLayers?: number;
  /** Two directions, outputs and states concatenated `[forward; backward]` (false). */
  bidirectional?: boolean;
  /** Every step's output (true), or only the top layer's final state as a vector. */
  returnSequences?: boolean;
  /** Other layers may start from this one's final states: `value.state` (false). */
  returnState?: boolean;
  /** Start from another recurrent layer's final states: the same stacked layers, `hiddenSize × directions` equal, both LSTMs or neither. */
  initialState?: GraphStateRef;
  /** `rnn` only: `'tanh'` (default) or `'relu'`. */
  nonlinearity?: 'tanh' | 'relu';
  /** `gru` only: PyTorch's reset gate after the product (true). */
  resetAfter?: boolean;
  /** `lstm`, `gru`: the gates' activation (`'sigmoid'`). */
  recurrentActivation?: 'sigmoid' | 'hardSigmoidTfjs' | 'hardSigmoidKeras3';
  /** The node's name (default: the layer type and a number). */
  name?: string;
}

const RECURRENT_KEYS = [
  'hiddenSize',
  'numLayers',
  'bidirectional',
  'returnSequences',
  'returnState',
  'initialState',
  'nonlinearity',
  'resetAfter',
  'recurrentActivation',
  'name',
] as const;

/**
 * Builds a graph a call per layer; {@link GraphBuilder.model} turns it into a {@link GraphModel}.
 * Each call checks what it can at once (the kinds and widths of its inputs); the native side
 * checks the whole graph again.
 */
export class GraphBuilder {
  readonly #inputs: GraphInputSpec[] = [];
  readonly #nodes: GraphNodeSpec[] = [];
  readonly #values = new Map<string, GraphValue & { returnState?: boolean; layers?: number; lstm?: boolean }>();
  #counter = 0;

  #name(given: unknown, kind: string): string {
    if (given === undefined) {
      let name: string;
      do name = `${kind}_${++this.#counter}`;
      while (this.#values.has(name));
      return name;
    }
    const name = nonEmptyString('name', given);
    if (this.#values.has(name)) throw new InvalidArgumentError(`name must be a name no other input or node has, got ${describe(name)}`);
    return name;
  }

  #own(what: string, v: unknown): GraphValue {
    const name = typeof v === 'object' && v !== null && 'name' in v ? (v as { name: unknown }).name : undefined;
    const mine = typeof name === 'string' ? this.#values.get(name) : undefined;
    if (mine === undefined || mine !== v)
      throw new InvalidArgumentError(`${what} must be a value of this graph (an input or a layer's output), got ${describe(v)}`);
    return mine;
  }

  #sequence(what: string, v: unknown): GraphValue {
    const g = this.#own(what, v);
    if (g.kind === 'tokens')
      throw new InvalidArgumentError(
        `${what} must be a sequence of floats (token ids go through an embedding first), got input ${describe(g.name)}`,
      );
    if (g.kind === 'vector') throw new InvalidArgumentError(`${what} must be a sequence, got ${describe(g.name)}, one vector per sample`);
    return g;
  }

  #add(node: GraphNodeSpec, kind: GraphValueKind, width: number, extra: object = {}): GraphValue {
    this.#nodes.push(node);
    const value = Object.freeze({ name: node.name, kind, width, ...extra });
    this.#values.set(node.name, value);
    return value;
  }

  /** A graph input: `{ features }` for float steps `[N, T, features]`, `{ vocabSize }` for token ids `[N, T]`. */
  input(name: string, spec: { features: number } | { vocabSize: number }): GraphValue {
    const n = this.#name(name, 'input');
    const o = options('input', spec, ['features', 'vocabSize']);
    if ((o.features === undefined) === (o.vocabSize === undefined)) {
      throw new InvalidArgumentError(`input ${describe(n)} must have exactly one of features (float steps) and vocabSize (token ids)`);
    }
    const value =
      o.features !== undefined
        ? Object.freeze({ name: n, kind: 'sequence' as const, width: positiveInt('features', o.features) })
        : Object.freeze({ name: n, kind: 'tokens' as const, width: positiveInt('vocabSize', o.vocabSize) });
    this.#inputs.push(value.kind === 'tokens' ? { name: n, vocabSize: value.width } : { name: n, features: value.width });
    this.#values.set(n, value);
    return value;
  }

  /** Token ids to rows of a `[vocabSize, embeddingDim]` table: a sequence of `embeddingDim`. */
  embedding(x: GraphValue, o: { embeddingDim: number; name?: string }): GraphValue {
    const opts = options('embedding options', o, ['embeddingDim', 'name']);
    const g = this.#own('embedding input', x);
    if (g.kind !== 'tokens')
      throw new InvalidArgumentError(`embedding input must be an input of token ids (vocabSize), got ${describe(g.name)}`);
    const dim = positiveInt('embeddingDim', opts.embeddingDim);
    return this.#add(
      { name: this.#name(opts.name, 'embedding'), layer: { type: 'embedding', embeddingDim: dim }, inputs: [g.name] },
      'sequence',
      dim,
    );
  }

  #recurrent(type: 'lstm' | 'gru' | 'rnn', x: GraphValue, o: GraphRecurrentOptions): RecurrentValue {
    const opts = options(`${type} options`, o, RECURRENT_KEYS);
    const g = this.#sequence(`${type} input`, x);
    const hiddenSize = positiveInt('hiddenSize', opts.hiddenSize);
    const numLayers = optInt('numLayers', opts.numLayers, 1, 1);
    const bidirectional = optBool('bidirectional', opts.bidirectional, false);
    const returnSequences = optBool('returnSequences', opts.returnSequences, true);
    const returnState = optBool('returnState', opts.returnState, false);
    const width = hiddenSize * (bidirectional ? 2 : 1);
    const layer: GraphLayerSpec = { type, hiddenSize, numLayers, bidirectional, returnSequences, returnState };
    if (opts.nonlinearity !== undefined) layer.nonlinearity = oneOf('nonlinearity', opts.nonlinearity, ['tanh', 'relu'] as const);
    if (opts.resetAfter !== undefined) layer.resetAfter = optBool('resetAfter', opts.resetAfter, true);
    if (opts.recurrentActivation !== undefined) {
      layer.recurrentActivation = oneOf('recurrentActivation', opts.recurrentActivation, [
        'sigmoid',
        'hardSigmoidTfjs',
        'hardSigmoidKeras3',
      ] as const);
    }
    const node: GraphNodeSpec = { name: this.#name(opts.name, type), layer, inputs: [g.name] };
    if (opts.initialState !== undefined) {
      const ref = opts.initialState as GraphStateRef;
      const from = typeof ref === 'object' && ref !== null ? this.#values.get(String(ref.node)) : undefined;
      if (from === undefined || !from.returnState) {
        throw new InvalidArgumentError(
          `initialState must be the state of a recurrent layer of this graph built with returnState: true (its output's .state), got ${describe(ref)}`,
        );
      }
      if (from.layers !== numLayers || from.width !== width || from.lstm !== (type === 'lstm')) {
        throw new InvalidArgumentError(
          `initialState must be the states of a recurrent layer with this one's stacked layers (${numLayers}), width hiddenSize × directions (${width}) and ${type === 'lstm' ? 'a cell state (an LSTM)' : 'no cell state (a GRU or simple RNN)'}; ${describe(from.name)} has ${from.layers} layer(s), width ${from.width}, ${from.lstm ? 'an LSTM' : 'no cell state'} (a bidirectional layer's two directions are concatenated)`,
        );
      }
      node.initialState = from.name;
    }
    const value = this.#add(node, returnSequences ? 'sequence' : 'vector', width, {
      state: returnState ? Object.freeze({ node: node.name }) : undefined,
      returnState,
      layers: numLayers,
      lstm: type === 'lstm',
    });
    return value as RecurrentValue;
  }

  /** An LSTM layer over a sequence: a sequence (or, with `returnSequences: false`, a vector) of `hiddenSize × directions`. */
  lstm(x: GraphValue, o: GraphRecurrentOptions): RecurrentValue {
    return this.#recurrent('lstm', x, o);
  }

  /** A GRU layer (as {@link GraphBuilder.lstm}). */
  gru(x: GraphValue, o: GraphRecurrentOptions): RecurrentValue {
    return this.#recurrent('gru', x, o);
  }

  /** A simple RNN layer (as {@link GraphBuilder.lstm}). */
  rnn(x: GraphValue, o: GraphRecurrentOptions): RecurrentValue {
    return this.#recurrent('rnn', x, o);
  }

  /** `activation(x·Wᵀ + b)` at every step of a sequence, or on a vector: `units` wide. */
  dense(x: GraphValue, o: { units: number; activation?: 'linear' | 'relu' | 'tanh' | 'sigmoid' | 'softmax'; name?: string }): GraphValue {
    const opts = options('dense options', o, ['units', 'activation', 'name']);
    const g = this.#own('dense input', x);
    if (g.kind === 'tokens')
      throw new InvalidArgumentError(
        `dense input must be a sequence or a vector (token ids go through an embedding first), got input ${describe(g.name)}`,
      );
    const units = positiveInt('units', opts.units);
    const activation =
      opts.activation === undefined ? 'linear' : oneOf('activation', opts.activation, ['linear', 'relu', 'tanh', 'sigmoid', 'softmax']);
    return this.#add(
      { name: this.#name(opts.name, 'dense'), layer: { type: 'dense', units, activation }, inputs: [g.name] },
      g.kind,
      units,
    );
  }

  /**
   * Inverted dropout in training (each value zeroed with probability `rate`, the others scaled by
   * `1/(1 − rate)`, seeded by `fit`'s `seed` and the epoch); the identity in `predict` and `evaluate`.
   */
  dropout(x: GraphValue, o: { rate: number; name?: string }): GraphValue {
    const opts = options('dropout options', o, ['rate', 'name']);
    const g = this.#own('dropout input', x);
    if (g.kind === 'tokens')
      throw new InvalidArgumentError(
        `dropout input must be a sequence or a vector (token ids go through an embedding first), got input ${describe(g.name)}`,
      );
    const rate = numberIn('rate', opts.rate, 0, 1, '[)');
    return this.#add({ name: this.#name(opts.name, 'dropout'), layer: { type: 'dropout', rate }, inputs: [g.name] }, g.kind, g.width);
  }

  /** Values side by side along the features: sequences over the same input's steps, or vectors. */
  concatenate(xs: readonly GraphValue[], o: { name?: string } = {}): GraphValue {
    const opts = options('concatenate options', o, ['name']);
    if (!Array.isArray(xs) || xs.length < 2) throw new InvalidArgumentError(`concatenate needs 2 or more values, got ${describe(xs)}`);
    const gs = xs.map((x, i) => this.#own(`concatenate input ${i}`, x));
    const kind = gs[0]!.kind;
    for (const [i, g] of gs.entries()) {
      if (g.kind === 'tokens' || g.kind !== kind)
        throw new InvalidArgumentError(`concatenate input ${i} must be a ${kind} as input 0 is, got ${describe(g.name)} (${g.kind})`);
    }
    const width = gs.reduce((s, g) => s + g.width, 0);
    return this.#add(
      { name: this.#name(opts.name, 'concatenate'), layer: { type: 'concatenate' }, inputs: gs.map((g) => g.name) },
      kind,
      width,
    );
  }

  /**
   * Attention of `query` (a sequence, e.g. a decoder's outputs) over `memory` (a sequence, e.g. an
   * encoder's outputs), masked by the memory's lengths: the context at every query step, as wide as
   * the memory. `predict` returns the weights under the node's name.
   */
  attention(query: GraphValue, memory: GraphValue, o: { score?: GraphAttentionScore; name?: string } = {}): GraphValue {
    const opts = options('attention options', o, ['score', 'name']);
    const q = this.#sequence('attention query', query);
    const m = this.#sequence('attention memory', memory);
    let score: GraphAttentionScore = 'dot';
    if (opts.score !== undefined) {
      if (typeof opts.score === 'string') score = oneOf('score', opts.score, ['dot', 'general'] as const);
      else {
        const a = options('score', opts.score, ['additive']);
        const u = options('score.additive', a.additive, ['units']);
        score = { additive: { units: positiveInt('score.additive.units', u.units) } };
      }
    }
    if (score === 'dot' && q.width !== m.width) {
      throw new InvalidArgumentError(
        `attention memory must have the query's width ${q.width} for a dot score (use 'general' or additive), got width ${m.width}`,
      );
    }
    return this.#add(
      { name: this.#name(opts.name, 'attention'), layer: { type: 'attention', score }, inputs: [q.name, m.name] },
      'sequence',
      m.width,
    );
  }

  /** The graph's JSON form with `outputs` (nodes, in order). */
  spec(outputs: readonly GraphValue[], seed = 0): GraphSpec {
    if (!Array.isArray(outputs) || outputs.length === 0)
      throw new InvalidArgumentError(`outputs must hold at least one node's output, got ${describe(outputs)}`);
    const names = outputs.map((v, i) => this.#own(`outputs[${i}]`, v).name);
    return {
      inputs: this.#inputs.map((i) => ({ ...i })),
      nodes: this.#nodes.map((n) => structuredClone(n)),
      outputs: names,
      seed: optInt('seed', seed, 0, 0, 0xffffffff),
    };
  }

  /** The model of this graph with `outputs`, weights from `seed`. */
  model(outputs: readonly GraphValue[], o: { seed?: number } = {}): GraphModel {
    const opts = options('model options', o, ['seed']);
    return GraphModel.fromSpec(this.spec(outputs, optInt('seed', opts.seed, 0, 0, 0xffffffff)));
  }
}

/** Starts building a model graph. */
export function graph(): GraphBuilder {
  return new GraphBuilder();
}

/** One input's data: nested arrays (ragged: lengths follow) or `{ data, shape, lengths? }`. */
export type GraphInputs = Record<string, SequenceInput>;
/** One output's targets: class ids (`[N]`, `[N][T]`) for cross-entropy, values for the squared error. */
export type GraphTargets = Record<string, TargetInput>;
/** The loss of an output. */
export type GraphLossName = 'mse' | 'crossEntropy';

/** Options of {@link GraphModel.fit}. */
export interface GraphFitOptions {
  /** Passes over the data (1). */
  epochs?: number;
  /** Samples per optimizer step (32). */
  batchSize?: number;
  /** Adam's learning rate (0.001), when `optimizer` is not given. */
  learningRate?: number;
  /**
   * The optimizer (default Adam with `learningRate`), made at the model's first `fit`; later
   * calls, and a model loaded from a file saved with `includeOptimizer`, go on with its state
   * (their learning rate is this call's).
   */
  optimizer?: OptimizerSpec;
  /** Clip the gradient's global L2 norm to this (none). */
  clipNorm?: number;
  /** Per output: its loss (default `'crossEntropy'` for a softmax dense output, else `'mse'`). */
  losses?: Record<string, GraphLossName>;
  /** Shuffle the samples every epoch, seeded (true). */
  shuffle?: boolean;
  /** Seeds the shuffle and the dropout masks (0). */
  seed?: number;
  /** Held-out data: its loss is reported every epoch. */
  validationData?: { x: GraphInputs; y: GraphTargets };
  /** Called after every epoch. */
  onEpoch?: (event: GraphEpoch) => void;
}

/** One epoch of {@link GraphModel.fit}. */
export interface GraphEpoch {
  /** 1-based, counting every epoch the model has trained. */
  epoch: number;
  /** The mean training loss (summed over the outputs). */
  loss: number;
  /** The held-out loss, with `validationData`. */
  validationLoss?: number;
}

/** What {@link GraphModel.predict} returns. */
export interface GraphPrediction {
  /** Per output: `[N, T, W]` (zeros past each sequence's length) or `[N, W]`. */
  outputs: Record<string, { data: Float32Array; shape: number[] }>;
  /** Per attention node: its weights `[N, Tq, Tk]` (0 past the memory's length). */
  attention: Record<string, { data: Float32Array; shape: number[] }>;
}

interface ValueInfo {
  kind: GraphValueKind;
  width: number;
  /** The input whose steps a sequence has. */
  source: number;
  softmax: boolean;
}

/** Each output's kind, width and source input, from the spec (as the native side wires it). */
function outputInfo(spec: GraphSpec): ValueInfo[] {
  const info = new Map<string, ValueInfo>();
  spec.inputs.forEach((i, k) => {
    info.set(
      i.name,
      'features' in i
        ? { kind: 'sequence', width: i.features, source: k, softmax: false }
        : { kind: 'tokens', width: i.vocabSize, source: k, softmax: false },
    );
  });
  for (const n of spec.nodes) {
    const first = info.get(n.inputs[0] ?? '');
    const source = first?.source ?? 0;
    const kind = first?.kind ?? 'sequence';
    const l = n.layer;
    let v: ValueInfo;
    if (l.type === 'embedding') v = { kind: 'sequence', width: l.embeddingDim, source, softmax: false };
    else if (l.type === 'dense') v = { kind, width: l.units, source, softmax: l.activation === 'softmax' };
    else if (l.type === 'concatenate')
      v = { kind, width: n.inputs.reduce((s, x) => s + (info.get(x)?.width ?? 0), 0), source, softmax: false };
    else if (l.type === 'attention') v = { kind: 'sequence', width: info.get(n.inputs[1] ?? '')?.width ?? 0, source, softmax: false };
    else if (l.type === 'dropout') v = { kind, width: first?.width ?? 0, source, softmax: false };
    else {
      const width = l.hiddenSize * (l.bidirectional ? 2 : 1);
      v = { kind: l.returnSequences === false ? 'vector' : 'sequence', width, source, softmax: false };
    }
    info.set(n.name, v);
  }
  return spec.outputs.map((o) => info.get(o) ?? { kind: 'vector', width: 0, source: 0, softmax: false });
}

const FIT_KEYS = [
  'epochs',
  'batchSize',
  'learningRate',
  'optimizer',
  'clipNorm',
  'losses',
  'shuffle',
  'seed',
  'validationData',
  'onEpoch',
] as const;

/**
 * A model graph with its weights in native memory. Training, evaluation and prediction run off
 * the event loop; one call at a time (another is refused with `GYRE_BUSY`).
 */
export class GraphModel {
  readonly #native: native.NativeGraph;
  readonly #spec: GraphSpec;
  readonly #outputs: ValueInfo[];

  private constructor(n: native.NativeGraph) {
    this.#native = n;
    this.#spec = JSON.parse(native.guard(() => n.specJson)) as GraphSpec;
    this.#outputs = outputInfo(this.#spec);
  }

  /** A model from a graph's JSON form ({@link GraphSpec}), checked natively (a bad option is named by its path, `nodes[2].layer.hiddenSize`). */
  static fromSpec(spec: GraphSpec): GraphModel {
    if (typeof spec !== 'object' || spec === null)
      throw new InvalidArgumentError(`spec must be a graph's JSON form, got ${describe(spec)}`);
    return new GraphModel(native.guard(() => new native.NativeGraph(JSON.stringify(spec))));
  }

  /**
   * The graph of a sequential model, with its weights: one chain from an input named `x`, node
   * `i` for layer `i`, so the parameters keep their names (`1.weight_ih_l0`). A sequential
   * model is this case of a graph; options a graph does not have (dropout of any kind, zoneout,
   * `merge: 'sum'`, `goBackwards`, frozen layers, masking) are refused by name.
   */
  static fromSequential(model: Model): GraphModel {
    const config = model.config as unknown as { input: Record<string, unknown>; layers: Record<string, unknown>[] };
    const input = config.input;
    const defaults: Record<string, unknown> = {
      merge: 'concat',
      dropout: 0,
      inputDropout: 0,
      recurrentDropout: 0,
      zoneout: 0,
      goBackwards: false,
      trainable: true,
      maskZero: false,
    };
    const refuse = (where: string, value: unknown) => {
      throw new InvalidArgumentError(
        `${where} is ${describe(value)}, which a model graph does not have (fromSequential takes models without it)`,
      );
    };
    for (const [k, v] of Object.entries(input)) if (k in defaults && v !== defaults[k]) refuse(`input.${k}`, v);
    if ('maskValue' in input && input.maskValue !== undefined) refuse('input.maskValue', input.maskValue);
    const inputs: GraphInputSpec[] = [
      typeof input.vocabSize === 'number' ? { name: 'x', vocabSize: input.vocabSize } : { name: 'x', features: input.features as number },
    ];
    const nodes: GraphNodeSpec[] = config.layers.map((l, i) => {
      const at = `layers[${i}]`;
      for (const [k, v] of Object.entries(l)) if (k in defaults && v !== defaults[k]) refuse(`${at}.${k}`, v);
      const from = i === 0 ? 'x' : String(i - 1);
      const { type } = l;
      if (type === 'embedding') return { name: String(i), layer: { type: 'embedding', embeddingDim: l.dim as number }, inputs: [from] };
      if (type === 'dense')
        return {
          name: String(i),
          layer: { type: 'dense', units: l.units as number, activation: l.activation as 'linear' },
          inputs: [from],
        };
      if (type === 'lstm' || type === 'gru' || type === 'rnn') {
        const layer: GraphLayerSpec = {
          type,
          hiddenSize: l.hiddenSize as number,
          numLayers: l.numLayers as number,
          bidirectional: l.bidirectional as boolean,
          returnSequences: l.returnSequences as boolean,
        };
        if (l.nonlinearity !== undefined) layer.nonlinearity = l.nonlinearity as 'tanh';
        if (l.resetAfter !== undefined) layer.resetAfter = l.resetAfter as boolean;
        if (l.recurrentActivation !== undefined) layer.recurrentActivation = l.recurrentActivation as 'sigmoid';
        return { name: String(i), layer, inputs: [from] };
      }
      return refuse(`${at}.type`, type);
    });
    const g = GraphModel.fromSpec({ inputs, nodes, outputs: [String(nodes.length - 1)] });
    const weights: Record<string, Float32Array> = {};
    for (const [name, p] of Object.entries(model.parameters())) weights[name] = p.data;
    g.setParameters(weights);
    return g;
  }

  /** The graph's JSON form, every default written out. */
  get spec(): GraphSpec {
    return structuredClone(this.#spec);
  }

  /** Epochs trained. */
  get trainedEpochs(): number {
    return native.guard(() => this.#native.epochs);
  }

  /** Every parameter by name (`enc.weight_ih_l0`, `out.weight`, …): a copy of its values and its shape. */
  parameters(): Record<string, { data: Float32Array; shape: number[] }> {
    const out: Record<string, { data: Float32Array; shape: number[] }> = {};
    for (const p of native.guard(() => this.#native.params())) out[p.name] = { data: p.values, shape: p.shape };
    return out;
  }

  /** Replaces parameters by name (each its number of finite values); the others stay. */
  setParameters(values: Record<string, Float32Array>): void {
    for (const [name, v] of Object.entries(options('values', values, Object.keys(values)))) {
      if (!(v instanceof Float32Array)) throw new InvalidArgumentError(`values.${name} must be a Float32Array, got ${describe(v)}`);
      native.guard(() => this.#native.setParam(name, v));
    }
  }

  #data(x: GraphInputs, y: GraphTargets | undefined, losses: GraphLossName[] | undefined, what: string): native.GraphDataArgs {
    const xs = options(
      `${what}x`,
      x,
      this.#spec.inputs.map((i) => i.name),
    );
    let samples = -1;
    const inputs = this.#spec.inputs.map((spec) => {
      const v = xs[spec.name];
      if (v === undefined)
        throw new MissingArgumentError(
          `${what}x.${spec.name} is required (the graph's inputs: ${this.#spec.inputs.map((i) => i.name).join(', ')})`,
        );
      const tokens = 'vocabSize' in spec;
      const flat = flattenInput(v, tokens, tokens ? 1 : spec.features, `${what}x.${spec.name}`);
      if (samples >= 0 && flat.samples !== samples)
        throw new InvalidArgumentError(`${what}x.${spec.name} must hold ${samples} samples as the first input does, got ${flat.samples}`);
      samples = flat.samples;
      return {
        steps: flat.steps,
        lengths: flat.lengths ?? new Uint32Array(flat.samples).fill(flat.steps),
        ...(tokens ? { tokens: flat.tokens } : { floats: flat.features }),
      };
    });
    if (y === undefined || losses === undefined) return { samples, inputs };
    const ys = options(`${what}y`, y, this.#spec.outputs);
    const targets = this.#spec.outputs.map((name, k) => {
      const t = ys[name];
      if (t === undefined)
        throw new MissingArgumentError(`${what}y.${name} is required (the graph's outputs: ${this.#spec.outputs.join(', ')})`);
      const info = this.#outputs[k]!;
      const perStep = info.kind === 'sequence';
      const steps = inputs[info.source]?.steps ?? 1;
      return flattenTargets(t, losses[k] === 'crossEntropy', info.width, samples, steps, perStep, `${what}y.${name}`);
    });
    return { samples, inputs, targets };
  }

  #losses(given: unknown): GraphLossName[] {
    const o = given === undefined ? {} : options('losses', given, this.#spec.outputs);
    return this.#spec.outputs.map((name, k) => {
      const softmax = this.#outputs[k]!.softmax;
      if (o[name] === undefined) return softmax ? 'crossEntropy' : 'mse';
      const loss = oneOf(`losses.${name}`, o[name], ['mse', 'crossEntropy'] as const);
      if (loss === 'crossEntropy' && !softmax) {
        throw new InvalidArgumentError(
          `losses.${name} must be 'mse': 'crossEntropy' needs output ${describe(name)} to be a dense layer with activation 'softmax'`,
        );
      }
      return loss;
    });
  }

  /** Trains on `x` (one entry per input, by name) against `y` (one per output); resolves to one event per epoch. */
  async fit(x: GraphInputs, y: GraphTargets, options_: GraphFitOptions = {}): Promise<GraphEpoch[]> {
    const o = options('options', options_, FIT_KEYS);
    const epochs = optInt('epochs', o.epochs, 1, 1);
    const batchSize = optInt('batchSize', o.batchSize, 32, 1);
    const learningRate = o.learningRate === undefined ? 0.001 : numberIn('learningRate', o.learningRate, 0, Number.POSITIVE_INFINITY, '()');
    const clipNorm = o.clipNorm === undefined ? undefined : numberIn('clipNorm', o.clipNorm, 0, Number.POSITIVE_INFINITY, '()');
    const shuffle = optBool('shuffle', o.shuffle, true);
    const seed = optInt('seed', o.seed, 0, 0, 0xffffffff);
    const losses = this.#losses(o.losses);
    if (o.onEpoch !== undefined && typeof o.onEpoch !== 'function')
      throw new InvalidArgumentError(`onEpoch must be a function, got ${describe(o.onEpoch)}`);
    const onEpoch = o.onEpoch as ((e: GraphEpoch) => void) | undefined;
    const optimizer = o.optimizer === undefined ? { type: 'adam', learningRate } : (o.optimizer as OptimizerSpec);
    const lr =
      typeof (optimizer as { learningRate?: unknown }).learningRate === 'number'
        ? (optimizer as { learningRate: number }).learningRate
        : learningRate;
    const data = this.#data(x, y, losses, '');
    let validation: native.GraphDataArgs | undefined;
    if (o.validationData !== undefined) {
      const v = options('validationData', o.validationData, ['x', 'y']);
      validation = this.#data(v.x as GraphInputs, v.y as GraphTargets, losses, 'validationData.');
    }
    const history: GraphEpoch[] = [];
    for (let e = 0; e < epochs; e++) {
      const epoch = this.trainedEpochs + 1;
      const loss = await native.settle(
        native.guard(() =>
          this.#native.trainEpoch(data, {
            batchSize,
            learningRate: lr,
            clipNorm,
            losses,
            shuffleSeed: shuffle ? (seed + epoch * 0x9e3779b1) >>> 0 : undefined,
            dropoutSeed: (seed * 31 + epoch) >>> 0,
            optimizer: JSON.stringify(optimizer),
          }),
        ),
      );
      const event: GraphEpoch = { epoch, loss };
      if (validation !== undefined)
        event.validationLoss = await native.settle(native.guard(() => this.#native.evaluate(validation, losses, batchSize)));
      history.push(event);
      onEpoch?.(event);
    }
    return history;
  }

  /** The mean loss (summed over the outputs) on `x` against `y`. */
  async evaluate(
    x: GraphInputs,
    y: GraphTargets,
    options_: { batchSize?: number; losses?: Record<string, GraphLossName> } = {},
  ): Promise<number> {
    const o = options('options', options_, ['batchSize', 'losses']);
    const losses = this.#losses(o.losses);
    const data = this.#data(x, y, losses, '');
    return native.settle(native.guard(() => this.#native.evaluate(data, losses, optInt('batchSize', o.batchSize, 64, 1))));
  }

  /** Every output for every sample of `x`, by output name, and every attention node's weights. */
  async predict(x: GraphInputs, options_: { batchSize?: number } = {}): Promise<GraphPrediction> {
    const o = options('options', options_, ['batchSize']);
    const data = this.#data(x, undefined, undefined, '');
    const r = await native.settle(native.guard(() => this.#native.predict(data, optInt('batchSize', o.batchSize, 64, 1))));
    const outputs: GraphPrediction['outputs'] = {};
    r.outputs.forEach((out, k) => {
      outputs[this.#spec.outputs[k]!] = { data: out.values, shape: out.shape };
    });
    const attention: GraphPrediction['attention'] = {};
    for (const a of r.attention) attention[a.name] = { data: a.values, shape: a.shape };
    return { outputs, attention };
  }

  /**
   * The model as one `.safetensors` file's bytes: the graph, the weights, epochs trained and,
   * with `includeOptimizer` (after training, or loaded with one), the optimizer's state, so
   * that `fit` on the loaded model goes on exactly as it would have on this one.
   */
  toBuffer(options_: { includeOptimizer?: boolean } = {}): Uint8Array {
    const o = options('options', options_, ['includeOptimizer']);
    const include = optBool('includeOptimizer', o.includeOptimizer, false);
    return native.guard(() => this.#native.toSafetensors(include, JSON.stringify({ gyre: { task: 'graph' } })));
  }

  /** Whether the model holds an optimizer state (it has trained, or was loaded with one); `fit` goes on with it. */
  get hasOptimizer(): boolean {
    return native.guard(() => this.#native.hasOptimizer());
  }

  /** Writes {@link GraphModel.toBuffer} to `path` atomically (a temporary file renamed over it). */
  async save(path: string, options_: { includeOptimizer?: boolean } = {}): Promise<void> {
    await writeAtomically(path, this.toBuffer(options_), 'write model file');
  }

  /** A model from {@link GraphModel.toBuffer}'s bytes (`GYRE_BAD_FILE` for a damaged file or another kind of model). */
  static fromBuffer(bytes: Uint8Array): GraphModel {
    return new GraphModel(native.guard(() => native.NativeGraph.fromSafetensors(bytes)));
  }

  /** Loads a model file written by {@link GraphModel.save}. */
  static async load(path: string): Promise<GraphModel> {
    const bytes = await readBytes(path, 'read model file');
    return about(path, () => GraphModel.fromBuffer(bytes));
  }

  /** Frees the native weights now; later calls fail with `GYRE_DISPOSED`. */
  dispose(): void {
    native.guard(() => this.#native.dispose());
  }
}
