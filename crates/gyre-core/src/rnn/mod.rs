//! Recurrent cells and the time loop that runs them.
//!
//! - [`cell`]: the interface between a cell (one step of gate math) and the driver;
//! - [`cells`]: the simple RNN, LSTM and GRU cells;
//! - [`sequence`]: the time-loop driver over packed batches, forward and backward;
//! - [`functional`]: the low-level functional API (one layer, explicit weights);
//! - [`weights`]: one layer's weights in PyTorch's layout, and their gradients.

pub mod cell;
pub mod cells;
pub mod functional;
pub mod sequence;
pub mod weights;
