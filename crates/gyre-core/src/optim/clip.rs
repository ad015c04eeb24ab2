//! Gradient clipping by global norm and by value, as `torch.nn.utils` does.

use crate::kernels::real::Real;

/// Total L2 norm of all gradients; if above `max_norm`, scales them all in place by
/// `max_norm / (norm + 1e-6)`, as `torch.nn.utils.clip_grad_norm_` does.
///
/// `grads` is any list of flat gradients. Returns the total norm before clipping, computed
/// as `√Σ g²` in a fixed order (the lanes of [`crate::kernels::Kernels::square_sums`] over the gradients
/// in turn, then a fixed tree), accumulated in `f64` (so identical inputs always give the
/// identical norm, on every SIMD level, and `f32` squares do not overflow).
///
/// A non-finite total (a NaN or infinite gradient, or an overflowing sum) is returned as is
/// and the gradients are left untouched: check the result with `is_finite` and skip the step
/// (PyTorch would instead scale every gradient by NaN or 0). `max_norm` must be `≥ 0`; with
/// a NaN or negative `max_norm` nothing is scaled.
pub fn clip_grad_norm<F: Real>(grads: &mut [&mut [F]], max_norm: F) -> F {
    // Independent f64 lanes (a fixed order, so the same bits every run), summed at the end by
    // a fixed tree: one long dependent chain of additions was the slowest part of a small
    // model's update.
    let mut lanes = [0.0f64; crate::kernels::portable::SQUARE_LANES];
    for g in grads.iter() {
        F::square_sums(g, &mut lanes);
    }
    let mut width = lanes.len();
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    let sum = lanes[0];
    let norm = sum.sqrt();
    if !norm.is_finite() {
        return F::lit(norm);
    }
    let max_norm_f64 = max_norm.to_f64().unwrap_or(f64::NAN);
    let scale = max_norm_f64 / (norm + 1e-6);
    if (0.0..1.0).contains(&scale) {
        let scale = F::lit(scale);
        for g in grads.iter_mut() {
            g.iter_mut().for_each(|x| *x = *x * scale);
        }
    }
    F::lit(norm)
}

/// Clamps every gradient element to `[-clip, clip]` in place, as
/// `torch.nn.utils.clip_grad_value_` does. `clip` must be `≥ 0`; NaN elements stay NaN.
pub fn clip_grad_value<F: Real>(grads: &mut [&mut [F]], clip: F) {
    for g in grads.iter_mut() {
        for x in g.iter_mut() {
            if *x > clip {
                *x = clip;
            } else if *x < -clip {
                *x = -clip;
            }
        }
    }
}
