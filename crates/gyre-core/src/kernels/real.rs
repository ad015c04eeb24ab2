//! The float bound: the element types the core runs on (`f32`, the working type; `f64` for
//! gradient checks), and the few scalar functions every layer needs.

use ndarray::{LinalgScalar, ScalarOperand};
use std::fmt::{Debug, Display};
use std::iter::Sum;

use super::table::Kernels;

/// A floating-point element type: `f32` (the working type) or `f64` (gradient checks). Its
/// kernels come from [`Kernels`], the per-type table.
pub trait Real:
    num_traits::Float + LinalgScalar + ScalarOperand + Send + Sync + Debug + Display + Sum + Default + 'static + Kernels
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
pub(crate) fn sigmoid<F: Real>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}
