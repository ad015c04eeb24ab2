//! Losses over a network's outputs, each returning its value and its gradient with respect to
//! its input (logits or predictions).
//!
//! Every loss is a mean over what counts, so a batch of padded sequences is handled by marking
//! the padding: [`IGNORE`] targets for [`softmax_cross_entropy`], a `row_mask` for
//! [`mean_squared_error`] and [`binary_cross_entropy_with_logits`]. Padding is never read, so
//! it may hold anything (even NaN). Each loss returns a [`LossValue`] with the size of its
//! denominator, so the losses of several batches combine into the mean over all of them.
//!
//! Non-finite inputs are not errors here (the training loop checks the loss): a NaN in a
//! counted input makes the loss and the gradient of its row (or element) NaN, and an infinite
//! logit may do the same. Arguments of the wrong shape or outside their domain (class ids,
//! binary targets in `[0, 1]`, weights) are errors, reported before `grad` is written.

use crate::error::{CoreError, Result};
use crate::kernels::real::{sigmoid, Real};

/// The target class id of a row that contributes nothing to [`softmax_cross_entropy`]: neither
/// loss nor gradient (the padding steps of per-step losses over padded sequences).
pub const IGNORE: u32 = u32::MAX;

/// The value of a loss and the size of the mean it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossValue<F> {
    /// The loss: a (weighted) mean over the rows or elements that count; `0` if none count.
    pub loss: F,
    /// How many rows (for [`softmax_cross_entropy`]: non-ignored rows of nonzero weight) or
    /// elements (for the element-wise losses: the elements of the unmasked rows) contributed.
    pub count: usize,
    /// The denominator of the mean: the total weight of the counted rows for a weighted
    /// [`softmax_cross_entropy`], `count` otherwise. The losses of several batches combine as
    /// `Σ loss_b · weight_b / Σ weight_b`.
    pub weight: F,
}

impl<F: Real> LossValue<F> {
    fn none() -> Self {
        LossValue { loss: F::zero(), count: 0, weight: F::zero() }
    }
}

/// Softmax cross-entropy of `logits: [rows, classes]` (row-major) against class ids
/// `targets: [rows]`.
///
/// The loss is the mean over the non-ignored rows of `-log softmax(logits[r])[targets[r]]`,
/// computed stably (the row maximum is subtracted before the log-sum-exp). `grad: [rows,
/// classes]` receives its gradient with respect to `logits`: `(softmax(logits[r]) -
/// onehot(targets[r])) / count` for counted rows, `0` for rows whose target is [`IGNORE`].
///
/// With `weights: [rows]` (a 0/1 mask or any finite non-negative weights) the loss is
/// `Σ w_r·l_r / Σ w_r` over the non-ignored rows, and row `r` of `grad` is scaled by
/// `w_r / Σ w_r`. A row of weight `0` is skipped like an ignored one (its logits are not read).
///
/// If no row counts (every row ignored or of weight `0`, or `rows == 0`), the loss is `0`, `grad`
/// is all `0` and `count` is `0`.
///
/// # Errors
/// [`CoreError::InvalidArgument`] if `classes` is `0`, a target other than [`IGNORE`] is not
/// below `classes` (naming the row), or the weight of a non-ignored row is negative or not
/// finite; [`CoreError::ShapeMismatch`] if `logits`, `targets`, `weights` or `grad` has the
/// wrong length. Nothing is written to `grad` on error.
pub fn softmax_cross_entropy<F: Real>(
    logits: &[F],
    rows: usize,
    classes: usize,
    targets: &[u32],
    weights: Option<&[F]>,
    grad: &mut [F],
) -> Result<LossValue<F>> {
    if classes == 0 {
        return Err(CoreError::invalid("classes", "a positive integer", 0));
    }
    let n = rows.checked_mul(classes).ok_or_else(|| {
        CoreError::invalid("rows × classes", "representable in memory", format!("{rows} × {classes}"))
    })?;
    let matrix = || format!("[{rows}, {classes}] ({n} values)");
    if logits.len() != n {
        return Err(CoreError::shape("logits", matrix(), format!("{} values", logits.len())));
    }
    if targets.len() != rows {
        return Err(CoreError::shape("targets", format!("[{rows}]"), format!("[{}]", targets.len())));
    }
    if let Some(w) = weights {
        if w.len() != rows {
            return Err(CoreError::shape("weights", format!("[{rows}]"), format!("[{}]", w.len())));
        }
    }
    if grad.len() != n {
        return Err(CoreError::shape("grad", matrix(), format!("{} values", grad.len())));
    }
    let weight_of = |r: usize| weights.and_then(|w| w.get(r).copied()).unwrap_or_else(F::one);

    // Validate everything and find the denominator before touching `grad`.
    let (mut count, mut total) = (0usize, F::zero());
    for (r, &t) in targets.iter().enumerate() {
        if t == IGNORE {
            continue;
        }
        if t as usize >= classes {
            return Err(CoreError::invalid(
                "target",
                format!("a class index below {classes}"),
                format!("{t} at row {r}"),
            ));
        }
        let w = weight_of(r);
        if !(w.is_finite() && w >= F::zero()) {
            return Err(CoreError::invalid("weights", "finite and non-negative", format!("{w} at row {r}")));
        }
        if w > F::zero() {
            count += 1;
            total = total + w;
        }
    }

    grad.fill(F::zero());
    if count == 0 {
        return Ok(LossValue::none());
    }
    let mut loss = F::zero();
    let rows_iter = logits.chunks_exact(classes).zip(grad.chunks_exact_mut(classes)).zip(targets);
    for (r, ((x, g), &t)) in rows_iter.enumerate() {
        let w = weight_of(r);
        if t == IGNORE || w == F::zero() {
            continue;
        }
        let t = t as usize;
        g.copy_from_slice(x);
        let (max, sum) = exp_shifted(g);
        // -log softmax(x)[t] = log Σ_j e^(x_j - max) - (x_t - max).
        let target_logit = x.get(t).copied().unwrap_or_else(F::nan);
        loss = loss + w * (sum.ln() - (target_logit - max));
        let scale = w / total;
        let per_exp = scale / sum;
        for v in g.iter_mut() {
            *v = *v * per_exp;
        }
        if let Some(v) = g.get_mut(t) {
            *v = *v - scale;
        }
    }
    Ok(LossValue { loss: loss / total, count, weight: total })
}

/// Mean squared error of `pred` against `target` (both of the same length, any shape).
///
/// The loss is the mean over the counted elements of `(pred - target)²`, and `grad` (the length
/// of `pred`) receives `2·(pred - target) / count` for counted elements and `0` for the others.
/// `row_mask: Some((mask, width))` views both arrays as `[mask.len(), width]` and counts only the
/// rows whose `mask` entry is `true` (padding rows are not read); `None` counts every element.
/// If no element counts, the loss is `0`, `grad` is all `0` and `count` is `0`.
///
/// # Errors
/// [`CoreError::ShapeMismatch`] naming `target`, `grad` or `pred` if a length does not match
/// (`pred` must hold `mask.len() · width` values); [`CoreError::InvalidArgument`] if the mask
/// width is `0`. Nothing is written to `grad` on error.
pub fn mean_squared_error<F: Real>(
    pred: &[F],
    target: &[F],
    row_mask: Option<(&[bool], usize)>,
    grad: &mut [F],
) -> Result<LossValue<F>> {
    mean_squared_error_weighted(pred, target, row_mask, None, grad)
}

/// [`mean_squared_error`] with `weights` (one finite non-negative weight per element, the length
/// of `pred`): the loss is `Σ w·(pred - target)² / Σ w` over the counted elements and the
/// gradient `2·w·(pred - target) / Σ w`; an element of weight 0 counts for nothing (its values
/// are still checked). `None` weighs every element 1 (the same bits as [`mean_squared_error`]).
///
/// # Errors
/// As [`mean_squared_error`], and [`CoreError::InvalidArgument`] naming the index of a negative
/// or non-finite weight; [`CoreError::ShapeMismatch`] naming `weights` if its length differs.
pub fn mean_squared_error_weighted<F: Real>(
    pred: &[F],
    target: &[F],
    row_mask: Option<(&[bool], usize)>,
    weights: Option<&[F]>,
    grad: &mut [F],
) -> Result<LossValue<F>> {
    let two = F::lit(2.0);
    elementwise(
        "pred",
        pred,
        target,
        row_mask,
        weights,
        grad,
        |_, _| Ok(()),
        |x, y| {
            let d = x - y;
            (d * d, two * d)
        },
    )
}

/// Binary cross-entropy of `logits` (pre-sigmoid) against probabilities `target` in `[0, 1]`
/// (both of the same length, any shape).
///
/// The loss is the mean over the counted elements of `max(x, 0) - x·y + log(1 + e^-|x|)` (the
/// stable form of `-y·log σ(x) - (1 - y)·log(1 - σ(x))` PyTorch uses), and `grad` (the length of
/// `logits`) receives `(σ(x) - y) / count` for counted elements and `0` for the others.
/// `row_mask` is as for [`mean_squared_error`]: `Some((mask, width))` counts only the rows of
/// `width` elements whose `mask` entry is `true`. If no element counts, the loss is `0`, `grad`
/// is all `0` and `count` is `0`.
///
/// # Errors
/// [`CoreError::InvalidArgument`] naming the index of a counted target outside `[0, 1]` (NaN
/// included) or if the mask width is `0`; [`CoreError::ShapeMismatch`] naming `target`, `grad`
/// or `logits` if a length does not match. Nothing is written to `grad` on error.
pub fn binary_cross_entropy_with_logits<F: Real>(
    logits: &[F],
    target: &[F],
    row_mask: Option<(&[bool], usize)>,
    grad: &mut [F],
) -> Result<LossValue<F>> {
    binary_cross_entropy_with_logits_weighted(logits, target, row_mask, None, grad)
}

/// [`binary_cross_entropy_with_logits`] with `weights` (one finite non-negative weight per
/// element, as PyTorch's `weight` argument): the loss is `Σ w·l / Σ w` over the counted elements
/// and the gradient `w·(σ(x) - y) / Σ w`. `None` weighs every element 1.
///
/// # Errors
/// As [`binary_cross_entropy_with_logits`], and as [`mean_squared_error_weighted`] for `weights`.
pub fn binary_cross_entropy_with_logits_weighted<F: Real>(
    logits: &[F],
    target: &[F],
    row_mask: Option<(&[bool], usize)>,
    weights: Option<&[F]>,
    grad: &mut [F],
) -> Result<LossValue<F>> {
    let check = |i: usize, y: F| {
        if y >= F::zero() && y <= F::one() {
            Ok(())
        } else {
            Err(CoreError::invalid("target", "in [0, 1]", format!("{y} at index {i}")))
        }
    };
    elementwise("logits", logits, target, row_mask, weights, grad, check, |x, y| {
        let loss = x.max(F::zero()) - x * y + (-x.abs()).exp().ln_1p();
        (loss, sigmoid(x) - y)
    })
}

/// Replaces each row of `x: [rows, classes]` (row-major) by its softmax, computed stably (the
/// row maximum is subtracted first), for turning logits into predictions.
///
/// `x.len()` should be a multiple of `classes`; a shorter last row is normalised on its own, and
/// `classes == 0` leaves `x` unchanged. A NaN in a row makes the whole row NaN.
pub fn softmax_rows<F: Real>(x: &mut [F], classes: usize) {
    if classes == 0 {
        return;
    }
    for row in x.chunks_mut(classes) {
        let (_, sum) = exp_shifted(row);
        let inv = F::one() / sum;
        for v in row.iter_mut() {
            *v = *v * inv;
        }
    }
}

/// Replaces `row` by `e^(row - max)` and returns `(max, Σ e^(row - max))`.
fn exp_shifted<F: Real>(row: &mut [F]) -> (F, F) {
    let max = row.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
    let mut sum = F::zero();
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum = sum + *v;
    }
    (max, sum)
}

/// The shared driver of the element-wise losses: checks the shapes, validates the counted
/// targets with `check(index, y)`, then writes `d/dx / count` into `grad` and returns the mean
/// of the per-element losses `f(x, y) = (loss, d loss / dx)`.
#[allow(clippy::too_many_arguments)]
fn elementwise<F: Real>(
    what: &str,
    input: &[F],
    target: &[F],
    row_mask: Option<(&[bool], usize)>,
    weights: Option<&[F]>,
    grad: &mut [F],
    check: impl Fn(usize, F) -> Result<()>,
    f: impl Fn(F, F) -> (F, F),
) -> Result<LossValue<F>> {
    let len = input.len();
    if target.len() != len {
        return Err(CoreError::shape("target", format!("[{len}] (like {what})"), format!("[{}]", target.len())));
    }
    if grad.len() != len {
        return Err(CoreError::shape("grad", format!("[{len}] (like {what})"), format!("[{}]", grad.len())));
    }
    if let Some(w) = weights {
        if w.len() != len {
            return Err(CoreError::shape("weights", format!("[{len}] (like {what})"), format!("[{}]", w.len())));
        }
    }
    const ALL: &[bool] = &[true];
    let (mask, width) = match row_mask {
        Some((mask, width)) => {
            if width == 0 {
                return Err(CoreError::invalid("row_mask width", "a positive integer", 0));
            }
            let rows = mask.len();
            if rows.checked_mul(width) != Some(len) {
                return Err(CoreError::shape(
                    what,
                    format!("[{rows}, {width}] (row_mask has {rows} rows of width {width})"),
                    format!("{len} values"),
                ));
            }
            (mask, width)
        }
        // One row of everything (no rows at all if `len == 0`).
        None => (ALL, len.max(1)),
    };

    let mut count = 0usize;
    let mut total = F::zero();
    for (r, (ys, &on)) in target.chunks(width).zip(mask).enumerate() {
        if on {
            for (j, &y) in ys.iter().enumerate() {
                let i = r * width + j;
                check(i, y)?;
                if let Some(w) = weights.and_then(|w| w.get(i).copied()) {
                    if !(w.is_finite() && w >= F::zero()) {
                        return Err(CoreError::invalid(
                            "weights",
                            "finite and non-negative",
                            format!("{w} at index {i}"),
                        ));
                    }
                    total = total + w;
                    count += usize::from(w > F::zero());
                } else {
                    count += 1;
                }
            }
        }
    }

    grad.fill(F::zero());
    if count == 0 || (weights.is_some() && total == F::zero()) {
        return Ok(LossValue::none());
    }
    let weight = if weights.is_some() { total } else { F::from(count).unwrap_or_else(F::nan) };
    let inv = F::one() / weight;
    let mut loss = F::zero();
    let rows_iter = input.chunks(width).zip(target.chunks(width)).zip(grad.chunks_mut(width)).zip(mask);
    for (r, (((xs, ys), gs), &on)) in rows_iter.enumerate() {
        if !on {
            continue;
        }
        for (j, ((&x, &y), g)) in xs.iter().zip(ys).zip(gs.iter_mut()).enumerate() {
            match weights.and_then(|w| w.get(r * width + j).copied()) {
                // Weight 0: nothing of the element is read into the sums.
                Some(w) if w == F::zero() => {}
                Some(w) => {
                    let (l, d) = f(x, y);
                    loss = loss + w * l;
                    *g = w * d * inv;
                }
                None => {
                    let (l, d) = f(x, y);
                    loss = loss + l;
                    *g = d * inv;
                }
            }
        }
    }
    Ok(LossValue { loss: loss * inv, count, weight })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-6;

    fn close(a: f64, b: f64, abs: f64, rel: f64) -> bool {
        (a - b).abs() <= abs + rel * a.abs().max(b.abs())
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(close(g, w, tol, tol), "element {i}: got {g}, want {w}");
        }
    }

    /// Compares `grad` with central finite differences of `loss` around `x`.
    fn check_grad(loss: impl Fn(&[f64]) -> f64, x: &[f64], grad: &[f64]) {
        assert_eq!(x.len(), grad.len());
        for i in 0..x.len() {
            let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
            plus[i] += EPS;
            minus[i] -= EPS;
            let fd = (loss(&plus) - loss(&minus)) / (2.0 * EPS);
            assert!(close(grad[i], fd, 1e-8, 1e-6), "element {i}: analytic {} vs finite difference {fd}", grad[i]);
        }
    }

    fn fill(n: usize, seed: usize) -> Vec<f64> {
        (0..n).map(|i| (((i * 37 + seed * 11) % 23) as f64 - 11.0) / 7.0).collect()
    }

    fn ce(logits: &[f64], rows: usize, classes: usize, targets: &[u32], weights: Option<&[f64]>) -> (f64, Vec<f64>) {
        let mut grad = vec![f64::NAN; logits.len()];
        let v = softmax_cross_entropy(logits, rows, classes, targets, weights, &mut grad).unwrap();
        (v.loss, grad)
    }

    // ---- softmax cross-entropy ----

    #[test]
    fn cross_entropy_matches_hand_computed_values() {
        let e = std::f64::consts::E;
        let logits = [1.0, 2.0, 3.0, 0.5, -0.5, 0.0];
        let mut grad = [0.0; 6];
        let v = softmax_cross_entropy(&logits, 2, 3, &[2, 0], None, &mut grad).unwrap();
        let s0 = e + e * e + e * e * e;
        let s1 = 0.5f64.exp() + (-0.5f64).exp() + 1.0;
        let l0 = s0.ln() - 3.0;
        let l1 = s1.ln() - 0.5;
        assert!(close(v.loss, (l0 + l1) / 2.0, 1e-14, 1e-14), "{} vs {}", v.loss, (l0 + l1) / 2.0);
        assert_eq!(v.count, 2);
        assert_eq!(v.weight, 2.0);
        let want = [
            e / s0 / 2.0,
            e * e / s0 / 2.0,
            (e * e * e / s0 - 1.0) / 2.0,
            (0.5f64.exp() / s1 - 1.0) / 2.0,
            (-0.5f64).exp() / s1 / 2.0,
            1.0 / s1 / 2.0,
        ];
        assert_close(&grad, &want, 1e-14);
        // Uniform logits: the loss is log(classes).
        let v = softmax_cross_entropy(&[0.0; 4], 1, 4, &[1], None, &mut [0.0; 4]).unwrap();
        assert!(close(v.loss, 4f64.ln(), 1e-15, 1e-15));
    }

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        let (rows, classes) = (3, 5);
        let logits = fill(rows * classes, 1);
        let targets = [4, IGNORE, 0];
        let (_, grad) = ce(&logits, rows, classes, &targets, None);
        check_grad(|x| ce(x, rows, classes, &targets, None).0, &logits, &grad);
    }

    #[test]
    fn ignored_rows_contribute_neither_loss_nor_gradient() {
        let classes = 3;
        let logits = [0.3, -1.2, 2.0, 7.0, 7.5, -3.0, f64::NAN, 1.0, 2.0, -0.4, 0.1, 0.9];
        let targets = [1, IGNORE, IGNORE, 2];
        let mut grad = [f64::NAN; 12];
        let v = softmax_cross_entropy(&logits, 4, classes, &targets, None, &mut grad).unwrap();
        assert_eq!(v.count, 2);
        // Same as the two counted rows alone.
        let kept = [0.3, -1.2, 2.0, -0.4, 0.1, 0.9];
        let (loss, kept_grad) = ce(&kept, 2, classes, &[1, 2], None);
        assert_eq!(v.loss, loss);
        assert_eq!(&grad[0..3], &kept_grad[0..3]);
        assert_eq!(&grad[9..12], &kept_grad[3..6]);
        // Ignored rows (even one holding NaN) get exactly zero gradient.
        assert!(grad[3..9].iter().all(|&g| g == 0.0));
    }

    #[test]
    fn all_ignored_rows_give_zero_loss_gradient_and_count() {
        let mut grad = [f64::NAN; 6];
        let v =
            softmax_cross_entropy(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3, &[IGNORE, IGNORE], None, &mut grad).unwrap();
        assert_eq!(v, LossValue { loss: 0.0, count: 0, weight: 0.0 });
        assert!(grad.iter().all(|&g| g == 0.0));
        // No rows at all.
        let v = softmax_cross_entropy::<f32>(&[], 0, 3, &[], None, &mut []).unwrap();
        assert_eq!(v, LossValue { loss: 0.0, count: 0, weight: 0.0 });
    }

    #[test]
    fn cross_entropy_is_stable_for_huge_logits() {
        let logits = [1000.0, -1000.0, 0.0, -1000.0, 1000.0, 999.0];
        let mut grad = [0.0f64; 6];
        let v = softmax_cross_entropy(&logits, 2, 3, &[1, 2], None, &mut grad).unwrap();
        // Row 0: loss ≈ 2000; row 1: loss ≈ 1 + log(1 + e^-1).
        let want = (2000.0 + 1.0 + (-1.0f64).exp().ln_1p()) / 2.0;
        assert!(close(v.loss, want, 1e-9, 1e-12), "{} vs {want}", v.loss);
        assert!(grad.iter().all(|g| g.is_finite()));
        let mut grad32 = [0.0f32; 6];
        let logits32: Vec<f32> = logits.iter().map(|&x| x as f32).collect();
        let v32 = softmax_cross_entropy(&logits32, 2, 3, &[1, 2], None, &mut grad32).unwrap();
        assert!(v32.loss.is_finite() && grad32.iter().all(|g| g.is_finite()));
        assert!(close(v32.loss as f64, want, 1e-3, 1e-5), "{} vs {want}", v32.loss);
        // Confidently right: loss and gradient vanish without underflow trouble.
        let v = softmax_cross_entropy(&[1000.0, -1000.0], 1, 2, &[0], None, &mut grad[..2]).unwrap();
        assert_eq!(v.loss, 0.0);
        assert!(grad[..2].iter().all(|&g| g == 0.0));
    }

    #[test]
    fn cross_entropy_in_f32_matches_f64() {
        let (rows, classes) = (4, 6);
        let logits = fill(rows * classes, 3);
        let targets = [5, 0, IGNORE, 3];
        let (loss, grad) = ce(&logits, rows, classes, &targets, None);
        let logits32: Vec<f32> = logits.iter().map(|&x| x as f32).collect();
        let mut grad32 = vec![0.0f32; logits.len()];
        let v = softmax_cross_entropy(&logits32, rows, classes, &targets, None, &mut grad32).unwrap();
        assert!(close(v.loss as f64, loss, 1e-6, 1e-6));
        let grad32: Vec<f64> = grad32.iter().map(|&g| g as f64).collect();
        assert_close(&grad32, &grad, 1e-6);
    }

    #[test]
    fn out_of_range_target_is_an_error_naming_the_row() {
        let mut grad = [7.0; 6];
        let err = softmax_cross_entropy(&[0.0f64; 6], 2, 3, &[1, 3], None, &mut grad).unwrap_err();
        assert_eq!(
            err,
            CoreError::InvalidArgument {
                what: "target".into(),
                expected: "a class index below 3".into(),
                got: "3 at row 1".into(),
            }
        );
        assert_eq!(err.to_string(), "target must be a class index below 3, got 3 at row 1");
        assert_eq!(grad, [7.0; 6], "grad is not written on error");
    }

    #[test]
    fn cross_entropy_rejects_bad_shapes() {
        let logits = [0.0f64; 6];
        let mut grad = [0.0; 6];
        let what = |e: CoreError| match e {
            CoreError::ShapeMismatch { what, .. }
            | CoreError::InvalidArgument { what, .. }
            | CoreError::Unsuited { what, .. }
            | CoreError::UnknownOption { what, .. } => what,
            CoreError::Missing { what, .. } | CoreError::NonFinite { what, .. } | CoreError::Format { what, .. } => {
                what
            }
        };
        let r = softmax_cross_entropy(&logits[..5], 2, 3, &[0, 0], None, &mut grad);
        assert_eq!(what(r.unwrap_err()), "logits");
        let r = softmax_cross_entropy(&logits, 2, 3, &[0], None, &mut grad);
        assert_eq!(what(r.unwrap_err()), "targets");
        let r = softmax_cross_entropy(&logits, 2, 3, &[0, 0], Some(&[1.0]), &mut grad);
        assert_eq!(what(r.unwrap_err()), "weights");
        let r = softmax_cross_entropy(&logits, 2, 3, &[0, 0], None, &mut grad[..4]);
        assert_eq!(what(r.unwrap_err()), "grad");
        let r = softmax_cross_entropy(&logits, 6, 0, &[0; 6], None, &mut grad);
        assert_eq!(what(r.unwrap_err()), "classes");
        let err = softmax_cross_entropy(&logits, 2, 3, &[0, 0], None, &mut grad[..4]).unwrap_err();
        assert_eq!(err.to_string(), "grad must have shape [2, 3] (6 values), got 4 values");
    }

    #[test]
    fn weighted_cross_entropy_is_the_weighted_mean() {
        let (rows, classes) = (3, 4);
        let logits = fill(rows * classes, 5);
        let targets = [2, 1, 3];
        let weights = [0.5, 2.0, 1.5];
        let mut grad = vec![0.0; logits.len()];
        let v = softmax_cross_entropy(&logits, rows, classes, &targets, Some(&weights), &mut grad).unwrap();
        // Per-row losses from single-row calls.
        let l: Vec<f64> = (0..rows)
            .map(|r| ce(&logits[r * classes..(r + 1) * classes], 1, classes, &targets[r..=r], None).0)
            .collect();
        let want = (0.5 * l[0] + 2.0 * l[1] + 1.5 * l[2]) / 4.0;
        assert!(close(v.loss, want, 1e-14, 1e-14), "{} vs {want}", v.loss);
        assert_eq!(v.count, 3);
        assert_eq!(v.weight, 4.0);
        check_grad(|x| ce(x, rows, classes, &targets, Some(&weights)).0, &logits, &grad);
    }

    #[test]
    fn zero_weight_rows_are_skipped_like_ignored_rows() {
        let (rows, classes) = (3, 3);
        let mut logits = fill(rows * classes, 2);
        logits[4] = f64::NAN; // in the row of weight 0: never read
        let mut grad = vec![f64::NAN; logits.len()];
        let v = softmax_cross_entropy(&logits, rows, classes, &[0, 1, 2], Some(&[1.0, 0.0, 1.0]), &mut grad).unwrap();
        let mut grad_ignored = vec![f64::NAN; logits.len()];
        let w = softmax_cross_entropy(&logits, rows, classes, &[0, IGNORE, 2], None, &mut grad_ignored).unwrap();
        assert_eq!(v, w);
        assert_eq!(grad, grad_ignored);
        // All weights zero: nothing counts.
        let v = softmax_cross_entropy(&logits, rows, classes, &[0, 1, 2], Some(&[0.0; 3]), &mut grad).unwrap();
        assert_eq!(v, LossValue { loss: 0.0, count: 0, weight: 0.0 });
        assert!(grad.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn negative_or_non_finite_weights_are_errors() {
        let mut grad = [0.0f64; 4];
        let err = softmax_cross_entropy(&[0.0; 4], 2, 2, &[0, 1], Some(&[1.0, -1.0]), &mut grad).unwrap_err();
        assert_eq!(err.to_string(), "weights must be finite and non-negative, got -1 at row 1");
        let err = softmax_cross_entropy(&[0.0; 4], 2, 2, &[0, 1], Some(&[f64::NAN, 1.0]), &mut grad).unwrap_err();
        assert_eq!(err.to_string(), "weights must be finite and non-negative, got NaN at row 0");
        // The weight of an ignored row is not read.
        assert!(softmax_cross_entropy(&[0.0; 4], 2, 2, &[0, IGNORE], Some(&[1.0, -1.0]), &mut grad).is_ok());
    }

    #[test]
    fn nan_logits_propagate_to_the_loss() {
        let mut grad = [0.0f64; 4];
        let v = softmax_cross_entropy(&[f64::NAN, 0.0, 1.0, 2.0], 2, 2, &[1, 0], None, &mut grad).unwrap();
        assert!(v.loss.is_nan());
        assert!(grad[..2].iter().all(|g| g.is_nan()));
        assert!(grad[2..].iter().all(|g| g.is_finite()));
    }

    // ---- mean squared error ----

    #[test]
    fn mse_matches_hand_computed_values() {
        let pred = [1.0, 2.0, -1.0, 0.5];
        let target = [0.0, 2.5, 1.0, 0.5];
        let mut grad = [0.0; 4];
        let v = mean_squared_error(&pred, &target, None, &mut grad).unwrap();
        // Differences 1, -0.5, -2, 0.
        assert_eq!(v, LossValue { loss: (1.0 + 0.25 + 4.0) / 4.0, count: 4, weight: 4.0 });
        assert_eq!(grad, [0.5, -0.25, -1.0, 0.0]);
    }

    #[test]
    fn mse_gradient_matches_finite_differences() {
        let pred = fill(12, 1);
        let target = fill(12, 4);
        let mask = [true, false, true];
        let mut grad = vec![0.0; 12];
        mean_squared_error(&pred, &target, Some((&mask, 4)), &mut grad).unwrap();
        let loss = |x: &[f64]| mean_squared_error(x, &target, Some((&mask, 4)), &mut [0.0; 12]).unwrap().loss;
        check_grad(loss, &pred, &grad);
        mean_squared_error(&pred, &target, None, &mut grad).unwrap();
        check_grad(|x| mean_squared_error(x, &target, None, &mut [0.0; 12]).unwrap().loss, &pred, &grad);
    }

    #[test]
    fn mse_mask_excludes_padding_rows() {
        // Rows of width 2; the middle row is padding holding NaN.
        let pred = [1.0, 2.0, f64::NAN, 9.0, 3.0, 0.0];
        let target = [0.0, 0.0, 5.0, f64::NAN, 1.0, 1.0];
        let mut grad = [f64::NAN; 6];
        let v = mean_squared_error(&pred, &target, Some((&[true, false, true], 2)), &mut grad).unwrap();
        // Differences 1, 2, 2, -1 over 4 counted elements.
        assert_eq!(v, LossValue { loss: 10.0 / 4.0, count: 4, weight: 4.0 });
        assert_eq!(grad, [0.5, 1.0, 0.0, 0.0, 1.0, -0.5]);
        // Everything masked.
        let v = mean_squared_error(&pred, &target, Some((&[false; 3], 2)), &mut grad).unwrap();
        assert_eq!(v, LossValue { loss: 0.0, count: 0, weight: 0.0 });
        assert!(grad.iter().all(|&g| g == 0.0));
        // Empty input.
        let v = mean_squared_error::<f32>(&[], &[], None, &mut []).unwrap();
        assert_eq!(v, LossValue { loss: 0.0, count: 0, weight: 0.0 });
    }

    #[test]
    fn mse_rejects_bad_shapes() {
        let mut grad = [0.0f64; 4];
        let err = mean_squared_error(&[0.0; 4], &[0.0; 3], None, &mut grad).unwrap_err();
        assert_eq!(err.to_string(), "target must have shape [4] (like pred), got [3]");
        let err = mean_squared_error(&[0.0; 4], &[0.0; 4], None, &mut grad[..2]).unwrap_err();
        assert!(matches!(err, CoreError::ShapeMismatch { ref what, .. } if what == "grad"), "{err}");
        let err = mean_squared_error(&[0.0; 4], &[0.0; 4], Some((&[true; 3], 2)), &mut grad).unwrap_err();
        assert_eq!(err.to_string(), "pred must have shape [3, 2] (row_mask has 3 rows of width 2), got 4 values");
        let err = mean_squared_error(&[0.0; 4], &[0.0; 4], Some((&[true; 3], 0)), &mut grad).unwrap_err();
        assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err}");
    }

    #[test]
    fn nan_predictions_propagate_to_the_mse() {
        let mut grad = [0.0f64; 2];
        let v = mean_squared_error(&[f64::NAN, 1.0], &[0.0, 0.0], None, &mut grad).unwrap();
        assert!(v.loss.is_nan() && grad[0].is_nan() && grad[1] == 1.0);
    }

    // ---- binary cross-entropy with logits ----

    #[test]
    fn bce_matches_hand_computed_values() {
        let logits = [0.0, 2.0, -1.0, 3.0];
        let target = [1.0, 0.0, 0.25, 1.0];
        let mut grad = [0.0; 4];
        let v = binary_cross_entropy_with_logits(&logits, &target, None, &mut grad).unwrap();
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let naive = |x: f64, y: f64| -(y * sig(x).ln() + (1.0 - y) * (1.0 - sig(x)).ln());
        let want: f64 = logits.iter().zip(&target).map(|(&x, &y)| naive(x, y)).sum::<f64>() / 4.0;
        assert!(close(v.loss, want, 1e-14, 1e-14), "{} vs {want}", v.loss);
        // The first element by hand: -log σ(0) = log 2.
        assert!(close(naive(0.0, 1.0), 2f64.ln(), 1e-15, 0.0));
        assert_eq!((v.count, v.weight), (4, 4.0));
        let want_grad: Vec<f64> = logits.iter().zip(&target).map(|(&x, &y)| (sig(x) - y) / 4.0).collect();
        assert_close(&grad, &want_grad, 1e-14);
        assert!(close(grad[0], -0.125, 1e-15, 0.0));
    }

    #[test]
    fn bce_gradient_matches_finite_differences() {
        let logits = fill(10, 2);
        let target: Vec<f64> = (0..10).map(|i| (i as f64) / 9.0).collect();
        let mask = [false, true, true, false, true];
        let mut grad = vec![0.0; 10];
        binary_cross_entropy_with_logits(&logits, &target, Some((&mask, 2)), &mut grad).unwrap();
        let loss =
            |x: &[f64]| binary_cross_entropy_with_logits(x, &target, Some((&mask, 2)), &mut [0.0; 10]).unwrap().loss;
        check_grad(loss, &logits, &grad);
        binary_cross_entropy_with_logits(&logits, &target, None, &mut grad).unwrap();
        let loss = |x: &[f64]| binary_cross_entropy_with_logits(x, &target, None, &mut [0.0; 10]).unwrap().loss;
        check_grad(loss, &logits, &grad);
    }

    #[test]
    fn bce_mask_excludes_padding_rows() {
        // Rows of width 2; the first row is padding holding an invalid target and a NaN logit.
        let logits = [f64::NAN, 1.0, 0.0, 0.0];
        let target = [7.0, 1.0, 1.0, 0.0];
        let mut grad = [f64::NAN; 4];
        let v = binary_cross_entropy_with_logits(&logits, &target, Some((&[false, true], 2)), &mut grad).unwrap();
        assert_eq!((v.count, v.weight), (2, 2.0));
        assert!(close(v.loss, 2f64.ln(), 1e-15, 1e-15));
        assert_eq!(grad, [0.0, 0.0, -0.25, 0.25]);
        let v = binary_cross_entropy_with_logits(&logits, &target, Some((&[false, false], 2)), &mut grad).unwrap();
        assert_eq!(v, LossValue { loss: 0.0, count: 0, weight: 0.0 });
        assert!(grad.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn bce_is_stable_for_huge_logits() {
        let logits = [1000.0, -1000.0, 1000.0, -1000.0];
        let target = [1.0, 0.0, 0.0, 1.0];
        let mut grad = [0.0f64; 4];
        let v = binary_cross_entropy_with_logits(&logits, &target, None, &mut grad).unwrap();
        assert!(close(v.loss, 2000.0 / 4.0, 1e-12, 1e-12), "{}", v.loss);
        assert_eq!(grad, [0.0, 0.0, 0.25, -0.25]);
        let logits32 = [1000.0f32, -1000.0, 1000.0, -1000.0];
        let target32 = [1.0f32, 0.0, 0.0, 1.0];
        let mut grad32 = [0.0f32; 4];
        let v = binary_cross_entropy_with_logits(&logits32, &target32, None, &mut grad32).unwrap();
        assert!(close(v.loss as f64, 500.0, 1e-4, 1e-6), "{}", v.loss);
        assert_eq!(grad32, [0.0, 0.0, 0.25, -0.25]);
    }

    #[test]
    fn bce_targets_outside_zero_one_are_errors_naming_the_index() {
        let mut grad = [5.0f64; 4];
        let err = binary_cross_entropy_with_logits(&[0.0; 4], &[0.0, 1.0, 1.5, 0.0], None, &mut grad).unwrap_err();
        assert_eq!(
            err,
            CoreError::InvalidArgument {
                what: "target".into(),
                expected: "in [0, 1]".into(),
                got: "1.5 at index 2".into()
            }
        );
        let err =
            binary_cross_entropy_with_logits(&[0.0; 4], &[0.0, 0.0, 0.0, -0.1], Some((&[true, true], 2)), &mut grad)
                .unwrap_err();
        assert_eq!(err.to_string(), "target must be in [0, 1], got -0.1 at index 3");
        let err = binary_cross_entropy_with_logits(&[0.0; 4], &[f64::NAN, 0.0, 0.0, 0.0], None, &mut grad).unwrap_err();
        assert_eq!(err.to_string(), "target must be in [0, 1], got NaN at index 0");
        assert_eq!(grad, [5.0; 4], "grad is not written on error");
        let err = binary_cross_entropy_with_logits(&[0.0; 4], &[0.0; 2], None, &mut grad).unwrap_err();
        assert_eq!(err.to_string(), "target must have shape [4] (like logits), got [2]");
    }

    // ---- softmax ----

    #[test]
    fn softmax_rows_sum_to_one_and_match_hand_values() {
        let e = std::f64::consts::E;
        let mut x = [0.0, 1.0, 2.0, 5.0, 5.0, 5.0];
        softmax_rows(&mut x, 3);
        let s = 1.0 + e + e * e;
        assert_close(&x, &[1.0 / s, e / s, e * e / s, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0], 1e-15);
        let mut y = fill(20, 6);
        y[0] = 1000.0;
        y[7] = -1000.0;
        y[12] = 1000.0;
        softmax_rows(&mut y, 5);
        for row in y.chunks(5) {
            assert!(row.iter().all(|v| v.is_finite() && *v >= 0.0));
            assert!(close(row.iter().sum::<f64>(), 1.0, 1e-15, 0.0));
        }
        assert_eq!(y[0], 1.0);
        let mut z = [1000.0f32, -1000.0, 999.0, 0.0];
        softmax_rows(&mut z, 4);
        assert!(z.iter().all(|v| v.is_finite()));
        assert!((z.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn cross_entropy_gradient_is_softmax_minus_onehot() {
        let (rows, classes) = (2, 4);
        let logits = fill(rows * classes, 7);
        let (_, grad) = ce(&logits, rows, classes, &[3, 1], None);
        let mut p = logits.clone();
        softmax_rows(&mut p, classes);
        p[3] -= 1.0;
        p[4 + 1] -= 1.0;
        let want: Vec<f64> = p.iter().map(|v| v / 2.0).collect();
        assert_close(&grad, &want, 1e-15);
    }

    #[test]
    fn weighted_elementwise_losses_are_weighted_means_with_their_gradients() {
        let (x, y) = (fill(12, 1), fill(12, 2).iter().map(|v| (v / 4.0 + 0.5).clamp(0.0, 1.0)).collect::<Vec<_>>());
        let w: Vec<f64> = (0..12).map(|i| [0.0, 0.5, 2.0, 1.0][i % 4]).collect();
        let total: f64 = w.iter().sum();
        type Weighted =
            fn(&[f64], &[f64], Option<(&[bool], usize)>, Option<&[f64]>, &mut [f64]) -> Result<LossValue<f64>>;
        type PerElement = fn(f64, f64) -> f64;
        let per: [(Weighted, PerElement); 2] = [
            (mean_squared_error_weighted, |x, y| (x - y) * (x - y)),
            (binary_cross_entropy_with_logits_weighted, |x, y| {
                -y * sigmoid(x).ln() - (1.0 - y) * (1.0 - sigmoid(x)).ln()
            }),
        ];
        for (f, l) in per {
            let mut grad = vec![f64::NAN; 12];
            let v = f(&x, &y, None, Some(&w), &mut grad).unwrap();
            // By hand: Σ w·l / Σ w; the elements of weight 0 are not counted.
            let want: f64 = x.iter().zip(&y).zip(&w).map(|((&x, &y), &w)| w * l(x, y)).sum::<f64>() / total;
            assert!(close(v.loss, want, 1e-12, 1e-12), "{} vs {want}", v.loss);
            assert_eq!((v.count, v.weight), (9, total));
            let loss_at = |x: &[f64]| {
                let mut g = vec![0.0; 12];
                f(x, &y, None, Some(&w), &mut g).unwrap().loss
            };
            check_grad(loss_at, &x, &grad);
            // Weights of 1 are the unweighted loss, bit for bit.
            let (mut g1, mut g2) = (vec![0.0; 12], vec![0.0; 12]);
            let a = f(&x, &y, None, Some(&[1.0; 12]), &mut g1).unwrap();
            let b = f(&x, &y, None, None, &mut g2).unwrap();
            assert_eq!((a.loss.to_bits(), a.weight), (b.loss.to_bits(), b.weight));
            assert_eq!(g1, g2);
        }
        let mut grad = vec![0.0; 12];
        let bad = mean_squared_error_weighted(&x, &y, None, Some(&[-1.0; 12]), &mut grad).unwrap_err().to_string();
        assert!(bad.contains("weights") && bad.contains("-1 at index 0"), "{bad}");
        let short = mean_squared_error_weighted(&x, &y, None, Some(&[1.0; 3]), &mut grad).unwrap_err().to_string();
        assert!(short.contains("weights"), "{short}");
        let none = mean_squared_error_weighted(&x, &y, None, Some(&[0.0; 12]), &mut grad).unwrap();
        assert_eq!((none.loss, none.count), (0.0, 0));
    }
}
