//! Training options and an optimizer's configuration as they come from JavaScript (JSON,
//! camelCase): what the TypeScript layer sends to `fit` and `trainBatch`, what a saved model
//! carries of its optimizer. Every default of an option is declared here, once; unknown fields
//! are errors; every error names the option by its path (`optimizer.learningRate`,
//! `earlyStopping.patience`) and what it accepts (read with the helpers of `crate::options`).

use crate::error::{CoreError, Result};
use crate::model::config::{default_one, default_true};
use crate::optim::{LrSchedule, OptimizerConfig, Schedule};
use crate::options::{json_value, prefixed, read, tagged, Count};
use crate::train::{EarlyStopping, FitConfig, LossKind, Metrics};
use serde::Deserialize;
use serde_json::Value;

/// Default passes over the data.
fn default_epochs() -> Count {
    Count(1)
}

/// Default sequences per batch.
fn default_batch_size() -> Count {
    Count(32)
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object of training options")]
struct FitJson {
    loss: String,
    #[serde(default = "default_epochs")]
    epochs: Count,
    #[serde(default = "default_batch_size")]
    batch_size: Count,
    #[serde(default = "default_true")]
    shuffle: bool,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    optimizer: Option<Value>,
    #[serde(default)]
    schedule: Option<Value>,
    #[serde(default)]
    warmup_epochs: usize,
    #[serde(default)]
    clip_norm: Option<f64>,
    #[serde(default)]
    clip_value: Option<f64>,
    #[serde(default)]
    tbptt_steps: Option<Count>,
    #[serde(default)]
    early_stopping: Option<EarlyStoppingJson>,
    #[serde(default)]
    metrics: Option<MetricsJson>,
    #[serde(default)]
    class_weight: Option<Vec<f64>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object { topK?, confusion? }")]
struct MetricsJson {
    #[serde(default)]
    top_k: Option<Count>,
    #[serde(default)]
    confusion: bool,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object { patience?, minDelta?, restoreBest? }")]
struct EarlyStoppingJson {
    #[serde(default = "default_one")]
    patience: usize,
    #[serde(default)]
    min_delta: f64,
    #[serde(default = "default_true")]
    restore_best: bool,
}

/// The optimizer of training options without one: Adam at its default learning rate.
pub const DEFAULT_OPTIMIZER: &str = "adam";

/// PyTorch's default learning rate of an optimizer: 0.001 (`sgd`, `adam`, `adamw`), 0.01
/// (`rmsprop`).
fn default_learning_rate(kind: &str) -> f64 {
    if kind == "rmsprop" {
        0.01
    } else {
        0.001
    }
}

/// The fields of `{ type: 'sgd', ... }`; an absent field takes [`OptimizerConfig::sgd`]'s value.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object of sgd options")]
struct SgdJson {
    learning_rate: Option<f64>,
    momentum: Option<f64>,
    dampening: Option<f64>,
    nesterov: Option<bool>,
    weight_decay: Option<f64>,
}

/// The fields of `{ type: 'adam' | 'adamw', ... }`; an absent field takes
/// [`OptimizerConfig::adam`]'s (or `adamw`'s) value.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object of adam options")]
struct AdamJson {
    learning_rate: Option<f64>,
    beta1: Option<f64>,
    beta2: Option<f64>,
    eps: Option<f64>,
    weight_decay: Option<f64>,
}

/// The fields of `{ type: 'rmsprop', ... }`; an absent field takes [`OptimizerConfig::rmsprop`]'s value.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object of rmsprop options")]
struct RmspropJson {
    learning_rate: Option<f64>,
    alpha: Option<f64>,
    eps: Option<f64>,
    momentum: Option<f64>,
    centered: Option<bool>,
    weight_decay: Option<f64>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object { stepSize, gamma }")]
struct StepJson {
    step_size: Count,
    gamma: f64,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object { gamma }")]
struct ExponentialJson {
    gamma: f64,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object { tMax, etaMin? }")]
struct CosineJson {
    t_max: Count,
    #[serde(default)]
    eta_min: f64,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object {}")]
struct ConstantJson {}

/// `torch.optim.lr_scheduler.ReduceLROnPlateau`'s options and defaults (mode `'min'`).
#[derive(Deserialize, Debug)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    expecting = "an object { factor?, patience?, threshold?, thresholdMode?, cooldown?, minLr? }"
)]
struct PlateauJson {
    #[serde(default = "plateau_factor")]
    factor: f64,
    #[serde(default = "plateau_patience")]
    patience: usize,
    #[serde(default = "plateau_threshold")]
    threshold: f64,
    #[serde(default = "plateau_mode")]
    threshold_mode: String,
    #[serde(default)]
    cooldown: usize,
    #[serde(default)]
    min_lr: f64,
}

fn plateau_factor() -> f64 {
    0.1
}
fn plateau_patience() -> usize {
    10
}
fn plateau_threshold() -> f64 {
    1e-4
}
fn plateau_mode() -> String {
    "rel".into()
}

/// Parses a loss name: `crossEntropy`, `mse`, `binaryCrossEntropy`.
pub fn loss_from_name(name: &str) -> Result<LossKind> {
    Ok(match name {
        "crossEntropy" => LossKind::CrossEntropy,
        "mse" => LossKind::MeanSquaredError,
        "binaryCrossEntropy" => LossKind::BinaryCrossEntropy,
        other => {
            return Err(CoreError::invalid(
                "loss",
                "one of crossEntropy, mse, binaryCrossEntropy",
                format!("{other:?}"),
            ))
        }
    })
}

/// Parses training options (JSON, camelCase) into the fit configuration and the optimizer.
/// Absent options take their defaults: 1 epoch, batches of 32, shuffled with seed 0, Adam at
/// learning rate 0.001, a constant schedule, no clipping, no truncation, no early stopping;
/// `earlyStopping: {}` means patience 1, minDelta 0, restoreBest true; an optimizer without
/// `type` is Adam, one without `learningRate` takes PyTorch's (0.001, rmsprop 0.01).
pub fn fit_from_json(json: &str) -> Result<(FitConfig, OptimizerConfig)> {
    fit_from_value(json_value("fit options", json)?)
}

/// [`fit_from_json`] for options already read into a JSON value (from a JavaScript object).
pub fn fit_from_value(options: Value) -> Result<(FitConfig, OptimizerConfig)> {
    let f: FitJson = read("", options)?;
    let optimizer = match f.optimizer {
        Some(v) => optimizer_from("optimizer", v)?,
        None => OptimizerConfig::adam(default_learning_rate(DEFAULT_OPTIMIZER)),
    };
    let decay = match f.schedule {
        None => LrSchedule::Constant,
        Some(v) => schedule_from("schedule", v)?,
    };
    let schedule = Schedule::new(decay, f.warmup_epochs).map_err(|e| prefixed("schedule", e))?;
    let config = FitConfig {
        epochs: f.epochs.0,
        batch_size: f.batch_size.0,
        shuffle: f.shuffle,
        seed: f.seed,
        loss: loss_from_name(&f.loss)?,
        schedule,
        clip_norm: f.clip_norm,
        clip_value: f.clip_value,
        tbptt_steps: f.tbptt_steps.map(|k| k.0),
        early_stopping: f.early_stopping.map(|e| EarlyStopping {
            patience: e.patience,
            min_delta: e.min_delta,
            restore_best: e.restore_best,
        }),
        metrics: f.metrics.map(|m| Metrics { top_k: m.top_k.map(|k| k.0), confusion: m.confusion }).unwrap_or_default(),
        class_weight: f.class_weight,
    };
    Ok((config, optimizer))
}

/// The optimizer of a `{ type, ... }` object at `path`, validated; absent fields take the
/// defaults of [`OptimizerConfig::sgd`], `adam`, `adamw` or `rmsprop`.
fn optimizer_from(path: &str, value: Value) -> Result<OptimizerConfig> {
    let (kind, rest) = tagged(path, value, &["sgd", "adam", "adamw", "rmsprop"], Some(DEFAULT_OPTIMIZER))?;
    let lr = |given: Option<f64>| given.unwrap_or_else(|| default_learning_rate(&kind));
    fn set<T>(slot: &mut T, given: Option<T>) {
        if let Some(v) = given {
            *slot = v;
        }
    }
    let config = match kind.as_str() {
        "sgd" => {
            let o: SgdJson = read(path, rest)?;
            let mut c = OptimizerConfig::sgd(lr(o.learning_rate));
            if let OptimizerConfig::Sgd { momentum, dampening, nesterov, weight_decay, .. } = &mut c {
                set(momentum, o.momentum);
                set(dampening, o.dampening);
                set(nesterov, o.nesterov);
                set(weight_decay, o.weight_decay);
            }
            c
        }
        "adam" | "adamw" => {
            let o: AdamJson = read(path, rest)?;
            let mut c = if kind == "adam" {
                OptimizerConfig::adam(lr(o.learning_rate))
            } else {
                OptimizerConfig::adamw(lr(o.learning_rate))
            };
            if let OptimizerConfig::Adam { beta1, beta2, eps, weight_decay, .. }
            | OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay, .. } = &mut c
            {
                set(beta1, o.beta1);
                set(beta2, o.beta2);
                set(eps, o.eps);
                set(weight_decay, o.weight_decay);
            }
            c
        }
        _ => {
            let o: RmspropJson = read(path, rest)?;
            let mut c = OptimizerConfig::rmsprop(lr(o.learning_rate));
            if let OptimizerConfig::RmsProp { alpha, eps, momentum, centered, weight_decay, .. } = &mut c {
                set(alpha, o.alpha);
                set(eps, o.eps);
                set(momentum, o.momentum);
                set(centered, o.centered);
                set(weight_decay, o.weight_decay);
            }
            c
        }
    };
    config.validate().map_err(|e| prefixed(path, e))?;
    Ok(config)
}

fn schedule_from(path: &str, value: Value) -> Result<LrSchedule> {
    let (kind, rest) = tagged(path, value, &["constant", "step", "exponential", "cosine", "reduceOnPlateau"], None)?;
    Ok(match kind.as_str() {
        "constant" => {
            let ConstantJson {} = read(path, rest)?;
            LrSchedule::Constant
        }
        "step" => {
            let StepJson { step_size, gamma } = read(path, rest)?;
            LrSchedule::Step { step_size: step_size.0, gamma }
        }
        "exponential" => {
            let ExponentialJson { gamma } = read(path, rest)?;
            LrSchedule::Exponential { gamma }
        }
        "cosine" => {
            let CosineJson { t_max, eta_min } = read(path, rest)?;
            LrSchedule::Cosine { t_max: t_max.0, eta_min }
        }
        _ => {
            let PlateauJson { factor, patience, threshold, threshold_mode, cooldown, min_lr } = read(path, rest)?;
            let relative = match threshold_mode.as_str() {
                "rel" => true,
                "abs" => false,
                other => {
                    return Err(CoreError::invalid(
                        format!("{path}.thresholdMode"),
                        "'rel' or 'abs'",
                        format!("{other:?}"),
                    ))
                }
            };
            LrSchedule::Plateau { factor, patience, threshold, relative, cooldown, min_lr }
        }
    })
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
    optimizer_from("optimizer", json_value("optimizer", json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(json: &str) -> String {
        fit_from_json(json).expect_err("rejected").to_string()
    }

    #[test]
    fn unknown_or_invalid_training_options_are_errors_naming_them() {
        assert!(fit(r#"{"epochs":1,"batchSize":2,"loss":"mse","optimizer":{"type":"adam","learningRate":-1}}"#)
            .contains("optimizer.learningRate"));
        assert!(fit(r#"{"epochs":1,"batchSize":2,"loss":"hinge","optimizer":{"type":"sgd","learningRate":0.1}}"#)
            .contains("loss"));
        assert_eq!(
            fit(r#"{"loss":"mse","optimizer":{"type":"adam","learningRate":0.1,"beta3":1}}"#),
            "unknown option optimizer.beta3; expected one of learningRate, beta1, beta2, eps, weightDecay"
        );
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

    #[test]
    fn messages_name_the_option_path_and_what_it_accepts() {
        assert_eq!(
            fit(r#"{"loss":"mse","optimizer":{"learning_rate":0.01}}"#),
            "unknown option optimizer.learning_rate; expected one of learningRate, beta1, beta2, eps, weightDecay"
        );
        assert_eq!(
            fit(r#"{"loss":"mse","earlyStopping":true}"#),
            "earlyStopping must be an object { patience?, minDelta?, restoreBest? }, got true"
        );
        assert_eq!(
            fit(r#"{"loss":"mse","earlyStopping":{"patient":2}}"#),
            "unknown option earlyStopping.patient; expected one of patience, minDelta, restoreBest"
        );
        assert_eq!(fit(r#"{"loss":"mse","epochs":"3"}"#), r#"epochs must be a positive integer, got "3""#);
        assert_eq!(fit(r#"{"loss":"mse","warmupEpochs":1.5}"#), "warmupEpochs must be a non-negative integer, got 1.5");
        assert_eq!(fit(r#"{"loss":"mse","seed":-1}"#), "seed must be a non-negative integer, got -1");
        assert_eq!(fit(r#"{"loss":"mse","shuffle":"yes"}"#), r#"shuffle must be a boolean, got "yes""#);
        assert_eq!(
            fit(r#"{"loss":"mse","optimizer":{"type":"lbfgs"}}"#),
            r#"optimizer.type must be one of 'sgd', 'adam', 'adamw', 'rmsprop', got "lbfgs""#
        );
        assert_eq!(
            fit(r#"{"loss":"mse","schedule":{"type":"step","gamma":0.5}}"#),
            "schedule.stepSize is required in schedule"
        );
        assert_eq!(
            fit(r#"{"loss":"mse","learningRate":0.1}"#),
            "unknown option learningRate; expected one of loss, epochs, batchSize, shuffle, seed, optimizer, schedule, \
             warmupEpochs, clipNorm, clipValue, tbpttSteps, earlyStopping, metrics, classWeight"
        );
        for m in [fit(r#"{"loss":"mse","earlyStopping":true}"#), fit(r#"{"loss":"mse","epochs":"3"}"#)] {
            assert!(!m.contains("line") && !m.contains("Json"), "{m}");
        }
    }

    #[test]
    fn partial_options_take_the_documented_defaults() {
        let (cfg, opt) = fit_from_json(r#"{"loss":"mse"}"#).expect("defaults");
        assert_eq!(opt, OptimizerConfig::adam(0.001));
        assert_eq!((cfg.epochs, cfg.batch_size, cfg.shuffle, cfg.seed), (1, 32, true, 0));
        let (_, opt) = fit_from_json(r#"{"loss":"mse","optimizer":{"type":"adam"}}"#).expect("adam");
        assert_eq!(opt, OptimizerConfig::adam(0.001));
        let (_, opt) = fit_from_json(r#"{"loss":"mse","optimizer":{"type":"rmsprop","centered":true}}"#).expect("rms");
        assert_eq!(
            opt,
            OptimizerConfig::RmsProp {
                lr: 0.01,
                alpha: 0.99,
                eps: 1e-8,
                momentum: 0.0,
                centered: true,
                weight_decay: 0.0
            }
        );
        let (_, opt) = fit_from_json(r#"{"loss":"mse","optimizer":{"learningRate":0.01}}"#).expect("adam by default");
        assert_eq!(opt, OptimizerConfig::adam(0.01));
        let (cfg, _) = fit_from_json(r#"{"loss":"mse","earlyStopping":{}}"#).expect("early stopping");
        assert_eq!(cfg.early_stopping, Some(EarlyStopping { patience: 1, min_delta: 0.0, restore_best: true }));
    }
}
