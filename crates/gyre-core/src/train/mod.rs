//! Training a model over a dataset, and the losses it minimizes.
//!
//! - `fit`: the training loop (epochs, batches, truncated BPTT, updates, early stopping);
//! - `config`: the JSON form of training and optimizer options;
//! - `batches`: a dataset in memory and the batches cut from it;
//! - `evaluate`: evaluation and prediction over a dataset;
//! - `events`: progress events, the observer, the history;
//! - [`loss`]: the losses and their gradients.

mod batches;
mod config;
mod evaluate;
mod events;
mod fit;
pub mod loss;

pub use batches::{check_dataset, Dataset, Targets};
pub use config::{fit_from_json, fit_from_value, loss_from_name, optimizer_from_json, optimizer_to_json};
pub use evaluate::{evaluate, predict, Evaluation, Metrics, Predicted};
pub use events::{History, Observer, Progress};
pub use fit::{
    check_loss, fit, optimizer_for, optimizer_sizes, train_batch, BatchOutcome, EarlyStopping, FitConfig, LossKind,
};
