//! The x86-64 kernels: AVX-512 F and AVX2 + FMA builds, compiled with `#[target_feature]` and
//! entered from [`crate::kernels::dispatch`] only after the CPU was detected to have them.
//!
//! - `activations`: `exp`, sigmoid, tanh over slices, and the fused LSTM and GRU gate rows;
//! - `dots`: one row's dot products against several rows (the one-step products);
//! - `products`: dot products, the `c += a·b` tiles and drivers, the 16 × 16 transpose.
#![allow(unsafe_code)] // SIMD intrinsics; every unsafe block states what makes it sound

mod activations;
mod dots;
mod products;

pub(super) use activations::{
    gru_avx2, gru_avx512, lstm_avx2, lstm_avx512, sigmoid_avx2, sigmoid_avx512, tanh_avx2, tanh_avx512,
};
pub(super) use dots::{dots_avx2, dots_avx512};
pub(super) use products::{dot_avx2, dot_avx512, gemm_acc_avx2, gemm_acc_avx512, transpose_avx512};
