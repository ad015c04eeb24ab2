//! A model's architecture ([`ModelSpec`]: its input and layers) and its JSON form: what the
//! TypeScript layer sends, what a saved model carries. Field names are camelCase; unknown
//! fields are errors.
//!
//! ```json
//! { "input": { "type": "tokens", "vocabSize": 50 },
//!   "layers": [ { "type": "embedding", "dim": 16 },
//!               { "type": "lstm", "hiddenSize": 64, "numLayers": 2, "bidirectional": true },
//!               { "type": "dense", "units": 50, "activation": "softmax" } ] }
//! ```

use crate::error::{CoreError, Result};
use crate::rnn::cells::Nonlinearity;
use crate::rnn::functional::CellKind;
use serde::{Deserialize, Serialize};

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
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum InputJson {
    Features {
        size: usize,
    },
    #[serde(rename_all = "camelCase")]
    Tokens {
        vocab_size: usize,
    },
}

pub(crate) fn default_one() -> usize {
    1
}
pub(crate) fn default_true() -> bool {
    true
}
fn default_concat() -> String {
    "concat".into()
}
fn default_linear() -> String {
    "linear".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RecurrentJson {
    hidden_size: usize,
    #[serde(default = "default_one")]
    num_layers: usize,
    #[serde(default)]
    bidirectional: bool,
    #[serde(default = "default_concat")]
    merge: String,
    #[serde(default = "default_true")]
    return_sequences: bool,
    #[serde(default)]
    dropout: f64,
    /// RNN only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonlinearity: Option<String>,
    /// GRU only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reset_after: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum LayerJson {
    Embedding {
        dim: usize,
    },
    Rnn(RecurrentJson),
    Lstm(RecurrentJson),
    Gru(RecurrentJson),
    Dense {
        units: usize,
        #[serde(default = "default_linear")]
        activation: String,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecJson {
    input: InputJson,
    layers: Vec<LayerJson>,
}

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

fn activation(i: usize, name: &str) -> Result<Activation> {
    Ok(match name {
        "linear" => Activation::Linear,
        "relu" => Activation::Relu,
        "tanh" => Activation::Tanh,
        "sigmoid" => Activation::Sigmoid,
        "softmax" => Activation::Softmax,
        other => {
            return Err(bad(
                format!("layers[{i}].activation"),
                "one of linear, relu, tanh, sigmoid, softmax",
                format!("{other:?}"),
            ))
        }
    })
}

fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Linear => "linear",
        Activation::Relu => "relu",
        Activation::Tanh => "tanh",
        Activation::Sigmoid => "sigmoid",
        Activation::Softmax => "softmax",
    }
}

fn recurrent(i: usize, kind: &str, r: &RecurrentJson) -> Result<RecurrentLayerSpec> {
    let cell = match kind {
        "rnn" => {
            if r.reset_after.is_some() {
                return Err(bad(
                    format!("layers[{i}].resetAfter"),
                    "absent: it is a GRU option",
                    "a value for an rnn layer",
                ));
            }
            match r.nonlinearity.as_deref().unwrap_or("tanh") {
                "tanh" => CellKind::Rnn(Nonlinearity::Tanh),
                "relu" => CellKind::Rnn(Nonlinearity::Relu),
                other => {
                    return Err(bad(format!("layers[{i}].nonlinearity"), "'tanh' or 'relu'", format!("{other:?}")))
                }
            }
        }
        _ if r.nonlinearity.is_some() => {
            return Err(bad(
                format!("layers[{i}].nonlinearity"),
                "absent: it is an rnn option",
                format!("a value for a {kind} layer"),
            ))
        }
        "lstm" => {
            if r.reset_after.is_some() {
                return Err(bad(
                    format!("layers[{i}].resetAfter"),
                    "absent: it is a GRU option",
                    "a value for an lstm layer",
                ));
            }
            CellKind::Lstm
        }
        _ => CellKind::Gru { reset_after: r.reset_after.unwrap_or(true) },
    };
    let merge = match r.merge.as_str() {
        "concat" => Merge::Concat,
        "sum" => Merge::Sum,
        other => return Err(bad(format!("layers[{i}].merge"), "'concat' or 'sum'", format!("{other:?}"))),
    };
    Ok(RecurrentLayerSpec {
        cell,
        hidden_size: r.hidden_size,
        num_layers: r.num_layers,
        bidirectional: r.bidirectional,
        merge,
        return_sequences: r.return_sequences,
        dropout: r.dropout,
    })
}

impl ModelSpec {
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
            Some(LayerSpec::Dense { activation, .. }) => activation_name(*activation),
            Some(LayerSpec::Embedding { .. }) => "embedding",
            Some(LayerSpec::Recurrent(r)) => match r.cell {
                CellKind::Rnn(_) => "rnn",
                CellKind::Lstm => "lstm",
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

    /// Parses the JSON form (see the module docs); unknown fields and values are errors
    /// naming them. Sizes are checked by [`crate::model::Model::new`].
    pub fn from_json(json: &str) -> Result<Self> {
        let m: SpecJson = parse("model config", json)?;
        let input = match m.input {
            InputJson::Features { size } => InputKind::Features { size },
            InputJson::Tokens { vocab_size } => InputKind::Tokens { vocab_size },
        };
        let layers = m
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Ok(match l {
                    LayerJson::Embedding { dim } => LayerSpec::Embedding { dim: *dim },
                    LayerJson::Rnn(r) => LayerSpec::Recurrent(recurrent(i, "rnn", r)?),
                    LayerJson::Lstm(r) => LayerSpec::Recurrent(recurrent(i, "lstm", r)?),
                    LayerJson::Gru(r) => LayerSpec::Recurrent(recurrent(i, "gru", r)?),
                    LayerJson::Dense { units, activation: a } => {
                        LayerSpec::Dense { units: *units, activation: activation(i, a)? }
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelSpec { input, layers })
    }

    /// The JSON form, with every default written out.
    pub fn to_json(&self) -> String {
        let input = match self.input {
            InputKind::Features { size } => InputJson::Features { size },
            InputKind::Tokens { vocab_size } => InputJson::Tokens { vocab_size },
        };
        let layers = self
            .layers
            .iter()
            .map(|l| match *l {
                LayerSpec::Embedding { dim } => LayerJson::Embedding { dim },
                LayerSpec::Dense { units, activation } => {
                    LayerJson::Dense { units, activation: activation_name(activation).into() }
                }
                LayerSpec::Recurrent(r) => {
                    let mut j = RecurrentJson {
                        hidden_size: r.hidden_size,
                        num_layers: r.num_layers,
                        bidirectional: r.bidirectional,
                        merge: if r.merge == Merge::Sum { "sum" } else { "concat" }.into(),
                        return_sequences: r.return_sequences,
                        dropout: r.dropout,
                        nonlinearity: None,
                        reset_after: None,
                    };
                    match r.cell {
                        CellKind::Rnn(n) => {
                            j.nonlinearity = Some(if n == Nonlinearity::Relu { "relu" } else { "tanh" }.into());
                            LayerJson::Rnn(j)
                        }
                        CellKind::Lstm => LayerJson::Lstm(j),
                        CellKind::Gru { reset_after } => {
                            j.reset_after = Some(reset_after);
                            LayerJson::Gru(j)
                        }
                    }
                }
            })
            .collect();
        serde_json::to_string(&SpecJson { input, layers }).unwrap_or_default()
    }
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
        assert_eq!(r.cell, CellKind::Gru { reset_after: false });
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
}
