//! The time-loop driver's forward walk: runs any [`Cell`] over a batch of sequences, in either
//! direction, with sequences of different lengths; one walk for training and inference, compiled
//! once per mode ([`Keep`]). The backward walk is in `backward.rs`.
//!
//! Rows are packed time-major as in PyTorch's `PackedSequence`: the batch is sorted by
//! decreasing length and step `t` holds the first `batch_sizes[t]` sequences (see
//! [`Packing`]), so padded steps cost nothing. The input projection of all steps is one product
//! `[N, I] × [I, G·H]` over the `N` packed rows; only the recurrent product runs per step; the
//! weight gradients are products over all steps at the end. Every buffer is allocated before
//! the loop starts.

use super::noise::Noise;
use super::packing::{step_state, Packing, StepRows};
use super::pass::{check_pass, contiguous, input_rows, projection_groups, zeros, Prepared, Transposed};
use super::shards::{in_row_blocks, shard_rows, shard_slices, shard_state, shards, ShardStep};
use super::trace::Trace;
use crate::error::Result;
use crate::kernels::real::Real;
use crate::rnn::cell::{Cell, Dims, ForwardStep};
use crate::rnn::weights::LayerWeights;
use ndarray::ArrayView2;

/// One shard's rows of the forward pass's buffers, per step.
pub(super) struct ForwardShard<'a, F> {
    pub(super) seqs: (usize, usize),
    pub(super) gates: Vec<&'a mut [F]>,
    pub(super) h: Vec<&'a mut [F]>,
    pub(super) c: Vec<&'a mut [F]>,
    pub(super) extra: Vec<&'a mut [F]>,
}

/// The time loop of [`forward_sequence`] for one shard's sequences (see [`shards`]), projecting
/// each step's input rows just before the step.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_shard<F: Real, C: Cell<F>>(
    cell: &C,
    w: &Prepared<'_, F>,
    x: &[F],
    packing: &Packing,
    reverse: bool,
    dims: Dims,
    shard: ForwardShard<'_, F>,
    h0: &[F],
    c0: &[F],
    noise: &Noise<F>,
) -> Result<()> {
    let ForwardShard { seqs, mut gates, mut h, mut c, mut extra } = shard;
    let (input, hidden) = (dims.input, dims.hidden);
    let (gh, lb, has_c) = (w.gh, seqs.1 - seqs.0, cell.has_cell_state());
    let mut scratch = zeros(lb * gh);
    let mut h_gather = zeros(lb * hidden);
    let mut h_masked = zeros(if noise.recurrent.is_empty() { 0 } else { lb * hidden });
    let mut c_gather = zeros(if has_c { lb * hidden } else { 0 });
    let (w_hh, b_hh) = (contiguous("weight_hh", w.w_hh.as_slice())?, contiguous("bias_hh", w.b_hh.as_slice())?);
    let (h0, c0) = (&h0[seqs.0 * hidden..], if has_c { &c0[seqs.0 * hidden..] } else { &[][..] });
    let mut prev: Option<usize> = None;
    for p in 0..packing.steps() {
        let t = packing.step(p, reverse);
        let (r0, m) = shard_rows(packing, t, seqs);
        if m == 0 {
            prev = Some(t);
            continue;
        }
        w.project(&x[r0 * input..(r0 + m) * input], gates[t], false)?;
        let from_prev = prev.map_or(0, |q| shard_rows(packing, q, seqs).1.min(m));
        let at = ShardStep { prev, t, from_prev, rows: m };
        let (h_prev, h_t) = shard_state(&mut h, &mut h_gather, at, h0, hidden);
        let (c_prev, c_t): (&[F], &mut [F]) =
            if has_c { shard_state(&mut c, &mut c_gather, at, c0, hidden) } else { (&[], &mut []) };
        let step = ForwardStep {
            dims: Dims { batch: m, ..dims },
            w_hh,
            w_hh_t: &w.w_hh_t,
            b_hh,
            gates: &mut *gates[t],
            h_prev: noise.cell_input(h_prev, seqs.0, hidden, &mut h_masked),
            h_prev_zero: w.h_prev_zero(p),
            h_carry: if noise.recurrent.is_empty() { &[] } else { h_prev },
            c_prev,
            h: &mut *h_t,
            c: &mut *c_t,
            extra: &mut *extra[t],
            scratch: &mut scratch[..m * gh],
        };
        cell.forward_step(step)?;
        if noise.zones() {
            noise.zone_out(r0, hidden, h_prev, h_t);
            noise.zone_out(r0, hidden, c_prev, c_t);
        }
        prev = Some(t);
    }
    Ok(())
}

/// The sizes of one pass, for a [`Keep`] to size its buffers and build its result.
#[derive(Clone, Copy)]
pub(super) struct PassShape {
    /// Packed rows `N`.
    rows: usize,
    /// Sizes of the whole batch.
    dims: Dims,
    /// `G·H`.
    gh: usize,
    /// `E·H`, the cell's extra values per row.
    width: usize,
    /// Whether the cell has a cell state.
    has_c: bool,
    /// The most rows a projection group holds.
    group_rows: usize,
}

/// What a step writes besides its hidden state: its rows of the gates, the cell state it
/// starts from and the one it ends in, and its extra values (`[n, ·]` each).
pub(super) struct StepBufs<'s, F> {
    gates: &'s mut [F],
    c_prev: &'s [F],
    c: &'s mut [F],
    extra: &'s mut [F],
}

/// What the one forward walk keeps besides the hidden states `h: [N, H]`, and so what it
/// returns: [`Training`] keeps every step's gates, cell state and extra values for
/// backpropagation (and may run in shards); [`Inference`] keeps the gates of one projection
/// group and the cell state of one step. The walk is compiled once per mode (no branch on the
/// mode inside the time loop); both run the same arithmetic, so their outputs are the same bits.
pub(super) trait Keep<F: Real>: Sized {
    /// What the pass returns.
    type Out;

    /// The buffers of a pass of this shape.
    fn new(shape: PassShape) -> Self;

    /// Runs the whole pass in shards of sequences (see [`shards`]) when the mode does and the
    /// pass is large enough, writing `h`; whether it did.
    #[allow(clippy::too_many_arguments)]
    fn in_shards<C: Cell<F>>(
        &mut self,
        _cell: &C,
        _w: &Prepared<'_, F>,
        _x: &[F],
        _packing: &Packing,
        _reverse: bool,
        _h: &mut [F],
        _init: (&[F], &[F]),
        _noise: &Noise<F>,
    ) -> Result<bool> {
        Ok(false)
    }

    /// `[r1 − r0, G·H]` the gates of the projection group of rows `r0..r1`, to project into.
    fn group(&mut self, r0: usize, r1: usize) -> &mut [F];

    /// The buffers of the step at `at` in the group starting at row `r0`; `c0` the initial cell
    /// state of the batch.
    fn step(&mut self, at: StepRows, r0: usize, c0: &[F]) -> StepBufs<'_, F>;

    /// After the step at `at`, the `p`-th processed.
    #[inline(always)]
    fn after_step(&mut self, _packing: &Packing, _p: usize, _reverse: bool, _at: StepRows) {}

    /// The pass's result from the hidden states `h: [N, H]`, run with `noise`.
    fn finish(self, h: Vec<F>, packing: &Packing, reverse: bool, init: (&[F], &[F]), noise: Noise<F>) -> Self::Out;
}

/// The training pass's buffers: everything backpropagation needs ([`Trace`]).
pub(super) struct Training<F> {
    shape: PassShape,
    /// `[N, G·H]`
    gates: Vec<F>,
    /// `[N, H]` (empty without a cell state)
    c: Vec<F>,
    /// `[B, H]` the gathered starting cell state of a step where some sequences start.
    c_gather: Vec<F>,
    /// `[N, E·H]`
    extra: Vec<F>,
}

impl<F: Real> Keep<F> for Training<F> {
    type Out = Trace<F>;

    fn new(shape: PassShape) -> Self {
        let PassShape { rows, dims, gh, width, has_c, .. } = shape;
        let state_len = if has_c { rows * dims.hidden } else { 0 };
        let (gates, c, extra) = (zeros(rows * gh), zeros(state_len), zeros(rows * width));
        Training { shape, gates, c, c_gather: Vec::new(), extra }
    }

    fn in_shards<C: Cell<F>>(
        &mut self,
        cell: &C,
        w: &Prepared<'_, F>,
        x: &[F],
        packing: &Packing,
        reverse: bool,
        h: &mut [F],
        (h0, c0): (&[F], &[F]),
        noise: &Noise<F>,
    ) -> Result<bool> {
        let PassShape { dims, gh, width, has_c, .. } = self.shape;
        let hidden = dims.hidden;
        let bounds = shards(packing, gh * (dims.input + hidden));
        if bounds.len() <= 2 {
            // One shard: the walk's loop; its gathers of the cell state need this buffer.
            self.c_gather = zeros(if has_c { dims.batch * hidden } else { 0 });
            return Ok(false);
        }
        use rayon::prelude::*;
        let state_width = if has_c { hidden } else { 0 };
        let shards: Vec<ForwardShard<'_, F>> = shard_slices(&mut self.gates, gh, packing, &bounds)
            .into_iter()
            .zip(shard_slices(h, hidden, packing, &bounds))
            .zip(shard_slices(&mut self.c, state_width, packing, &bounds))
            .zip(shard_slices(&mut self.extra, width, packing, &bounds))
            .enumerate()
            .map(|(j, (((gates, h), c), extra))| ForwardShard { seqs: (bounds[j], bounds[j + 1]), gates, h, c, extra })
            .collect();
        shards
            .into_par_iter()
            .map(|shard| forward_shard(cell, w, x, packing, reverse, dims, shard, h0, c0, noise))
            .collect::<Result<Vec<()>>>()?;
        Ok(true)
    }

    #[inline(always)]
    fn group(&mut self, r0: usize, r1: usize) -> &mut [F] {
        let gh = self.shape.gh;
        &mut self.gates[r0 * gh..r1 * gh]
    }

    #[inline(always)]
    fn step(&mut self, at: StepRows, _r0: usize, c0: &[F]) -> StepBufs<'_, F> {
        let PassShape { dims, gh, width, has_c, .. } = self.shape;
        let (n, off) = (at.n, at.s);
        let (c_prev, c): (&[F], &mut [F]) =
            if has_c { step_state(&mut self.c, &mut self.c_gather, at, c0, dims.hidden) } else { (&[], &mut []) };
        StepBufs {
            gates: &mut self.gates[off * gh..(off + n) * gh],
            c_prev,
            c,
            extra: &mut self.extra[off * width..(off + n) * width],
        }
    }

    fn finish(self, h: Vec<F>, packing: &Packing, reverse: bool, (h0, c0): (&[F], &[F]), noise: Noise<F>) -> Trace<F> {
        let Training { shape, gates, c, extra, .. } = self;
        let (h0, c0) = (h0.to_vec(), if shape.has_c { c0.to_vec() } else { Vec::new() });
        Trace { dims: shape.dims, packing: packing.clone(), reverse, gates, h, c, h0, c0, extra, noise }
    }
}

/// What an inference pass returns: the outputs and the final states, nothing for backward.
#[derive(Clone, Debug)]
pub(crate) struct Outputs<F> {
    /// `[N, H]` the hidden state after every step, packed.
    pub h: Vec<F>,
    /// `[B, H]` each sequence's hidden state after its last step (in reverse: its first).
    pub h_n: Vec<F>,
    /// `[B, H]` the same for the cell state (empty for cells without one).
    pub c_n: Vec<F>,
}

/// The inference pass's buffers: the gates of one projection group, the cell state of one step
/// (and of each sequence's last), the extra values of one step.
pub(super) struct Inference<F> {
    shape: PassShape,
    /// `[group rows, G·H]`
    gates: Vec<F>,
    /// `[B, H]` each, empty without a cell state.
    c_prev: Vec<F>,
    c: Vec<F>,
    c_n: Vec<F>,
    /// `[B, E·H]`
    extra: Vec<F>,
}

impl<F: Real> Keep<F> for Inference<F> {
    type Out = Outputs<F>;

    fn new(shape: PassShape) -> Self {
        let PassShape { dims, gh, width, has_c, group_rows, .. } = shape;
        let state_len = if has_c { dims.batch * dims.hidden } else { 0 };
        let gates = zeros(group_rows * gh);
        let (c_prev, c, c_n) = (zeros(state_len), zeros(state_len), zeros(state_len));
        Inference { shape, gates, c_prev, c, c_n, extra: zeros(dims.batch * width) }
    }

    #[inline(always)]
    fn group(&mut self, r0: usize, r1: usize) -> &mut [F] {
        &mut self.gates[..(r1 - r0) * self.shape.gh]
    }

    #[inline(always)]
    fn step(&mut self, at: StepRows, r0: usize, c0: &[F]) -> StepBufs<'_, F> {
        let PassShape { dims, gh, width, has_c, .. } = self.shape;
        let (n, off, hidden) = (at.n, at.s, dims.hidden);
        // The cell state the step starts from: the previous step's, with the initial state of
        // the sequences that start here.
        if has_c {
            let split = at.from_prev * hidden;
            self.c_prev[split..n * hidden].copy_from_slice(&c0[split..n * hidden]);
        }
        let state_len = self.c.len();
        StepBufs {
            gates: &mut self.gates[(off - r0) * gh..(off - r0 + n) * gh],
            c_prev: &self.c_prev[..state_len.min(n * hidden)],
            c: &mut self.c[..state_len.min(n * hidden)],
            extra: &mut self.extra[..n * width],
        }
    }

    #[inline(always)]
    fn after_step(&mut self, packing: &Packing, p: usize, reverse: bool, at: StepRows) {
        if self.shape.has_c {
            // Sequences the next step does not carry on end here: keep their cell state.
            let (n, hidden) = (at.n, self.shape.dims.hidden);
            let next = p + 1 < packing.steps();
            let carried = if next { packing.rows_at(packing.step(p + 1, reverse)).min(n) } else { 0 };
            self.c_n[carried * hidden..n * hidden].copy_from_slice(&self.c[carried * hidden..n * hidden]);
            std::mem::swap(&mut self.c_prev, &mut self.c);
        }
    }

    fn finish(self, h: Vec<F>, packing: &Packing, reverse: bool, _init: (&[F], &[F]), _noise: Noise<F>) -> Outputs<F> {
        let Dims { batch, hidden, .. } = self.shape.dims;
        let trace_rows = |b: usize| packing.offset(if reverse { 0 } else { packing.length(b) - 1 }) + b;
        let mut h_n = Vec::with_capacity(batch * hidden);
        for b in 0..batch {
            let r = trace_rows(b);
            h_n.extend_from_slice(&h[r * hidden..(r + 1) * hidden]);
        }
        Outputs { h, h_n, c_n: self.c_n }
    }
}

/// The one forward walk of a layer direction, for training and inference (`K`, see [`Keep`]):
/// runs `cell` over the packed input `x: [N, I]` from `h0: [B, H]` and `c0: [B, H]` (empty for
/// cells without a cell state), from first step to last or, with `reverse`, from each
/// sequence's last step to its first. The input is projected a group of steps at a time (see
/// [`projection_groups`]), each step's rows split over the pool; the states of steps where some
/// sequences start (variable lengths, reverse) are gathered with the initial state's rows.
/// `given`, when given, must be [`Transposed::of`] these weights.
#[allow(clippy::too_many_arguments)]
fn walk<F: Real, C: Cell<F>, K: Keep<F>>(
    cell: &C,
    weights: &LayerWeights<F>,
    given: Option<&Transposed<F>>,
    x: ArrayView2<F>,
    packing: &Packing,
    reverse: bool,
    h0: &[F],
    c0: &[F],
    noise: Noise<F>,
) -> Result<K::Out> {
    let hidden = weights.weight_hh.ncols();
    check_pass(cell, &x, packing, hidden, h0, c0)?;
    noise.check(packing.batch(), packing.rows(), hidden)?;
    let (rows, input) = x.dim();
    let gh = cell.gates() * hidden;
    let batch = packing.batch();
    let dims = Dims { batch, input, hidden };
    let w = Prepared::new(weights, cell.gates(), packing, given, h0)?;
    let x = x.as_standard_layout();
    let groups = projection_groups(packing, reverse, gh, std::mem::size_of::<F>());
    let group_rows = groups.iter().map(|g| g.rows.len()).max().unwrap_or(0);
    let has_c = cell.has_cell_state();
    let shape = PassShape { rows, dims, gh, width: cell.extra() * hidden, has_c, group_rows };
    let mut keep = K::new(shape);
    let mut h = zeros(rows * hidden);
    if keep.in_shards(cell, &w, input_rows(&x, 0, rows)?, packing, reverse, &mut h, (h0, c0), &noise)? {
        return Ok(keep.finish(h, packing, reverse, (h0, c0), noise));
    }
    let mut h_gather = zeros(batch * hidden);
    let mut h_masked = zeros(if noise.recurrent.is_empty() { 0 } else { batch * hidden });
    let mut scratch = zeros(batch * gh);
    let (w_hh, b_hh) = (contiguous("weight_hh", w.w_hh.as_slice())?, contiguous("bias_hh", w.b_hh.as_slice())?);
    for group in groups {
        let r0 = group.rows.start;
        w.project(input_rows(&x, r0, group.rows.end)?, keep.group(r0, group.rows.end), true)?;
        for p in group.steps {
            let (_, at) = StepRows::of(packing, p, reverse);
            let n = at.n;
            let (h_prev, h_t) = step_state(&mut h, &mut h_gather, at, h0, hidden);
            let StepBufs { gates, c_prev, c, extra } = keep.step(at, r0, c0);
            let step = ForwardStep {
                dims: Dims { batch: n, ..dims },
                w_hh,
                w_hh_t: &w.w_hh_t,
                b_hh,
                gates,
                h_prev: noise.cell_input(h_prev, 0, hidden, &mut h_masked),
                h_prev_zero: w.h_prev_zero(p),
                h_carry: if noise.recurrent.is_empty() { &[] } else { h_prev },
                c_prev,
                h: &mut *h_t,
                c: &mut *c,
                extra,
                scratch: &mut scratch[..n * gh],
            };
            in_row_blocks(step, n, n * gh * hidden, &|s, r| s.split_rows(r), &|s| cell.forward_step(s))?;
            if noise.zones() {
                noise.zone_out(at.s, hidden, h_prev, h_t);
                noise.zone_out(at.s, hidden, c_prev, c);
            }
            keep.after_step(packing, p, reverse, at);
        }
    }
    Ok(keep.finish(h, packing, reverse, (h0, c0), noise))
}

/// Runs `cell` over the packed input `x: [N, I]` from `h0: [B, H]` and `c0: [B, H]` (empty for
/// cells without a cell state), from first step to last or, with `reverse`, from each
/// sequence's last step to its first, keeping everything backpropagation needs: [`walk`] in
/// [`Training`] mode. The weights must have been checked against the cell.
pub(crate) fn forward_sequence<F: Real, C: Cell<F>>(
    cell: &C,
    weights: &LayerWeights<F>,
    x: ArrayView2<F>,
    packing: &Packing,
    reverse: bool,
    h0: &[F],
    c0: &[F],
) -> Result<Trace<F>> {
    forward_with_noise(cell, weights, x, packing, reverse, h0, c0, Noise::none())
}

/// [`forward_sequence`] with recurrent dropout and zoneout ([`Noise`]), kept in the trace for
/// [`crate::rnn::backward_sequence`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_with_noise<F: Real, C: Cell<F>>(
    cell: &C,
    weights: &LayerWeights<F>,
    x: ArrayView2<F>,
    packing: &Packing,
    reverse: bool,
    h0: &[F],
    c0: &[F],
    noise: Noise<F>,
) -> Result<Trace<F>> {
    walk::<F, C, Training<F>>(cell, weights, None, x, packing, reverse, h0, c0, noise)
}

/// [`forward_sequence`] without what backpropagation needs ([`walk`] in [`Inference`] mode):
/// the same arithmetic (the same outputs, bit for bit), but the gates live only for a group of
/// steps, the cell state only for the current step, and a step reads the previous step's
/// outputs in place where it can. `transposed`, when given, must be [`Transposed::of`] these
/// weights.
#[allow(clippy::too_many_arguments)]
pub(crate) fn infer_sequence<F: Real, C: Cell<F>>(
    cell: &C,
    weights: &LayerWeights<F>,
    transposed: Option<&Transposed<F>>,
    x: ArrayView2<F>,
    packing: &Packing,
    reverse: bool,
    h0: &[F],
    c0: &[F],
) -> Result<Outputs<F>> {
    infer_with_noise(cell, weights, transposed, x, packing, reverse, h0, c0, Noise::none())
}

/// [`infer_sequence`] with `noise`: zoneout's expectation (masks are training's).
#[allow(clippy::too_many_arguments)]
pub(crate) fn infer_with_noise<F: Real, C: Cell<F>>(
    cell: &C,
    weights: &LayerWeights<F>,
    transposed: Option<&Transposed<F>>,
    x: ArrayView2<F>,
    packing: &Packing,
    reverse: bool,
    h0: &[F],
    c0: &[F],
    noise: Noise<F>,
) -> Result<Outputs<F>> {
    walk::<F, C, Inference<F>>(cell, weights, transposed, x, packing, reverse, h0, c0, noise)
}
