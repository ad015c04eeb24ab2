//! The numeric floor: the float bound, the portable bodies, the per-CPU SIMD kernels and their
//! dispatch, the matrix products, the thread pool and checked views of flat buffers.

pub mod linalg;
pub mod packed;
pub mod real;
pub mod simd;
pub mod tensor;
pub mod threads;

pub use packed::*;
