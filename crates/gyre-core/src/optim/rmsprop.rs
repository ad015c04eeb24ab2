//! RMSprop, plain or centered, with momentum and weight decay: `torch.optim.RMSprop`'s update.

use crate::kernels::real::Real;

pub(super) struct RmsHyper<F> {
    pub(super) lr: F,
    pub(super) alpha: F,
    pub(super) eps: F,
    pub(super) momentum: F,
    pub(super) weight_decay: F,
}

pub(super) fn rmsprop<F: Real>(
    p: &mut [F],
    g: &[F],
    square_avg: &mut [F],
    momentum_buffer: Option<&mut [F]>,
    grad_avg: Option<&mut [F]>,
    h: &RmsHyper<F>,
) {
    let (zero, one) = (F::zero(), F::one());
    let mut momentum_buffer = momentum_buffer.map(|b| b.iter_mut());
    let mut grad_avg = grad_avg.map(|b| b.iter_mut());
    for ((p, &g), v) in p.iter_mut().zip(g).zip(square_avg.iter_mut()) {
        let d = if h.weight_decay != zero { g + h.weight_decay * *p } else { g };
        *v = h.alpha * *v + (one - h.alpha) * d * d;
        let avg = match grad_avg.as_mut().and_then(Iterator::next) {
            Some(ga) => {
                *ga = h.alpha * *ga + (one - h.alpha) * d;
                // v − ḡ² ≥ 0 in exact arithmetic; clamp rounding below zero (torch would give NaN).
                (*v - *ga * *ga).max(zero).sqrt() + h.eps
            }
            None => v.sqrt() + h.eps,
        };
        match momentum_buffer.as_mut().and_then(Iterator::next) {
            Some(b) => {
                *b = h.momentum * *b + d / avg;
                *p = *p - h.lr * *b;
            }
            None => *p = *p - h.lr * (d / avg),
        }
    }
}
