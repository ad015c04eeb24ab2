//! What training tells its caller: progress events after every batch and epoch, the observer
//! that receives them (and may stop training), and the history a fit returns.

use super::evaluate::Evaluation;

/// A progress event of [`fit`](fn@crate::train::fit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Progress {
    /// After every batch.
    Batch {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// Batches per epoch.
        batches: usize,
        /// This batch's loss.
        loss: f64,
        /// Training samples per second so far in this epoch.
        samples_per_second: f64,
    },
    /// After every epoch.
    Epoch {
        /// 1-based epoch.
        epoch: usize,
        /// Mean training loss of the epoch.
        loss: f64,
        /// Training accuracy (cross-entropy only).
        accuracy: Option<f64>,
        /// Validation loss and accuracy.
        validation: Option<Evaluation>,
        /// Learning rate used in the epoch.
        learning_rate: f64,
        /// Samples per second over the epoch.
        samples_per_second: f64,
    },
}

/// Receives progress and may stop training between batches.
pub trait Observer {
    /// Called after every batch and epoch.
    fn progress(&mut self, event: Progress);
    /// Polled before every batch; `true` stops training, leaving the weights of the last
    /// completed batch.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// What [`fit`](fn@crate::train::fit) did.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// One `Progress::Epoch` per completed epoch.
    pub epochs: Vec<Progress>,
    /// Stopped by early stopping.
    pub stopped_early: bool,
    /// Stopped by the observer.
    pub aborted: bool,
}
