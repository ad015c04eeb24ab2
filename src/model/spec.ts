/**
 * A sequential model's specification ({@link ModelSpec}): what it reads and its layers, checked
 * in TypeScript (types, unknown keys) before it crosses to the native model as JSON.
 */
import { InvalidArgumentError, MissingArgumentError } from '../errors.js';
import { bool, checkKeys, describe, nonNegativeInt, numberIn, object, oneOf, positiveInt } from '../util/check.js';

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

const RECURRENT_KEYS = ['type', 'hiddenSize', 'numLayers', 'bidirectional', 'merge', 'returnSequences', 'dropout'];
const LAYER_KEYS: Record<string, string[]> = {
  embedding: ['type', 'dim'],
  rnn: [...RECURRENT_KEYS, 'nonlinearity'],
  lstm: RECURRENT_KEYS,
  gru: [...RECURRENT_KEYS, 'resetAfter'],
  dense: ['type', 'units', 'activation'],
};

/** @internal Checks a spec in TypeScript (types, unknown keys) and returns its JSON for the native model. */
export function specJson(spec: ModelSpec): { json: string; seed: number; tokens: boolean; features: number } {
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

/**
 * @internal The native model's configuration JSON as a {@link ModelSpec}, the one shape a
 * model's specification has in TypeScript: the native `input` (`{ type: 'tokens', vocabSize }` or
 * `{ type: 'features', size }`) becomes `{ vocabSize }` or `{ features }`; the layers keep every
 * default written out. `sequential(specFromConfig(json))` builds the same architecture.
 */
export function specFromConfig(json: string): ModelSpec {
  const config = JSON.parse(json) as { input: { type: string; vocabSize?: number; size?: number }; layers: LayerSpec[] };
  const input: ModelSpec['input'] =
    config.input.type === 'tokens' ? { vocabSize: config.input.vocabSize as number } : { features: config.input.size as number };
  return { input, layers: config.layers };
}
