/**
 * A sequential model's specification ({@link ModelSpec}): what it reads and its layers. The
 * object crosses to the native model as it is; the native side checks it (unknown keys, types,
 * values) and applies the defaults, declared once in Rust (`crates/gyre-core/src/model/config.rs`).
 */

/** Token ids below `vocabSize` per step; the first layer must be an embedding. */
export interface TokenInputSpec {
  vocabSize: number;
  /**
   * Token 0 marks padding (Keras `Embedding(mask_zero=True)`): when an input gives no
   * `lengths`, each sequence's length is its steps up to its last non-zero token, and a 0
   * before a later non-zero token is an error (gyre reads masks as lengths: pad at the end).
   * Default false.
   */
  maskZero?: boolean;
}

/** `features` floats per step. */
export interface FeatureInputSpec {
  features: number;
  /**
   * A step whose features all equal this value is padding (Keras `Masking(mask_value)`): when
   * an input gives no `lengths`, each sequence's length is its steps up to its last step that
   * is not all `maskValue`; a padding step before a later real one is an error. Default: none.
   */
  maskValue?: number;
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
  /**
   * Dropout on the layer's input in training: one mask per sequence and input feature, the
   * same at every step (variational dropout, Gal & Ghahramani 2016; Keras' `dropout`). Default 0.
   */
  inputDropout?: number;
  /**
   * Dropout on the hidden state each step's recurrent products read, in training: one mask per
   * sequence and hidden unit, the same at every step (variational, Gal & Ghahramani 2016; Keras'
   * `recurrent_dropout`). The state carried on and output is not masked (nor the GRU's
   * `z·h_prev`). Off outside training. Default 0.
   */
  recurrentDropout?: number;
  /**
   * Zoneout (Krueger et al. 2017): in training each hidden unit, with an LSTM's cell state,
   * keeps its previous value at a step with this probability, drawn at every step; outside
   * training (predict, evaluate, streams) the step runs the expectation
   * `p·previous + (1 − p)·new`. ONNX and PyTorch have no such layer: such a model does not export
   * there. Default 0.
   */
  zoneout?: number;
  /**
   * Run from each sequence's last step to its first and output the steps in that order (Keras
   * `go_backwards`); one direction and one stacked layer only. Default false.
   */
  goBackwards?: boolean;
  /** Training updates its weights (false: frozen, no optimizer state). Default true. */
  trainable?: boolean;
}

/**
 * The activation of an LSTM's `i`, `f`, `o` gates and a GRU's `r`, `z` gates (Keras's and
 * TensorFlow.js's `recurrentActivation`), each library's exact arithmetic:
 * - `'sigmoid'`: `1 / (1 + e^−x)` (PyTorch, Keras 3's default, ONNX);
 * - `'hardSigmoidTfjs'`: `clip(0.2·x + 0.5, 0, 1)`, TensorFlow.js `hardSigmoid` (the default of
 *   its `lstm` and `gru` layers) and Keras 2's `hard_sigmoid`;
 * - `'hardSigmoidKeras3'`: `relu6(x + 3) / 6`, Keras 3's `hard_sigmoid`.
 */
export type RecurrentActivation = 'sigmoid' | 'hardSigmoidTfjs' | 'hardSigmoidKeras3';

/** The {@link RecurrentActivation} names. */
export const RECURRENT_ACTIVATIONS: readonly RecurrentActivation[] = ['sigmoid', 'hardSigmoidTfjs', 'hardSigmoidKeras3'];

/** A layer of a {@link ModelSpec}. */
export type LayerSpec =
  | {
      /** Token ids to `dim`-vectors; first layer of a token model. */
      type: 'embedding';
      dim: number;
      /** Training updates its weights (false: frozen, e.g. pretrained vectors). Default true. */
      trainable?: boolean;
    }
  | (RecurrentLayerSpec & {
      type: 'rnn';
      /** Default `'tanh'`. */
      nonlinearity?: 'tanh' | 'relu';
    })
  | (RecurrentLayerSpec & {
      type: 'lstm';
      /** Activation of the `i`, `f`, `o` gates. Default `'sigmoid'`. */
      recurrentActivation?: RecurrentActivation;
    })
  | (RecurrentLayerSpec & {
      type: 'gru';
      /** Reset gate after the recurrent product (PyTorch). Default true. */
      resetAfter?: boolean;
      /** Activation of the `r`, `z` gates. Default `'sigmoid'`. */
      recurrentActivation?: RecurrentActivation;
    })
  | {
      /** `act(x·Wᵀ + b)`, applied at every step of a sequence. */
      type: 'dense';
      units: number;
      /** Default `'linear'`. */
      activation?: 'linear' | 'relu' | 'tanh' | 'sigmoid' | 'softmax';
      /** Training updates its weights. Default true. */
      trainable?: boolean;
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
