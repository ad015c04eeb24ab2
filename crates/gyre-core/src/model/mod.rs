//! A sequential model: an optional embedding, recurrent layers (stacked, bidirectional) and
//! dense layers, with its parameters under PyTorch-style names, a forward pass over a batch of
//! variable-length sequences (for training and for inference) and its backward pass.
//!
//! - [`config`]: the architecture ([`ModelSpec`]), read from JavaScript's spec and in its JSON form;
//! - `init`: parameters from a configuration, and their access;
//! - `batch`: packing batches in, unpacking outputs;
//! - `layers`: embedding, dense and activations, a recurrent layer's output;
//! - `forward`: the forward walk over the layers, for training and inference;
//! - `backward`: the backward pass;
//! - `state`: the recurrent state between calls, and streams.

mod backward;
mod batch;
pub mod config;
mod forward;
mod init;
pub(crate) mod layers;
mod state;

pub use batch::{Inputs, PackedBatch};
pub use config::{spec_from_value, Activation, InputKind, LayerSpec, Merge, ModelSpec, RecurrentLayerSpec};
pub use forward::{ForwardTrace, Inference, PreparedWeights};
pub use init::{Model, Tensor, MAX_PARAMETERS};
pub use layers::activate;
pub use state::ModelState;
