//! Training progress as JavaScript receives it: events, sent from the training thread without
//! waiting for JavaScript, and the history `fit` resolves to.

use gyre_core::train::{Observer, Progress};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};

/// One progress event of `fit`.
#[napi(object)]
#[derive(Clone)]
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
    /// Training samples per second.
    pub samples_per_second: f64,
}

pub(crate) fn event(p: &Progress) -> ProgressEvent {
    match *p {
        Progress::Batch { epoch, batch, batches, loss, samples_per_second } => ProgressEvent {
            kind: "batch".into(),
            epoch: epoch as u32,
            batch: Some(batch as u32),
            batches: Some(batches as u32),
            loss,
            accuracy: None,
            val_loss: None,
            val_accuracy: None,
            learning_rate: None,
            samples_per_second,
        },
        Progress::Epoch { epoch, loss, accuracy, validation, learning_rate, samples_per_second } => ProgressEvent {
            kind: "epoch".into(),
            epoch: epoch as u32,
            batch: None,
            batches: None,
            loss,
            accuracy,
            val_loss: validation.map(|v| v.loss),
            val_accuracy: validation.and_then(|v| v.accuracy),
            learning_rate: Some(learning_rate),
            samples_per_second,
        },
    }
}

/// What `fit` resolves to.
#[napi(object)]
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
}

impl Observer for Forwarder<'_> {
    fn progress(&mut self, p: Progress) {
        #[cfg(debug_assertions)]
        crate::debug::panic_in_progress();
        if let Some(f) = self.progress {
            // Non-blocking: training never waits for JavaScript.
            f.call(event(&p), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
    fn should_stop(&mut self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
}
