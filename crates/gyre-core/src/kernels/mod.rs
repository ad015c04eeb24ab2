//! The numeric floor everything else runs on.
//!
//! - `real`: the float bound [`Real`] (`f32`, `f64`) and scalar functions;
//! - `table`: the per-type kernel table [`Kernels`] (f32: the SIMD dispatch; f64: portable);
//! - `portable`: the portable bodies, the test oracle of the SIMD builds;
//! - `dispatch`: the f32 kernels chosen for the CPU at run time (`GYRE_SIMD` caps the level);
//! - `x86`: the AVX-512 and AVX2 + FMA kernels; `aarch64`: the NEON kernels; `wasm32`: the
//!   WebAssembly `simd128` kernels;
//! - `gate_rows`: the fused LSTM and GRU gate rows, written once for every SIMD module;
//! - `packed`: the per-step products of the time loop, over packed operands, allocation-free;
//! - `linalg`: whole-matrix products and reductions, split over the pool;
//! - [`threads`]: the thread pool; [`tensor`]: checked views of flat buffers; [`scan`]: the
//!   search of an input for NaN and infinite values.
//!
//! Public beyond the float bound: the thread pool, the views and the scan (the binding uses them), and
//! the f32 product with its packed form ([`gemm_acc`], [`pack`], [`gemm_acc_packed`],
//! [`level`]) that `examples/gemm_compare.rs` measures against other products, and
//! [`AdamStep`], which [`Kernels::adam_update`] takes.

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon"),
    all(target_family = "wasm", target_feature = "simd128")
))]
#[macro_use]
mod gate_rows;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod aarch64;
pub(crate) mod dispatch;
pub(crate) mod linalg;
pub(crate) mod packed;
pub(crate) mod portable;
pub(crate) mod real;
pub mod scan;
pub(crate) mod table;
pub mod tensor;
#[cfg(test)]
mod tests;
pub mod threads;
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
mod wasm32;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use dispatch::{gemm_acc, level, Level};
pub use packed::{gemm_acc_packed, pack, Packed};
pub use portable::AdamStep;
pub use real::Real;
pub use table::Kernels;
