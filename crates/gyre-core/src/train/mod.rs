//! Training a model over a dataset, and the losses it minimizes.

mod fit;
pub mod loss;

pub use fit::*;
