//! The types of the options JavaScript passes to training, for the generated `binding.d.ts`.
//! Conversion does not go through them: the native side reads the JavaScript object with serde
//! (`gyre_core::train::fit_from_value`), which rejects unknown keys and names a bad option by
//! its path. The defaults stated here are the ones that reader applies.
use crate::error::{BindingError, Result};
use gyre_core::ErrorCode;
use napi::bindgen_prelude::Unknown;
use napi::Env;
use napi_derive::napi;

/// The options object as a JSON value for the core's reader (`undefined` and `NaN` read as null).
pub(crate) fn read_options(env: &Env, options: Unknown<'_>) -> Result<serde_json::Value> {
    env.from_js_value(options).map_err(|e| BindingError {
        code: ErrorCode::InvalidArgument,
        message: format!(
            "training options must hold numbers, strings, booleans, arrays and objects only: {}",
            e.reason
        ),
    })
}

/// Training options of `fit`, `trainBatch` and `fitSettings`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct FitOptions {
    /// The loss: `crossEntropy` (integer classes), `mse`, `binaryCrossEntropy`.
    #[napi(ts_type = "'crossEntropy' | 'mse' | 'binaryCrossEntropy'")]
    pub loss: String,
    /// Passes over the data. Default 1.
    pub epochs: Option<u32>,
    /// Sequences per batch. Default 32.
    pub batch_size: Option<u32>,
    /// Shuffle every epoch (seeded). Default true.
    pub shuffle: Option<bool>,
    /// Seed of shuffling and dropout. Default 0.
    pub seed: Option<f64>,
    /// The optimizer. Default `{ type: 'adam', learningRate: 0.001 }`.
    pub optimizer: Option<OptimizerOptions>,
    /// Learning rate per epoch. Default constant.
    pub schedule: Option<ScheduleOptions>,
    /// Epochs of linear learning-rate warmup. Default 0.
    pub warmup_epochs: Option<u32>,
    /// Clip the global gradient norm. Default: no clipping.
    pub clip_norm: Option<f64>,
    /// Clip every gradient element to `[-v, v]`. Default: no clipping.
    pub clip_value: Option<f64>,
    /// Truncated BPTT: update every this many steps. Default: whole sequences.
    pub tbptt_steps: Option<u32>,
    /// Early stopping. Default: none.
    pub early_stopping: Option<EarlyStoppingOptions>,
}

/// An optimizer (PyTorch semantics and defaults); each takes only its own fields.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct OptimizerOptions {
    /// Default `'adam'`.
    #[napi(js_name = "type", ts_type = "'sgd' | 'adam' | 'adamw' | 'rmsprop'")]
    pub kind: Option<String>,
    /// Default 0.001 (`rmsprop`: 0.01).
    pub learning_rate: Option<f64>,
    /// `sgd`, `rmsprop`. Default 0.
    pub momentum: Option<f64>,
    /// `sgd`. Default 0.
    pub dampening: Option<f64>,
    /// `sgd`. Default false.
    pub nesterov: Option<bool>,
    /// `adam`, `adamw`. Default 0.9.
    pub beta1: Option<f64>,
    /// `adam`, `adamw`. Default 0.999.
    pub beta2: Option<f64>,
    /// `adam`, `adamw`, `rmsprop`. Default 1e-8.
    pub eps: Option<f64>,
    /// `rmsprop`. Default 0.99.
    pub alpha: Option<f64>,
    /// `rmsprop`. Default false.
    pub centered: Option<bool>,
    /// Default 0 (`adamw`: 0.01).
    pub weight_decay: Option<f64>,
}

/// A learning-rate schedule over epochs.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct ScheduleOptions {
    /// The schedule.
    #[napi(js_name = "type", ts_type = "'constant' | 'step' | 'exponential' | 'cosine'")]
    pub kind: String,
    /// `step`: epochs between decays.
    pub step_size: Option<u32>,
    /// `step`, `exponential`: the factor per decay.
    pub gamma: Option<f64>,
    /// `cosine`: half period in epochs.
    pub t_max: Option<u32>,
    /// `cosine`: the lowest rate. Default 0.
    pub eta_min: Option<f64>,
}

/// Early stopping on the validation loss (else the training loss).
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct EarlyStoppingOptions {
    /// Epochs without improvement before stopping. Default 1.
    pub patience: Option<u32>,
    /// Smallest decrease that counts as an improvement. Default 0.
    pub min_delta: Option<f64>,
    /// Put back the best epoch's weights when stopping. Default true.
    pub restore_best: Option<bool>,
}
