//! Backpropagation through time over a [`Trace`]: the time loop backwards (in shards or
//! over the whole batch), then the weight gradients as products over all steps.

use super::packing::{prev_state, StepRows};
use super::pass::{contiguous, zeros};
use super::shards::{in_row_blocks, shard_rows, shard_slices, shards};
use super::trace::{PrevRun, SequenceGrads, Trace};
use crate::error::{CoreError, Result};
use crate::kernels::linalg::{column_sums, gemm};
use crate::kernels::real::Real;
use crate::kernels::tensor::matrix;
use crate::rnn::cell::{BackwardStep, Cell, Dims};
use crate::rnn::weights::{LayerWeights, WeightGrads};
use ndarray::{Array1, Array2, ArrayView2};

/// `g[at..]`, or `g` itself when empty (a gradient that stands for zeros).
pub(super) fn rows_from<F>(g: &[F], at: usize) -> &[F] {
    if g.is_empty() {
        g
    } else {
        &g[at..]
    }
}

/// One shard's rows of the backward pass's buffers, per step, and its rows of the initial
/// states' gradients.
pub(super) struct BackwardShard<'a, F> {
    pub(super) seqs: (usize, usize),
    pub(super) dgx: Vec<&'a mut [F]>,
    pub(super) dgh: Vec<&'a mut [F]>,
    pub(super) d_h0: &'a mut [F],
    pub(super) d_c0: &'a mut [F],
}

/// What the time loop of [`backward_sequence`] reads.
pub(super) struct BackwardInputs<'a, F> {
    pub(super) w_hh: &'a [F],
    pub(super) b_hh: &'a [F],
    pub(super) trace: &'a Trace<F>,
    pub(super) d_output: &'a [F],
    pub(super) d_hn: &'a [F],
    pub(super) d_cn: &'a [F],
}

/// The time loop of [`backward_sequence`] for one shard's sequences (see [`shards`]); with
/// `split_rows` (the whole batch as one shard) each step's rows are split over the pool instead.
pub(super) fn backward_shard<F: Real, C: Cell<F>>(
    cell: &C,
    inp: &BackwardInputs<'_, F>,
    shard: BackwardShard<'_, F>,
    split_rows: bool,
) -> Result<()> {
    let BackwardShard { seqs, mut dgx, mut dgh, d_h0, d_c0 } = shard;
    let trace = inp.trace;
    let (packing, reverse, hidden) = (&trace.packing, trace.reverse, trace.dims.hidden);
    let (gh, width, has_c) = (cell.gates() * hidden, cell.extra() * hidden, cell.has_cell_state());
    let (b0, lb) = (seqs.0, seqs.1 - seqs.0);
    let state_len = if has_c { lb * hidden } else { 0 };
    let mut gates_t = zeros(lb * gh);
    let (mut dh, mut dh_prev) = (zeros(lb * hidden), zeros(lb * hidden));
    let (mut dc, mut dc_prev) = (zeros(state_len), zeros(state_len));
    let mut scratch = zeros(lb * gh);
    let (mut h_gather, mut c_gather) = (zeros(lb * hidden), zeros(state_len));
    let noise = &trace.noise;
    // The state the cells read through the recurrent dropout mask, and the total gradients of
    // the states a step ends in where zoneout lets part of them skip the cell.
    let masked_len = if noise.recurrent.is_empty() { 0 } else { lb * hidden };
    let (mut h_masked, mut dh_carry) = (zeros(masked_len), zeros(masked_len));
    let zone_len = if noise.zone.is_empty() { 0 } else { lb * hidden };
    let (mut dh_saved, mut dc_saved) = (zeros(zone_len), zeros(if has_c { zone_len } else { 0 }));
    let (h0, c0) = (&trace.h0[b0 * hidden..], if has_c { &trace.c0[b0 * hidden..] } else { &[][..] });
    let (d_hn, d_cn) = (rows_from(inp.d_hn, b0 * hidden), rows_from(inp.d_cn, b0 * hidden));
    let steps = packing.steps();
    for p in (0..steps).rev() {
        let t = packing.step(p, reverse);
        let (r0, m) = shard_rows(packing, t, seqs);
        if m == 0 {
            continue;
        }
        let (s, e) = (r0 * hidden, (r0 + m) * hidden);
        // Rows the next processed step carries on; for the others this is the final step.
        let next = (p + 1 < steps).then(|| packing.step(p + 1, reverse));
        let fin = next.map_or(0, |q| shard_rows(packing, q, seqs).1.min(m)) * hidden..m * hidden;
        match d_hn.is_empty() {
            true => dh[fin.clone()].fill(F::zero()),
            false => dh[fin.clone()].copy_from_slice(&d_hn[fin.clone()]),
        }
        if has_c {
            match d_cn.is_empty() {
                true => dc[fin.clone()].fill(F::zero()),
                false => dc[fin.clone()].copy_from_slice(&d_cn[fin]),
            }
        }
        if !inp.d_output.is_empty() {
            for (d, &g) in dh[..m * hidden].iter_mut().zip(&inp.d_output[s..e]) {
                *d = *d + g;
            }
        }
        let prev = (p > 0).then(|| packing.step(p - 1, reverse));
        let (rq, mq) = prev.map_or((0, 0), |q| shard_rows(packing, q, seqs));
        let at = StepRows { s: r0, n: m, prev_off: rq, from_prev: mq.min(m) };
        let h_carry = prev_state(&trace.h, &mut h_gather, at, h0, hidden);
        let h_prev = noise.cell_input(h_carry, b0, hidden, &mut h_masked);
        noise.split_grad(r0, hidden, &mut dh[..m * hidden], &mut dh_saved);
        if has_c {
            noise.split_grad(r0, hidden, &mut dc[..m * hidden], &mut dc_saved);
        }
        let (c_prev, c): (&[F], &[F]) =
            if has_c { (prev_state(&trace.c, &mut c_gather, at, c0, hidden), &trace.c[s..e]) } else { (&[], &[]) };
        let (dc_t, dc_prev_t): (&[F], &mut [F]) =
            if has_c { (&dc[..m * hidden], &mut dc_prev[..m * hidden]) } else { (&[], &mut []) };
        let gates = &mut gates_t[..m * gh];
        gates.copy_from_slice(dgx[t]);
        let dgh_t: &mut [F] = if dgh.is_empty() { &mut [] } else { &mut *dgh[t] };
        let step = BackwardStep {
            dims: Dims { batch: m, ..trace.dims },
            w_hh: inp.w_hh,
            b_hh: inp.b_hh,
            gates,
            h_prev,
            h_carry: if masked_len == 0 { &[] } else { h_carry },
            c_prev,
            h: &trace.h[s..e],
            c,
            extra: &trace.extra[r0 * width..(r0 + m) * width],
            dh: &dh[..m * hidden],
            dc: dc_t,
            dgx: &mut *dgx[t],
            dgh: dgh_t,
            dh_prev: &mut dh_prev[..m * hidden],
            dh_carry: &mut dh_carry[..masked_len.min(m * hidden)],
            dc_prev: dc_prev_t,
            scratch: &mut scratch[..m * gh],
        };
        if split_rows {
            in_row_blocks(step, m, m * gh * hidden, &|s, r| s.split_rows(r), &|s| cell.backward_step(s))?;
        } else {
            cell.backward_step(step)?;
        }
        noise.carry_grad((r0, b0), hidden, &dh_carry, &dh_saved, &mut dh_prev[..m * hidden]);
        if has_c {
            noise.carry_grad((r0, b0), hidden, &[], &dc_saved, &mut dc_prev[..m * hidden]);
        }
        // Rows that started this step from the initial state hand their gradient to it.
        let from_prev = at.from_prev * hidden;
        d_h0[from_prev..m * hidden].copy_from_slice(&dh_prev[from_prev..m * hidden]);
        if has_c {
            d_c0[from_prev..m * hidden].copy_from_slice(&dc_prev[from_prev..m * hidden]);
        }
        std::mem::swap(&mut dh, &mut dh_prev);
        std::mem::swap(&mut dc, &mut dc_prev);
    }
    Ok(())
}

/// Backpropagation through time over a [`Trace`] of the packed input `x: [N, I]`.
/// `d_output: [N, H]` is the gradient of the packed outputs, `d_hn`/`d_cn: [B, H]` those of the
/// final states; an empty slice stands for zeros. The gradient of `x` is computed only when
/// `input_grad` (otherwise `input` is `[0, I]`: a model does not need its own input's).
///
/// The trace is consumed: the gradient of each step's gates overwrites those gates (a step's
/// gates are read by that step only, from a copy of its rows), so backward holds no second
/// `[N, G·H]` buffer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_sequence<F: Real, C: Cell<F>>(
    cell: &C,
    weights: &LayerWeights<F>,
    x: ArrayView2<F>,
    trace: Trace<F>,
    d_output: &[F],
    d_hn: &[F],
    d_cn: &[F],
    input_grad: bool,
) -> Result<SequenceGrads<F>> {
    let mut trace = trace;
    trace.noise.check_differentiable()?;
    let mut dgx = std::mem::take(&mut trace.gates);
    let Dims { batch, input, hidden } = trace.dims;
    let packing = &trace.packing;
    let rows = packing.rows();
    let gh = cell.gates() * hidden;
    let bh = batch * hidden;
    let width = cell.extra() * hidden;
    let has_c = cell.has_cell_state();
    for (what, g, len) in [("grad_output", d_output, rows * hidden), ("grad_h_n", d_hn, bh), ("grad_c_n", d_cn, bh)] {
        if !g.is_empty() && g.len() != len {
            return Err(CoreError::shape(what, format!("{len} values"), format!("{} values", g.len())));
        }
    }
    let state_len = if has_c { bh } else { 0 };

    // The recurrent pre-activations' gradient where it differs from dgx's (its last blocks).
    let dgh_width = cell.recurrent_grad_blocks() * hidden;
    let mut dgh = zeros(rows * dgh_width);
    let (mut d_h0, mut d_c0) = (zeros(bh), zeros(state_len));
    // The backward recurrent product streams W_hh's column panels (packed once per pass).
    let w_hh = crate::kernels::packed::pack(weights.weight_hh);
    let b_hh = weights.bias_hh.as_standard_layout();
    let (w_hh, b_hh) = (&w_hh[..], contiguous("bias_hh", b_hh.as_slice())?);

    // The time loop in shards of sequences, or over the whole batch as one shard.
    let bounds = shards(packing, gh * (input + hidden));
    let mut dgh_shards = shard_slices(&mut dgh, dgh_width, packing, &bounds).into_iter();
    let (mut d_h0_rest, mut d_c0_rest) = (&mut d_h0[..], &mut d_c0[..]);
    let c_width = if has_c { hidden } else { 0 };
    let mut shards = Vec::with_capacity(bounds.len() - 1);
    for (j, dgx) in shard_slices(&mut dgx, gh, packing, &bounds).into_iter().enumerate() {
        let lb = bounds[j + 1] - bounds[j];
        let (d_h0, rest) = std::mem::take(&mut d_h0_rest).split_at_mut(lb * hidden);
        d_h0_rest = rest;
        let (d_c0, rest) = std::mem::take(&mut d_c0_rest).split_at_mut(lb * c_width);
        d_c0_rest = rest;
        let dgh = dgh_shards.next().unwrap_or_default();
        shards.push(BackwardShard { seqs: (bounds[j], bounds[j + 1]), dgx, dgh, d_h0, d_c0 });
    }
    let inp = BackwardInputs { w_hh, b_hh, trace: &trace, d_output, d_hn, d_cn };
    if shards.len() > 1 {
        use rayon::prelude::*;
        shards.into_par_iter().map(|shard| backward_shard(cell, &inp, shard, false)).collect::<Result<Vec<()>>>()?;
    } else {
        shards.into_iter().try_for_each(|shard| backward_shard(cell, &inp, shard, true))?;
    }

    let dgx_m = matrix("dgx", &dgx, rows, gh)?;
    let dgh_m = matrix("dgh", &dgh, rows, dgh_width)?;
    // Products accumulate into fresh zeros (β = 1): one pass of zeroing, not two.
    let mut weight_ih = Array2::zeros((gh, input));
    gemm(F::one(), dgx_m.t(), x, F::one(), weight_ih.view_mut());
    let mut weight_hh = Array2::zeros((gh, hidden));
    // The states the cells read: through the recurrent dropout mask when there is one.
    let (h_read, h0_read) = masked_states(&trace);
    let h = matrix("h", h_read.as_deref().unwrap_or(&trace.h), rows, hidden)?;
    let h0 = matrix("h0", h0_read.as_deref().unwrap_or(&trace.h0), batch, hidden)?;
    let extra = matrix("extra", &trace.extra, rows, width)?;
    // Σ over steps of dghᵀ · (the state each step started from), one product per run of rows.
    for PrevRun { r0, len, from_h, src0 } in trace.prev_runs() {
        let src = if from_h { h } else { h0 };
        let rows = ndarray::s![r0..r0 + len, ..];
        let (dgx_r, dgh_r, extra_r) = (dgx_m.slice(rows), dgh_m.slice(rows), extra.slice(rows));
        let src_r = src.slice(ndarray::s![src0..src0 + len, ..]);
        cell.weight_hh_grad(dgx_r, dgh_r, src_r, extra_r, weight_hh.view_mut())?;
    }
    let mut bias_ih = Array1::zeros(gh);
    column_sums(dgx_m, bias_ih.view_mut());
    // b_hh's gradient is b_ih's (the same sums) except in the blocks where `dgh` differs.
    let split = gh - dgh_width;
    let mut bias_hh = bias_ih.clone();
    column_sums(dgh_m, bias_hh.slice_mut(ndarray::s![split..]));
    let mut d_input = Array2::zeros((if input_grad { rows } else { 0 }, input));
    if input_grad {
        gemm(F::one(), dgx_m, weights.weight_ih, F::one(), d_input.view_mut());
    }

    Ok(SequenceGrads {
        input: d_input,
        h0: d_h0,
        c0: d_c0,
        weights: WeightGrads { weight_ih, weight_hh, bias_ih, bias_hh },
    })
}

/// The trace's hidden states `h: [N, H]` and `h0: [B, H]` times their sequences' recurrent
/// dropout mask, as the cells read them; `None` without one.
#[allow(clippy::type_complexity)]
fn masked_states<F: Real>(trace: &Trace<F>) -> (Option<Vec<F>>, Option<Vec<F>>) {
    let mask = &trace.noise.recurrent;
    if mask.is_empty() {
        return (None, None);
    }
    let (packing, hidden) = (&trace.packing, trace.dims.hidden);
    let mut h = trace.h.clone();
    for t in 0..packing.steps() {
        let at = packing.offset(t) * hidden;
        let rows = &mut h[at..at + packing.rows_at(t) * hidden];
        rows.iter_mut().zip(mask).for_each(|(v, &m)| *v = *v * m);
    }
    let h0 = trace.h0.iter().zip(mask).map(|(&v, &m)| v * m).collect();
    (Some(h), Some(h0))
}
