//! The JSON form of a model's architecture and of training options: what the TypeScript layer
//! sends, what a saved model carries. Field names are camelCase; unknown fields are errors.
//!
//! ```json
//! { "input": { "type": "tokens", "vocabSize": 50 },
//!   "layers": [ { "type": "embedding", "dim": 16 },
//!               { "type": "lstm", "hiddenSize": 64, "numLayers": 2, "bidirectional": true },
//!               { "type": "dense", "units": 50, "activation": "softmax" } ] }
//! ```

use crate::error::{CoreError, Result};
use crate::optim::{LrSchedule, OptimizerConfig, Schedule};
use crate::rnn::cells::Nonlinearity;
use crate::rnn::functional::CellKind;
use crate::train::{EarlyStopping, FitConfig, LossKind};
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
pub struct RecurrentConfig {
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

/// One layer of a [`ModelConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerConfig {
    /// Token ids to vectors: `weight [vocab_size, dim]`.
    Embedding {
        /// Vector size.
        dim: usize,
    },
    /// RNN, LSTM or GRU.
    Recurrent(RecurrentConfig),
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
pub struct ModelConfig {
    /// What the model reads.
    pub input: InputKind,
    /// The layers, first to last.
    pub layers: Vec<LayerConfig>,
}

/// Version of the configuration format.
pub const FORMAT_VERSION: u32 = 1;

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

fn default_one() -> usize {
    1
}
fn default_true() -> bool {
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
struct ModelJson {
    input: InputJson,
    layers: Vec<LayerJson>,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| CoreError::InvalidArgument {
        what: what.into(),
        expected: "a valid configuration".into(),
        got: e.to_string(),
    })
}

fn bad(what: String, expected: &str, got: impl ToString) -> CoreError {
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

fn recurrent(i: usize, kind: &str, r: &RecurrentJson) -> Result<RecurrentConfig> {
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
    Ok(RecurrentConfig {
        cell,
        hidden_size: r.hidden_size,
        num_layers: r.num_layers,
        bidirectional: r.bidirectional,
        merge,
        return_sequences: r.return_sequences,
        dropout: r.dropout,
    })
}

impl ModelConfig {
    /// Parses the JSON form (see the module docs); unknown fields and values are errors
    /// naming them. Sizes are checked by [`crate::model::Model::new`].
    pub fn from_json(json: &str) -> Result<Self> {
        let m: ModelJson = parse("model config", json)?;
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
                    LayerJson::Embedding { dim } => LayerConfig::Embedding { dim: *dim },
                    LayerJson::Rnn(r) => LayerConfig::Recurrent(recurrent(i, "rnn", r)?),
                    LayerJson::Lstm(r) => LayerConfig::Recurrent(recurrent(i, "lstm", r)?),
                    LayerJson::Gru(r) => LayerConfig::Recurrent(recurrent(i, "gru", r)?),
                    LayerJson::Dense { units, activation: a } => {
                        LayerConfig::Dense { units: *units, activation: activation(i, a)? }
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelConfig { input, layers })
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
                LayerConfig::Embedding { dim } => LayerJson::Embedding { dim },
                LayerConfig::Dense { units, activation } => {
                    LayerJson::Dense { units, activation: activation_name(activation).into() }
                }
                LayerConfig::Recurrent(r) => {
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
        serde_json::to_string(&ModelJson { input, layers }).unwrap_or_default()
    }
}

#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum OptimizerJson {
    #[serde(rename_all = "camelCase")]
    Sgd {
        learning_rate: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        dampening: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    #[serde(rename_all = "camelCase")]
    Adam {
        learning_rate: f64,
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    #[serde(rename_all = "camelCase")]
    Adamw {
        learning_rate: f64,
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "eps")]
        eps: f64,
        #[serde(default = "adamw_decay")]
        weight_decay: f64,
    },
    #[serde(rename_all = "camelCase")]
    Rmsprop {
        learning_rate: f64,
        #[serde(default = "alpha")]
        alpha: f64,
        #[serde(default = "eps")]
        eps: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        centered: bool,
        #[serde(default)]
        weight_decay: f64,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn eps() -> f64 {
    1e-8
}
fn adamw_decay() -> f64 {
    0.01
}
fn alpha() -> f64 {
    0.99
}

#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum ScheduleJson {
    Constant,
    #[serde(rename_all = "camelCase")]
    Step {
        step_size: usize,
        gamma: f64,
    },
    Exponential {
        gamma: f64,
    },
    #[serde(rename_all = "camelCase")]
    Cosine {
        t_max: usize,
        #[serde(default)]
        eta_min: f64,
    },
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EarlyStoppingJson {
    #[serde(default = "default_one")]
    patience: usize,
    #[serde(default)]
    min_delta: f64,
    #[serde(default = "default_true")]
    restore_best: bool,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FitJson {
    epochs: usize,
    batch_size: usize,
    #[serde(default = "default_true")]
    shuffle: bool,
    #[serde(default)]
    seed: u64,
    loss: String,
    optimizer: OptimizerJson,
    #[serde(default)]
    schedule: Option<ScheduleJson>,
    #[serde(default)]
    warmup_epochs: usize,
    #[serde(default)]
    clip_norm: Option<f64>,
    #[serde(default)]
    clip_value: Option<f64>,
    #[serde(default)]
    tbptt_steps: Option<usize>,
    #[serde(default)]
    early_stopping: Option<EarlyStoppingJson>,
}

/// Parses a loss name: `crossEntropy`, `mse`, `binaryCrossEntropy`.
pub fn loss_from_name(name: &str) -> Result<LossKind> {
    Ok(match name {
        "crossEntropy" => LossKind::CrossEntropy,
        "mse" => LossKind::MeanSquaredError,
        "binaryCrossEntropy" => LossKind::BinaryCrossEntropy,
        other => return Err(bad("loss".into(), "one of crossEntropy, mse, binaryCrossEntropy", format!("{other:?}"))),
    })
}

/// Parses training options (JSON, camelCase) into the fit configuration and the optimizer.
pub fn fit_from_json(json: &str) -> Result<(FitConfig, OptimizerConfig)> {
    let f: FitJson = parse("fit options", json)?;
    let optimizer = optimizer_from(f.optimizer);
    optimizer.validate().map_err(|e| match e {
        CoreError::InvalidArgument { what, expected, got } => {
            CoreError::InvalidArgument { what: format!("optimizer.{}", camel(&what)), expected, got }
        }
        other => other,
    })?;
    let decay = match f.schedule {
        None | Some(ScheduleJson::Constant) => LrSchedule::Constant,
        Some(ScheduleJson::Step { step_size, gamma }) => LrSchedule::Step { step_size, gamma },
        Some(ScheduleJson::Exponential { gamma }) => LrSchedule::Exponential { gamma },
        Some(ScheduleJson::Cosine { t_max, eta_min }) => LrSchedule::Cosine { t_max, eta_min },
    };
    let schedule = Schedule::new(decay, f.warmup_epochs).map_err(|e| match e {
        CoreError::InvalidArgument { what, expected, got } => {
            CoreError::InvalidArgument { what: format!("schedule.{}", camel(&what)), expected, got }
        }
        other => other,
    })?;
    let config = FitConfig {
        epochs: f.epochs,
        batch_size: f.batch_size,
        shuffle: f.shuffle,
        seed: f.seed,
        loss: loss_from_name(&f.loss)?,
        schedule,
        clip_norm: f.clip_norm,
        clip_value: f.clip_value,
        tbptt_steps: f.tbptt_steps,
        early_stopping: f.early_stopping.map(|e| EarlyStopping {
            patience: e.patience,
            min_delta: e.min_delta,
            restore_best: e.restore_best,
        }),
    };
    Ok((config, optimizer))
}

fn optimizer_from(o: OptimizerJson) -> OptimizerConfig {
    match o {
        OptimizerJson::Sgd { learning_rate, momentum, dampening, nesterov, weight_decay } => {
            OptimizerConfig::Sgd { lr: learning_rate, momentum, dampening, nesterov, weight_decay }
        }
        OptimizerJson::Adam { learning_rate, beta1, beta2, eps, weight_decay } => {
            OptimizerConfig::Adam { lr: learning_rate, beta1, beta2, eps, weight_decay }
        }
        OptimizerJson::Adamw { learning_rate, beta1, beta2, eps, weight_decay } => {
            OptimizerConfig::AdamW { lr: learning_rate, beta1, beta2, eps, weight_decay }
        }
        OptimizerJson::Rmsprop { learning_rate, alpha, eps, momentum, centered, weight_decay } => {
            OptimizerConfig::RmsProp { lr: learning_rate, alpha, eps, momentum, centered, weight_decay }
        }
    }
}

/// The JSON form of an optimizer (as in training options), every field written out.
pub fn optimizer_to_json(c: &OptimizerConfig) -> String {
    let v = match *c {
        OptimizerConfig::Sgd { lr, momentum, dampening, nesterov, weight_decay } => serde_json::json!({
            "type": "sgd", "learningRate": lr, "momentum": momentum, "dampening": dampening,
            "nesterov": nesterov, "weightDecay": weight_decay }),
        OptimizerConfig::Adam { lr, beta1, beta2, eps, weight_decay } => serde_json::json!({
            "type": "adam", "learningRate": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weightDecay": weight_decay }),
        OptimizerConfig::AdamW { lr, beta1, beta2, eps, weight_decay } => serde_json::json!({
            "type": "adamw", "learningRate": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weightDecay": weight_decay }),
        OptimizerConfig::RmsProp { lr, alpha, eps, momentum, centered, weight_decay } => serde_json::json!({
            "type": "rmsprop", "learningRate": lr, "alpha": alpha, "eps": eps, "momentum": momentum,
            "centered": centered, "weightDecay": weight_decay }),
    };
    v.to_string()
}

/// Parses the JSON form of an optimizer and validates it.
pub fn optimizer_from_json(json: &str) -> Result<OptimizerConfig> {
    let c = optimizer_from(parse("optimizer", json)?);
    c.validate()?;
    Ok(c)
}

/// `weight_decay` → `weightDecay`, `lr` → `learningRate` (the option names of the JSON form).
fn camel(s: &str) -> String {
    if s == "lr" {
        return "learningRate".into();
    }
    let mut out = String::new();
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_config_round_trips_with_defaults_written_out() {
        let json = r#"{"input":{"type":"tokens","vocabSize":30},"layers":[{"type":"embedding","dim":8},
            {"type":"gru","hiddenSize":16,"numLayers":2,"bidirectional":true,"merge":"sum","returnSequences":false,"resetAfter":false},
            {"type":"dense","units":3,"activation":"softmax"}]}"#;
        let c = ModelConfig::from_json(json).expect("parse");
        assert_eq!(c.layers.len(), 3);
        let LayerConfig::Recurrent(r) = c.layers[1] else { panic!("recurrent") };
        assert_eq!(r.cell, CellKind::Gru { reset_after: false });
        assert_eq!(r.merge, Merge::Sum);
        assert_eq!(ModelConfig::from_json(&c.to_json()).expect("again"), c);
        let minimal = ModelConfig::from_json(
            r#"{"input":{"type":"features","size":2},"layers":[{"type":"lstm","hiddenSize":4}]}"#,
        )
        .expect("defaults");
        assert!(minimal.to_json().contains(r#""numLayers":1"#));
    }

    #[test]
    fn unknown_or_misplaced_options_are_errors_naming_them() {
        let err = |json: &str| ModelConfig::from_json(json).expect_err("rejected").to_string();
        let base = |layer: &str| format!(r#"{{"input":{{"type":"features","size":2}},"layers":[{layer}]}}"#);
        assert!(err(&base(r#"{"type":"lstm","hiddensize":4}"#)).contains("hiddensize"));
        assert!(err(&base(r#"{"type":"lstm","hiddenSize":4,"resetAfter":true}"#)).contains("layers[0].resetAfter"));
        assert!(err(&base(r#"{"type":"gru","hiddenSize":4,"nonlinearity":"relu"}"#)).contains("layers[0].nonlinearity"));
        assert!(err(&base(r#"{"type":"dense","units":4,"activation":"swish"}"#)).contains("layers[0].activation"));
        assert!(err(&base(r#"{"type":"conv","units":4}"#)).contains("conv"));
        let fit = |json: &str| fit_from_json(json).expect_err("rejected").to_string();
        assert!(fit(r#"{"epochs":1,"batchSize":2,"loss":"mse","optimizer":{"type":"adam","learningRate":-1}}"#)
            .contains("optimizer.learningRate"));
        assert!(fit(r#"{"epochs":1,"batchSize":2,"loss":"hinge","optimizer":{"type":"sgd","learningRate":0.1}}"#)
            .contains("loss"));
        assert!(fit(
            r#"{"epochs":1,"batchSize":2,"loss":"mse","optimizer":{"type":"adam","learningRate":0.1,"beta3":1}}"#
        )
        .contains("beta3"));
        let (cfg, opt) = fit_from_json(
            r#"{"epochs":3,"batchSize":8,"loss":"crossEntropy","optimizer":{"type":"adamw","learningRate":0.01},
                "schedule":{"type":"cosine","tMax":3},"earlyStopping":{"patience":2}}"#,
        )
        .expect("valid");
        assert_eq!(opt, OptimizerConfig::AdamW { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 });
        assert_eq!(cfg.early_stopping.map(|e| e.patience), Some(2));
        for o in [
            OptimizerConfig::sgd(0.1),
            OptimizerConfig::adam(0.01),
            OptimizerConfig::adamw(0.01),
            OptimizerConfig::RmsProp {
                lr: 0.1,
                alpha: 0.9,
                eps: 1e-6,
                momentum: 0.5,
                centered: true,
                weight_decay: 0.1,
            },
        ] {
            assert_eq!(optimizer_from_json(&optimizer_to_json(&o)).expect("round trip"), o);
        }
    }
}
