//! The floating-point types the kernels run on.

use ndarray::{LinalgScalar, ScalarOperand};
use std::fmt::{Debug, Display};
use std::iter::Sum;

/// A floating-point element type: `f32` (the working type) or `f64` (gradient checks).
pub trait Real:
    num_traits::Float + LinalgScalar + ScalarOperand + Send + Sync + Debug + Display + Sum + Default + 'static
{
    /// Converts a small constant (exactly representable in both types).
    fn lit(v: f64) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn lit(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    #[inline(always)]
    fn lit(v: f64) -> Self {
        v
    }
}

/// Logistic sigmoid, `1 / (1 + e^-x)`, written to stay finite for large `|x|`.
#[inline(always)]
pub fn sigmoid<F: Real>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}
