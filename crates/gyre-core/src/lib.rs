//! gyre-core: recurrent neural networks (simple RNN, LSTM, GRU) in pure Rust, the math under
//! gyre. No Node.js here: the binding lives in `gyre-node`.
//!
//! Start at [`Model`]: a sequential model (an optional embedding, stacked and bidirectional
//! recurrent layers, dense layers) with its parameters under PyTorch's names and gate order,
//! its forward pass over batches of variable-length sequences, for training and for
//! inference, and its backward pass. Then [`fit`] ([`train`]): training it over a dataset,
//! with the optimizers and schedules of [`optim`]; [`io`] saves a model in one safetensors
//! file.
//!
//! Under them, the functional API ([`forward`], [`backward`]) runs one recurrent layer
//! direction with explicit weights: the low-level layer the binding also exposes. In `f32` or
//! `f64`; the input projection of a whole sequence is one matrix product, per step only the
//! recurrent product and one fused pass over the gates run, and weight gradients are products
//! over all steps.
//!
//! Beside the recurrent layers, [`attention`]: a decoder's attention over an encoder's outputs
//! (Luong's dot and general scores, Bahdanau's additive), forward and backward over batches.
//!
//! Inside, folders show the layers, each using only those below it: `train` → `model` →
//! `rnn` (cells and the time loop) and `attention` → [`kernels`] (float bound, SIMD kernels,
//! products).
#![deny(unsafe_code)]

pub mod attention;
mod error;
pub mod graph;
pub mod io;
pub mod kernels;
pub mod model;
pub mod optim;
mod options;
pub mod random;
mod rnn;
pub mod seq2seq;
pub mod train;

pub use attention::{attention_backward, attention_forward, Attention, AttentionGrads, AttentionScore};
pub use error::{CoreError, ErrorCode, Result};
pub use kernels::{tensor, threads, Real};
pub use model::Model;
pub use rnn::cells::{GateActivation, Nonlinearity};
pub use rnn::functional::{
    backward, backward_sequences, forward, forward_sequences, CellKind, ForwardOutput, Gradients, InitialState,
    OutputGrads, RecurrentState, SequenceOptions,
};
pub use rnn::weights::{LayerWeights, WeightGrads};
pub use train::fit;
