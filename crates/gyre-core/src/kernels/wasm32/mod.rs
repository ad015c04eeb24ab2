//! The WebAssembly kernels: 128-bit SIMD (`simd128`, 4 lanes of f32), chosen when the build
//! enables the feature (`.cargo/config.toml` does for gyre's wasm targets); WebAssembly has no
//! run-time feature detection, so a module either has them or does not load where the host
//! lacks SIMD (every current browser and Node has it).
//!
//! - `activations`: `exp`, sigmoid, tanh over slices, and the fused LSTM and GRU gate rows;
//! - `products`: the `c += a·b` tiles and their driver.
//!
//! `simd128` has no fused multiply-add (relaxed SIMD's may or may not fuse, host by host), so
//! every operation here is a plain IEEE one: the products give the portable code's bits
//! (`kernels/portable.rs`, multiply then add, in the same order), and the nonlinearities those
//! of one unfused model of the `exp` the other levels share (`exp_unfused` in the tests).
#![allow(unsafe_code)] // SIMD intrinsics; every unsafe block states what makes it sound

mod activations;
mod products;

pub(super) use activations::{gru_simd128, lstm_simd128, sigmoid_simd128, tanh_simd128};
pub(super) use products::gemm_acc_simd128;
