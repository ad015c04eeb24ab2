//! The time-loop driver: runs any [`Cell`] over a batch of sequences, forward and backward,
//! in either direction, with sequences of different lengths.
//!
//! Rows are packed time-major as in PyTorch's `PackedSequence`: the batch is sorted by
//! decreasing length and step `t` holds the first `batch_sizes[t]` sequences (see
//! [`Packing`]), so padded steps cost nothing. The input projection of all steps is one product
//! `[N, I] × [I, G·H]` over the `N` packed rows; only the recurrent product runs per step; the
//! weight gradients are products over all steps at the end. Every buffer is allocated before
//! the loop starts.

use super::lanes::{in_row_blocks, lane_rows, lane_slices, lane_state, lanes};
use super::packing::{step_state, Packing, StepRows};
use super::pass::{check_pass, contiguous, input_rows, projection_groups, zeros, Prepared, Transposed};
use super::trace::Trace;
use crate::error::Result;
use crate::kernels::real::Real;
use crate::rnn::cell::{Cell, Dims, ForwardStep};
use crate::rnn::weights::LayerWeights;
use ndarray::ArrayView2;

/// One lane's rows of the forward pass's buffers, per step.
pub(super) struct ForwardLane<'a, F> {
    pub(super) seqs: (usize, usize),
    pub(super) gates: Vec<&'a mut [F]>,
    pub(super) h: Vec<&'a mut [F]>,
    pub(super) c: Vec<&'a mut [F]>,
    pub(super) extra: Vec<&'a mut [F]>,
}

/// The time loop of [`forward_sequence`] for one lane's sequences (see [`lanes`]), projecting
/// each step's input rows just before the step.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_lane<F: Real, C: Cell<F>>(
    cell: &C,
    w: &Prepared<'_, F>,
    x: &[F],
    packing: &Packing,
    reverse: bool,
    dims: Dims,
    lane: ForwardLane<'_, F>,
    h0: &[F],
    c0: &[F],
) -> Result<()> {
    let ForwardLane { seqs, mut gates, mut h, mut c, mut extra } = lane;
    let (input, hidden) = (dims.input, dims.hidden);
    let (gh, lb, has_c) = (w.gh, seqs.1 - seqs.0, cell.has_cell_state());
    let mut scratch = zeros(lb * gh);
    let mut h_gather = zeros(lb * hidden);
    let mut c_gather = zeros(if has_c { lb * hidden } else { 0 });
    let (w_hh, b_hh) = (contiguous("weight_hh", w.w_hh.as_slice())?, contiguous("bias_hh", w.b_hh.as_slice())?);
    let (h0, c0) = (&h0[seqs.0 * hidden..], if has_c { &c0[seqs.0 * hidden..] } else { &[][..] });
    let mut prev: Option<usize> = None;
    for p in 0..packing.steps() {
        let t = packing.step(p, reverse);
        let (r0, m) = lane_rows(packing, t, seqs);
        if m == 0 {
            prev = Some(t);
            continue;
        }
        w.project(&x[r0 * input..(r0 + m) * input], gates[t], false)?;
        let from_prev = prev.map_or(0, |q| lane_rows(packing, q, seqs).1.min(m));
        let at = (prev, t, from_prev, m);
        let (h_prev, h_t) = lane_state(&mut h, &mut h_gather, at, h0, hidden);
        let (c_prev, c_t): (&[F], &mut [F]) =
            if has_c { lane_state(&mut c, &mut c_gather, at, c0, hidden) } else { (&[], &mut []) };
        let step = ForwardStep {
            dims: Dims { batch: m, ..dims },
            w_hh,
            w_hh_t: &w.w_hh_t,
            b_hh,
            gates: &mut *gates[t],
            h_prev,
            c_prev,
            h: h_t,
            c: c_t,
            extra: &mut *extra[t],
            scratch: &mut scratch[..m * gh],
        };
        cell.forward_step(step)?;
        prev = Some(t);
    }
    Ok(())
}

/// Runs `cell` over the packed input `x: [N, I]` from `h0: [B, H]` and `c0: [B, H]` (empty for
/// cells without a cell state), from first step to last or, with `reverse`, from each
/// sequence's last step to its first, keeping everything backpropagation needs. The weights
/// must have been checked against the cell.
pub(crate) fn forward_sequence<F: Real, C: Cell<F>>(
    cell: &C,
    weights: &LayerWeights<F>,
    x: ArrayView2<F>,
    packing: &Packing,
    reverse: bool,
    h0: &[F],
    c0: &[F],
) -> Result<Trace<F>> {
    let hidden = weights.weight_hh.ncols();
    check_pass(cell, &x, packing, hidden, h0, c0)?;
    let (rows, input) = x.dim();
    let gh = cell.gates() * hidden;
    let batch = packing.batch();
    let has_c = cell.has_cell_state();
    let dims = Dims { batch, input, hidden };
    let width = cell.extra() * hidden;
    let w = Prepared::new(weights, cell.gates(), packing, None)?;
    let x = x.as_standard_layout();

    let state_len = if has_c { rows * hidden } else { 0 };
    let mut gates = zeros(rows * gh);
    let mut h = zeros(rows * hidden);
    let mut c = zeros(state_len);
    let mut extra = zeros(rows * width);

    let bounds = lanes(packing, gh * (input + hidden));
    if bounds.len() > 2 {
        use rayon::prelude::*;
        let state_width = if has_c { hidden } else { 0 };
        let lanes: Vec<ForwardLane<'_, F>> = lane_slices(&mut gates, gh, packing, &bounds)
            .into_iter()
            .zip(lane_slices(&mut h, hidden, packing, &bounds))
            .zip(lane_slices(&mut c, state_width, packing, &bounds))
            .zip(lane_slices(&mut extra, width, packing, &bounds))
            .enumerate()
            .map(|(j, (((gates, h), c), extra))| ForwardLane { seqs: (bounds[j], bounds[j + 1]), gates, h, c, extra })
            .collect();
        let xs = input_rows(&x, 0, rows)?;
        lanes
            .into_par_iter()
            .map(|lane| forward_lane(cell, &w, xs, packing, reverse, dims, lane, h0, c0))
            .collect::<Result<Vec<()>>>()?;
        let (h0, c0) = (h0.to_vec(), if has_c { c0.to_vec() } else { Vec::new() });
        return Ok(Trace { dims, packing: packing.clone(), reverse, gates, h, c, h0, c0, extra });
    }
    // One lane: the input projected a group of steps at a time, each step's rows split over the
    // pool. The states of steps where some sequences start (variable lengths, reverse) are
    // gathered.
    let mut h_gather = zeros(batch * hidden);
    let mut c_gather = zeros(if has_c { batch * hidden } else { 0 });
    let mut scratch = zeros(batch * gh);
    let (w_hh, b_hh) = (contiguous("weight_hh", w.w_hh.as_slice())?, contiguous("bias_hh", w.b_hh.as_slice())?);
    for (p0, p1, r0, r1) in projection_groups(packing, reverse, gh, std::mem::size_of::<F>()) {
        w.project(input_rows(&x, r0, r1)?, &mut gates[r0 * gh..r1 * gh], true)?;
        for p in p0..p1 {
            let (_, at) = StepRows::of(packing, p, reverse);
            let (n, off) = (at.n, at.s);
            let (h_prev, h_t) = step_state(&mut h, &mut h_gather, at, h0, hidden);
            let (c_prev_t, c_t): (&[F], &mut [F]) =
                if has_c { step_state(&mut c, &mut c_gather, at, c0, hidden) } else { (&[], &mut []) };
            let step = ForwardStep {
                dims: Dims { batch: n, ..dims },
                w_hh,
                w_hh_t: &w.w_hh_t,
                b_hh,
                gates: &mut gates[off * gh..(off + n) * gh],
                h_prev,
                c_prev: c_prev_t,
                h: h_t,
                c: c_t,
                extra: &mut extra[off * width..(off + n) * width],
                scratch: &mut scratch[..n * gh],
            };
            in_row_blocks(step, n, n * gh * hidden, &|s, r| s.split_rows(r), &|s| cell.forward_step(s))?;
        }
    }
    let (h0, c0) = (h0.to_vec(), if has_c { c0.to_vec() } else { Vec::new() });
    Ok(Trace { dims, packing: packing.clone(), reverse, gates, h, c, h0, c0, extra })
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

/// [`forward_sequence`] without what backpropagation needs: the same arithmetic (the same
/// outputs, bit for bit), but the gates live only for a group of steps, the cell state only
/// for the current step, and a step reads the previous step's outputs in place where it can.
/// `transposed`, when given, must be [`Transposed::of`] these weights.
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
    let hidden = weights.weight_hh.ncols();
    check_pass(cell, &x, packing, hidden, h0, c0)?;
    let (rows, input) = x.dim();
    let gh = cell.gates() * hidden;
    let batch = packing.batch();
    let bh = batch * hidden;
    let has_c = cell.has_cell_state();
    let dims = Dims { batch, input, hidden };
    let width = cell.extra() * hidden;
    let w = Prepared::new(weights, cell.gates(), packing, transposed)?;
    let x = x.as_standard_layout();
    let groups = projection_groups(packing, reverse, gh, std::mem::size_of::<F>());
    let group_rows = groups.iter().map(|g| g.3 - g.2).max().unwrap_or(0);

    let mut gates = zeros(group_rows * gh);
    let mut h = zeros(rows * hidden);
    let mut h_gather = zeros(bh);
    let state_len = if has_c { bh } else { 0 };
    let (mut c_prev, mut c, mut c_n) = (zeros(state_len), zeros(state_len), zeros(state_len));
    let mut extra = zeros(batch * width);
    let mut scratch = zeros(batch * gh);
    let (w_hh, b_hh) = (contiguous("weight_hh", w.w_hh.as_slice())?, contiguous("bias_hh", w.b_hh.as_slice())?);
    let steps = packing.steps();

    for (p0, p1, r0, r1) in groups {
        let group = &mut gates[..(r1 - r0) * gh];
        w.project(input_rows(&x, r0, r1)?, group, true)?;
        for p in p0..p1 {
            let (_, at) = StepRows::of(packing, p, reverse);
            let (n, off) = (at.n, at.s);
            // The state the step starts from: the previous step's rows in place when every
            // sequence carries on, else gathered with the initial state of those that start.
            let (h_prev, h_t) = step_state(&mut h, &mut h_gather, at, h0, hidden);
            if has_c {
                let split = at.from_prev * hidden;
                c_prev[split..n * hidden].copy_from_slice(&c0[split..n * hidden]);
            }
            let step = ForwardStep {
                dims: Dims { batch: n, ..dims },
                w_hh,
                w_hh_t: &w.w_hh_t,
                b_hh,
                gates: &mut group[(off - r0) * gh..(off - r0 + n) * gh],
                h_prev,
                c_prev: &c_prev[..state_len.min(n * hidden)],
                h: h_t,
                c: &mut c[..state_len.min(n * hidden)],
                extra: &mut extra[..n * width],
                scratch: &mut scratch[..n * gh],
            };
            in_row_blocks(step, n, n * gh * hidden, &|s, r| s.split_rows(r), &|s| cell.forward_step(s))?;
            if has_c {
                // Sequences the next step does not carry on end here: keep their cell state.
                let carried = if p + 1 < steps { packing.rows_at(packing.step(p + 1, reverse)).min(n) } else { 0 };
                c_n[carried * hidden..n * hidden].copy_from_slice(&c[carried * hidden..n * hidden]);
                std::mem::swap(&mut c_prev, &mut c);
            }
        }
    }
    let trace_rows = |b: usize| packing.offset(if reverse { 0 } else { packing.length(b) - 1 }) + b;
    let mut h_n = Vec::with_capacity(bh);
    for b in 0..batch {
        let r = trace_rows(b);
        h_n.extend_from_slice(&h[r * hidden..(r + 1) * hidden]);
    }
    Ok(Outputs { h, h_n, c_n })
}
