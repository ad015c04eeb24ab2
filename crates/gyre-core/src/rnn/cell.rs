//! The interface between a recurrent cell (one time step of gate math) and the time-loop driver
//! in [`crate::rnn::sequence`]. Cells never loop over time; the driver never looks inside gates.
//!
//! All buffers are row-major slices. `B` is the batch size, `H` the hidden size, `G` the number
//! of gate blocks of the cell (`weight_ih` has `G·H` rows), `E` the cell's [`Cell::extra`] width.

use crate::error::Result;
use crate::kernels::real::Real;

/// Sizes of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dims {
    /// Batch size `B`.
    pub batch: usize,
    /// Input features `I`.
    pub input: usize,
    /// Hidden size `H`.
    pub hidden: usize,
}

/// What a cell sees and writes in one forward step.
pub(crate) struct ForwardStep<'a, 'w, F> {
    /// Sizes.
    pub dims: Dims,
    /// `[G·H, H]` the layer's `weight_hh`, contiguous row-major.
    pub w_hh: &'w [F],
    /// `[H, G·H]` `weight_hh` transposed and packed ([`crate::kernels::packed::pack_transposed`]): the fast operand of the recurrent
    /// product. Empty when the driver did not make it (passes too short to repay the
    /// transpose); the cell then reads `w_hh`.
    pub w_hh_t: &'w [F],
    /// `[G·H]` the layer's `bias_hh`.
    pub b_hh: &'w [F],
    /// `[B, G·H]`. In: the input projection `x_t · W_ihᵀ + b_ih`. Out: whatever the cell keeps
    /// for its backward step (the activated gates).
    pub gates: &'a mut [F],
    /// `[B, H]` hidden state before the step, as the recurrent products read it (through the
    /// recurrent dropout mask, [`crate::rnn::Noise`]).
    pub h_prev: &'a [F],
    /// Whether every value of `h_prev` is known to be zero and `W_hh` finite (the first step
    /// of a pass from a zero state): the recurrent products would add only zeros, and are
    /// skipped (`out + 0 = out`).
    pub h_prev_zero: bool,
    /// `[B, H]` the hidden state before the step as a carry reads it (the GRU's `z·h_prev`):
    /// unmasked. Empty when it is `h_prev` (no recurrent dropout).
    pub h_carry: &'a [F],
    /// `[B, H]` cell state before the step (empty for cells without one).
    pub c_prev: &'a [F],
    /// `[B, H]` out: hidden state after the step.
    pub h: &'a mut [F],
    /// `[B, H]` out: cell state after the step (empty for cells without one).
    pub c: &'a mut [F],
    /// `[B, E·H]` out: extra values kept for the backward step.
    pub extra: &'a mut [F],
    /// `[B, G·H]` workspace, contents undefined on entry.
    pub scratch: &'a mut [F],
}

/// What a cell sees and writes in one backward step.
pub(crate) struct BackwardStep<'a, 'w, F> {
    /// Sizes.
    pub dims: Dims,
    /// `[G·H, H]` the layer's `weight_hh`, packed in column panels ([`crate::kernels::packed::pack`]).
    pub w_hh: &'w [F],
    /// `[G·H]` the layer's `bias_hh`.
    pub b_hh: &'w [F],
    /// `[B, G·H]` the gates the forward step kept.
    pub gates: &'a [F],
    /// `[B, H]` hidden state before the step, as the recurrent products read it.
    pub h_prev: &'a [F],
    /// `[B, H]` the hidden state before the step as a carry reads it; empty when it is `h_prev`
    /// (see [`ForwardStep::h_carry`]).
    pub h_carry: &'a [F],
    /// `[B, H]` cell state before the step (empty without one).
    pub c_prev: &'a [F],
    /// `[B, H]` hidden state after the step.
    pub h: &'a [F],
    /// `[B, H]` cell state after the step (empty without one).
    pub c: &'a [F],
    /// `[B, E·H]` the extra values the forward step kept.
    pub extra: &'a [F],
    /// `[B, H]` total gradient of the loss with respect to `h`.
    pub dh: &'a [F],
    /// `[B, H]` gradient with respect to `c` from later steps (empty without a cell state).
    pub dc: &'a [F],
    /// `[B, G·H]` out: gradient with respect to the input-projection pre-activations.
    pub dgx: &'a mut [F],
    /// `[B, R·H]` out: gradient with respect to the last `R` gate blocks of the
    /// recurrent-projection pre-activations (`h_prev · W_hhᵀ + b_hh`) where it differs from
    /// `dgx`'s (`R` = [`Cell::recurrent_grad_blocks`]; empty when 0).
    pub dgh: &'a mut [F],
    /// `[B, H]` out: gradient with respect to `h_prev`.
    pub dh_prev: &'a mut [F],
    /// `[B, H]` out, when `h_carry` is given: the gradient with respect to `h_carry`, written
    /// (not added) by cells with a carry (GRU) and left as it is (zeros) by the others. Empty
    /// when `h_carry` is: the carry's gradient is then part of `dh_prev`.
    pub dh_carry: &'a mut [F],
    /// `[B, H]` out: gradient with respect to `c_prev` (empty without a cell state).
    pub dc_prev: &'a mut [F],
    /// `[B, G·H]` workspace, contents undefined on entry.
    pub scratch: &'a mut [F],
}

/// The first `rows` of `n` batch rows of `s` (every row `s.len() / n` wide; an empty slice
/// stays empty), and the rest.
fn split_ref<F>(s: &[F], rows: usize, n: usize) -> (&[F], &[F]) {
    s.split_at(s.len() / n.max(1) * rows)
}

fn split_mut<F>(s: &mut [F], rows: usize, n: usize) -> (&mut [F], &mut [F]) {
    let at = s.len() / n.max(1) * rows;
    s.split_at_mut(at)
}

impl<'a, 'w, F> ForwardStep<'a, 'w, F> {
    /// The step of the first `rows` batch rows and that of the others: every row of a step is
    /// independent of the others, so the two halves can run on different threads.
    pub(crate) fn split_rows(self, rows: usize) -> (Self, Self) {
        let n = self.dims.batch;
        let (g0, g1) = split_mut(self.gates, rows, n);
        let (hp0, hp1) = split_ref(self.h_prev, rows, n);
        let (hc0, hc1) = split_ref(self.h_carry, rows, n);
        let (cp0, cp1) = split_ref(self.c_prev, rows, n);
        let (h0, h1) = split_mut(self.h, rows, n);
        let (c0, c1) = split_mut(self.c, rows, n);
        let (e0, e1) = split_mut(self.extra, rows, n);
        let (s0, s1) = split_mut(self.scratch, rows, n);
        let dims = |batch| Dims { batch, ..self.dims };
        let (w_hh, w_hh_t, b_hh, h_prev_zero) = (self.w_hh, self.w_hh_t, self.b_hh, self.h_prev_zero);
        (
            ForwardStep {
                dims: dims(rows),
                w_hh,
                w_hh_t,
                b_hh,
                gates: g0,
                h_prev: hp0,
                h_prev_zero,
                h_carry: hc0,
                c_prev: cp0,
                h: h0,
                c: c0,
                extra: e0,
                scratch: s0,
            },
            ForwardStep {
                dims: dims(n - rows),
                w_hh,
                w_hh_t,
                b_hh,
                gates: g1,
                h_prev: hp1,
                h_prev_zero,
                h_carry: hc1,
                c_prev: cp1,
                h: h1,
                c: c1,
                extra: e1,
                scratch: s1,
            },
        )
    }
}

impl<'a, 'w, F> BackwardStep<'a, 'w, F> {
    /// As [`ForwardStep::split_rows`].
    pub(crate) fn split_rows(self, rows: usize) -> (Self, Self) {
        let n = self.dims.batch;
        let (g0, g1) = split_ref(self.gates, rows, n);
        let (hp0, hp1) = split_ref(self.h_prev, rows, n);
        let (hc0, hc1) = split_ref(self.h_carry, rows, n);
        let (cp0, cp1) = split_ref(self.c_prev, rows, n);
        let (h0, h1) = split_ref(self.h, rows, n);
        let (c0, c1) = split_ref(self.c, rows, n);
        let (e0, e1) = split_ref(self.extra, rows, n);
        let (dh0, dh1) = split_ref(self.dh, rows, n);
        let (dc0, dc1) = split_ref(self.dc, rows, n);
        let (dgx0, dgx1) = split_mut(self.dgx, rows, n);
        let (dgh0, dgh1) = split_mut(self.dgh, rows, n);
        let (dhp0, dhp1) = split_mut(self.dh_prev, rows, n);
        let (dhc0, dhc1) = split_mut(self.dh_carry, rows, n);
        let (dcp0, dcp1) = split_mut(self.dc_prev, rows, n);
        let (s0, s1) = split_mut(self.scratch, rows, n);
        let dims = |batch| Dims { batch, ..self.dims };
        let (w_hh, b_hh) = (self.w_hh, self.b_hh);
        (
            BackwardStep {
                dims: dims(rows),
                w_hh,
                b_hh,
                gates: g0,
                h_prev: hp0,
                h_carry: hc0,
                c_prev: cp0,
                h: h0,
                c: c0,
                extra: e0,
                dh: dh0,
                dc: dc0,
                dgx: dgx0,
                dgh: dgh0,
                dh_prev: dhp0,
                dh_carry: dhc0,
                dc_prev: dcp0,
                scratch: s0,
            },
            BackwardStep {
                dims: dims(n - rows),
                w_hh,
                b_hh,
                gates: g1,
                h_prev: hp1,
                h_carry: hc1,
                c_prev: cp1,
                h: h1,
                c: c1,
                extra: e1,
                dh: dh1,
                dc: dc1,
                dgx: dgx1,
                dgh: dgh1,
                dh_prev: dhp1,
                dh_carry: dhc1,
                dc_prev: dcp1,
                scratch: s1,
            },
        )
    }
}

/// One time step of a recurrent cell, forward and backward.
pub(crate) trait Cell<F: Real>: Sync {
    /// Number of gate blocks `G` (`weight_ih` is `[G·H, I]`).
    fn gates(&self) -> usize;
    /// Whether the cell carries a cell state `c` beside `h` (LSTM).
    fn has_cell_state(&self) -> bool {
        false
    }
    /// Width `E`, in units of `H`, of the extra values kept per step for backward.
    fn extra(&self) -> usize {
        0
    }
    /// How many of the last gate blocks of the recurrent pre-activations have a gradient other
    /// than the input pre-activations' (GRU with the reset gate after the product: the
    /// candidate's, 1). The driver keeps them in `dgh` and uses `dgx` for the other blocks.
    fn recurrent_grad_blocks(&self) -> usize {
        0
    }
    /// Runs one forward step.
    fn forward_step(&self, s: ForwardStep<'_, '_, F>) -> Result<()>;
    /// Runs one backward step.
    fn backward_step(&self, s: BackwardStep<'_, '_, F>) -> Result<()>;
    /// Adds to `d_weight_hh: [G·H, H]` the contribution of `N` rows (of some steps): their
    /// pre-activation gradients `dgx: [N, G·H]` and `dgh: [N, R·H]` (see
    /// [`Cell::recurrent_grad_blocks`]), the states they started from `h_prev: [N, H]` and
    /// their extra values `extra: [N, E·H]`. The default is the product of the recurrent
    /// gradient (`dgx`'s first blocks, then `dgh`'s) with `h_prev`.
    fn weight_hh_grad(
        &self,
        dgx: ndarray::ArrayView2<F>,
        dgh: ndarray::ArrayView2<F>,
        h_prev: ndarray::ArrayView2<F>,
        _extra: ndarray::ArrayView2<F>,
        d_weight_hh: ndarray::ArrayViewMut2<F>,
    ) -> Result<()> {
        let split = dgx.ncols() - dgh.ncols();
        let (mut first, mut last) = d_weight_hh.split_at(ndarray::Axis(0), split);
        crate::kernels::linalg::gemm_t_cols(dgx, 0..split, h_prev, F::one(), first.view_mut());
        if dgh.ncols() > 0 {
            crate::kernels::linalg::gemm(F::one(), dgh.t(), h_prev, F::one(), last.view_mut());
        }
        Ok(())
    }
}
