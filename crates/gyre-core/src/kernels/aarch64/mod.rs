//! The AArch64 kernels: NEON (Advanced SIMD, 32 registers of 4 f32), which every AArch64 CPU
//! has, so they need no run-time detection: they are compiled for the baseline target and
//! [`crate::kernels::dispatch`] runs them unless `GYRE_SIMD=scalar` caps the level.
//!
//! - `activations`: `exp`, sigmoid, tanh over slices, and the fused LSTM and GRU gate rows;
//! - `products`: the dot product, the `c += a·b` tiles and their driver, the 4 × 4 transpose.
//!
//! Their speed could not be measured where they were written (an x86 machine, running them
//! under qemu): the tile shapes come from the register count and the cores' published
//! throughputs, as `products` explains.
#![allow(unsafe_code)] // SIMD intrinsics; every unsafe block states what makes it sound

mod activations;
mod products;

pub(super) use activations::{gru_neon, lstm_neon, sigmoid_neon, tanh_neon};
pub(super) use products::{dot_neon, gemm_acc_neon, transpose_neon};
