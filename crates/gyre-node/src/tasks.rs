//! The work of the native model off the JavaScript thread: napi `AsyncTask`s for one training
//! batch, a whole fit, prediction and evaluation. Each catches panics and keeps its error's code
//! for the rejection ([`Failure`]).

use crate::data::OwnedData;
use crate::error::{contain, BindingError, Failure};
use crate::model::{native_bytes, report, Trainable};
use crate::options::MetricsOptions;
use crate::progress::{event, FitHistory, Forwarder, ProgressFn};
use gyre_core::model::Model;
use gyre_core::optim::{Optimizer, OptimizerConfig};
use gyre_core::train::{self, loss_from_name, FitConfig, History};
use gyre_core::{threads, CoreError};
use napi::bindgen_prelude::Float32Array;
use napi::{Env, Task};
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Loss and metrics over a dataset.
#[napi(object)]
pub struct EvaluationResult {
    /// Mean loss.
    pub loss: f64,
    /// The denominator of `loss`: the counted rows' total weight (their count without sample
    /// weights), for combining evaluations of several batches.
    pub weight: f64,
    /// The rows the accuracies count (those of nonzero weight).
    pub count: f64,
    /// Accuracy (cross-entropy only).
    pub accuracy: Option<f64>,
    /// Top-k accuracy (cross-entropy with `metrics.topK`).
    pub top_k_accuracy: Option<f64>,
    /// Mean absolute error (mse only).
    pub mae: Option<f64>,
    /// Root mean squared error (mse only).
    pub rmse: Option<f64>,
    /// `[classes × classes]` counts, row-major, row = target class, column = predicted class
    /// (cross-entropy with `metrics.confusion`).
    pub confusion: Option<Vec<f64>>,
}

impl From<&train::Evaluation> for EvaluationResult {
    fn from(e: &train::Evaluation) -> Self {
        EvaluationResult {
            loss: e.loss,
            weight: e.weight,
            count: e.count as f64,
            accuracy: e.accuracy,
            top_k_accuracy: e.top_k_accuracy,
            mae: e.mae,
            rmse: e.rmse,
            confusion: e.confusion.as_ref().map(|c| c.iter().map(|&n| n as f64).collect()),
        }
    }
}

/// The core's metrics of an evaluation's options.
pub(crate) fn metrics_of(m: Option<&MetricsOptions>) -> train::Metrics {
    m.map_or_else(train::Metrics::default, |m| train::Metrics {
        top_k: m.top_k.map(|k| k as usize),
        confusion: m.confusion.unwrap_or(false),
    })
}

/// The model's optimizer for `config`: the one it has when its configuration is the same
/// (its state carries over between calls), else a fresh one.
fn prepared_optimizer(
    t: &mut Trainable,
    config: OptimizerConfig,
) -> gyre_core::Result<(&mut Model<f32>, &mut Optimizer<f32>)> {
    let reuse = t.optimizer.as_ref().is_some_and(|o| *o.config() == config);
    if !reuse {
        t.optimizer = Some(train::optimizer_for(&t.model, config)?);
    }
    let optimizer = t
        .optimizer
        .as_mut()
        .ok_or_else(|| CoreError::Missing { what: "optimizer".into(), context: "to train".into() })?;
    Ok((&mut t.model, optimizer))
}

fn poisoned() -> CoreError {
    CoreError::InvalidArgument {
        what: "model".into(),
        expected: "usable".into(),
        got: "poisoned by an earlier panic".into(),
    }
}

/// What one `trainBatch` did.
#[napi(object)]
pub struct BatchResult {
    /// Mean loss of the batch over its counted rows.
    pub loss: f64,
    /// Rows the loss counts (sequences, steps or values, by loss and model).
    pub count: u32,
    /// The denominator of `loss`: the counted rows' total weight (`count` without weights).
    pub weight: f64,
    /// Rows predicted right (cross-entropy; else 0).
    pub correct: u32,
    /// The learning rate of the update (the schedule's, at this epoch).
    pub learning_rate: f64,
}

/// Background task of `NativeModel.trainBatch`: one update on one batch.
pub struct TrainBatchTask {
    pub(crate) inner: Arc<Mutex<Trainable>>,
    pub(crate) reported: Arc<AtomicI64>,
    pub(crate) training: Arc<AtomicBool>,
    pub(crate) data: OwnedData,
    pub(crate) config: FitConfig,
    pub(crate) optimizer: OptimizerConfig,
    pub(crate) epoch: usize,
    pub(crate) batch: usize,
    pub(crate) failure: Failure,
}

impl Task for TrainBatchTask {
    type Output = train::BatchOutcome;
    type JsValue = BatchResult;

    fn compute(&mut self) -> napi::Result<train::BatchOutcome> {
        let r = contain(|| {
            let mut guard = self.inner.lock().map_err(|_| poisoned())?;
            let t = &mut *guard;
            let (model, optimizer) = prepared_optimizer(t, self.optimizer)?;
            let set = self.data.dataset()?;
            let (config, epoch, batch) = (&self.config, self.epoch, self.batch);
            Ok(threads::install(|| train::train_batch(model, optimizer, &set, config, epoch, batch))??)
        });
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<BatchResult> {
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, _env: Env, o: train::BatchOutcome) -> napi::Result<BatchResult> {
        Ok(BatchResult {
            loss: o.loss,
            count: o.count as u32,
            weight: o.weight,
            correct: o.correct as u32,
            learning_rate: o.learning_rate,
        })
    }

    fn finally(self, env: Env) -> napi::Result<()> {
        if let Ok(t) = self.inner.lock() {
            report(&env, &self.reported, native_bytes(&t));
        }
        self.training.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// Background training task of `NativeModel.fit`.
pub struct FitTask {
    pub(crate) inner: Arc<Mutex<Trainable>>,
    pub(crate) reported: Arc<AtomicI64>,
    pub(crate) training: Arc<AtomicBool>,
    pub(crate) abort: Arc<AtomicBool>,
    pub(crate) data: OwnedData,
    pub(crate) validation: Option<OwnedData>,
    pub(crate) config: FitConfig,
    pub(crate) optimizer: OptimizerConfig,
    pub(crate) progress: Option<ProgressFn>,
    /// Each epoch event carries a copy of the model as it was then.
    pub(crate) snapshots: bool,
    pub(crate) failure: Failure,
}

impl FitTask {
    fn run(&mut self) -> gyre_core::Result<History> {
        let mut guard = self.inner.lock().map_err(|_| poisoned())?;
        let t = &mut *guard;
        let snapshots = self.snapshots.then(|| t.user.clone());
        let (model, optimizer) = prepared_optimizer(t, self.optimizer)?;
        let train_set = self.data.dataset()?;
        let val_set = self.validation.as_ref().map(OwnedData::dataset).transpose()?;
        let mut observer = Forwarder { progress: self.progress.as_ref(), abort: &self.abort, snapshots, pending: None };
        let config = &self.config;
        threads::install(|| train::fit(model, optimizer, &train_set, val_set.as_ref(), config, &mut observer))?
    }
}

impl Task for FitTask {
    type Output = History;
    type JsValue = FitHistory;

    fn compute(&mut self) -> napi::Result<History> {
        let r = contain(|| Ok(self.run()?));
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<FitHistory> {
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, _env: Env, h: History) -> napi::Result<FitHistory> {
        Ok(FitHistory {
            epochs: h.epochs.iter().map(event).collect(),
            stopped_early: h.stopped_early,
            aborted: h.aborted,
        })
    }

    fn finally(self, env: Env) -> napi::Result<()> {
        if let Ok(t) = self.inner.lock() {
            report(&env, &self.reported, native_bytes(&t));
        }
        self.training.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// Background prediction task of `NativeModel.predict`.
pub struct PredictTask {
    pub(crate) inner: Arc<Mutex<Trainable>>,
    pub(crate) data: OwnedData,
    pub(crate) batch_size: usize,
    pub(crate) failure: Failure,
}

pub(crate) fn predict_with(t: &Trainable, data: &OwnedData, batch_size: usize) -> gyre_core::Result<PredictResult> {
    let inputs = data.inputs()?;
    let p = threads::install(|| train::predict(&t.model, inputs, data.lengths.as_deref(), batch_size))??;
    let states = p
        .hidden
        .into_iter()
        .zip(p.cell)
        .map(|(h, c)| {
            let count = h.len() as u32;
            let cell: Vec<f32> = c.into_iter().flatten().collect();
            LayerState {
                count,
                hidden: Float32Array::new(h.into_iter().flatten().collect()),
                cell: (!cell.is_empty()).then(|| Float32Array::new(cell)),
            }
        })
        .collect();
    Ok(PredictResult { output: Float32Array::new(p.output), states })
}

/// Final states of one recurrent layer.
#[napi(object)]
pub struct LayerState {
    /// Number of stacked layers × directions `K`.
    pub count: u32,
    /// `[K, S, H]` final hidden states (PyTorch's `h_n` order: layer by layer, forward then reverse).
    pub hidden: Float32Array,
    /// `[K, S, H]` final cell states (LSTM only).
    pub cell: Option<Float32Array>,
}

/// Output of `predict`.
#[napi(object)]
pub struct PredictResult {
    /// `[S, T, O]` or `[S, O]`.
    pub output: Float32Array,
    /// Final states, one entry per recurrent layer.
    pub states: Vec<LayerState>,
}

impl Task for PredictTask {
    type Output = PredictResult;
    type JsValue = PredictResult;

    fn compute(&mut self) -> napi::Result<PredictResult> {
        let r = contain(|| {
            let guard = self.inner.lock().map_err(|_| BindingError::internal("the model's lock was poisoned"))?;
            Ok(predict_with(&guard, &self.data, self.batch_size)?)
        });
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<PredictResult> {
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, _env: Env, out: PredictResult) -> napi::Result<PredictResult> {
        Ok(out)
    }
}

/// Background evaluation task of `NativeModel.evaluate`.
pub struct EvaluateTask {
    pub(crate) inner: Arc<Mutex<Trainable>>,
    pub(crate) data: OwnedData,
    pub(crate) loss: String,
    pub(crate) batch_size: usize,
    pub(crate) metrics: train::Metrics,
    pub(crate) failure: Failure,
}

pub(crate) fn evaluate_with(
    t: &Trainable,
    data: &OwnedData,
    loss: &str,
    batch_size: usize,
    metrics: train::Metrics,
) -> gyre_core::Result<EvaluationResult> {
    let loss = loss_from_name(loss)?;
    let set = data.dataset()?;
    let e = threads::install(|| train::evaluate(&t.model, &set, loss, batch_size, metrics))??;
    Ok(EvaluationResult::from(&e))
}

impl Task for EvaluateTask {
    type Output = EvaluationResult;
    type JsValue = EvaluationResult;

    fn compute(&mut self) -> napi::Result<EvaluationResult> {
        let r = contain(|| {
            let guard = self.inner.lock().map_err(|_| BindingError::internal("the model's lock was poisoned"))?;
            Ok(evaluate_with(&guard, &self.data, &self.loss, self.batch_size, self.metrics)?)
        });
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<EvaluationResult> {
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, _env: Env, out: EvaluationResult) -> napi::Result<EvaluationResult> {
        Ok(out)
    }
}
