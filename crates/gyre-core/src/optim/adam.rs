//! Adam and AdamW: `torch.optim.Adam`'s update (AdamW decouples the weight decay), its
//! bias corrections in double precision as torch computes them.

use crate::kernels::portable::AdamStep;
use crate::kernels::real::Real;

pub(super) struct AdamHyper<F> {
    pub(super) beta1: F,
    pub(super) beta2: F,
    pub(super) eps: F,
    /// `lr / (1 − β1^t)`.
    pub(super) step_size: F,
    /// `√(1 − β2^t)`.
    pub(super) bias_correction2_sqrt: F,
}

impl<F: Real> AdamHyper<F> {
    pub(super) fn new(lr: F, beta1: f64, beta2: f64, eps: f64, t: u64) -> Self {
        // Like torch, the bias corrections are computed in double precision.
        let t = t as f64;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        AdamHyper {
            beta1: F::lit(beta1),
            beta2: F::lit(beta2),
            eps: F::lit(eps),
            step_size: lr / F::lit(bias_correction1),
            bias_correction2_sqrt: F::lit(bias_correction2.sqrt()),
        }
    }
}

/// Adam over one parameter; a large one in blocks side by side on the pool (element-wise
/// arithmetic: the same bits on any number of threads).
pub(super) fn adam<F: Real>(p: &mut [F], g: &[F], m: &mut [F], v: &mut [F], weight_decay: F, h: &AdamHyper<F>) {
    const BLOCK: usize = 1 << 15;
    let hp = AdamStep {
        weight_decay,
        beta1: h.beta1,
        beta2: h.beta2,
        bias_correction2_sqrt: h.bias_correction2_sqrt,
        eps: h.eps,
        step_size: h.step_size,
    };
    if p.len() >= 2 * BLOCK && crate::kernels::threads::can_split() {
        use rayon::prelude::*;
        p.par_chunks_mut(BLOCK)
            .zip(g.par_chunks(BLOCK))
            .zip(m.par_chunks_mut(BLOCK))
            .zip(v.par_chunks_mut(BLOCK))
            .for_each(|(((p, g), m), v)| F::adam_update(p, g, m, v, hp));
    } else {
        F::adam_update(p, g, m, v, hp);
    }
}
