//! A model's architecture ([`ModelSpec`]: its input and layers) in its two forms. Field names
//! are camelCase; unknown fields are errors; each default is declared here, once, for both.
//!
//! The spec as JavaScript gives it ([`spec_from_value`], [`ModelSpec::to_object`]): the input is
//! `{ features }` or `{ vocabSize }`, and a weight seed may come with it. An error names the
//! option by its path and says what it accepts: `layers[1].hiddenSize must be a positive
//! integer, got 0`, `unknown option layers[0].resetAfter; expected one of ...`.
//!
//! ```json
//! { "input": { "vocabSize": 50 },
//!   "layers": [ { "type": "embedding", "dim": 16 },
//!               { "type": "lstm", "hiddenSize": 64, "numLayers": 2, "bidirectional": true },
//!               { "type": "dense", "units": 50, "activation": "softmax" } ],
//!   "seed": 1 }
//! ```
//!
//! The JSON form a saved model carries ([`ModelSpec::from_json`], [`ModelSpec::to_json`]): the
//! same layers, the input as `{ "type": "features", "size": 2 }` or `{ "type": "tokens",
//! "vocabSize": 50 }`, no seed.

use crate::error::{CoreError, Result};
use crate::options::{describe, read, read_root, tagged, Count};
use crate::rnn::cells::{GateActivation, Nonlinearity};
use crate::rnn::functional::CellKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `size` float features per step: input `[B, T, size]`.
    Features {
        /// Features per step.
        size: usize,
    },
    /// Token ids below `vocab_size` per step: input `[B, T]`; the first layer is an embedding.
    Tokens {
        /// Number of distinct tokens.
        vocab_size: usize,
    },
}

/// Activation of a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    Linear,
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Softmax over the units of each row.
    Softmax,
}

impl Activation {
    /// The name a configuration gives it (`'linear'`, `'relu'`, `'tanh'`, `'sigmoid'`, `'softmax'`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Softmax => "softmax",
        }
    }

    /// The activation called `name`; any other name is an error naming the option `what`.
    pub(crate) fn from_name(what: String, name: &str) -> Result<Activation> {
        Ok(match name {
            "linear" => Activation::Linear,
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "softmax" => Activation::Softmax,
            other => return Err(bad(what, "one of linear, relu, tanh, sigmoid, softmax", format!("{other:?}"))),
        })
    }
}

/// How a bidirectional layer combines its two directions in its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// `[forward, backward]` side by side: `2·H` features (PyTorch's layout).
    Concat,
    /// `forward + backward`: `H` features.
    Sum,
}

/// A recurrent layer: `num_layers` stacked cells, each in one or two directions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentLayerSpec {
    /// The cell.
    pub cell: CellKind,
    /// Hidden size `H` of every stacked layer and direction.
    pub hidden_size: usize,
    /// Stacked layers (`weight_ih_l0`, `weight_ih_l1`, ...).
    pub num_layers: usize,
    /// Run a second cell from the last step to the first (`..._reverse` weights).
    pub bidirectional: bool,
    /// How the two directions combine in the layer's output (between stacked layers they are
    /// always concatenated, as in PyTorch).
    pub merge: Merge,
    /// Output the sequence `[B, T, ·]` (true) or the final states `[B, ·]` (false).
    pub return_sequences: bool,
    /// Dropout probability on the outputs of each stacked layer except the last, in training.
    pub dropout: f64,
    /// Dropout probability on the layer's input, in training: one mask per sequence and input
    /// feature, the same at every step (variational, Gal & Ghahramani 2016; Keras' `dropout`).
    pub input_dropout: f64,
    /// Dropout probability on the hidden state the cell reads at each step, in training: one
    /// mask per sequence and hidden unit, the same at every step (variational, Gal &
    /// Ghahramani 2016; Keras' `recurrent_dropout`). The state carried on is not masked.
    pub recurrent_dropout: f64,
    /// Zoneout probability (Krueger et al. 2017): in training each hidden unit (and its cell
    /// state) keeps its previous value at a step with this probability, drawn at every step;
    /// outside training the step runs the expectation, `p·previous + (1 − p)·new`.
    pub zoneout: f64,
    /// Run from the last step to the first, and output the sequence in that order (Keras
    /// `go_backwards`): one direction, one stacked layer.
    pub go_backwards: bool,
}

impl RecurrentLayerSpec {
    /// Directions `D` of each stacked layer: 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Features per row of the layer's output: `2·H` for two concatenated directions, else `H`.
    pub fn output_width(&self) -> usize {
        if self.bidirectional && self.merge == Merge::Concat {
            2 * self.hidden_size
        } else {
            self.hidden_size
        }
    }
}

/// One layer of a [`ModelSpec`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerSpec {
    /// Token ids to vectors: `weight [vocab_size, dim]`.
    Embedding {
        /// Vector size.
        dim: usize,
    },
    /// RNN, LSTM or GRU.
    Recurrent(RecurrentLayerSpec),
    /// `y = act(x·Wᵀ + b)`, `weight [units, in]`, `bias [units]`; applied at every step of a
    /// sequence.
    Dense {
        /// Output features.
        units: usize,
        /// Activation.
        activation: Activation,
    },
}

/// A model's architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// What the model reads.
    pub input: InputKind,
    /// The layers, first to last.
    pub layers: Vec<LayerSpec>,
    /// The input value that marks a padded step (Keras `Embedding(mask_zero=True)`: token 0;
    /// `Masking(mask_value)`: a step whose features all equal it), from which the JavaScript
    /// layer reads each sequence's length when none are given. `None`: no mask.
    pub mask_value: Option<f64>,
    /// Indices of the layers that training leaves as they are (`trainable: false`): no
    /// update, no optimizer state. Empty: every layer trains.
    pub frozen: Vec<usize>,
}

/// The input of the file form.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum InputJson {
    #[serde(rename_all = "camelCase")]
    Features {
        size: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mask_value: Option<f64>,
    },
    #[serde(rename_all = "camelCase")]
    Tokens {
        vocab_size: usize,
        #[serde(default, skip_serializing_if = "is_false")]
        mask_zero: bool,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn default_one() -> usize {
    1
}
pub(crate) fn default_true() -> bool {
    true
}
fn default_num_layers() -> Count {
    Count(1)
}
fn default_concat() -> String {
    "concat".into()
}
fn default_linear() -> String {
    "linear".into()
}

/// The fields of `{ type: 'embedding', ... }`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EmbeddingJson {
    dim: Count,
    /// Written only when false.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    trainable: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// For `skip_serializing_if`: an option left at 0.
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// The fields of `{ type: 'rnn' | 'lstm' | 'gru', ... }`, with their defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RecurrentJson {
    hidden_size: Count,
    #[serde(default = "default_num_layers")]
    num_layers: Count,
    #[serde(default)]
    bidirectional: bool,
    #[serde(default = "default_concat")]
    merge: String,
    #[serde(default = "default_true")]
    return_sequences: bool,
    #[serde(default)]
    dropout: f64,
    /// Written only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    input_dropout: f64,
    /// Written only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    recurrent_dropout: f64,
    /// Written only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    zoneout: f64,
    /// RNN only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonlinearity: Option<String>,
    /// GRU only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reset_after: Option<bool>,
    /// LSTM and GRU only: the gates' activation (see [`GateActivation::name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recurrent_activation: Option<String>,
    /// Written only when true (files of other layers stay as they were).
    #[serde(default, skip_serializing_if = "is_false")]
    go_backwards: bool,
    /// Written only when false.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    trainable: bool,
}

/// The fields of `{ type: 'dense', ... }`, with their defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DenseJson {
    units: Count,
    #[serde(default = "default_linear")]
    activation: String,
    /// Written only when false.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    trainable: bool,
}

/// A layer, in both forms.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum LayerJson {
    Embedding(EmbeddingJson),
    Rnn(RecurrentJson),
    Lstm(RecurrentJson),
    Gru(RecurrentJson),
    Dense(DenseJson),
}

/// The layer types, as `type` names them.
const LAYER_TYPES: [&str; 5] = ["embedding", "rnn", "lstm", "gru", "dense"];

/// The file form.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecJson {
    input: InputJson,
    layers: Vec<LayerJson>,
}

/// The spec as JavaScript gives it; `input` and `layers` are read in steps, to keep paths.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GivenSpec {
    input: Value,
    layers: Value,
    #[serde(default)]
    seed: u64,
}

/// `input: { features }`.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GivenFeatures {
    features: Count,
    #[serde(default)]
    mask_value: Option<f64>,
}

/// `input: { vocabSize }`.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GivenTokens {
    vocab_size: Count,
    #[serde(default)]
    mask_zero: bool,
}

/// Seeds are integers JavaScript numbers hold exactly: below 2^53.
const SEED_LIMIT: u64 = 1 << 53;

pub(crate) fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| CoreError::InvalidArgument {
        what: what.into(),
        expected: "a valid configuration".into(),
        got: e.to_string(),
    })
}

pub(crate) fn bad(what: String, expected: &str, got: impl ToString) -> CoreError {
    CoreError::InvalidArgument { what, expected: expected.into(), got: got.to_string() }
}

/// The options a recurrent layer of type `kind` takes: `one of hiddenSize, ...`.
fn recurrent_options(kind: &str) -> String {
    let mut options = vec![
        "hiddenSize",
        "numLayers",
        "bidirectional",
        "merge",
        "returnSequences",
        "dropout",
        "inputDropout",
        "recurrentDropout",
        "zoneout",
        "goBackwards",
        "trainable",
    ];
    match kind {
        "rnn" => options.push("nonlinearity"),
        "gru" => options.extend(["resetAfter", "recurrentActivation"]),
        _ => options.push("recurrentActivation"),
    }
    format!("one of {}", options.join(", "))
}

/// `option` given to a layer of type `kind` that does not have it.
fn misplaced(i: usize, option: &str, kind: &str) -> CoreError {
    CoreError::UnknownOption { what: format!("layers[{i}].{option}"), expected: recurrent_options(kind) }
}

/// The fields of a recurrent layer of type `kind` at `path`; an unknown one is an error listing
/// the options of that type (the struct holds those of every type).
fn read_recurrent(path: &str, kind: &str, fields: Value) -> Result<RecurrentJson> {
    read(path, fields).map_err(|e| match e {
        CoreError::UnknownOption { what, .. } => CoreError::UnknownOption { what, expected: recurrent_options(kind) },
        other => other,
    })
}

/// The cell of a recurrent layer of type `kind` (`'rnn'`, `'lstm'`, `'gru'`; the options at
/// `path`) from its cell options, each `None` when not given: an option the type does not have
/// is the error `misplaced(option)`, a bad value an error naming `path.option`.
pub(crate) fn cell_kind(
    path: &str,
    kind: &str,
    nonlinearity: Option<&str>,
    reset_after: Option<bool>,
    recurrent_activation: Option<&str>,
    misplaced: impl Fn(&str) -> CoreError,
) -> Result<CellKind> {
    if nonlinearity.is_some() && kind != "rnn" {
        return Err(misplaced("nonlinearity"));
    }
    if reset_after.is_some() && kind != "gru" {
        return Err(misplaced("resetAfter"));
    }
    if recurrent_activation.is_some() && kind == "rnn" {
        return Err(misplaced("recurrentActivation"));
    }
    let recurrent = match recurrent_activation {
        None => GateActivation::Sigmoid,
        Some(name) => GateActivation::from_name(name).ok_or_else(|| {
            bad(
                format!("{path}.recurrentActivation"),
                "'sigmoid', 'hardSigmoidTfjs' (clip(0.2·x + 0.5, 0, 1)) or 'hardSigmoidKeras3' (relu6(x + 3) / 6)",
                format!("{name:?}"),
            )
        })?,
    };
    Ok(match kind {
        "rnn" => match nonlinearity.unwrap_or("tanh") {
            "tanh" => CellKind::Rnn(Nonlinearity::Tanh),
            "relu" => CellKind::Rnn(Nonlinearity::Relu),
            other => return Err(bad(format!("{path}.nonlinearity"), "'tanh' or 'relu'", format!("{other:?}"))),
        },
        "lstm" => CellKind::Lstm { recurrent },
        _ => CellKind::Gru { reset_after: reset_after.unwrap_or(true), recurrent },
    })
}

fn recurrent(i: usize, kind: &str, r: &RecurrentJson) -> Result<RecurrentLayerSpec> {
    let cell = cell_kind(
        &format!("layers[{i}]"),
        kind,
        r.nonlinearity.as_deref(),
        r.reset_after,
        r.recurrent_activation.as_deref(),
        |option| misplaced(i, option, kind),
    )?;
    let merge = match r.merge.as_str() {
        "concat" => Merge::Concat,
        "sum" => Merge::Sum,
        other => return Err(bad(format!("layers[{i}].merge"), "'concat' or 'sum'", format!("{other:?}"))),
    };
    Ok(RecurrentLayerSpec {
        cell,
        hidden_size: r.hidden_size.0,
        num_layers: r.num_layers.0,
        bidirectional: r.bidirectional,
        merge,
        return_sequences: r.return_sequences,
        dropout: r.dropout,
        input_dropout: r.input_dropout,
        recurrent_dropout: r.recurrent_dropout,
        zoneout: r.zoneout,
        go_backwards: r.go_backwards,
    })
}

/// Layer `i` of either form, its values checked.
fn layer_spec(i: usize, l: &LayerJson) -> Result<LayerSpec> {
    Ok(match l {
        LayerJson::Embedding(e) => LayerSpec::Embedding { dim: e.dim.0 },
        LayerJson::Rnn(r) => LayerSpec::Recurrent(recurrent(i, "rnn", r)?),
        LayerJson::Lstm(r) => LayerSpec::Recurrent(recurrent(i, "lstm", r)?),
        LayerJson::Gru(r) => LayerSpec::Recurrent(recurrent(i, "gru", r)?),
        LayerJson::Dense(d) => LayerSpec::Dense {
            units: d.units.0,
            activation: Activation::from_name(format!("layers[{i}].activation"), &d.activation)?,
        },
    })
}

/// `recurrentActivation` as both forms write it: absent for the sigmoid, so that the
/// configuration of a model with sigmoid gates (every model before the option) is written as
/// before, byte for byte.
fn gate_activation_json(a: GateActivation) -> Option<String> {
    (a != GateActivation::Sigmoid).then(|| a.name().into())
}

/// Whether a layer of either form trains.
fn layer_trainable(l: &LayerJson) -> bool {
    match l {
        LayerJson::Embedding(e) => e.trainable,
        LayerJson::Rnn(r) | LayerJson::Lstm(r) | LayerJson::Gru(r) => r.trainable,
        LayerJson::Dense(d) => d.trainable,
    }
}

/// The indices of the layers that do not train.
fn frozen_of<'a>(layers: impl IntoIterator<Item = &'a LayerJson>) -> Vec<usize> {
    layers.into_iter().enumerate().filter(|(_, l)| !layer_trainable(l)).map(|(i, _)| i).collect()
}

/// A layer as both forms write it, every default written out (but the sigmoid gates, and
/// `trainable` unless false).
fn layer_json(l: &LayerSpec, trainable: bool) -> LayerJson {
    match *l {
        LayerSpec::Embedding { dim } => LayerJson::Embedding(EmbeddingJson { dim: Count(dim), trainable }),
        LayerSpec::Dense { units, activation } => {
            LayerJson::Dense(DenseJson { units: Count(units), activation: activation.name().into(), trainable })
        }
        LayerSpec::Recurrent(r) => {
            let mut j = RecurrentJson {
                hidden_size: Count(r.hidden_size),
                num_layers: Count(r.num_layers),
                bidirectional: r.bidirectional,
                merge: if r.merge == Merge::Sum { "sum" } else { "concat" }.into(),
                return_sequences: r.return_sequences,
                dropout: r.dropout,
                input_dropout: r.input_dropout,
                recurrent_dropout: r.recurrent_dropout,
                zoneout: r.zoneout,
                go_backwards: r.go_backwards,
                trainable,
                nonlinearity: None,
                reset_after: None,
                recurrent_activation: None,
            };
            match r.cell {
                CellKind::Rnn(n) => {
                    j.nonlinearity = Some(if n == Nonlinearity::Relu { "relu" } else { "tanh" }.into());
                    LayerJson::Rnn(j)
                }
                CellKind::Lstm { recurrent } => {
                    j.recurrent_activation = gate_activation_json(recurrent);
                    LayerJson::Lstm(j)
                }
                CellKind::Gru { reset_after, recurrent } => {
                    j.reset_after = Some(reset_after);
                    j.recurrent_activation = gate_activation_json(recurrent);
                    LayerJson::Gru(j)
                }
            }
        }
    }
}

/// The input of the spec JavaScript gives: `{ features, maskValue? }` or `{ vocabSize,
/// maskZero? }`, and its mask value.
fn given_input(value: Value) -> Result<(InputKind, Option<f64>)> {
    let Value::Object(fields) = &value else {
        return Err(CoreError::invalid("input", "an object { features } or { vocabSize }", describe(&value)));
    };
    if fields.contains_key("vocabSize") {
        let GivenTokens { vocab_size, mask_zero } = read("input", value)?;
        Ok((InputKind::Tokens { vocab_size: vocab_size.0 }, mask_zero.then_some(0.0)))
    } else if fields.contains_key("features") {
        let GivenFeatures { features, mask_value } = read("input", value)?;
        if let Some(v) = mask_value.filter(|v| !v.is_finite()) {
            return Err(CoreError::invalid("input.maskValue", "a finite number", v));
        }
        Ok((InputKind::Features { size: features.0 }, mask_value))
    } else {
        Err(CoreError::Missing {
            what: "input.features or input.vocabSize".into(),
            context: "(floats per step, or token ids)".into(),
        })
    }
}

/// Reads a model spec as JavaScript gives it (`{ input: { features } | { vocabSize }, layers,
/// seed? }`, see the module docs) into the architecture and the weight seed (default 0).
/// Absent layer options take their defaults; unknown options, values of the wrong type, counts
/// below 1 and seeds beyond 2^53 are errors naming the option's path. Sizes and the order of
/// the layers are checked by [`crate::model::Model::new`].
pub fn spec_from_value(spec: Value) -> Result<(ModelSpec, u64)> {
    if !spec.is_object() {
        return Err(CoreError::invalid("model spec", "an object { input, layers, seed? }", describe(&spec)));
    }
    let given: GivenSpec = read_root("the model spec", spec)?;
    let (input, mask_value) = given_input(given.input)?;
    let layers = match given.layers {
        Value::Array(layers) if !layers.is_empty() => layers,
        Value::Array(_) => return Err(CoreError::invalid("layers", "a non-empty array", "an empty array")),
        other => return Err(CoreError::invalid("layers", "a non-empty array", describe(&other))),
    };
    let layers = layers
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let path = format!("layers[{i}]");
            let (kind, rest) = tagged(&path, v, &LAYER_TYPES, None)?;
            let layer = match kind.as_str() {
                "embedding" => LayerJson::Embedding(read(&path, rest)?),
                "rnn" => LayerJson::Rnn(read_recurrent(&path, &kind, rest)?),
                "lstm" => LayerJson::Lstm(read_recurrent(&path, &kind, rest)?),
                "gru" => LayerJson::Gru(read_recurrent(&path, &kind, rest)?),
                _ => LayerJson::Dense(read(&path, rest)?),
            };
            Ok((layer_spec(i, &layer)?, layer))
        })
        .collect::<Result<Vec<_>>>()?;
    if given.seed >= SEED_LIMIT {
        return Err(CoreError::invalid("seed", "a non-negative integer below 2^53", given.seed));
    }
    let frozen = frozen_of(layers.iter().map(|(_, j)| j));
    let layers = layers.into_iter().map(|(l, _)| l).collect();
    Ok((ModelSpec { input, layers, mask_value, frozen }, given.seed))
}

impl ModelSpec {
    /// Whether layer `i` trains (it is not in [`ModelSpec::frozen`]).
    pub fn trainable(&self, i: usize) -> bool {
        !self.frozen.contains(&i)
    }

    fn layer_jsons(&self) -> Vec<LayerJson> {
        self.layers.iter().enumerate().map(|(i, l)| layer_json(l, self.trainable(i))).collect()
    }

    /// Features per row (per step, or per sequence) of the model's output: the last layer's.
    pub fn output_width(&self) -> usize {
        match self.layers.last() {
            Some(LayerSpec::Embedding { dim }) => *dim,
            Some(LayerSpec::Dense { units, .. }) => *units,
            Some(LayerSpec::Recurrent(r)) => r.output_width(),
            None => 0,
        }
    }

    /// Whether the model outputs a sequence `[B, T, ·]` (else `[B, ·]`): the last recurrent
    /// layer's `return_sequences` (true without one).
    pub fn outputs_sequence(&self) -> bool {
        let mut sequence = true;
        for l in &self.layers {
            if let LayerSpec::Recurrent(r) = l {
                sequence = r.return_sequences;
            }
        }
        sequence
    }

    /// The last layer as a user names it: a dense layer's activation (`softmax`, ...), else
    /// its type (`lstm`, `embedding`, ...).
    pub fn last_layer_name(&self) -> &'static str {
        match self.layers.last() {
            Some(LayerSpec::Dense { activation, .. }) => activation.name(),
            Some(LayerSpec::Embedding { .. }) => "embedding",
            Some(LayerSpec::Recurrent(r)) => match r.cell {
                CellKind::Rnn(_) => "rnn",
                CellKind::Lstm { .. } => "lstm",
                CellKind::Gru { .. } => "gru",
            },
            None => "no layer",
        }
    }

    /// Activation of the last layer, if it is dense.
    pub fn final_activation(&self) -> Option<Activation> {
        match self.layers.last() {
            Some(LayerSpec::Dense { activation, .. }) => Some(*activation),
            _ => None,
        }
    }

    /// Parses the JSON form a saved model carries (see the module docs); unknown fields and
    /// values are errors naming them. Sizes are checked by [`crate::model::Model::new`].
    pub fn from_json(json: &str) -> Result<Self> {
        let m: SpecJson = parse("model config", json)?;
        let (input, mask_value) = match m.input {
            InputJson::Features { size, mask_value } => (InputKind::Features { size }, mask_value),
            InputJson::Tokens { vocab_size, mask_zero } => (InputKind::Tokens { vocab_size }, mask_zero.then_some(0.0)),
        };
        if let Some(v) = mask_value.filter(|v| !v.is_finite()) {
            return Err(CoreError::invalid("input.maskValue", "a finite number", v));
        }
        let layers = m.layers.iter().enumerate().map(|(i, l)| layer_spec(i, l)).collect::<Result<Vec<_>>>()?;
        Ok(ModelSpec { input, layers, mask_value, frozen: frozen_of(&m.layers) })
    }

    /// The JSON form a saved model carries, with every default written out.
    pub fn to_json(&self) -> String {
        let input = match self.input {
            InputKind::Features { size } => InputJson::Features { size, mask_value: self.mask_value },
            InputKind::Tokens { vocab_size } => InputJson::Tokens { vocab_size, mask_zero: self.mask_value.is_some() },
        };
        let layers = self.layer_jsons();
        serde_json::to_string(&SpecJson { input, layers }).unwrap_or_default()
    }

    /// The spec as JavaScript gives it (without a seed), with every default written out, to
    /// serialize (to a JavaScript object, or [`serde_json::to_value`]) with its keys in the order
    /// of the docs, `type` first: [`spec_from_value`] reads it back to the same architecture.
    pub fn to_object(&self) -> SpecObject {
        let input = match self.input {
            InputKind::Features { size } => GivenInput::Features { features: size, mask_value: self.mask_value },
            InputKind::Tokens { vocab_size } => {
                GivenInput::Tokens { vocab_size, mask_zero: self.mask_value.is_some().then_some(true) }
            }
        };
        SpecObject { input, layers: self.layer_jsons() }
    }
}

/// A model spec as JavaScript gives it, to serialize ([`ModelSpec::to_object`]).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SpecObject {
    input: GivenInput,
    layers: Vec<LayerJson>,
}

/// `{ features }` or `{ vocabSize }`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(untagged, rename_all_fields = "camelCase")]
enum GivenInput {
    Features {
        features: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        mask_value: Option<f64>,
    },
    Tokens {
        vocab_size: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        mask_zero: Option<bool>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_spec_round_trips_with_defaults_written_out() {
        let json = r#"{"input":{"type":"tokens","vocabSize":30},"layers":[{"type":"embedding","dim":8},
            {"type":"gru","hiddenSize":16,"numLayers":2,"bidirectional":true,"merge":"sum","returnSequences":false,"resetAfter":false},
            {"type":"dense","units":3,"activation":"softmax"}]}"#;
        let c = ModelSpec::from_json(json).expect("parse");
        assert_eq!(c.layers.len(), 3);
        let LayerSpec::Recurrent(r) = c.layers[1] else { panic!("recurrent") };
        assert_eq!(r.cell, CellKind::gru(false));
        assert_eq!(r.merge, Merge::Sum);
        assert_eq!(ModelSpec::from_json(&c.to_json()).expect("again"), c);
        let minimal =
            ModelSpec::from_json(r#"{"input":{"type":"features","size":2},"layers":[{"type":"lstm","hiddenSize":4}]}"#)
                .expect("defaults");
        assert!(minimal.to_json().contains(r#""numLayers":1"#));
    }

    #[test]
    fn output_width_sequence_and_last_layer_come_from_the_layers() {
        let c = ModelSpec::from_json(
            r#"{"input":{"type":"features","size":2},"layers":[{"type":"gru","hiddenSize":3,"bidirectional":true},
                {"type":"lstm","hiddenSize":4,"bidirectional":true,"merge":"sum","returnSequences":false}]}"#,
        )
        .expect("parse");
        assert_eq!((c.output_width(), c.outputs_sequence(), c.last_layer_name()), (4, false, "lstm"));
        let d = ModelSpec::from_json(
            r#"{"input":{"type":"features","size":2},"layers":[{"type":"rnn","hiddenSize":3,"bidirectional":true},
                {"type":"dense","units":5,"activation":"tanh"}]}"#,
        )
        .expect("parse");
        assert_eq!((d.output_width(), d.outputs_sequence(), d.last_layer_name()), (5, true, "tanh"));
        assert_eq!(d.final_activation(), Some(Activation::Tanh));
    }

    #[test]
    fn unknown_or_misplaced_options_are_errors_naming_them() {
        let err = |json: &str| ModelSpec::from_json(json).expect_err("rejected").to_string();
        let base = |layer: &str| format!(r#"{{"input":{{"type":"features","size":2}},"layers":[{layer}]}}"#);
        assert!(err(&base(r#"{"type":"lstm","hiddensize":4}"#)).contains("hiddensize"));
        assert!(err(&base(r#"{"type":"lstm","hiddenSize":4,"resetAfter":true}"#)).contains("layers[0].resetAfter"));
        assert!(err(&base(r#"{"type":"gru","hiddenSize":4,"nonlinearity":"relu"}"#)).contains("layers[0].nonlinearity"));
        assert!(err(&base(r#"{"type":"dense","units":4,"activation":"swish"}"#)).contains("layers[0].activation"));
        assert!(err(&base(r#"{"type":"conv","units":4}"#)).contains("conv"));
    }

    /// The configuration of a model file as the code before the spec crossed as an object wrote
    /// it: such files read to the same spec and are written the same, byte for byte.
    const SAVED: [&str; 2] = [
        r#"{"input":{"type":"tokens","vocabSize":30},"layers":[{"type":"embedding","dim":8},{"type":"rnn","hiddenSize":16,"numLayers":2,"bidirectional":true,"merge":"sum","returnSequences":true,"dropout":0.25,"nonlinearity":"relu"},{"type":"gru","hiddenSize":4,"numLayers":1,"bidirectional":false,"merge":"concat","returnSequences":true,"dropout":0.0,"resetAfter":false},{"type":"lstm","hiddenSize":5,"numLayers":1,"bidirectional":false,"merge":"concat","returnSequences":false,"dropout":0.0},{"type":"dense","units":3,"activation":"softmax"}]}"#,
        r#"{"input":{"type":"features","size":2},"layers":[{"type":"lstm","hiddenSize":3,"numLayers":1,"bidirectional":true,"merge":"concat","returnSequences":true,"dropout":0.0},{"type":"dense","units":1,"activation":"linear"}]}"#,
    ];

    #[test]
    fn the_file_form_reads_and_writes_as_before() {
        for saved in SAVED {
            assert_eq!(ModelSpec::from_json(saved).expect("saved spec").to_json(), saved);
        }
    }

    #[test]
    fn an_input_mask_is_written_and_read_back_in_both_forms() {
        let layers = r#""layers":[{"type":"lstm","hiddenSize":2,"numLayers":1,"bidirectional":false,"merge":"concat","returnSequences":true,"dropout":0.0}]"#;
        let features = format!(r#"{{"input":{{"type":"features","size":2,"maskValue":-1.5}},{layers}}}"#);
        let spec = ModelSpec::from_json(&features).expect("features");
        assert_eq!(spec.mask_value, Some(-1.5));
        assert_eq!(spec.to_json(), features);
        assert_eq!(given(value(&spec)).expect("given"), (spec.clone(), 0));
        assert_eq!(value(&spec)["input"], serde_json::json!({ "features": 2, "maskValue": -1.5 }));
        let tokens =
            r#"{"input":{"type":"tokens","vocabSize":5,"maskZero":true},"layers":[{"type":"embedding","dim":2}]}"#;
        let spec = ModelSpec::from_json(tokens).expect("tokens");
        assert_eq!((spec.mask_value, spec.to_json().as_str()), (Some(0.0), tokens));
        assert_eq!(value(&spec)["input"], serde_json::json!({ "vocabSize": 5, "maskZero": true }));
        let err = |v: Value| given(v).expect_err("refused").to_string();
        let with = |input: Value| serde_json::json!({ "input": input, "layers": [{ "type": "dense", "units": 1 }] });
        assert!(err(with(serde_json::json!({ "features": 2, "maskZero": true }))).contains("input.maskZero"));
        assert!(err(with(serde_json::json!({ "vocabSize": 2, "maskValue": 0 }))).contains("input.maskValue"));
        assert!(err(with(serde_json::json!({ "features": 2, "maskValue": "0" }))).contains("input.maskValue"));
        assert!(err(with(serde_json::json!({ "vocabSize": 2, "maskZero": 1 }))).contains("input.maskZero"));
    }

    #[test]
    fn a_hard_sigmoid_is_written_and_read_back_the_sigmoid_is_not_written() {
        for (name, act) in [
            ("hardSigmoidTfjs", GateActivation::HardSigmoidTfjs),
            ("hardSigmoidKeras3", GateActivation::HardSigmoidKeras3),
        ] {
            let json = format!(
                r#"{{"input":{{"type":"features","size":2}},"layers":[{{"type":"gru","hiddenSize":4,"numLayers":1,"bidirectional":false,"merge":"concat","returnSequences":true,"dropout":0.0,"resetAfter":false,"recurrentActivation":"{name}"}},{{"type":"lstm","hiddenSize":5,"numLayers":1,"bidirectional":false,"merge":"concat","returnSequences":false,"dropout":0.0,"recurrentActivation":"{name}"}}]}}"#
            );
            let spec = ModelSpec::from_json(&json).expect("spec");
            let cells: Vec<CellKind> = spec
                .layers
                .iter()
                .filter_map(|l| if let LayerSpec::Recurrent(r) = l { Some(r.cell) } else { None })
                .collect();
            assert_eq!(
                cells,
                [CellKind::Gru { reset_after: false, recurrent: act }, CellKind::Lstm { recurrent: act }]
            );
            assert_eq!(spec.to_json(), json);
            let sigmoid = json.replace(&format!(r#","recurrentActivation":"{name}""#), "");
            assert_eq!(ModelSpec::from_json(&json.replace(name, "sigmoid")).expect("sigmoid").to_json(), sigmoid);
        }
    }

    fn given(v: Value) -> Result<(ModelSpec, u64)> {
        spec_from_value(v)
    }

    fn value(spec: &ModelSpec) -> Value {
        serde_json::to_value(spec.to_object()).expect("serializes")
    }

    #[test]
    fn the_given_spec_round_trips_through_to_object_and_matches_the_file_form() {
        for saved in SAVED {
            let spec = ModelSpec::from_json(saved).expect("saved spec");
            let v = value(&spec);
            assert!(v.get("seed").is_none());
            assert_eq!(given(v).expect("read back"), (spec, 0));
        }
        let (spec, seed) = given(serde_json::json!({
            "input": { "features": 2 },
            "layers": [{ "type": "gru", "hiddenSize": 3 }, { "type": "dense", "units": 4 }],
            "seed": 9,
        }))
        .expect("minimal");
        assert_eq!(seed, 9);
        assert_eq!(spec, ModelSpec::from_json(r#"{"input":{"type":"features","size":2},"layers":[{"type":"gru","hiddenSize":3},{"type":"dense","units":4}]}"#).expect("file form"));
        assert_eq!(
            value(&spec),
            serde_json::json!({ "input": { "features": 2 }, "layers": [
                { "type": "gru", "hiddenSize": 3, "numLayers": 1, "bidirectional": false, "merge": "concat",
                  "returnSequences": true, "dropout": 0.0, "resetAfter": true },
                { "type": "dense", "units": 4, "activation": "linear" }] })
        );
        assert_eq!(
            serde_json::to_string(&spec.to_object()).expect("serializes"),
            r#"{"input":{"features":2},"layers":[{"type":"gru","hiddenSize":3,"numLayers":1,"bidirectional":false,"merge":"concat","returnSequences":true,"dropout":0.0,"resetAfter":true},{"type":"dense","units":4,"activation":"linear"}]}"#,
            "keys in the order of the docs, type first"
        );
        let (tokens, _) =
            given(serde_json::json!({ "input": { "vocabSize": 5 }, "layers": [{ "type": "embedding", "dim": 2 }] }))
                .expect("tokens");
        assert_eq!(tokens.input, InputKind::Tokens { vocab_size: 5 });
    }

    #[test]
    fn given_spec_errors_name_the_option_path_and_what_it_accepts() {
        let err = |v: Value| given(v).expect_err("refused").to_string();
        let with = |layers: Value| serde_json::json!({ "input": { "features": 2 }, "layers": layers });
        let layer = |l: Value| with(serde_json::json!([{ "type": "lstm", "hiddenSize": 3 }, l]));
        assert_eq!(
            err(layer(serde_json::json!({ "type": "gru", "hiddenSize": 0 }))),
            "layers[1].hiddenSize must be a positive integer, got 0"
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "rnn", "hiddenSize": -3 }))),
            "layers[1].hiddenSize must be a positive integer, got -3"
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "lstm", "hiddenSize": 2.5 }))),
            "layers[1].hiddenSize must be a positive integer, got 2.5"
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "dense", "units": "4" }))),
            r#"layers[1].units must be a positive integer, got "4""#
        );
        assert_eq!(err(layer(serde_json::json!({ "type": "gru" }))), "layers[1].hiddenSize is required in layers[1]");
        assert_eq!(err(layer(serde_json::json!({ "type": "embedding" }))), "layers[1].dim is required in layers[1]");
        assert_eq!(
            err(layer(serde_json::json!({ "type": "lstm", "hiddensize": 3 }))),
            "unknown option layers[1].hiddensize; expected one of hiddenSize, numLayers, bidirectional, merge, \
             returnSequences, dropout, inputDropout, recurrentDropout, zoneout, goBackwards, trainable, recurrentActivation"
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "lstm", "hiddenSize": 3, "resetAfter": true }))),
            "unknown option layers[1].resetAfter; expected one of hiddenSize, numLayers, bidirectional, merge, \
             returnSequences, dropout, inputDropout, recurrentDropout, zoneout, goBackwards, trainable, recurrentActivation"
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "gru", "hiddenSize": 3, "nonlinearity": "relu" }))),
            "unknown option layers[1].nonlinearity; expected one of hiddenSize, numLayers, bidirectional, merge, \
             returnSequences, dropout, inputDropout, recurrentDropout, zoneout, goBackwards, trainable, resetAfter, recurrentActivation"
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "rnn", "hiddenSize": 3, "recurrentActivation": "sigmoid" }))),
            "unknown option layers[1].recurrentActivation; expected one of hiddenSize, numLayers, bidirectional, \
             merge, returnSequences, dropout, inputDropout, recurrentDropout, zoneout, goBackwards, trainable, nonlinearity"
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "gru", "hiddenSize": 3, "recurrentActivation": "hard_sigmoid" }))),
            "layers[1].recurrentActivation must be 'sigmoid', 'hardSigmoidTfjs' (clip(0.2·x + 0.5, 0, 1)) or \
             'hardSigmoidKeras3' (relu6(x + 3) / 6), got \"hard_sigmoid\""
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "lstm", "hiddenSize": 3, "bidirectional": "yes" }))),
            r#"layers[1].bidirectional must be a boolean, got "yes""#
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "lstm", "hiddenSize": 3, "dropout": "0.1" }))),
            r#"layers[1].dropout must be a number, got "0.1""#
        );
        assert_eq!(
            err(layer(serde_json::json!({ "type": "conv" }))),
            r#"layers[1].type must be one of 'embedding', 'rnn', 'lstm', 'gru', 'dense', got "conv""#
        );
        assert_eq!(
            err(layer(serde_json::json!({ "units": 3 }))),
            "layers[1].type is required (one of 'embedding', 'rnn', 'lstm', 'gru', 'dense')"
        );
        assert_eq!(
            err(layer(Value::Null)),
            "layers[1] must be an object { type: 'embedding', 'rnn', 'lstm', 'gru', 'dense', ... }, got null"
        );
        assert_eq!(err(with(serde_json::json!([]))), "layers must be a non-empty array, got an empty array");
        assert_eq!(err(with(serde_json::json!({ "type": "lstm" }))), "layers must be a non-empty array, got an object");
        assert_eq!(err(serde_json::json!({ "input": { "features": 2 } })), "layers is required in the model spec");
        assert_eq!(
            err(serde_json::json!({ "input": { "features": 2 }, "layer": [] })),
            "unknown option layer; expected one of input, layers, seed"
        );
        let input = |i: Value| serde_json::json!({ "input": i, "layers": [{ "type": "dense", "units": 1 }] });
        assert_eq!(
            err(input(serde_json::json!({ "features": 0 }))),
            "input.features must be a positive integer, got 0"
        );
        assert_eq!(
            err(input(serde_json::json!({ "feature": 2 }))),
            "input.features or input.vocabSize is required (floats per step, or token ids)"
        );
        assert_eq!(
            err(input(serde_json::json!({ "features": 2, "vocabSize": 3 }))),
            "unknown option input.features; expected one of vocabSize, maskZero"
        );
        assert_eq!(err(input(serde_json::json!(2))), "input must be an object { features } or { vocabSize }, got 2");
        let seed = |s: Value| serde_json::json!({ "input": { "features": 2 }, "layers": [{ "type": "dense", "units": 1 }], "seed": s });
        assert_eq!(err(seed(serde_json::json!(-1))), "seed must be a non-negative integer, got -1");
        assert_eq!(err(seed(serde_json::json!(1.5))), "seed must be a non-negative integer, got 1.5");
        assert_eq!(
            err(seed(serde_json::json!(1u64 << 53))),
            "seed must be a non-negative integer below 2^53, got 9007199254740992"
        );
        assert_eq!(given(seed(serde_json::json!((1u64 << 53) - 1))).expect("largest seed").1, (1 << 53) - 1);
        assert_eq!(err(Value::Null), "model spec must be an object { input, layers, seed? }, got null");
        for m in [err(layer(serde_json::json!({ "type": "gru", "hiddenSize": 0 }))), err(seed(serde_json::json!(-1)))] {
            assert!(!m.contains("line") && !m.contains("Json") && !m.contains("usize") && !m.contains("u64"), "{m}");
        }
    }
}
