//! Reading an options object from JavaScript into a JSON value for the core's readers
//! ([`read_js`]), and the types of the options JavaScript passes to training, for the generated
//! `binding.d.ts`. Conversion does not go through those types: the core reads the JSON value
//! with serde (`gyre_core::train::fit_from_value`), which rejects unknown keys and names a bad
//! option by its path. The defaults stated here are the ones that reader applies.
use crate::error::Result;
use gyre_core::CoreError;
use napi::bindgen_prelude::{JsObjectValue, JsValue, Object, Unknown};
use napi::{Env, ValueType};
use napi_derive::napi;
use serde_json::Value;

/// How deep options may nest: theirs is at most three levels; a deeper (or circular) object is
/// refused rather than walked.
const MAX_DEPTH: usize = 32;

/// The JavaScript value `value` (`what` names it: `training options`, `model spec`) as a JSON
/// value for the core's readers. A property whose value is `undefined` is absent, as in
/// TypeScript's optional properties; `null` stays null. A value JSON cannot hold is an error
/// naming its path: NaN and infinities (`optimizer.learningRate must be a finite number, got
/// NaN`), functions, symbols, typed arrays.
pub(crate) fn read_js(env: &Env, what: &str, value: Unknown<'_>) -> Result<Value> {
    Ok(walk(env, what, "", value, 0)?)
}

fn walk(env: &Env, root: &str, path: &str, value: Unknown<'_>, depth: usize) -> gyre_core::Result<Value> {
    let at = if path.is_empty() { root } else { path };
    let refuse = |got: &str| invalid(at, "a number, string, boolean, array or object", got);
    let failed = |e: napi::Error| invalid(at, "a readable value", e.reason);
    Ok(match value.get_type().map_err(failed)? {
        ValueType::Undefined | ValueType::Null => Value::Null,
        ValueType::Boolean => Value::Bool(value.coerce_to_bool().map_err(failed)?),
        ValueType::String => Value::String(env.from_js_value(value).map_err(failed)?),
        ValueType::Number => number(at, env.from_js_value(value).map_err(failed)?)?,
        ValueType::Object => {
            if depth >= MAX_DEPTH {
                return Err(invalid(
                    root,
                    format!("an object nested at most {MAX_DEPTH} levels deep, without cycles"),
                    "a deeper one",
                ));
            }
            let object: Object<'_> = value.coerce_to_object().map_err(failed)?;
            if object.is_typedarray().map_err(failed)?
                || object.is_buffer().map_err(failed)?
                || object.is_arraybuffer().map_err(failed)?
                || object.is_dataview().map_err(failed)?
            {
                return Err(refuse("a typed array or buffer"));
            }
            if object.is_array().map_err(failed)? {
                let n = object.get_array_length().map_err(failed)?;
                let mut items = Vec::with_capacity(n as usize);
                for i in 0..n {
                    let item: Unknown<'_> = object.get_element(i).map_err(failed)?;
                    items.push(walk(env, root, &format!("{at}[{i}]"), item, depth + 1)?);
                }
                Value::Array(items)
            } else {
                let mut fields = serde_json::Map::new();
                for key in Object::keys(&object).map_err(failed)? {
                    let item: Unknown<'_> = object.get_named_property(&key).map_err(failed)?;
                    if item.get_type().map_err(failed)? == ValueType::Undefined {
                        continue;
                    }
                    let inner = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    fields.insert(key, walk(env, root, &inner, item, depth + 1)?);
                }
                Value::Object(fields)
            }
        }
        ValueType::Function => return Err(refuse("a function")),
        ValueType::Symbol => return Err(refuse("a symbol")),
        ValueType::BigInt => return Err(refuse("a bigint")),
        _ => return Err(refuse("a value of another kind")),
    })
}

fn invalid(what: &str, expected: impl Into<String>, got: impl ToString) -> CoreError {
    CoreError::InvalidArgument { what: what.into(), expected: expected.into(), got: got.to_string() }
}

/// A JavaScript number as JSON: an integer as an integer (so that counts read as integers),
/// NaN and infinities refused as JavaScript writes them.
fn number(at: &str, x: f64) -> gyre_core::Result<Value> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if !x.is_finite() {
        let shown = if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        return Err(invalid(at, "a finite number", shown));
    }
    Ok(if x.fract() == 0.0 && x.abs() < LIMIT { Value::from(x as i64) } else { Value::from(x) })
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
    /// Metrics of each epoch's validation evaluation beyond the loss (crossEntropy). Default: none.
    pub metrics: Option<MetricsOptions>,
    /// Weights of the training loss by target: one per class (crossEntropy), or `[w0, w1]`
    /// (binaryCrossEntropy). Default: none.
    pub class_weight: Option<Vec<f64>>,
}

/// Metrics computed beyond the loss, the accuracy (crossEntropy) and the mean absolute error and
/// RMSE (mse): both for the crossEntropy loss.
#[napi(object)]
pub struct MetricsOptions {
    /// Top-k accuracy: the target among the k largest outputs.
    pub top_k: Option<u32>,
    /// The confusion matrix `[classes, classes]` (row: target, column: predicted). Default false.
    pub confusion: Option<bool>,
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
    #[napi(js_name = "type", ts_type = "'constant' | 'step' | 'exponential' | 'cosine' | 'reduceOnPlateau'")]
    pub kind: String,
    /// `step`: epochs between decays.
    pub step_size: Option<u32>,
    /// `step`, `exponential`: the factor per decay.
    pub gamma: Option<f64>,
    /// `cosine`: half period in epochs.
    pub t_max: Option<u32>,
    /// `cosine`: the lowest rate. Default 0.
    pub eta_min: Option<f64>,
    /// `reduceOnPlateau`: multiplies the rate at each reduction, in (0, 1). Default 0.1.
    pub factor: Option<f64>,
    /// `reduceOnPlateau`: epochs without improvement tolerated. Default 10.
    pub patience: Option<u32>,
    /// `reduceOnPlateau`: how much lower counts as better. Default 1e-4.
    pub threshold: Option<f64>,
    /// `reduceOnPlateau`: `'rel'` (default) or `'abs'`.
    #[napi(ts_type = "'rel' | 'abs'")]
    pub threshold_mode: Option<String>,
    /// `reduceOnPlateau`: epochs after a reduction before counting again. Default 0.
    pub cooldown: Option<u32>,
    /// `reduceOnPlateau`: the lowest rate. Default 0.
    pub min_lr: Option<f64>,
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
