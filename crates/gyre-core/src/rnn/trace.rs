//! What a training pass keeps for backpropagation ([`Trace`]), and the gradients of one pass.

use super::noise::Noise;
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
    /// The recurrent dropout and zoneout the pass ran with (see [`Noise`]): `h` and `c` are the
    /// states after zoneout.
    pub noise: Noise<F>,
}

/// A run of packed rows that started from consecutive rows of one source: rows
/// `r0..r0 + len` from rows `src0..src0 + len` of the trace's `h` (`from_h`, the previous
/// step's) or of the initial state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrevRun {
    pub(crate) r0: usize,
    pub(crate) len: usize,
    pub(crate) from_h: bool,
    pub(crate) src0: usize,
}

impl<F: Real> Trace<F> {
    /// `[N, H]` the hidden state after every step, packed.
    pub(crate) fn outputs(&self) -> &[F] {
        &self.h
    }

    /// Where each packed row's starting state is, as [`PrevRun`]s: rows `r0..r0 + len`
    /// started from rows `src0..src0 + len` of [`Trace::h`] (the previous
    /// step's, `from_h`) or of the initial state. Consecutive steps whose rows continue
    /// contiguously share a run (one run per direction for sequences of equal length, plus the
    /// first step's).
    pub(crate) fn prev_runs(&self) -> Vec<PrevRun> {
        let packing = &self.packing;
        let mut pieces = Vec::with_capacity(2 * packing.steps());
        for p in 0..packing.steps() {
            let (_, at) = StepRows::of(packing, p, self.reverse);
            pieces.push(PrevRun { r0: at.s, len: at.from_prev, from_h: true, src0: at.prev_off });
            pieces.push(PrevRun {
                r0: at.s + at.from_prev,
                len: at.n - at.from_prev,
                from_h: false,
                src0: at.from_prev,
            });
        }
        pieces.sort_unstable_by_key(|r| r.r0);
        let mut runs: Vec<PrevRun> = Vec::new();
        for run in pieces.into_iter().filter(|r| r.len > 0) {
            match runs.last_mut() {
                Some(last)
                    if last.from_h == run.from_h
                        && last.r0 + last.len == run.r0
                        && last.src0 + last.len == run.src0 =>
                {
                    last.len += run.len
                }
                _ => runs.push(run),
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
