//! Recurrent cells and the time loop that runs them.
//!
//! - `cell`: the interface between a cell (one step of gate math) and the driver;
//! - `cells`: the simple RNN, LSTM and GRU cells;
//! - `sequence`: the time-loop driver's forward walk over a packed batch, for training and
//!   inference; `backward`: its backward walk;
//! - `noise`: recurrent dropout and zoneout around each step;
//! - `packing`: the packed row layout and the state each step starts from; `trace`: what a
//!   training pass keeps; `pass`: a pass's setup (weights as the loop reads them, the input
//!   projection); `shards`: how a pass spreads over the thread pool;
//! - `functional`: the low-level functional API (one layer direction, explicit weights);
//! - `weights`: one layer's weights in PyTorch's layout, and their gradients.
//!
//! Public (re-exported at the crate root): the functional API, the cell kinds and the weights.

mod backward;
pub(crate) mod cell;
pub(crate) mod cells;
pub(crate) mod functional;
pub(crate) mod noise;
mod packing;
mod pass;
pub(crate) mod sequence;
mod shards;
#[cfg(test)]
mod tests;
mod trace;
pub(crate) mod weights;

pub(crate) use backward::backward_sequence;
pub(crate) use noise::Noise;
pub(crate) use packing::Packing;
pub(crate) use pass::Transposed;
pub(crate) use trace::Trace;
