//! A sequential model: its architecture and JSON form, its parameters, and its forward and
//! backward passes over batches of variable-length sequences.

pub mod config;
mod forward;

pub use forward::*;
