//! What training tells its caller: progress events after every batch and epoch, the observer
//! that receives them (and may stop training), and the history a fit returns.

use super::evaluate::Evaluation;
use crate::model::Model;
use crate::optim::Optimizer;

/// A progress event of [`fit`](fn@crate::train::fit).
#[derive(Clone, Debug, PartialEq)]
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

/// Receives progress and may stop training between batches; `F` is the model's float type.
pub trait Observer<F = f32> {
    /// Called after every batch and epoch.
    fn progress(&mut self, event: Progress);
    /// Polled before every batch; `true` stops training, leaving the weights of the last
    /// completed batch.
    fn should_stop(&mut self) -> bool {
        false
    }
    /// Called at the end of every epoch, just before its `Progress::Epoch`, with the model and
    /// its optimizer as they are then (the epoch counted, the plateau schedule stepped; before
    /// early stopping restores a best epoch): the moment a checkpoint is taken. A model saved
    /// from here with its optimizer resumes exactly. The default does nothing.
    fn epoch_end(&mut self, _model: &Model<F>, _optimizer: &Optimizer<F>) {}
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
