//! Gradient clipping by global norm and by value, as `torch.nn.utils` does.

use crate::error::{CoreError, Result};
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

/// The guard before a training update: `loss` must be finite; then `grads` are clipped to the
/// global norm `clip_norm` (none: not scaled, the norm still computed) and to `clip_value`
/// (when given), and their norm must be finite. An error is [`CoreError::NonFinite`] naming
/// the 1-based `epoch` and `batch` (`"loss"` or `"gradient norm"`); the caller then skips the
/// update, so the weights stay as they were before that batch.
///
/// # Errors
/// [`CoreError::NonFinite`].
pub fn check_and_clip<F: Real>(
    grads: &mut [&mut [F]],
    loss: f64,
    clip_norm: Option<f64>,
    clip_value: Option<f64>,
    epoch: usize,
    batch: usize,
) -> Result<()> {
    let non_finite =
        |what: &str, v: f64| CoreError::NonFinite { what: what.into(), value: v.to_string(), epoch, batch };
    if !loss.is_finite() {
        return Err(non_finite("loss", loss));
    }
    let max = clip_norm.map_or(F::infinity(), F::lit);
    let norm = clip_grad_norm(grads, max).to_f64().unwrap_or(f64::NAN);
    if !norm.is_finite() {
        return Err(non_finite("gradient norm", norm));
    }
    if let Some(v) = clip_value {
        clip_grad_value(grads, F::lit(v));
    }
    Ok(())
}
