//! gyre-core: recurrent neural network kernels for gyre, in pure Rust.
//!
//! Simple RNN (tanh, relu), LSTM and GRU cells over whole batches of sequences: forward passes
//! and backpropagation through time, in `f32` or `f64`, with PyTorch's weight layout, names and
//! gate order. The input projection of a whole sequence is one matrix product; per step only
//! the recurrent product and one fused pass over the gates run; weight gradients are products
//! over all steps. No Node.js here: the binding lives in `gyre-node`.
//!
//! Start at [`recurrent::forward`] and [`recurrent::backward`].
#![deny(unsafe_code)]

pub mod error;
pub mod io;
pub mod kernels;
pub mod model;
pub mod optim;
pub mod random;
pub mod rnn;
pub mod train;

pub use io::{model_file as persist, safetensors};
pub use kernels::{dispatch as simd, linalg, real, tensor, threads};
pub use rnn::{cell, cells, functional as recurrent, sequence, weights};
pub use train::config;
pub use train::loss;

pub use cells::Nonlinearity;
pub use error::{CoreError, Result};
pub use real::Real;
pub use recurrent::{backward, forward, CellKind, ForwardOutput, Gradients, InitialState, OutputGrads, RecurrentState};
pub use weights::{LayerWeights, WeightGrads};
