//! Optimizers, learning-rate schedules and gradient clipping.

mod optimizer;

pub use optimizer::*;
