//! The noise a training pass puts on the recurrence itself, and the arithmetic the time loops
//! run around each cell step for it:
//!
//! - **recurrent dropout** (variational, Gal & Ghahramani 2016; Keras' `recurrent_dropout`):
//!   a step's recurrent products read `h_prev ⊙ m`, `m: [B, H]` one mask per sequence and
//!   hidden unit, the same at every step; the GRU's carry `z·h_prev` reads the unmasked state
//!   (as in Keras), and the state carried on (and the output) is the cell's unmasked `h`.
//! - **zoneout** (Krueger et al. 2017): after a step, each unit keeps its previous state with
//!   probability `p`, drawn anew at every step: `h = d·h_prev + (1 − d)·h̃` with `d ∈ {0, 1}`,
//!   the same `d` for the cell state of an LSTM. Outside training the expectation runs instead,
//!   `h = p·h_prev + (1 − p)·h̃` (as in the paper).
//!
//! The driver masks the state the cells' products read (a cell with a carry is given the
//! unmasked state beside it, [`crate::rnn::cell::ForwardStep::h_carry`]) and blends the state a
//! cell wrote, and in backward scales the gradients the same way. With a binary `d`, the trace's
//! blended states are the cell's own wherever the cell's gradient is not zero, so the cells'
//! backward steps read them unchanged.

use crate::error::{CoreError, Result};
use crate::kernels::real::Real;

/// The noise of one pass over one layer direction; [`Noise::none`] for none.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Noise<F> {
    /// `[B, H]` the recurrent dropout mask, rows in the packing's sorted batch order: `0` or
    /// `1 / (1 − p)` (empty: no recurrent dropout).
    pub(crate) recurrent: Vec<F>,
    /// `[N, H]` training's zoneout draws per packed row: `1` where the unit keeps its previous
    /// state, else `0` (empty: none drawn).
    pub(crate) zone: Vec<F>,
    /// The zoneout probability `p`, run as its expectation when `zone` is empty.
    pub(crate) zoneout: F,
}

impl<F: Real> Noise<F> {
    /// No noise: the plain recurrence.
    pub(crate) fn none() -> Self {
        Noise { recurrent: Vec::new(), zone: Vec::new(), zoneout: F::zero() }
    }

    /// Zoneout's expectation with probability `p` (inference, evaluation).
    pub(crate) fn expected_zoneout(p: F) -> Self {
        Noise { zoneout: p, ..Noise::none() }
    }

    /// An error unless the masks fit a pass of `batch` sequences, `rows` packed rows and
    /// `hidden` units.
    pub(super) fn check(&self, batch: usize, rows: usize, hidden: usize) -> Result<()> {
        for (what, m, len) in [("recurrent dropout mask", &self.recurrent, batch), ("zoneout mask", &self.zone, rows)] {
            if !m.is_empty() && m.len() != len * hidden {
                return Err(CoreError::shape(what, format!("[{len}, {hidden}]"), format!("{} values", m.len())));
            }
        }
        Ok(())
    }

    /// Whether the trace of a pass with this noise can be differentiated: zoneout's expectation
    /// blends away the cell's own states, which its backward step reads.
    pub(super) fn check_differentiable(&self) -> Result<()> {
        if self.zone.is_empty() && self.zoneout != F::zero() {
            return Err(CoreError::InvalidArgument {
                what: "trace".into(),
                expected: "a training pass's (zoneout draws its masks only in training)".into(),
                got: "a pass that ran zoneout's expectation".into(),
            });
        }
        Ok(())
    }

    /// The state the recurrent products of a step read: `h_prev: [n, H]` (the rows of sequences
    /// `seq0..`) times their recurrent dropout mask, written to `buf`; `h_prev` itself without one.
    #[inline]
    pub(super) fn cell_input<'a>(&self, h_prev: &'a [F], seq0: usize, hidden: usize, buf: &'a mut [F]) -> &'a [F] {
        if self.recurrent.is_empty() {
            return h_prev;
        }
        let n = h_prev.len();
        let mask = &self.recurrent[seq0 * hidden..seq0 * hidden + n];
        for ((o, &h), &m) in buf[..n].iter_mut().zip(h_prev).zip(mask) {
            *o = h * m;
        }
        &buf[..n]
    }

    /// After a step, `cur ← d·prev + (1 − d)·cur` for the rows from packed row `r0`
    /// (`prev`, `cur`: `[n, H]`): the states the step started from and the cell wrote.
    #[inline]
    pub(super) fn zone_out(&self, r0: usize, hidden: usize, prev: &[F], cur: &mut [F]) {
        if !self.zone.is_empty() {
            let d = &self.zone[r0 * hidden..r0 * hidden + cur.len()];
            for ((c, &p), &k) in cur.iter_mut().zip(prev).zip(d) {
                if k != F::zero() {
                    *c = p;
                }
            }
        } else if self.zoneout != F::zero() {
            let (p, q) = (self.zoneout, F::one() - self.zoneout);
            for (c, &v) in cur.iter_mut().zip(prev) {
                *c = p * v + q * *c;
            }
        }
    }

    /// Whether steps blend their states (zoneout drawn or expected).
    #[inline]
    pub(super) fn zones(&self) -> bool {
        !self.zone.is_empty() || self.zoneout != F::zero()
    }

    /// Backward, before a step: keeps the total gradient `d: [n, H]` of the state after the
    /// step (rows from packed row `r0`) in `saved`, and leaves in `d` the part that reaches the
    /// cell, `(1 − d_zone)·d`. Nothing without zoneout draws.
    #[inline]
    pub(super) fn split_grad(&self, r0: usize, hidden: usize, d: &mut [F], saved: &mut [F]) {
        if self.zone.is_empty() {
            return;
        }
        saved[..d.len()].copy_from_slice(d);
        let k = &self.zone[r0 * hidden..r0 * hidden + d.len()];
        for (g, &z) in d.iter_mut().zip(k) {
            if z != F::zero() {
                *g = F::zero();
            }
        }
    }

    /// Backward, after a step (rows from packed row `at.0`, of sequences from `at.1`): for the
    /// hidden state, the gradient `d_prev` of the state the products read through the recurrent
    /// dropout mask becomes that of the unmasked state, `d_prev ⊙ m + d_carry` (`d_carry` the
    /// gradient through the cell's carry; empty for the cell state, which has no mask); then
    /// `d_prev += d_zone·saved`, the part that skipped the cell.
    #[inline]
    pub(super) fn carry_grad(&self, at: (usize, usize), hidden: usize, d_carry: &[F], saved: &[F], d_prev: &mut [F]) {
        let (r0, seq0) = at;
        let n = d_prev.len();
        if !d_carry.is_empty() {
            let m = &self.recurrent[seq0 * hidden..seq0 * hidden + n];
            for ((g, &k), &c) in d_prev.iter_mut().zip(m).zip(d_carry) {
                *g = *g * k + c;
            }
        }
        if !self.zone.is_empty() {
            let k = &self.zone[r0 * hidden..r0 * hidden + n];
            for ((g, &s), &z) in d_prev.iter_mut().zip(&saved[..n]).zip(k) {
                if z != F::zero() {
                    *g = *g + s;
                }
            }
        }
    }
}
