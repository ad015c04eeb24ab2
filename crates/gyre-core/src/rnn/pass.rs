//! The setup of one pass over a layer direction: its weights in the forms the time loop reads
//! (transposed and packed once), the input projected a group of steps at a time, and the checks
//! of the input and initial state.

use super::packing::Packing;
use super::shards::PARALLEL_STEP_MIN_FLOPS;
use crate::error::{CoreError, Result};
use crate::kernels::packed::{pack_transposed, packed_len, Packed};
use crate::kernels::real::Real;
use crate::rnn::cell::Cell;
use crate::rnn::weights::LayerWeights;
use ndarray::ArrayView2;

/// The slice of an array made standard-layout (always present; an error, not a panic, if not).
pub(super) fn contiguous<'a, F>(what: &str, s: Option<&'a [F]>) -> Result<&'a [F]> {
    s.ok_or_else(|| CoreError::shape(what, "a contiguous row-major layout", "a strided view"))
}

pub(super) fn zeros<F: Real>(len: usize) -> Vec<F> {
    crate::kernels::threads::zeroed(len)
}

/// Passes of at least this many steps run the recurrent product on a packed transposed copy
/// of `W_hh`; shorter ones (a stream's single step) use dot products over `W_hh`'s rows, with
/// no copy. A single sequence of 16 steps (lstm-s) already repays the copy: +49% batch-1
/// inference, +3% training, against dot products.
pub(super) const TRANSPOSE_MIN_STEPS: usize = 3;

/// Gate pre-activations projected from the input at a time, in bytes: a group of steps is
/// projected just before it runs, so its gates are still in the core's L2 cache when the
/// recurrent product adds to them (at least one step per group). Unit tests use a tiny size, so
/// that every pass they run is split into several groups.
#[cfg(not(test))]
pub(super) const PROJECTION_BYTES: usize = 256 << 10;
#[cfg(test)]
pub(super) const PROJECTION_BYTES: usize = 1 << 10;

/// A layer's weights transposed (and packed, [`crate::kernels::packed::pack_transposed`]) as the time
/// loop reads them: `W_ihᵀ: [I, G·H]` and `W_hhᵀ: [H, G·H]`. Made once for many batches with the same weights (see
/// [`crate::model::Model::prepare`]); each pass still uses them only where it would have made
/// them itself, so results do not depend on whether they were given.
#[derive(Clone, Debug)]
pub(crate) struct Transposed<F> {
    weight_ih: Packed<F>,
    weight_hh: Packed<F>,
    /// Whether every value of `weight_hh` is finite (see [`Prepared::h_prev_zero`]).
    hh_finite: bool,
}

impl<F: Real> Transposed<F> {
    /// Transposes both weight matrices of `weights`.
    pub(crate) fn of(weights: &LayerWeights<F>) -> Result<Self> {
        let (w_ih, w_hh) = (weights.weight_ih.as_standard_layout(), weights.weight_hh.as_standard_layout());
        let w_hh = contiguous("weight_hh", w_hh.as_slice())?;
        Ok(Transposed {
            weight_ih: pack_transposed(contiguous("weight_ih", w_ih.as_slice())?, weights.weight_ih.ncols()),
            weight_hh: pack_transposed(w_hh, weights.weight_hh.ncols()),
            hh_finite: all_finite(w_hh),
        })
    }
}

/// Whether every value of `v` is finite: a branch per block of 64, so that the blocks vectorize.
fn all_finite<F: Real>(v: &[F]) -> bool {
    v.chunks(64).all(|b| b.iter().fold(true, |ok, x| ok & x.is_finite()))
}

/// The layer's weights in the forms the time loop reads, checked and made once per pass.
pub(super) struct Prepared<'w, F: Real> {
    pub(super) input: usize,
    pub(super) gh: usize,
    pub(super) w_ih: ndarray::CowArray<'w, F, ndarray::Ix2>,
    /// `[I, G·H]` `W_ihᵀ` packed (empty for one-row passes: dot products over `W_ih`'s rows).
    pub(super) w_ih_t: std::borrow::Cow<'w, Packed<F>>,
    pub(super) b_ih: ndarray::CowArray<'w, F, ndarray::Ix1>,
    pub(super) w_hh: ndarray::CowArray<'w, F, ndarray::Ix2>,
    /// `[H, G·H]` `W_hhᵀ` packed, or empty (see [`TRANSPOSE_MIN_STEPS`]).
    pub(super) w_hh_t: std::borrow::Cow<'w, Packed<F>>,
    pub(super) b_hh: ndarray::CowArray<'w, F, ndarray::Ix1>,
    /// Whether the pass starts from a zero state (`h0` all zeros, PyTorch's default when no
    /// state is given) and `W_hh` is finite: then the recurrent products of its first step
    /// (every row from `h0`) add only zeros, and the step skips them
    /// ([`crate::rnn::cell::ForwardStep::h_prev_zero`]): one of `T` recurrent products less,
    /// the same values (with a non-finite weight, `0 · ∞` would have made NaN: computed then).
    zero_start: bool,
}

impl<'w, F: Real> Prepared<'w, F> {
    /// The weights for a pass from `h0: [B, H]`, transposed here unless `given`.
    pub(super) fn new(
        weights: &'w LayerWeights<F>,
        gates: usize,
        packing: &Packing,
        given: Option<&'w Transposed<F>>,
        h0: &[F],
    ) -> Result<Self> {
        use std::borrow::Cow;
        let (input, hidden) = (weights.weight_ih.ncols(), weights.weight_hh.ncols());
        let w_ih = weights.weight_ih.as_standard_layout();
        let w_hh = weights.weight_hh.as_standard_layout();
        let long = packing.steps() >= TRANSPOSE_MIN_STEPS;
        let w_ih_t = match (packing.rows() > 1, given) {
            (false, _) => Cow::Owned(Packed::default()),
            (true, Some(t)) => Cow::Borrowed(&t.weight_ih),
            (true, None) => Cow::Owned(pack_transposed(contiguous("weight_ih", w_ih.as_slice())?, input)),
        };
        let w_hh_t = match (long, given) {
            (false, _) => Cow::Owned(Packed::default()),
            (true, Some(t)) => Cow::Borrowed(&t.weight_hh),
            (true, None) => Cow::Owned(pack_transposed(contiguous("weight_hh", w_hh.as_slice())?, hidden)),
        };
        let gh = gates * hidden;
        let sized = |t: &[F], k: usize| t.is_empty() || t.len() == packed_len(k, gh);
        if !sized(&w_ih_t, input) || !sized(&w_hh_t, hidden) {
            return Err(CoreError::shape("transposed weights", "the layer's sizes", "another layer's"));
        }
        let zero_start = h0.iter().all(|&v| v == F::zero())
            && match given {
                Some(t) => t.hh_finite,
                None => all_finite(contiguous("weight_hh", w_hh.as_slice())?),
            };
        Ok(Prepared {
            input,
            gh,
            w_ih,
            w_ih_t,
            b_ih: weights.bias_ih.as_standard_layout(),
            w_hh,
            w_hh_t,
            b_hh: weights.bias_hh.as_standard_layout(),
            zero_start,
        })
    }

    /// Whether processing step `p` of the pass skips its recurrent products
    /// ([`crate::rnn::cell::ForwardStep::h_prev_zero`]): the first step of a pass from a zero
    /// state (the field `zero_start`), whichever shard or row block runs it.
    pub(super) fn h_prev_zero(&self, p: usize) -> bool {
        p == 0 && self.zero_start
    }

    /// `out = b_ih + x_rows · W_ihᵀ` for `x_rows: [R, I]` contiguous, `out: [R, G·H]`; blocks
    /// of rows run side by side on the pool when the product is large.
    pub(super) fn project(&self, x_rows: &[F], out: &mut [F], parallel: bool) -> Result<()> {
        let (input, gh) = (self.input, self.gh);
        let b_ih = contiguous("bias_ih", self.b_ih.as_slice())?;
        let w_ih = contiguous("weight_ih", self.w_ih.as_slice())?;
        let rows = out.len() / gh.max(1);
        let block = |(xs, os): (&[F], &mut [F])| {
            for row in os.chunks_exact_mut(gh) {
                row.copy_from_slice(b_ih);
            }
            if self.w_ih_t.is_empty() {
                crate::kernels::packed::add_xwt(xs, input, w_ih, os, gh, 0);
            } else {
                crate::kernels::packed::add_xw(xs, input, &self.w_ih_t, os, gh, 0, gh);
            }
        };
        if gh == 0 {
            return Ok(());
        }
        // (With no input features the products add nothing: the rows are the bias.)
        if !parallel
            || !crate::kernels::threads::can_split()
            || rows < 16
            || rows * gh * input < PARALLEL_STEP_MIN_FLOPS
        {
            block((x_rows, out));
        } else {
            use rayon::prelude::*;
            let per = rows.div_ceil(rayon::current_num_threads()).next_multiple_of(4);
            x_rows.par_chunks(per * input).zip(out.par_chunks_mut(per * gh)).for_each(block);
        }
        Ok(())
    }
}

/// Consecutive processed steps whose packed rows are projected at once (contiguous rows in
/// either direction).
pub(super) struct ProjectionGroup {
    /// The steps, in processing order.
    pub(super) steps: std::ops::Range<usize>,
    /// Their packed rows.
    pub(super) rows: std::ops::Range<usize>,
}

/// The projection groups of a pass: steps whose gates fit [`PROJECTION_BYTES`] together.
pub(super) fn projection_groups(packing: &Packing, reverse: bool, gh: usize, elem: usize) -> Vec<ProjectionGroup> {
    let cap = (PROJECTION_BYTES / (gh * elem).max(1)).max(1);
    let mut out = Vec::new();
    let mut p0 = 0;
    while p0 < packing.steps() {
        let mut p1 = p0 + 1;
        let mut rows = packing.rows_at(packing.step(p0, reverse));
        while p1 < packing.steps() && rows + packing.rows_at(packing.step(p1, reverse)) <= cap {
            rows += packing.rows_at(packing.step(p1, reverse));
            p1 += 1;
        }
        let (a, b) = (packing.step(p0, reverse), packing.step(p1 - 1, reverse));
        let (first, last) = (a.min(b), a.max(b));
        out.push(ProjectionGroup {
            steps: p0..p1,
            rows: packing.offset(first)..packing.offset(last) + packing.rows_at(last),
        });
        p0 = p1;
    }
    out
}

/// The contiguous `[R, I]` rows of the packed input.
pub(super) fn input_rows<'a, F: Real>(
    x: &'a ndarray::CowArray<'_, F, ndarray::Ix2>,
    r0: usize,
    r1: usize,
) -> Result<&'a [F]> {
    let input = x.ncols();
    Ok(&contiguous("input", x.as_slice())?[r0 * input..r1 * input])
}

pub(super) fn check_pass<F: Real, C: Cell<F>>(
    cell: &C,
    x: &ArrayView2<F>,
    packing: &Packing,
    hidden: usize,
    h0: &[F],
    c0: &[F],
) -> Result<()> {
    let (rows, input) = x.dim();
    let batch = packing.batch();
    if rows != packing.rows() {
        return Err(CoreError::shape(
            "input",
            format!("[{}, {input}] packed rows", packing.rows()),
            format!("{rows} rows"),
        ));
    }
    if h0.len() != batch * hidden || (cell.has_cell_state() && c0.len() != batch * hidden) {
        return Err(CoreError::shape("h0", format!("[{batch}, {hidden}]"), format!("{} values", h0.len())));
    }
    Ok(())
}
