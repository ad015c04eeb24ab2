//! Optimizers, learning-rate schedules and gradient clipping, with PyTorch's semantics.
//!
//! [`Optimizer`] updates a fixed list of flat parameters in place from their gradients, as
//! `torch.optim.SGD`, `Adam`, `AdamW` and `RMSprop` do (see [`OptimizerConfig`] for the exact
//! update of each). Every parameter is a [`Param`]: its values, its gradient (same length) and
//! whether weight decay applies to it (weights: yes; biases: usually no — the caller decides).
//!
//! The learning rate is passed to every [`Optimizer::step`], so a [`Schedule`] (or any other
//! rule) can drive it; [`OptimizerConfig::lr`] is the base rate a schedule starts from:
//!
//! ```
//! use gyre_core::optim::{LrSchedule, Optimizer, OptimizerConfig, Param, Schedule};
//!
//! let config = OptimizerConfig::adam(0.01);
//! let schedule = Schedule::new(LrSchedule::Cosine { t_max: 100, eta_min: 0.0 }, 10)?;
//! let (mut weight, mut bias) = (vec![0.5f32; 6], vec![0.0f32; 2]);
//! let mut optimizer = Optimizer::<f32>::new(config, &[weight.len(), bias.len()])?;
//! for t in 0..100 {
//!     let (grad_weight, grad_bias) = (vec![0.1f32; 6], vec![0.2f32; 2]);
//!     let lr = schedule.lr_at(config.lr(), t) as f32;
//!     let mut params = [
//!         Param::new(&mut weight, &grad_weight, true),
//!         Param::new(&mut bias, &grad_bias, false),
//!     ];
//!     optimizer.step(&mut params, lr)?;
//! }
//! # Ok::<(), gyre_core::CoreError>(())
//! ```
//!
//! [`Optimizer::state`] and [`Optimizer::load_state`] export and import the whole optimizer
//! state (step count and per-parameter buffers, named as in PyTorch's `state_dict`) for
//! checkpoints; a restored optimizer continues bit-identically.
//!
//! - `optimizer`: the configuration, the parameters, the step and the state;
//! - `sgd`, `adam`, `rmsprop`: each optimizer's update of one parameter;
//! - `schedule`: learning-rate schedules;
//! - `clip`: gradient clipping.

mod adam;
mod clip;
mod optimizer;
mod rmsprop;
mod schedule;
mod sgd;
#[cfg(test)]
mod tests;

pub use clip::{check_and_clip, clip_grad_norm, clip_grad_value};
pub use optimizer::{matrix_decay_params, NamedBuffer, Optimizer, OptimizerConfig, OptimizerState, Param};
pub use schedule::{LrSchedule, Plateau, Schedule};
