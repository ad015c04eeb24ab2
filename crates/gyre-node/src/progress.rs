//! Training progress as JavaScript receives it: events, sent from the training thread without
//! waiting for JavaScript, and the history `fit` resolves to.

use crate::model::{NativeModel, Trainable};
use crate::tasks::EvaluationResult;
use gyre_core::model::Model;
use gyre_core::optim::Optimizer;
use gyre_core::train::{Observer, Progress};
use napi::bindgen_prelude::{ToNapiValue, TypeName, ValueType};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};

/// The model as it was at an epoch's end: a copy (weights, optimizer state, trained epochs,
/// metadata) that becomes a `NativeModel` of its own on the JavaScript thread.
pub struct Snapshot(pub(crate) Trainable);

impl TypeName for Snapshot {
    fn type_name() -> &'static str {
        "NativeModel"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Snapshot {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> napi::Result<napi::sys::napi_value> {
        let model = NativeModel::wrap(&Env::from_raw(env), val.0);
        // SAFETY: called by napi on the JavaScript thread with its env, as the caller's contract.
        unsafe { NativeModel::to_napi_value(env, model) }
    }
}

/// One progress event of `fit`.
#[napi(object, object_from_js = false)]
pub struct ProgressEvent {
    /// `"batch"` or `"epoch"`.
    pub kind: String,
    /// 1-based epoch.
    pub epoch: u32,
    /// 1-based batch (batch events).
    pub batch: Option<u32>,
    /// Batches per epoch (batch events).
    pub batches: Option<u32>,
    /// Loss of the batch, or mean loss of the epoch.
    pub loss: f64,
    /// Training accuracy of the epoch (cross-entropy).
    pub accuracy: Option<f64>,
    /// Validation loss (epoch events with validation data).
    pub val_loss: Option<f64>,
    /// Validation accuracy (cross-entropy).
    pub val_accuracy: Option<f64>,
    /// Learning rate of the epoch (epoch events).
    pub learning_rate: Option<f64>,
    /// The validation evaluation with every metric (epoch events with validation data).
    pub validation: Option<EvaluationResult>,
    /// Training samples per second.
    pub samples_per_second: f64,
    /// The model at the epoch's end (epoch events of a `fit` that asked for snapshots).
    #[napi(ts_type = "NativeModel")]
    pub snapshot: Option<Snapshot>,
}

pub(crate) fn event(p: &Progress) -> ProgressEvent {
    match p {
        &Progress::Batch { epoch, batch, batches, loss, samples_per_second } => ProgressEvent {
            kind: "batch".into(),
            epoch: epoch as u32,
            batch: Some(batch as u32),
            batches: Some(batches as u32),
            loss,
            accuracy: None,
            val_loss: None,
            val_accuracy: None,
            learning_rate: None,
            validation: None,
            samples_per_second,
            snapshot: None,
        },
        Progress::Epoch { epoch, loss, accuracy, validation, learning_rate, samples_per_second } => ProgressEvent {
            kind: "epoch".into(),
            epoch: *epoch as u32,
            batch: None,
            batches: None,
            loss: *loss,
            accuracy: *accuracy,
            val_loss: validation.as_ref().map(|v| v.loss),
            val_accuracy: validation.as_ref().and_then(|v| v.accuracy),
            learning_rate: Some(*learning_rate),
            validation: validation.as_ref().map(EvaluationResult::from),
            samples_per_second: *samples_per_second,
            snapshot: None,
        },
    }
}

/// What `fit` resolves to.
#[napi(object, object_from_js = false)]
pub struct FitHistory {
    /// One event per completed epoch.
    pub epochs: Vec<ProgressEvent>,
    /// Stopped by early stopping.
    pub stopped_early: bool,
    /// Stopped by `abortTraining` (an AbortSignal).
    pub aborted: bool,
}

pub(crate) type ProgressFn = ThreadsafeFunction<ProgressEvent, (), ProgressEvent, Status, false>;

pub(crate) struct Forwarder<'a> {
    pub(crate) progress: Option<&'a ProgressFn>,
    pub(crate) abort: &'a AtomicBool,
    /// Copy the model at each epoch's end into its event (and the metadata to keep with it).
    pub(crate) snapshots: Option<Option<String>>,
    pub(crate) pending: Option<Snapshot>,
}

impl Observer for Forwarder<'_> {
    fn progress(&mut self, p: Progress) {
        #[cfg(debug_assertions)]
        crate::debug::panic_in_progress();
        if let Some(f) = self.progress {
            let mut e = event(&p);
            if matches!(p, Progress::Epoch { .. }) {
                e.snapshot = self.pending.take();
            }
            // Non-blocking: training never waits for JavaScript.
            f.call(e, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
    fn should_stop(&mut self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
    fn epoch_end(&mut self, model: &Model<f32>, optimizer: &Optimizer<f32>) {
        if let (Some(user), Some(_)) = (&self.snapshots, self.progress) {
            self.pending = Some(Snapshot(Trainable {
                model: model.clone(),
                optimizer: Some(optimizer.clone()),
                user: user.clone(),
            }));
        }
    }
}
