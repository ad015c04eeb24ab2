/**
 * Functional Keras / TensorFlow.js models (a `Model` or `Functional` topology: several inputs,
 * layers applied to each other's outputs, recurrent layers with `return_state` whose states
 * start another's `initial_state`) as gyre {@link GraphModel}s.
 *
 * What maps how: `InputLayer` → a graph input (float steps, or token ids when an `Embedding`
 * reads it); `Embedding`, `SimpleRNN` / `LSTM` / `GRU` (and `Bidirectional` with `concat`
 * merging), `Dense` (also inside `TimeDistributed`), `Concatenate` (last axis), `Dropout` and
 * `Attention` (the dot score, over `[query, value]`) → the graph's layers; other dropout and noise layers are skipped (they are the identity in prediction). States: `LSTM(return_state=True)` outputs
 * `[output, h, c]` (a `GRU` or `SimpleRNN` `[output, h]`; a `Bidirectional` `[output, h_fwd,
 * (c_fwd,) h_bwd, (c_bwd)]`); a recurrent layer's `initial_state` must be the states of one
 * recurrent layer — `[h, c]` of a one-directional layer, a `Bidirectional`'s forward and backward
 * states each joined by a `Concatenate` (forward first: gyre's rule for handing a bidirectional
 * layer's states on), or all four states of a `Bidirectional` into a `Bidirectional`. Anything
 * else (shared layers, masking, other layer classes, states used another way) is an error naming
 * the layer.
 */
import { GyreError, InvalidArgumentError } from '../errors.js';
import { GraphModel, type GraphInputSpec, type GraphLayerSpec, type GraphNodeSpec } from '../model/graph.js';
import { describe } from '../util/check.js';
import {
  assignWeights,
  CELLS,
  concatBytes,
  decodeEntries,
  type Entry,
  fail,
  IDENTITY_CLASSES,
  isObject,
  type Json,
  type Layer,
  layerParameters,
  parseLayer,
  parseModelJson,
  type Producer,
  producerOf,
  readTfjs,
  snakeCase,
  type TfjsWeightData,
  variablesOf,
  weightEntries,
} from './tfjs.js';

/** A tensor a layer reads: `[layer name, node index, tensor index]`. */
type Ref = [string, number, number];

/** What a Keras tensor is in the graph. */
type Tensor =
  | { kind: 'value'; name: string }
  | { kind: 'state'; node: string; part: 'h' | 'c'; dir: 'f' | 'b' | 'both' }
  | { kind: 'input'; name: string };

interface KerasLayer {
  cls: string;
  name: string;
  config: Json;
  /** The tensors of its one call. */
  inputs: Ref[];
  /** `initial_state` tensors (Keras 3 keeps them apart; tfjs and Keras 2 list them after the input). */
  initialState: Ref[];
  /** The call's other keyword arguments (Keras 3). */
  kwargs: Json;
}

function ref(v: unknown, what: string): Ref {
  if (Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'number' && typeof v[2] === 'number') return [v[0], v[1], v[2]];
  if (isObject(v) && isObject(v.config) && Array.isArray(v.config.keras_history)) return ref(v.config.keras_history, what);
  return fail(`${what} must be a tensor reference, got ${describe(v)}`);
}

/** The tensors a Keras 3 call argument holds (a tensor or a list of them). */
function tensorsOf(v: unknown, what: string): Ref[] {
  if (Array.isArray(v) && v.length > 0 && typeof v[0] !== 'string') return v.flatMap((x, i) => tensorsOf(x, `${what}[${i}]`));
  return [ref(v, what)];
}

/** One layer's call, from either inbound-node format. */
function calls(l: Json, label: string): { inputs: Ref[]; initialState: Ref[]; kwargs: Json } {
  const nodes = l.inbound_nodes;
  if (!Array.isArray(nodes)) return fail(`${label}: no inbound_nodes array`);
  if (nodes.length === 0) return { inputs: [], initialState: [], kwargs: {} };
  if (nodes.length > 1) fail(`${label}: is called ${nodes.length} times; shared layers are not supported`);
  const node = nodes[0];
  if (isObject(node)) {
    // Keras 3: { args: [...], kwargs: { initial_state?: [...] } }.
    const args = Array.isArray(node.args) ? node.args : [];
    const kwargs = isObject(node.kwargs) ? node.kwargs : {};
    const inputs = args.flatMap((a, i) => tensorsOf(a, `${label} args[${i}]`));
    const initialState =
      kwargs.initial_state === undefined || kwargs.initial_state === null ? [] : tensorsOf(kwargs.initial_state, `${label} initial_state`);
    return { inputs, initialState, kwargs };
  }
  if (!Array.isArray(node)) return fail(`${label}: inbound_nodes[0] must be a list of tensors or a {args, kwargs} object`);
  return { inputs: node.map((t, i) => ref(t, `${label} inbound_nodes[0][${i}]`)), initialState: [], kwargs: {} };
}

/** The functional topology's layers, inputs and outputs. */
function functional(topology: unknown): { layers: Json[]; inputs: Ref[]; outputs: Ref[] } {
  if (!isObject(topology)) return fail(`model.json has no modelTopology object (got ${describe(topology)})`);
  const t = isObject(topology.model_config) ? topology.model_config : topology;
  if (t.class_name !== 'Model' && t.class_name !== 'Functional') {
    return fail(
      `importTfjsGraph takes a functional model (class Model or Functional); the model is a ${describe(t.class_name)} (import a Sequential with importTfjs)`,
    );
  }
  const c = isObject(t.config) ? t.config : {};
  if (!Array.isArray(c.layers)) return fail('the functional config has no layers array');
  const list = (v: unknown, what: string): Ref[] => {
    if (!Array.isArray(v)) return fail(`the functional config has no ${what} list`);
    // Keras 3 writes one input as a bare reference.
    if (typeof v[0] === 'string') return [ref(v, what)];
    return v.map((x, i) => ref(x, `${what}[${i}]`));
  };
  return { layers: c.layers as Json[], inputs: list(c.input_layers, 'input_layers'), outputs: list(c.output_layers, 'output_layers') };
}

/**
 * @internal A functional model's config (tfjs' model.json topology or Keras' config.json) and
 * its stored weights → a graph spec and parameters.
 */
export function convertGraph(
  topology: unknown,
  producer: Producer,
  readEntries: () => Entry[],
): { spec: { inputs: GraphInputSpec[]; nodes: GraphNodeSpec[]; outputs: string[] }; parameters: Record<string, Float32Array> } {
  const top = functional(topology);
  const keras: KerasLayer[] = top.layers.map((l, i) => {
    if (!isObject(l) || typeof l.class_name !== 'string' || !isObject(l.config)) fail(`layers[${i}] must be a {class_name, config} object`);
    const name =
      typeof l.name === 'string' ? l.name : typeof l.config.name === 'string' ? l.config.name : `${snakeCase(l.class_name)}_${i}`;
    const label = `layer ${JSON.stringify(name)} (${l.class_name}, layers[${i}])`;
    const { inputs, initialState, kwargs } = calls(l, label);
    return { cls: l.class_name, name, config: l.config, inputs, initialState, kwargs };
  });
  const label = (k: KerasLayer) => `layer ${JSON.stringify(k.name)} (${k.cls})`;
  const byName = new Map(keras.map((k) => [k.name, k]));
  const tensors = new Map<string, Tensor>();
  const key = (r: Ref) => `${r[0]}:${r[2]}`;
  const get = (r: Ref, who: string): Tensor => {
    const t = tensors.get(key(r));
    if (t === undefined)
      return fail(
        `${who} reads ${JSON.stringify(r[0])} output ${r[2]}, which is not defined before it (or is not an output of that layer)`,
      );
    return t;
  };
  const value = (r: Ref, who: string): string => {
    const t = get(r, who);
    if (t.kind === 'state')
      fail(
        `${who} reads a state of ${JSON.stringify(t.node)} (return_state); states can only start another recurrent layer (initial_state)`,
      );
    return t.name;
  };

  const inputs: GraphInputSpec[] = [];
  const inputFeatures = new Map<string, number | undefined>();
  const tokenInputs = new Map<string, number>();
  const nodes: GraphNodeSpec[] = [];
  const weightLayers: Layer[] = [];
  const nodeOfWeights: string[] = [];
  const perClass = new Map<string, number>();
  const widthOf = new Map<string, number>();

  for (const k of keras) {
    const snake = snakeCase(k.cls);
    const n = perClass.get(snake) ?? 0;
    perClass.set(snake, n + 1);
    const keras3Key = n === 0 ? snake : `${snake}_${n}`;
    const c = k.config;
    if (k.cls === 'InputLayer') {
      const shape = (c.batch_input_shape ?? c.batch_shape) as unknown;
      const f = Array.isArray(shape) && shape.length === 3 && typeof shape[2] === 'number' ? shape[2] : undefined;
      if (Array.isArray(shape) && shape.length !== 3 && shape.length !== 2)
        fail(`${label(k)}: input shape ${JSON.stringify(shape)} is not [batch, steps(, features)]`);
      inputFeatures.set(k.name, f);
      tensors.set(`${k.name}:0`, { kind: 'input', name: k.name });
      continue;
    }
    const first = k.inputs[0];
    if (first === undefined) fail(`${label(k)}: reads no tensor`);
    if (k.cls === 'Dropout' && typeof c.rate === 'number' && c.rate > 0 && c.rate < 1) {
      const from = value(first, label(k));
      nodes.push({ name: k.name, layer: { type: 'dropout', rate: c.rate }, inputs: [from] });
      widthOf.set(k.name, widthOf.get(from) ?? inputFeatures.get(from) ?? 0);
      tensors.set(`${k.name}:0`, { kind: 'value', name: k.name });
      continue;
    }
    if (
      IDENTITY_CLASSES.includes(k.cls) ||
      (k.cls === 'TimeDistributed' && isObject(c.layer) && IDENTITY_CLASSES.includes(String(c.layer.class_name)))
    ) {
      tensors.set(`${k.name}:0`, get(first, label(k)));
      continue;
    }
    if (k.cls === 'Concatenate') {
      const axis = c.axis ?? -1;
      if (axis !== -1) fail(`${label(k)}: axis ${describe(axis)} is not supported; gyre concatenates features (axis -1)`);
      const parts = k.inputs.map((r) => get(r, label(k)));
      if (parts.every((p) => p.kind === 'state')) {
        // A bidirectional layer's forward and backward states of one kind, forward first.
        const [a, b] = parts as Extract<Tensor, { kind: 'state' }>[];
        if (parts.length !== 2 || a!.node !== b!.node || a!.part !== b!.part || a!.dir !== 'f' || b!.dir !== 'b') {
          fail(
            `${label(k)}: joins states; only a Bidirectional layer's forward and backward state of one kind, forward first, can be joined (gyre's rule for a bidirectional layer's states)`,
          );
        }
        tensors.set(`${k.name}:0`, { kind: 'state', node: a!.node, part: a!.part, dir: 'both' });
        continue;
      }
      const names = k.inputs.map((r) => value(r, label(k)));
      nodes.push({ name: k.name, layer: { type: 'concatenate' }, inputs: names });
      widthOf.set(
        k.name,
        names.reduce((s, x) => s + (widthOf.get(x) ?? 0), 0),
      );
      tensors.set(`${k.name}:0`, { kind: 'value', name: k.name });
      continue;
    }
    if (k.cls === 'Attention') {
      const width = (n: string) => inputFeatures.get(n) ?? widthOf.get(n);
      const node = attentionNode(k, label(k), (r) => value(r, label(k)), width);
      nodes.push(node);
      widthOf.set(k.name, width(node.inputs[1]!) ?? 0);
      tensors.set(`${k.name}:0`, { kind: 'value', name: k.name });
      continue;
    }
    const parsed = parseLayer(label(k), k.cls, c, true, producer);
    const from = value(first, label(k));
    const { variables, directions } = variablesOf(parsed);
    const inner = isObject(c.layer) && isObject(c.layer.config) ? c.layer.config : {};
    const trainable = c.trainable !== false && inner.trainable !== false;
    if (!trainable) fail(`${label(k)}: trainable false is not supported in an imported graph`);
    weightLayers.push({ label: label(k), name: k.name, keras3Key, parsed, variables, directions, trainable });
    nodeOfWeights.push(k.name);
    let layer: GraphLayerSpec;
    if (parsed.kind === 'embedding') {
      if (parsed.maskZero)
        fail(`${label(k)}: mask_zero true is not supported in an imported graph (give each sequence its own length instead)`);
      if (!inputFeatures.has(from) || tokenInputs.has(from)) fail(`${label(k)}: an Embedding must read an input of its own (token ids)`);
      tokenInputs.set(from, parsed.vocab);
      layer = { type: 'embedding', embeddingDim: parsed.dim };
      widthOf.set(k.name, parsed.dim);
    } else if (parsed.kind === 'dense') {
      layer = { type: 'dense', units: parsed.units, activation: parsed.activation };
      widthOf.set(k.name, parsed.units);
    } else {
      const o = parsed.opts;
      if (parsed.bidirectional && parsed.merge !== 'concat') fail(`${label(k)}: merge_mode 'sum' is not supported in an imported graph`);
      if (o.goBackwards) fail(`${label(k)}: go_backwards true is not supported in an imported graph`);
      if (o.inputDropout > 0 || o.recurrentDropout > 0)
        fail(`${label(k)}: dropout and recurrent_dropout are not supported in an imported graph`);
      const { type } = CELLS[o.cell];
      layer = {
        type,
        hiddenSize: o.units,
        numLayers: 1,
        bidirectional: parsed.bidirectional,
        returnSequences: o.returnSequences,
        returnState: o.returnState,
      };
      if (type === 'rnn') layer.nonlinearity = o.relu ? 'relu' : 'tanh';
      else layer.recurrentActivation = o.recurrentActivation;
      widthOf.set(k.name, o.units * (parsed.bidirectional ? 2 : 1));
      const node: GraphNodeSpec = { name: k.name, layer, inputs: [from] };
      // tfjs and Keras 2 list the initial states after the input.
      const stateRefs = k.initialState.length > 0 ? k.initialState : k.inputs.slice(1);
      if (stateRefs.length > 0)
        node.initialState = initialStateOf(
          k,
          stateRefs.map((r) => get(r, label(k))),
          parsed.bidirectional,
          type === 'lstm',
          label(k),
        );
      nodes.push(node);
      tensors.set(`${k.name}:0`, { kind: 'value', name: k.name });
      if (o.returnState) {
        const parts: ('h' | 'c')[] = type === 'lstm' ? ['h', 'c'] : ['h'];
        const dirs: ('f' | 'b')[] = parsed.bidirectional ? ['f', 'b'] : ['f'];
        let t = 1;
        for (const dir of dirs) for (const part of parts) tensors.set(`${k.name}:${t++}`, { kind: 'state', node: k.name, part, dir });
      }
      continue;
    }
    nodes.push({ name: k.name, layer, inputs: [from] });
    tensors.set(`${k.name}:0`, { kind: 'value', name: k.name });
  }
  for (const r of top.inputs) {
    const l = byName.get(r[0]);
    if (l?.cls !== 'InputLayer') fail(`input_layers names ${JSON.stringify(r[0])}, which is not an InputLayer`);
    const vocab = tokenInputs.get(r[0]);
    if (vocab !== undefined) inputs.push({ name: r[0], vocabSize: vocab });
    else {
      const f = inputFeatures.get(r[0]);
      if (f === undefined) fail(`input ${JSON.stringify(r[0])}: its shape does not give the features per step ([batch, steps, features])`);
      inputs.push({ name: r[0], features: f });
    }
  }
  const outputs = top.outputs.map((r, i) => value(r, `output_layers[${i}]`));

  // Weights, in gyre's layout under each node's name.
  const slots = assignWeights(weightLayers, readEntries());
  const parameters: Record<string, Float32Array> = {};
  const inWidth = (name: string): number | undefined => {
    const f = inputFeatures.get(name);
    return f ?? widthOf.get(name);
  };
  nodeOfWeights.forEach((name, i) => {
    const node = nodes.find((n) => n.name === name)!;
    const converted = layerParameters(slots, weightLayers, i, inWidth(node.inputs[0]!), node.name, parameters);
    if (node.layer.type === 'gru') node.layer.resetAfter = converted.resetAfter ?? false;
  });
  return { spec: { inputs, nodes, outputs }, parameters };
}

/**
 * Keras' `Attention` layer (Luong's dot score: `softmax(q·kᵀ)·v`) called on `[query, value]` or
 * `[query, value, key]` with the key the value, as gyre's `'dot'` attention of the query over the
 * value. What gyre's attention does not have is an error naming it: a learned scale
 * (`use_scale`), the `'concat'` score, dropout on the weights, a causal mask, the scores as a
 * second output. (Keras masks the value only by a mask, refused here; gyre masks it by each
 * sequence's length: the same for sequences given at full length.)
 */
function attentionNode(
  k: KerasLayer,
  label: string,
  value: (r: Ref) => string,
  width: (name: string) => number | undefined,
): GraphNodeSpec {
  const c = k.config;
  if (c.use_scale === true) fail(`${label}: use_scale true is not supported (gyre's dot attention has no learned scale)`);
  if ((c.score_mode ?? 'dot') !== 'dot') fail(`${label}: score_mode ${describe(c.score_mode)} is not supported; gyre imports 'dot'`);
  if (typeof c.dropout === 'number' && c.dropout > 0) fail(`${label}: dropout ${c.dropout} on the attention weights is not supported`);
  if (c.causal === true || k.kwargs.use_causal_mask === true) fail(`${label}: a causal mask is not supported`);
  if (k.kwargs.return_attention_scores === true)
    fail(`${label}: return_attention_scores true is not supported (a gyre graph's predict returns every attention node's weights)`);
  const [q, v, key] = k.inputs;
  if (q === undefined || v === undefined || k.inputs.length > 3)
    fail(`${label}: takes [query, value] or [query, value, key], got ${k.inputs.length} tensors`);
  if (key !== undefined && (key[0] !== v![0] || key[2] !== v![2]))
    fail(`${label}: a key other than the value is not supported (gyre's attention reads its memory as both)`);
  const query = value(q!);
  const memory = value(v!);
  const [wq, wm] = [width(query), width(memory)];
  if (wq !== undefined && wm !== undefined && wq !== wm)
    fail(`${label}: the dot score needs the query and the value to have the same width, got ${wq} and ${wm}`);
  return { name: k.name, layer: { type: 'attention', score: 'dot' }, inputs: [query, memory] };
}

/** The node a recurrent layer's `initial_state` tensors are the states of. */
function initialStateOf(k: KerasLayer, states: Tensor[], bidirectional: boolean, lstm: boolean, label: string): string {
  const parts: ('h' | 'c')[] = lstm ? ['h', 'c'] : ['h'];
  const expect = (dir: 'f' | 'b' | 'both') => parts.map((part) => ({ part, dir }));
  const patterns = bidirectional ? [[...expect('f'), ...expect('b')]] : [expect('f'), expect('both')];
  const node = states[0]?.kind === 'state' ? states[0].node : undefined;
  const ok =
    node !== undefined &&
    patterns.some(
      (p) =>
        p.length === states.length &&
        p.every((w, i) => {
          const s = states[i]!;
          return s.kind === 'state' && s.node === node && s.part === w.part && s.dir === w.dir;
        }),
    );
  if (!ok) {
    fail(
      `${label}: initial_state must be the states of one recurrent layer: ${lstm ? '[h, c]' : '[h]'} of a one-directional layer with return_state, ` +
        `a Bidirectional's forward and backward states each joined by a Concatenate (forward first)${bidirectional ? ", or a Bidirectional's four (two) states in order" : ''}; got ${describe(states.map((s) => (s.kind === 'state' ? `${s.node}.${s.part}${s.dir === 'both' ? '' : `_${s.dir}`}` : s.name)))} (for ${k.name})`,
    );
  }
  return node!;
}

/**
 * Builds a {@link GraphModel} from a functional TensorFlow.js Layers model (`tf.model({ inputs,
 * outputs })`, or Keras' functional `Model` through `tensorflowjs_converter`): `modelJson` is
 * model.json and `weightData` the weight bytes, as for {@link importTfjs}. See the module
 * documentation for what maps how.
 * @throws {InvalidArgumentError} naming the layer for an unsupported layer, option or wiring.
 */
export function importTfjsGraph(modelJson: object | string, weightData: TfjsWeightData): GraphModel {
  const json = parseModelJson(modelJson);
  const { spec, parameters } = convertGraph(json.modelTopology, producerOf(json), () =>
    decodeEntries(weightEntries(json), concatBytes(weightData)),
  );
  return graphModelOf(spec, parameters);
}

/** @internal The graph model of a conversion, its parameters loaded. */
export function graphModelOf(
  spec: { inputs: GraphInputSpec[]; nodes: GraphNodeSpec[]; outputs: string[] },
  parameters: Record<string, Float32Array>,
): GraphModel {
  const model = GraphModel.fromSpec(spec);
  const expected = Object.keys(model.parameters());
  const missing = expected.filter((n) => !(n in parameters));
  if (missing.length > 0) {
    model.dispose();
    throw new InvalidArgumentError(`graph import: no weights for ${missing.join(', ')}`);
  }
  model.setParameters(parameters);
  return model;
}

/** Reads a functional TensorFlow.js Layers model from disk (model.json and its weight files) into a {@link GraphModel}. */
export async function loadTfjsGraph(modelJsonPath: string): Promise<GraphModel> {
  const { json, shards } = await readTfjs(modelJsonPath);
  try {
    return importTfjsGraph(json, shards);
  } catch (err) {
    if (err instanceof GyreError) err.message = err.message.replace(/^tfjs import: /, `tfjs import (${modelJsonPath}): `);
    throw err;
  }
}
