//! SGD with momentum, dampening, Nesterov and weight decay: `torch.optim.SGD`'s update.

use crate::kernels::real::Real;

pub(super) struct SgdHyper<F> {
    pub(super) lr: F,
    pub(super) momentum: F,
    pub(super) dampening: F,
    pub(super) nesterov: bool,
    pub(super) weight_decay: F,
    pub(super) first: bool,
}

pub(super) fn sgd<F: Real>(p: &mut [F], g: &[F], buf: Option<&mut [F]>, h: &SgdHyper<F>) {
    let zero = F::zero();
    let mut buf = buf.filter(|_| h.momentum != zero).map(|b| b.iter_mut());
    for (p, &g) in p.iter_mut().zip(g) {
        let mut d = g;
        if h.weight_decay != zero {
            d = d + h.weight_decay * *p;
        }
        if let Some(b) = buf.as_mut().and_then(Iterator::next) {
            *b = if h.first { d } else { h.momentum * *b + (F::one() - h.dampening) * d };
            d = if h.nesterov { d + h.momentum * *b } else { *b };
        }
        *p = *p - h.lr * d;
    }
}
