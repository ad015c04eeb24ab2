//! The JSON form of training options and of an optimizer's configuration: what the TypeScript
//! layer sends to `fit`, what a saved model carries of its optimizer. Field names are camelCase;
//! unknown fields are errors.

use crate::error::{CoreError, Result};
use crate::model::config::{bad, default_one, default_true, parse};
use crate::optim::{LrSchedule, OptimizerConfig, Schedule};
use crate::train::{EarlyStopping, FitConfig, LossKind};
use serde::Deserialize;

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
    fn unknown_or_invalid_training_options_are_errors_naming_them() {
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
