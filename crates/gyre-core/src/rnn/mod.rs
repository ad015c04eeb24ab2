//! Recurrent cells and the time loop that runs them.
//!
//! - [`cell`]: the interface between a cell (one step of gate math) and the driver;
//! - [`cells`]: the simple RNN, LSTM and GRU cells;
//! - [`sequence`]: the time-loop driver's forward walk over a packed batch, for training and
//!   inference; `backward`: its backward walk;
//! - `packing`: the packed row layout and the state each step starts from; `trace`: what a
//!   training pass keeps; `pass`: a pass's setup (weights as the loop reads them, the input
//!   projection); `lanes`: how a pass spreads over the thread pool;
//! - [`functional`]: the low-level functional API (one layer, explicit weights);
//! - [`weights`]: one layer's weights in PyTorch's layout, and their gradients.

mod backward;
pub mod cell;
pub mod cells;
pub mod functional;
mod lanes;
mod packing;
mod pass;
pub mod sequence;
#[cfg(test)]
mod tests;
mod trace;
pub mod weights;

pub use backward::backward_sequence;
pub use packing::Packing;
pub use pass::Transposed;
pub use trace::{SequenceGrads, Trace};
