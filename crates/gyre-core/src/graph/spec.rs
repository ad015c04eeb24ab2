//! A model graph's specification: named inputs, nodes (a layer applied to earlier inputs and
//! nodes, by name), and the nodes that are the model's outputs. Its JSON form (camelCase) is
//! what the TypeScript layer builds and what a model file stores:
//!
//! ```json
//! { "inputs": [ { "name": "source", "vocabSize": 30 }, { "name": "target", "vocabSize": 20 } ],
//!   "nodes": [
//!     { "name": "se", "layer": { "type": "embedding", "embeddingDim": 16 }, "inputs": ["source"] },
//!     { "name": "enc", "layer": { "type": "lstm", "hiddenSize": 32, "bidirectional": true, "returnState": true }, "inputs": ["se"] },
//!     { "name": "te", "layer": { "type": "embedding", "embeddingDim": 16 }, "inputs": ["target"] },
//!     { "name": "dec", "layer": { "type": "lstm", "hiddenSize": 64 }, "inputs": ["te"], "initialState": "enc" },
//!     { "name": "ctx", "layer": { "type": "attention", "score": "general" }, "inputs": ["dec", "enc"] },
//!     { "name": "cat", "layer": { "type": "concatenate" }, "inputs": ["dec", "ctx"] },
//!     { "name": "out", "layer": { "type": "dense", "units": 20, "activation": "softmax" }, "inputs": ["cat"] } ],
//!   "outputs": ["out"], "seed": 1 }
//! ```
//!
//! A node names only inputs and nodes before it, so the list is in an order that runs.

use crate::error::{CoreError, Result};
use crate::model::config::cell_kind;
use crate::model::Activation;
use crate::options::{read, tagged, Count};
use crate::rnn::cells::Nonlinearity;
use crate::rnn::functional::CellKind;
use crate::seq2seq::ScoreConfig;
use serde::Deserialize;
use serde_json::{json, Value};

/// A graph input: sequences of `features` floats per step, or of token ids below `vocabSize`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// The name nodes use for it (unique among inputs and nodes).
    pub name: String,
    /// What each step holds.
    pub kind: InputKind,
}

/// What each step of an input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `features` floats: the input is `[N, T, features]`.
    Floats(usize),
    /// One token id below this vocabulary size: the input is `[N, T]`.
    Tokens(usize),
}

/// A recurrent layer of a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrentNode {
    /// The cell.
    pub kind: CellKind,
    /// `H`, per direction.
    pub hidden: usize,
    /// Stacked layers.
    pub layers: usize,
    /// Two directions, their outputs and final states concatenated (`[forward; backward]`).
    pub bidirectional: bool,
    /// Output every step (`[B, T, H·dirs]`) or only the top layer's final state (`[B, H·dirs]`).
    pub return_sequences: bool,
    /// Whether other nodes may start from this layer's final states (`initialState`).
    pub return_state: bool,
}

impl RecurrentNode {
    /// 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// The width of the output and of each layer's state: `H · directions`.
    pub fn width(&self) -> usize {
        self.hidden * self.directions()
    }
}

/// What a node computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layer {
    /// Token ids to `[B, T, dim]` rows of a table `[vocab, dim]` (the vocabulary is the input's).
    Embedding {
        /// `E`.
        dim: usize,
    },
    /// A (stacked, optionally bidirectional) recurrent layer.
    Recurrent(RecurrentNode),
    /// `act(x·Wᵀ + b)` at every step of a sequence, or on a vector.
    Dense {
        /// Output width.
        units: usize,
        /// The activation.
        activation: Activation,
    },
    /// Its inputs side by side along the features (sequences of the same input's steps, or vectors).
    Concatenate,
    /// Attention of a query sequence (first input) over a memory sequence (second), masked by
    /// the memory's lengths: the context `[B, Tq, Hk]`.
    Attention(ScoreConfig),
    /// Inverted dropout in training (each value zeroed with probability `rate`, the others scaled
    /// by `1/(1 − rate)`, seeded); the identity outside training.
    Dropout {
        /// In `[0, 1)`.
        rate: f64,
    },
}

/// One node: a layer applied to earlier inputs and nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Its name (unique among inputs and nodes).
    pub name: String,
    /// What it computes.
    pub layer: Layer,
    /// The inputs and nodes it reads, by name.
    pub inputs: Vec<String>,
    /// A recurrent node: the recurrent node (with `returnState`) whose final states it starts from.
    pub initial_state: Option<String>,
}

/// A model graph.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphSpec {
    /// The inputs, in the order data is given.
    pub inputs: Vec<InputSpec>,
    /// The nodes, each after everything it reads.
    pub nodes: Vec<NodeSpec>,
    /// The output nodes, in the order predictions and targets are given.
    pub outputs: Vec<String>,
    /// The seed of the initial weights.
    pub seed: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawGraph {
    inputs: Vec<Value>,
    nodes: Vec<Value>,
    outputs: Vec<String>,
    #[serde(default)]
    seed: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawInput {
    name: String,
    #[serde(default)]
    features: Option<Count>,
    #[serde(default)]
    vocab_size: Option<Count>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawNode {
    name: String,
    layer: Value,
    inputs: Vec<String>,
    #[serde(default)]
    initial_state: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRecurrent {
    hidden_size: Count,
    #[serde(default = "one")]
    num_layers: Count,
    #[serde(default)]
    bidirectional: bool,
    #[serde(default = "yes")]
    return_sequences: bool,
    #[serde(default)]
    return_state: bool,
    #[serde(default)]
    nonlinearity: Option<String>,
    #[serde(default)]
    reset_after: Option<bool>,
    #[serde(default)]
    recurrent_activation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawEmbedding {
    embedding_dim: Count,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDense {
    units: Count,
    #[serde(default)]
    activation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConcatenate {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDropout {
    rate: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAttention {
    #[serde(default)]
    score: Option<ScoreConfig>,
}

fn one() -> Count {
    Count(1)
}

fn yes() -> bool {
    true
}

const LAYER_TYPES: [&str; 8] = ["embedding", "lstm", "gru", "rnn", "dense", "concatenate", "attention", "dropout"];

fn recurrent(path: &str, kind: &str, v: Value) -> Result<RecurrentNode> {
    let r: RawRecurrent = read(path, v)?;
    let cell =
        cell_kind(path, kind, r.nonlinearity.as_deref(), r.reset_after, r.recurrent_activation.as_deref(), |option| {
            CoreError::invalid(format!("{path}.{option}"), format!("absent on a {kind} layer"), "a value")
        })?;
    Ok(RecurrentNode {
        kind: cell,
        hidden: r.hidden_size.0,
        layers: r.num_layers.0,
        bidirectional: r.bidirectional,
        return_sequences: r.return_sequences,
        return_state: r.return_state,
    })
}

fn layer(path: &str, v: Value) -> Result<Layer> {
    let (kind, rest) = tagged(path, v, &LAYER_TYPES, None)?;
    Ok(match kind.as_str() {
        "embedding" => Layer::Embedding { dim: read::<RawEmbedding>(path, rest)?.embedding_dim.0 },
        "dense" => {
            let d: RawDense = read(path, rest)?;
            Layer::Dense {
                units: d.units.0,
                activation: Activation::from_name(
                    format!("{path}.activation"),
                    d.activation.as_deref().unwrap_or("linear"),
                )?,
            }
        }
        "concatenate" => {
            read::<RawConcatenate>(path, rest)?;
            Layer::Concatenate
        }
        "dropout" => {
            let rate = read::<RawDropout>(path, rest)?.rate;
            if !(0.0..1.0).contains(&rate) {
                return Err(CoreError::invalid(format!("{path}.rate"), "a probability in [0, 1)", rate));
            }
            Layer::Dropout { rate }
        }
        "attention" => {
            let a: RawAttention = read(path, rest)?;
            let score = a.score.unwrap_or(ScoreConfig::Dot);
            if let ScoreConfig::Additive { units: 0 } = score {
                return Err(CoreError::invalid(format!("{path}.score.additive.units"), "a positive integer", 0));
            }
            Layer::Attention(score)
        }
        cell => Layer::Recurrent(recurrent(path, cell, rest)?),
    })
}

impl GraphSpec {
    /// Reads a graph's JSON value, naming a bad option by its path (`nodes[2].layer.hiddenSize`).
    /// Only the form is checked here; [`crate::graph::Graph::new`] checks the wiring.
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] or [`CoreError::Missing`] naming the option.
    pub fn from_value(value: Value) -> Result<GraphSpec> {
        let raw: RawGraph = read("", value)?;
        let mut inputs = Vec::with_capacity(raw.inputs.len());
        for (i, v) in raw.inputs.into_iter().enumerate() {
            let path = format!("inputs[{i}]");
            let r: RawInput = read(&path, v)?;
            let kind = match (r.features, r.vocab_size) {
                (Some(f), None) => InputKind::Floats(f.0),
                (None, Some(v)) => InputKind::Tokens(v.0),
                _ => {
                    return Err(CoreError::invalid(
                        path,
                        "exactly one of features (float steps) and vocabSize (token ids)",
                        "both or neither",
                    ))
                }
            };
            inputs.push(InputSpec { name: r.name, kind });
        }
        let mut nodes = Vec::with_capacity(raw.nodes.len());
        for (i, v) in raw.nodes.into_iter().enumerate() {
            let path = format!("nodes[{i}]");
            let r: RawNode = read(&path, v)?;
            nodes.push(NodeSpec {
                name: r.name,
                layer: layer(&format!("{path}.layer"), r.layer)?,
                inputs: r.inputs,
                initial_state: r.initial_state,
            });
        }
        Ok(GraphSpec { inputs, nodes, outputs: raw.outputs, seed: raw.seed })
    }

    /// Parses the JSON text of a graph ([`GraphSpec::from_value`]).
    ///
    /// # Errors
    /// As [`GraphSpec::from_value`], and for text that is not JSON.
    pub fn from_json(text: &str) -> Result<GraphSpec> {
        GraphSpec::from_value(crate::options::json_value("the graph", text)?)
    }

    /// The JSON value, every default written out.
    pub fn to_value(&self) -> Value {
        let inputs: Vec<Value> = self
            .inputs
            .iter()
            .map(|i| match i.kind {
                InputKind::Floats(f) => json!({ "name": i.name, "features": f }),
                InputKind::Tokens(v) => json!({ "name": i.name, "vocabSize": v }),
            })
            .collect();
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                let mut o = json!({ "name": n.name, "layer": layer_value(&n.layer), "inputs": n.inputs });
                if let (Some(s), Some(obj)) = (&n.initial_state, o.as_object_mut()) {
                    obj.insert("initialState".into(), json!(s));
                }
                o
            })
            .collect();
        json!({ "inputs": inputs, "nodes": nodes, "outputs": self.outputs, "seed": self.seed })
    }

    /// The JSON text of [`GraphSpec::to_value`].
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }
}

fn layer_value(l: &Layer) -> Value {
    match *l {
        Layer::Embedding { dim } => json!({ "type": "embedding", "embeddingDim": dim }),
        Layer::Dense { units, activation } => {
            json!({ "type": "dense", "units": units, "activation": activation.name() })
        }
        Layer::Concatenate => json!({ "type": "concatenate" }),
        Layer::Dropout { rate } => json!({ "type": "dropout", "rate": rate }),
        Layer::Attention(score) => json!({ "type": "attention", "score": score }),
        Layer::Recurrent(r) => {
            let mut o = json!({
                "hiddenSize": r.hidden, "numLayers": r.layers, "bidirectional": r.bidirectional,
                "returnSequences": r.return_sequences, "returnState": r.return_state,
            });
            if let Some(obj) = o.as_object_mut() {
                match r.kind {
                    CellKind::Lstm { recurrent } => {
                        obj.insert("type".into(), json!("lstm"));
                        obj.insert("recurrentActivation".into(), json!(recurrent.name()));
                    }
                    CellKind::Gru { reset_after, recurrent } => {
                        obj.insert("type".into(), json!("gru"));
                        obj.insert("resetAfter".into(), json!(reset_after));
                        obj.insert("recurrentActivation".into(), json!(recurrent.name()));
                    }
                    CellKind::Rnn(n) => {
                        obj.insert("type".into(), json!("rnn"));
                        obj.insert("nonlinearity".into(), json!(if n == Nonlinearity::Relu { "relu" } else { "tanh" }));
                    }
                }
            }
            o
        }
    }
}
