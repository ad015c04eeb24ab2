//! The type of the model spec JavaScript passes to `new NativeModel(spec)` and gets back from
//! `spec()`, for the generated `binding.d.ts`. Conversion does not go through it: the native
//! side reads the JavaScript object into a JSON value (`options::read_js`) and the core reads
//! that with serde (`gyre_core::model::spec_from_value`), which rejects unknown keys and names a
//! bad option by its path. The defaults stated here are the ones that reader applies.
use napi_derive::napi;

/// A sequential model's architecture.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct ModelSpec {
    /// What the model reads.
    #[napi(ts_type = "TokenInputSpec | FeatureInputSpec")]
    pub input: FeatureInputSpec,
    /// Layers, first to last.
    pub layers: Vec<LayerSpec>,
    /// Seed of the weight initialisation, a non-negative integer below 2^53. Default 0.
    pub seed: Option<f64>,
}

/// Token ids below `vocabSize` per step; the first layer must be an embedding.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct TokenInputSpec {
    /// Number of distinct tokens.
    pub vocab_size: u32,
    /// Token 0 marks padding (Keras `mask_zero`): a sequence's length is read from it when none
    /// is given. Default false.
    pub mask_zero: Option<bool>,
}

/// `features` floats per step.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct FeatureInputSpec {
    /// Floats per step.
    pub features: u32,
    /// A step whose features all equal this value is padding (Keras `Masking`): a sequence's
    /// length is read from it when none is given. Default: no mask.
    pub mask_value: Option<f64>,
}

/// A layer of a `ModelSpec`. The recurrent layers (`rnn`, `lstm`, `gru`) share their options:
/// `numLayers` (default 1), `bidirectional` (false), `merge` (`'concat'`), `returnSequences`
/// (true), `dropout` between stacked layers (0, in [0, 1)).
#[napi(discriminant = "type", discriminant_case = "lowercase", object_from_js = false, object_to_js = false)]
pub enum LayerSpec {
    /// Token ids to `dim`-vectors; the first layer of a token model.
    Embedding {
        /// Vector size.
        dim: u32,
        /// Training updates its weights. Default true.
        trainable: Option<bool>,
    },
    /// Simple RNN.
    Rnn {
        /// Hidden size `H`.
        hidden_size: u32,
        /// Stacked layers. Default 1.
        num_layers: Option<u32>,
        /// A second cell running from the last step to the first. Default false.
        bidirectional: Option<bool>,
        /// How the two directions combine in the output. Default `'concat'`.
        #[napi(ts_type = "'concat' | 'sum'")]
        merge: Option<String>,
        /// Output every step (true) or each sequence's final state (false). Default true.
        return_sequences: Option<bool>,
        /// Dropout between stacked layers while training, in [0, 1). Default 0.
        dropout: Option<f64>,
        /// Dropout on the layer's input: one mask per sequence and feature, the same at every step (0).
        input_dropout: Option<f64>,
        /// Dropout on the hidden state each step reads: one mask per sequence and unit, the same
        /// at every step (Keras `recurrent_dropout`). Default 0.
        recurrent_dropout: Option<f64>,
        /// Zoneout: in training a unit keeps its previous state with this probability at each
        /// step; otherwise the expectation. Default 0.
        zoneout: Option<f64>,
        /// Run from the last step to the first and output in that order (Keras `go_backwards`;
        /// one direction, one stacked layer). Default false.
        go_backwards: Option<bool>,
        /// Training updates its weights. Default true.
        trainable: Option<bool>,
        /// Default `'tanh'`.
        #[napi(ts_type = "'tanh' | 'relu'")]
        nonlinearity: Option<String>,
    },
    /// LSTM.
    Lstm {
        /// Hidden size `H`.
        hidden_size: u32,
        /// Stacked layers. Default 1.
        num_layers: Option<u32>,
        /// A second cell running from the last step to the first. Default false.
        bidirectional: Option<bool>,
        /// How the two directions combine in the output. Default `'concat'`.
        #[napi(ts_type = "'concat' | 'sum'")]
        merge: Option<String>,
        /// Output every step (true) or each sequence's final state (false). Default true.
        return_sequences: Option<bool>,
        /// Dropout between stacked layers while training, in [0, 1). Default 0.
        dropout: Option<f64>,
        /// Dropout on the layer's input: one mask per sequence and feature, the same at every step (0).
        input_dropout: Option<f64>,
        /// Dropout on the hidden state each step reads: one mask per sequence and unit, the same
        /// at every step (Keras `recurrent_dropout`). Default 0.
        recurrent_dropout: Option<f64>,
        /// Zoneout: in training a unit keeps its previous state with this probability at each
        /// step; otherwise the expectation. Default 0.
        zoneout: Option<f64>,
        /// Run from the last step to the first and output in that order (Keras `go_backwards`;
        /// one direction, one stacked layer). Default false.
        go_backwards: Option<bool>,
        /// Training updates its weights. Default true.
        trainable: Option<bool>,
        /// Activation of the gates. Default `'sigmoid'`.
        #[napi(ts_type = "'sigmoid' | 'hardSigmoidTfjs' | 'hardSigmoidKeras3'")]
        recurrent_activation: Option<String>,
    },
    /// GRU.
    Gru {
        /// Hidden size `H`.
        hidden_size: u32,
        /// Stacked layers. Default 1.
        num_layers: Option<u32>,
        /// A second cell running from the last step to the first. Default false.
        bidirectional: Option<bool>,
        /// How the two directions combine in the output. Default `'concat'`.
        #[napi(ts_type = "'concat' | 'sum'")]
        merge: Option<String>,
        /// Output every step (true) or each sequence's final state (false). Default true.
        return_sequences: Option<bool>,
        /// Dropout between stacked layers while training, in [0, 1). Default 0.
        dropout: Option<f64>,
        /// Dropout on the layer's input: one mask per sequence and feature, the same at every step (0).
        input_dropout: Option<f64>,
        /// Dropout on the hidden state each step reads: one mask per sequence and unit, the same
        /// at every step (Keras `recurrent_dropout`). Default 0.
        recurrent_dropout: Option<f64>,
        /// Zoneout: in training a unit keeps its previous state with this probability at each
        /// step; otherwise the expectation. Default 0.
        zoneout: Option<f64>,
        /// Run from the last step to the first and output in that order (Keras `go_backwards`;
        /// one direction, one stacked layer). Default false.
        go_backwards: Option<bool>,
        /// Training updates its weights. Default true.
        trainable: Option<bool>,
        /// Reset gate after the recurrent product (PyTorch). Default true.
        reset_after: Option<bool>,
        /// Activation of the gates. Default `'sigmoid'`.
        #[napi(ts_type = "'sigmoid' | 'hardSigmoidTfjs' | 'hardSigmoidKeras3'")]
        recurrent_activation: Option<String>,
    },
    /// `act(x·Wᵀ + b)`, applied at every step of a sequence.
    Dense {
        /// Output features.
        units: u32,
        /// Default `'linear'`.
        #[napi(ts_type = "'linear' | 'relu' | 'tanh' | 'sigmoid' | 'softmax'")]
        activation: Option<String>,
        /// Training updates its weights. Default true.
        trainable: Option<bool>,
    },
}
