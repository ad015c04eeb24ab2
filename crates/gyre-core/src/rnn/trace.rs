//! What a training pass keeps for backpropagation ([`Trace`]), and the gradients of one pass.

use super::packing::{Packing, StepRows};
use crate::kernels::real::Real;
use crate::rnn::cell::Dims;
use crate::rnn::weights::WeightGrads;
use ndarray::Array2;

/// Everything the forward pass of one sequence batch keeps for backpropagation; `N` rows
/// packed as described by [`Packing`].
#[derive(Clone, Debug)]
pub(crate) struct Trace<F> {
    /// Sizes; `dims.batch` is the number of sequences `B`.
    pub dims: Dims,
    /// Row layout.
    pub packing: Packing,
    /// Whether the sequences were run from their last step to their first.
    pub reverse: bool,
    /// `[N, G·H]` what the cell kept of its gates at each step.
    pub gates: Vec<F>,
    /// `[N, H]` the hidden state after each step (the layer's output). The state a step
    /// started from is the previous step's row here or a row of `h0` ([`Trace::prev_runs`]).
    pub h: Vec<F>,
    /// `[N, H]` the cell state after each step (empty for cells without one).
    pub c: Vec<F>,
    /// `[B, H]` the initial hidden state.
    pub h0: Vec<F>,
    /// `[B, H]` the initial cell state (empty for cells without one).
    pub c0: Vec<F>,
    /// `[N, E·H]` the cell's extra values.
    pub extra: Vec<F>,
}

impl<F: Real> Trace<F> {
    /// `[N, H]` the hidden state after every step, packed.
    pub(crate) fn outputs(&self) -> &[F] {
        &self.h
    }

    /// Where each packed row's starting state is, as runs `(r0, len, from_h, src0)`: rows
    /// `r0..r0 + len` started from rows `src0..src0 + len` of [`Trace::h`] (the previous
    /// step's, `from_h`) or of the initial state. Consecutive steps whose rows continue
    /// contiguously share a run (one run per direction for sequences of equal length, plus the
    /// first step's).
    pub(crate) fn prev_runs(&self) -> Vec<(usize, usize, bool, usize)> {
        let packing = &self.packing;
        let mut pieces = Vec::with_capacity(2 * packing.steps());
        for p in 0..packing.steps() {
            let (_, at) = StepRows::of(packing, p, self.reverse);
            pieces.push((at.s, at.from_prev, true, at.prev_off));
            pieces.push((at.s + at.from_prev, at.n - at.from_prev, false, at.from_prev));
        }
        pieces.sort_unstable_by_key(|r| r.0);
        let mut runs: Vec<(usize, usize, bool, usize)> = Vec::new();
        for (r0, len, from_h, src0) in pieces.into_iter().filter(|r| r.1 > 0) {
            match runs.last_mut() {
                Some(last) if last.2 == from_h && last.0 + last.1 == r0 && last.3 + last.1 == src0 => last.1 += len,
                _ => runs.push((r0, len, from_h, src0)),
            }
        }
        runs
    }

    /// Packed row holding sequence `b`'s final state: its last step, or its first in reverse.
    fn final_row(&self, b: usize) -> usize {
        let t = if self.reverse { 0 } else { self.packing.length(b) - 1 };
        self.packing.offset(t) + b
    }

    fn gather_final(&self, src: &[F]) -> Vec<F> {
        let hd = self.dims.hidden;
        let mut out = Vec::with_capacity(self.dims.batch * hd);
        for b in 0..self.dims.batch {
            let r = self.final_row(b);
            out.extend_from_slice(&src[r * hd..(r + 1) * hd]);
        }
        out
    }

    /// `[B, H]` each sequence's hidden state after its last step (in reverse: its first).
    pub(crate) fn final_hidden(&self) -> Vec<F> {
        self.gather_final(&self.h)
    }

    /// `[B, H]` each sequence's final cell state (empty for cells without one).
    pub(crate) fn final_cell(&self) -> Vec<F> {
        if self.c.is_empty() {
            return Vec::new();
        }
        self.gather_final(&self.c)
    }
}

/// Gradients of one sequence batch.
#[derive(Clone, Debug)]
pub(crate) struct SequenceGrads<F> {
    /// `[N, I]` gradient of the packed input.
    pub input: Array2<F>,
    /// `[B, H]` gradient of the initial hidden state.
    pub h0: Vec<F>,
    /// `[B, H]` gradient of the initial cell state (empty for cells without one).
    pub c0: Vec<F>,
    /// Gradients of the weights.
    pub weights: WeightGrads<F>,
}
