/**
 * A sequential model's specification ({@link ModelSpec}): what it reads and its layers. The
 * object crosses to the native model as it is; the native side checks it (unknown keys, types,
 * values) and applies the defaults, declared once in Rust (`crates/gyre-core/src/model/config.rs`).
 */

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
