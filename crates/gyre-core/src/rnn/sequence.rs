//! The time-loop driver: runs any [`Cell`] over a batch of sequences, forward and backward,
//! in either direction, with sequences of different lengths.
//!
//! Rows are packed time-major as in PyTorch's `PackedSequence`: the batch is sorted by
//! decreasing length and step `t` holds the first `batch_sizes[t]` sequences (see
//! [`Packing`]), so padded steps cost nothing. The input projection of all steps is one product
//! `[N, I] × [I, G·H]` over the `N` packed rows; only the recurrent product runs per step; the
//! weight gradients are products over all steps at the end. Every buffer is allocated before
//! the loop starts.

use crate::error::{CoreError, Result};
use crate::kernels::linalg::{column_sums, gemm};
use crate::kernels::packed::{pack_transposed, packed_len};
use crate::kernels::real::Real;
use crate::kernels::tensor::matrix;
use crate::rnn::cell::{BackwardStep, Cell, Dims, ForwardStep};
use crate::rnn::weights::{LayerWeights, WeightGrads};
use ndarray::{Array1, Array2, ArrayView2};

/// Layout of a batch of sequences sorted by decreasing length, packed time-major: step `t`
/// holds rows `offset(t) .. offset(t) + rows_at(t)`, the first `rows_at(t)` sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packing {
    batch_sizes: Vec<usize>,
    offsets: Vec<usize>,
}

impl Packing {
    /// Every one of `batch` sequences has `steps` steps (plain time-major layout).
    pub fn uniform(batch: usize, steps: usize) -> Result<Self> {
        crate::kernels::tensor::positive("batch", batch)?;
        crate::kernels::tensor::positive("steps", steps)?;
        Self::from_batch_sizes(vec![batch; steps])
    }

    /// Sequences of the given lengths, which must be positive and non-increasing (sort the
    /// batch by decreasing length first).
    pub fn from_sorted_lengths(lengths: &[usize]) -> Result<Self> {
        let Some(&steps) = lengths.first() else {
            return Err(CoreError::invalid("lengths", "a non-empty list", "[]"));
        };
        for (i, w) in lengths.windows(2).enumerate() {
            if w[1] > w[0] {
                return Err(CoreError::invalid(
                    "lengths",
                    "sorted in decreasing order",
                    format!("{} after {} at index {}", w[1], w[0], i + 1),
                ));
            }
        }
        if let Some(i) = lengths.iter().position(|&l| l == 0) {
            return Err(CoreError::invalid(format!("lengths[{i}]"), "a positive integer", 0));
        }
        let batch_sizes = (0..steps).map(|t| lengths.iter().take_while(|&&l| l > t).count()).collect();
        Self::from_batch_sizes(batch_sizes)
    }

    fn from_batch_sizes(batch_sizes: Vec<usize>) -> Result<Self> {
        let mut offsets = Vec::with_capacity(batch_sizes.len() + 1);
        let mut total = 0usize;
        for &b in &batch_sizes {
            offsets.push(total);
            total =
                total.checked_add(b).ok_or_else(|| CoreError::invalid("batch × steps", "representable", "overflow"))?;
        }
        offsets.push(total);
        Ok(Packing { batch_sizes, offsets })
    }

    /// Number of sequences `B`.
    pub fn batch(&self) -> usize {
        self.batch_sizes.first().copied().unwrap_or(0)
    }

    /// Number of steps `T` of the longest sequence.
    pub fn steps(&self) -> usize {
        self.batch_sizes.len()
    }

    /// Total packed rows `N` (the sum of the lengths).
    pub fn rows(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Sequences still running at step `t`.
    pub fn rows_at(&self, t: usize) -> usize {
        self.batch_sizes[t]
    }

    /// First packed row of step `t`.
    pub fn offset(&self, t: usize) -> usize {
        self.offsets[t]
    }

    /// Length of sequence `b`.
    pub fn length(&self, b: usize) -> usize {
        self.batch_sizes.iter().take_while(|&&n| n > b).count()
    }

    /// The step processed `p`-th: `p` forwards, `T − 1 − p` in reverse.
    fn step(&self, p: usize, reverse: bool) -> usize {
        if reverse {
            self.steps() - 1 - p
        } else {
            p
        }
    }
}

/// Everything the forward pass of one sequence batch keeps for backpropagation; `N` rows
/// packed as described by [`Packing`].
#[derive(Clone, Debug)]
pub struct Trace<F> {
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
    pub fn outputs(&self) -> &[F] {
        &self.h
    }

    /// Where each packed row's starting state is, as runs `(r0, len, from_h, src0)`: rows
    /// `r0..r0 + len` started from rows `src0..src0 + len` of [`Trace::h`] (the previous
    /// step's, `from_h`) or of the initial state. Consecutive steps whose rows continue
    /// contiguously share a run (one run per direction for sequences of equal length, plus the
    /// first step's).
    pub fn prev_runs(&self) -> Vec<(usize, usize, bool, usize)> {
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
    pub fn final_hidden(&self) -> Vec<F> {
        self.gather_final(&self.h)
    }

    /// `[B, H]` each sequence's final cell state (empty for cells without one).
    pub fn final_cell(&self) -> Vec<F> {
        if self.c.is_empty() {
            return Vec::new();
        }
        self.gather_final(&self.c)
    }
}

/// Gradients of one sequence batch.
#[derive(Clone, Debug)]
pub struct SequenceGrads<F> {
    /// `[N, I]` gradient of the packed input.
    pub input: Array2<F>,
    /// `[B, H]` gradient of the initial hidden state.
    pub h0: Vec<F>,
    /// `[B, H]` gradient of the initial cell state (empty for cells without one).
    pub c0: Vec<F>,
    /// Gradients of the weights.
    pub weights: WeightGrads<F>,
}

/// The slice of an array made standard-layout (always present; an error, not a panic, if not).
fn contiguous<'a, F>(what: &str, s: Option<&'a [F]>) -> Result<&'a [F]> {
    s.ok_or_else(|| CoreError::shape(what, "a contiguous row-major layout", "a strided view"))
}

fn zeros<F: Real>(len: usize) -> Vec<F> {
    crate::kernels::threads::zeroed(len)
}

/// Copies the `[rows, H]` state a step starts from into `dst`: the first `from_prev` rows from
/// the previous step's `src` rows, the rest from the initial state `init`.
fn gather_state<F: Real>(dst: &mut [F], src: &[F], from_prev: usize, init: &[F], hidden: usize) {
    let (split, end) = (from_prev * hidden, dst.len());
    dst[..split].copy_from_slice(&src[..split]);
    dst[split..].copy_from_slice(&init[split..end]);
}

/// Where one step of `n` rows stands among the packed rows: its own rows start at row `s`; the
/// previous step's at row `prev_off`, of which the first `from_prev` carry on (the others
/// start from the initial state).
#[derive(Clone, Copy)]
struct StepRows {
    s: usize,
    n: usize,
    prev_off: usize,
    from_prev: usize,
}

impl StepRows {
    /// Step `p` in processing order (`reverse` or not) of the whole batch: its time index and
    /// rows.
    fn of(packing: &Packing, p: usize, reverse: bool) -> (usize, StepRows) {
        let t = packing.step(p, reverse);
        let (n, s) = (packing.rows_at(t), packing.offset(t));
        let prev = (p > 0).then(|| packing.step(p - 1, reverse));
        let from_prev = prev.map_or(0, |q| packing.rows_at(q).min(n));
        (t, StepRows { s, n, prev_off: prev.map_or(0, |q| packing.offset(q)), from_prev })
    }

    /// Whether every row carries on from the previous step (its rows can be read in place).
    fn carried(&self) -> bool {
        self.from_prev == self.n
    }
}

/// The `[n, H]` state a step starts from, read from the packed states `buf`: the previous
/// step's rows in place when every row carries on, else gathered with the initial state's
/// rows `init` into `gather`.
fn prev_state<'a, F: Real>(buf: &'a [F], gather: &'a mut [F], at: StepRows, init: &[F], hidden: usize) -> &'a [F] {
    let (prev, len) = (at.prev_off * hidden, at.n * hidden);
    if at.carried() {
        return &buf[prev..prev + len];
    }
    gather_state(&mut gather[..len], &buf[prev..], at.from_prev, init, hidden);
    &gather[..len]
}

/// As [`prev_state`], and the step's own rows of `buf` to write.
fn step_state<'a, F: Real>(
    buf: &'a mut [F],
    gather: &'a mut [F],
    at: StepRows,
    init: &[F],
    hidden: usize,
) -> (&'a [F], &'a mut [F]) {
    let (s, prev, len) = (at.s * hidden, at.prev_off * hidden, at.n * hidden);
    if at.carried() {
        if prev < s {
            let (a, b) = buf.split_at_mut(s);
            return (&a[prev..prev + len], &mut b[..len]);
        }
        let (a, b) = buf.split_at_mut(prev);
        return (&b[..len], &mut a[s..s + len]);
    }
    gather_state(&mut gather[..len], &buf[prev..], at.from_prev, init, hidden);
    (&gather[..len], &mut buf[s..s + len])
}

/// A pass of at least this many sequences per lane and multiply-adds runs its time loop in
/// lanes (any size in unit tests, so that they run lanes whenever a pool has threads).
const LANE_MIN_SEQUENCES: usize = 4;
#[cfg(not(test))]
const LANE_MIN_WORK: usize = 1 << 22;
#[cfg(test)]
const LANE_MIN_WORK: usize = 1;

/// The sequences of each lane, `bounds[j]..bounds[j + 1]`, for a pass of `work_per_row`
/// multiply-adds per packed row: one lane per pool thread when the pass is large enough, each
/// with about the same number of rows. A lane runs the whole time loop of its sequences on one
/// thread without waiting for the others (rows of different sequences never meet), instead of
/// every step being split and joined (a synchronization per step). Each row's arithmetic is
/// the same in any lane, so the result does not depend on the lanes.
fn lanes(packing: &Packing, work_per_row: usize) -> Vec<usize> {
    let (batch, rows) = (packing.batch(), packing.rows());
    let threads = if crate::kernels::threads::can_split() { rayon::current_num_threads() } else { 1 };
    let parts = threads.min(batch / LANE_MIN_SEQUENCES);
    if parts < 2 || rows * work_per_row < LANE_MIN_WORK {
        return vec![0, batch];
    }
    let mut bounds = vec![0];
    let mut prefix = 0;
    for b in 0..batch - 1 {
        prefix += packing.length(b);
        if bounds.len() < parts && prefix * parts >= bounds.len() * rows {
            bounds.push(b + 1);
        }
    }
    bounds.push(batch);
    bounds
}

/// Lane `b0..b1`'s rows at step `t`: the first packed row and how many.
fn lane_rows(packing: &Packing, t: usize, (b0, b1): (usize, usize)) -> (usize, usize) {
    let n = packing.rows_at(t);
    (packing.offset(t) + b0.min(n), b1.min(n) - b0.min(n))
}

/// `buf: [N, width]` cut into each lane's rows of each step: `out[lane][t]`.
fn lane_slices<'a, F>(
    mut buf: &'a mut [F],
    width: usize,
    packing: &Packing,
    bounds: &[usize],
) -> Vec<Vec<&'a mut [F]>> {
    let lanes = bounds.len() - 1;
    let mut out: Vec<Vec<&'a mut [F]>> = (0..lanes).map(|_| Vec::with_capacity(packing.steps())).collect();
    for t in 0..packing.steps() {
        let n = packing.rows_at(t);
        for (j, lane) in out.iter_mut().enumerate() {
            let len = (bounds[j + 1].min(n) - bounds[j].min(n)) * width;
            let (a, rest) = std::mem::take(&mut buf).split_at_mut(len);
            lane.push(a);
            buf = rest;
        }
    }
    out
}

/// `v[read]` to read and `v[write]` to write (`read != write`).
fn read_write<'s, T>(v: &'s mut [&mut [T]], read: usize, write: usize) -> (&'s [T], &'s mut [T]) {
    if read < write {
        let (a, b) = v.split_at_mut(write);
        (&*a[read], &mut *b[0])
    } else {
        let (a, b) = v.split_at_mut(read);
        (&*b[0], &mut *a[write])
    }
}

/// The state lane step `t` (of `m` rows) starts from and its own rows to write, from the lane's
/// per-step rows `v`: step `prev`'s rows in place when all `m` carry on, else the `from_prev`
/// that do and the initial state's rows `init` for the others, gathered into `gather`.
fn lane_state<'s, F: Real>(
    v: &'s mut [&mut [F]],
    gather: &'s mut [F],
    (prev, t, from_prev, m): (Option<usize>, usize, usize, usize),
    init: &[F],
    hidden: usize,
) -> (&'s [F], &'s mut [F]) {
    let len = m * hidden;
    match prev {
        Some(q) if from_prev == m => {
            let (a, b) = read_write(v, q, t);
            (&a[..len], b)
        }
        _ => {
            let src: &[F] = prev.map_or(&[], |q| &v[q][..]);
            gather_state(&mut gather[..len], src, from_prev, init, hidden);
            (&gather[..len], &mut *v[t])
        }
    }
}

/// One lane's rows of the forward pass's buffers, per step.
struct ForwardLane<'a, F> {
    seqs: (usize, usize),
    gates: Vec<&'a mut [F]>,
    h: Vec<&'a mut [F]>,
    c: Vec<&'a mut [F]>,
    extra: Vec<&'a mut [F]>,
}

/// The time loop of [`forward_sequence`] for one lane's sequences (see [`lanes`]), projecting
/// each step's input rows just before the step.
#[allow(clippy::too_many_arguments)]
fn forward_lane<F: Real, C: Cell<F>>(
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

/// `g[at..]`, or `g` itself when empty (a gradient that stands for zeros).
fn rows_from<F>(g: &[F], at: usize) -> &[F] {
    if g.is_empty() {
        g
    } else {
        &g[at..]
    }
}

/// One lane's rows of the backward pass's buffers, per step, and its rows of the initial
/// states' gradients.
struct BackwardLane<'a, F> {
    seqs: (usize, usize),
    dgx: Vec<&'a mut [F]>,
    dgh: Vec<&'a mut [F]>,
    d_h0: &'a mut [F],
    d_c0: &'a mut [F],
}

/// What the time loop of [`backward_sequence`] reads.
struct BackwardInputs<'a, F> {
    w_hh: &'a [F],
    b_hh: &'a [F],
    trace: &'a Trace<F>,
    d_output: &'a [F],
    d_hn: &'a [F],
    d_cn: &'a [F],
}

/// The time loop of [`backward_sequence`] for one lane's sequences (see [`lanes`]); with
/// `split_rows` (the whole batch as one lane) each step's rows are split over the pool instead.
fn backward_lane<F: Real, C: Cell<F>>(
    cell: &C,
    inp: &BackwardInputs<'_, F>,
    lane: BackwardLane<'_, F>,
    split_rows: bool,
) -> Result<()> {
    let BackwardLane { seqs, mut dgx, mut dgh, d_h0, d_c0 } = lane;
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
    let (h0, c0) = (&trace.h0[b0 * hidden..], if has_c { &trace.c0[b0 * hidden..] } else { &[][..] });
    let (d_hn, d_cn) = (rows_from(inp.d_hn, b0 * hidden), rows_from(inp.d_cn, b0 * hidden));
    let steps = packing.steps();
    for p in (0..steps).rev() {
        let t = packing.step(p, reverse);
        let (r0, m) = lane_rows(packing, t, seqs);
        if m == 0 {
            continue;
        }
        let (s, e) = (r0 * hidden, (r0 + m) * hidden);
        // Rows the next processed step carries on; for the others this is the final step.
        let next = (p + 1 < steps).then(|| packing.step(p + 1, reverse));
        let fin = next.map_or(0, |q| lane_rows(packing, q, seqs).1.min(m)) * hidden..m * hidden;
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
        let (rq, mq) = prev.map_or((0, 0), |q| lane_rows(packing, q, seqs));
        let at = StepRows { s: r0, n: m, prev_off: rq, from_prev: mq.min(m) };
        let h_prev = prev_state(&trace.h, &mut h_gather, at, h0, hidden);
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
            c_prev,
            h: &trace.h[s..e],
            c,
            extra: &trace.extra[r0 * width..(r0 + m) * width],
            dh: &dh[..m * hidden],
            dc: dc_t,
            dgx: &mut *dgx[t],
            dgh: dgh_t,
            dh_prev: &mut dh_prev[..m * hidden],
            dc_prev: dc_prev_t,
            scratch: &mut scratch[..m * gh],
        };
        if split_rows {
            in_row_blocks(step, m, m * gh * hidden, &|s, r| s.split_rows(r), &|s| cell.backward_step(s))?;
        } else {
            cell.backward_step(step)?;
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

/// Below this many multiply-adds a step (or a projection) runs on the calling thread: waking a
/// pool thread costs about as much as a few microseconds of products. Any size splits in unit
/// tests.
#[cfg(not(test))]
const PARALLEL_STEP_MIN_FLOPS: usize = 1 << 20;
#[cfg(test)]
const PARALLEL_STEP_MIN_FLOPS: usize = 1;

/// Runs one step of `n` batch rows, split into blocks of rows over the rayon pool when it is
/// large enough (rows are independent; the blocks are halved recursively with `rayon::join`,
/// which allocates nothing). Each row's arithmetic is the same in any block, so the result does
/// not depend on the number of threads.
fn in_row_blocks<S: Send>(
    step: S,
    n: usize,
    flops: usize,
    split: &(dyn Fn(S, usize) -> (S, S) + Sync),
    run: &(dyn Fn(S) -> Result<()> + Sync),
) -> Result<()> {
    if !crate::kernels::threads::can_split() || n < 8 || flops < PARALLEL_STEP_MIN_FLOPS {
        return run(step);
    }
    fn go<S: Send>(
        step: S,
        n: usize,
        parts: usize,
        split: &(dyn Fn(S, usize) -> (S, S) + Sync),
        run: &(dyn Fn(S) -> Result<()> + Sync),
    ) -> Result<()> {
        if parts <= 1 || n < 8 {
            return run(step);
        }
        let left = (n * (parts / 2)).div_ceil(parts).next_multiple_of(4).min(n);
        let (a, b) = split(step, left);
        let (ra, rb) =
            rayon::join(|| go(a, left, parts / 2, split, run), || go(b, n - left, parts - parts / 2, split, run));
        ra.and(rb)
    }
    go(step, n, rayon::current_num_threads(), split, run)
}

/// Passes of at least this many steps run the recurrent product on a packed transposed copy
/// of `W_hh`; shorter ones (a stream's single step) use dot products over `W_hh`'s rows, with
/// no copy. A single sequence of 16 steps (lstm-s) already repays the copy: +49% batch-1
/// inference, +3% training, against dot products.
const TRANSPOSE_MIN_STEPS: usize = 3;

/// Gate pre-activations projected from the input at a time, in bytes: a group of steps is
/// projected just before it runs, so its gates are still in the core's L2 cache when the
/// recurrent product adds to them (at least one step per group). Unit tests use a tiny size, so
/// that every pass they run is split into several groups.
#[cfg(not(test))]
const PROJECTION_BYTES: usize = 256 << 10;
#[cfg(test)]
const PROJECTION_BYTES: usize = 1 << 10;

/// A layer's weights transposed (and packed, [`crate::kernels::packed::pack_transposed`]) as the time
/// loop reads them: `W_ihᵀ: [I, G·H]` and `W_hhᵀ: [H, G·H]`. Made once for many batches with the same weights (see
/// [`crate::model::Model::prepare`]); each pass still uses them only where it would have made
/// them itself, so results do not depend on whether they were given.
#[derive(Clone, Debug)]
pub struct Transposed<F> {
    weight_ih: Vec<F>,
    weight_hh: Vec<F>,
}

impl<F: Real> Transposed<F> {
    /// Transposes both weight matrices of `weights`.
    pub fn of(weights: &LayerWeights<F>) -> Result<Self> {
        let (w_ih, w_hh) = (weights.weight_ih.as_standard_layout(), weights.weight_hh.as_standard_layout());
        Ok(Transposed {
            weight_ih: pack_transposed(contiguous("weight_ih", w_ih.as_slice())?, weights.weight_ih.ncols()),
            weight_hh: pack_transposed(contiguous("weight_hh", w_hh.as_slice())?, weights.weight_hh.ncols()),
        })
    }
}

/// The layer's weights in the forms the time loop reads, checked and made once per pass.
struct Prepared<'w, F: Real> {
    input: usize,
    gh: usize,
    w_ih: ndarray::CowArray<'w, F, ndarray::Ix2>,
    /// `[I, G·H]` `W_ihᵀ` packed (empty for one-row passes: dot products over `W_ih`'s rows).
    w_ih_t: std::borrow::Cow<'w, [F]>,
    b_ih: ndarray::CowArray<'w, F, ndarray::Ix1>,
    w_hh: ndarray::CowArray<'w, F, ndarray::Ix2>,
    /// `[H, G·H]` `W_hhᵀ` packed, or empty (see [`TRANSPOSE_MIN_STEPS`]).
    w_hh_t: std::borrow::Cow<'w, [F]>,
    b_hh: ndarray::CowArray<'w, F, ndarray::Ix1>,
}

impl<'w, F: Real> Prepared<'w, F> {
    fn new(
        weights: &'w LayerWeights<F>,
        gates: usize,
        packing: &Packing,
        given: Option<&'w Transposed<F>>,
    ) -> Result<Self> {
        use std::borrow::Cow;
        let (input, hidden) = (weights.weight_ih.ncols(), weights.weight_hh.ncols());
        let w_ih = weights.weight_ih.as_standard_layout();
        let w_hh = weights.weight_hh.as_standard_layout();
        let long = packing.steps() >= TRANSPOSE_MIN_STEPS;
        let w_ih_t = match (packing.rows() > 1, given) {
            (false, _) => Cow::Borrowed(&[][..]),
            (true, Some(t)) => Cow::Borrowed(&t.weight_ih[..]),
            (true, None) => Cow::Owned(pack_transposed(contiguous("weight_ih", w_ih.as_slice())?, input)),
        };
        let w_hh_t = match (long, given) {
            (false, _) => Cow::Borrowed(&[][..]),
            (true, Some(t)) => Cow::Borrowed(&t.weight_hh[..]),
            (true, None) => Cow::Owned(pack_transposed(contiguous("weight_hh", w_hh.as_slice())?, hidden)),
        };
        let gh = gates * hidden;
        let sized = |t: &[F], k: usize| t.is_empty() || t.len() == packed_len(k, gh);
        if !sized(&w_ih_t, input) || !sized(&w_hh_t, hidden) {
            return Err(CoreError::shape("transposed weights", "the layer's sizes", "another layer's"));
        }
        Ok(Prepared {
            input,
            gh,
            w_ih,
            w_ih_t,
            b_ih: weights.bias_ih.as_standard_layout(),
            w_hh,
            w_hh_t,
            b_hh: weights.bias_hh.as_standard_layout(),
        })
    }

    /// `out = b_ih + x_rows · W_ihᵀ` for `x_rows: [R, I]` contiguous, `out: [R, G·H]`; blocks
    /// of rows run side by side on the pool when the product is large.
    fn project(&self, x_rows: &[F], out: &mut [F], parallel: bool) -> Result<()> {
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

/// Groups of consecutive processed steps `p0..p1` whose packed rows `r0..r1` are projected at
/// once (contiguous rows in either direction).
fn projection_groups(packing: &Packing, reverse: bool, gh: usize, elem: usize) -> Vec<(usize, usize, usize, usize)> {
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
        out.push((p0, p1, packing.offset(first), packing.offset(last) + packing.rows_at(last)));
        p0 = p1;
    }
    out
}

/// The contiguous `[R, I]` rows of the packed input.
fn input_rows<'a, F: Real>(x: &'a ndarray::CowArray<'_, F, ndarray::Ix2>, r0: usize, r1: usize) -> Result<&'a [F]> {
    let input = x.ncols();
    Ok(&contiguous("input", x.as_slice())?[r0 * input..r1 * input])
}

fn check_pass<F: Real, C: Cell<F>>(
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

/// Runs `cell` over the packed input `x: [N, I]` from `h0: [B, H]` and `c0: [B, H]` (empty for
/// cells without a cell state), from first step to last or, with `reverse`, from each
/// sequence's last step to its first, keeping everything backpropagation needs. The weights
/// must have been checked against the cell.
pub fn forward_sequence<F: Real, C: Cell<F>>(
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
pub struct Outputs<F> {
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
pub fn infer_sequence<F: Real, C: Cell<F>>(
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

/// Backpropagation through time over a [`Trace`] of the packed input `x: [N, I]`.
/// `d_output: [N, H]` is the gradient of the packed outputs, `d_hn`/`d_cn: [B, H]` those of the
/// final states; an empty slice stands for zeros. The gradient of `x` is computed only when
/// `input_grad` (otherwise `input` is `[0, I]`: a model does not need its own input's).
///
/// The trace is consumed: the gradient of each step's gates overwrites those gates (a step's
/// gates are read by that step only, from a copy of its rows), so backward holds no second
/// `[N, G·H]` buffer.
#[allow(clippy::too_many_arguments)]
pub fn backward_sequence<F: Real, C: Cell<F>>(
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

    // The time loop in lanes of sequences, or over the whole batch as one lane.
    let bounds = lanes(packing, gh * (input + hidden));
    let mut dgh_lanes = lane_slices(&mut dgh, dgh_width, packing, &bounds).into_iter();
    let (mut d_h0_rest, mut d_c0_rest) = (&mut d_h0[..], &mut d_c0[..]);
    let c_width = if has_c { hidden } else { 0 };
    let mut lanes = Vec::with_capacity(bounds.len() - 1);
    for (j, dgx) in lane_slices(&mut dgx, gh, packing, &bounds).into_iter().enumerate() {
        let lb = bounds[j + 1] - bounds[j];
        let (d_h0, rest) = std::mem::take(&mut d_h0_rest).split_at_mut(lb * hidden);
        d_h0_rest = rest;
        let (d_c0, rest) = std::mem::take(&mut d_c0_rest).split_at_mut(lb * c_width);
        d_c0_rest = rest;
        let dgh = dgh_lanes.next().unwrap_or_default();
        lanes.push(BackwardLane { seqs: (bounds[j], bounds[j + 1]), dgx, dgh, d_h0, d_c0 });
    }
    let inp = BackwardInputs { w_hh, b_hh, trace: &trace, d_output, d_hn, d_cn };
    if lanes.len() > 1 {
        use rayon::prelude::*;
        lanes.into_par_iter().map(|lane| backward_lane(cell, &inp, lane, false)).collect::<Result<Vec<()>>>()?;
    } else {
        lanes.into_iter().try_for_each(|lane| backward_lane(cell, &inp, lane, true))?;
    }

    let dgx_m = matrix("dgx", &dgx, rows, gh)?;
    let dgh_m = matrix("dgh", &dgh, rows, dgh_width)?;
    // Products accumulate into fresh zeros (β = 1): one pass of zeroing, not two.
    let mut weight_ih = Array2::zeros((gh, input));
    gemm(F::one(), dgx_m.t(), x, F::one(), weight_ih.view_mut());
    let mut weight_hh = Array2::zeros((gh, hidden));
    let (h, h0) = (matrix("h", &trace.h, rows, hidden)?, matrix("h0", &trace.h0, batch, hidden)?);
    let extra = matrix("extra", &trace.extra, rows, width)?;
    // Σ over steps of dghᵀ · (the state each step started from), one product per run of rows.
    for (r0, len, from_h, src0) in trace.prev_runs() {
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

#[cfg(test)]
mod tests {
    //! The driver with a trivial cell, `h_t = a·h_prev + x_t·W_ihᵀ + b_ih`, whose outputs and
    //! gradients have closed forms: time-order, direction, packing, state-carry and
    //! accumulation bugs show here without any gate math in the way.
    use super::*;
    use ndarray::{Array1, Array2};

    const A: f64 = 0.5;

    struct Leaky;

    impl Cell<f64> for Leaky {
        fn gates(&self) -> usize {
            1
        }
        fn forward_step(&self, s: ForwardStep<'_, '_, f64>) -> Result<()> {
            for ((h, &hp), g) in s.h.iter_mut().zip(s.h_prev).zip(s.gates.iter()) {
                *h = A * hp + g;
            }
            Ok(())
        }
        fn backward_step(&self, s: BackwardStep<'_, '_, f64>) -> Result<()> {
            s.dgx.copy_from_slice(s.dh);
            for (p, &d) in s.dh_prev.iter_mut().zip(s.dh) {
                *p = A * d;
            }
            Ok(())
        }
        // The trivial cell ignores W_hh: its gradient is zero, unlike the default product.
        fn weight_hh_grad(
            &self,
            _: ArrayView2<f64>,
            _: ArrayView2<f64>,
            _: ArrayView2<f64>,
            _: ArrayView2<f64>,
            mut d: ndarray::ArrayViewMut2<f64>,
        ) -> Result<()> {
            d.fill(0.0);
            Ok(())
        }
    }

    /// Checks outputs, final states and gradients of the leaky sum against closed forms for
    /// sequences of the given (decreasing) lengths, in one direction.
    fn check_closed_form(lengths: &[usize], reverse: bool) {
        let hidden = 3usize;
        let batch = lengths.len();
        let packing = Packing::from_sorted_lengths(lengths).expect("packing");
        let rows = packing.rows();
        assert_eq!(rows, lengths.iter().sum::<usize>());
        // W_ih = identity, so the projection of x is x + b.
        let w_ih = Array2::from_shape_fn((hidden, hidden), |(i, j)| if i == j { 1.0 } else { 0.0 });
        let w_hh = Array2::zeros((hidden, hidden));
        let b_ih = Array1::from(vec![0.25, -0.5, 1.0]);
        let b_hh = Array1::zeros(hidden);
        let w =
            LayerWeights { weight_ih: w_ih.view(), weight_hh: w_hh.view(), bias_ih: b_ih.view(), bias_hh: b_hh.view() };
        // Distinct values at every packed row, so a reversed, shifted or mis-packed loop shows.
        let x = Array2::from_shape_fn((rows, hidden), |(r, j)| (r * 10 + j) as f64 * 0.1 - 1.0);
        let h0: Vec<f64> = (0..batch * hidden).map(|i| i as f64 - 2.0).collect();
        let trace = forward_sequence(&Leaky, &w, x.view(), &packing, reverse, &h0, &[]).expect("forward");
        let inferred = infer_sequence(&Leaky, &w, None, x.view(), &packing, reverse, &h0, &[]).expect("infer");
        assert_eq!((&inferred.h, &inferred.h_n), (&trace.h, &trace.final_hidden()));

        let row = |t: usize, b: usize| packing.offset(t) + b;
        let xp = |t: usize, b: usize, j: usize| x[[row(t, b), j]] + b_ih[j];
        let pow = |e: usize| A.powi(e as i32);
        let close = |got: f64, want: f64, what: &str| assert!((got - want).abs() < 1e-10, "{what}: {got} vs {want}");
        for (b, &len) in lengths.iter().enumerate() {
            for j in 0..hidden {
                let h0v = h0[b * hidden + j];
                // Forwards h_t = a^(t+1)·h0 + Σ_{s≤t} a^(t−s)·xp_s; in reverse
                // h_t = a^(len−t)·h0 + Σ_{s≥t} a^(s−t)·xp_s.
                let h_at = |t: usize| {
                    if reverse {
                        pow(len - t) * h0v + (t..len).map(|s| pow(s - t) * xp(s, b, j)).sum::<f64>()
                    } else {
                        pow(t + 1) * h0v + (0..=t).map(|s| pow(t - s) * xp(s, b, j)).sum::<f64>()
                    }
                };
                for t in 0..len {
                    close(trace.outputs()[row(t, b) * hidden + j], h_at(t), &format!("h[{t},{b},{j}]"));
                }
                let last = if reverse { 0 } else { len - 1 };
                close(trace.final_hidden()[b * hidden + j], h_at(last), &format!("h_n[{b},{j}]"));
            }
        }

        let d_out: Vec<f64> = (0..rows * hidden).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
        let d_hn: Vec<f64> = (0..batch * hidden).map(|i| i as f64 * 0.5).collect();
        let g = backward_sequence(&Leaky, &w, x.view(), trace, &d_out, &d_hn, &[], true).expect("backward");
        let mut db = [0.0; 3];
        for (b, &len) in lengths.iter().enumerate() {
            for j in 0..hidden {
                let dout = |t: usize| d_out[row(t, b) * hidden + j];
                let dhn = d_hn[b * hidden + j];
                // dL/dxp_s, and dL/dh0.
                let dxp = |s: usize| {
                    if reverse {
                        (0..=s).map(|t| pow(s - t) * dout(t)).sum::<f64>() + pow(s) * dhn
                    } else {
                        (s..len).map(|t| pow(t - s) * dout(t)).sum::<f64>() + pow(len - 1 - s) * dhn
                    }
                };
                let dh0 = if reverse {
                    (0..len).map(|t| pow(len - t) * dout(t)).sum::<f64>() + pow(len) * dhn
                } else {
                    (0..len).map(|t| pow(t + 1) * dout(t)).sum::<f64>() + pow(len) * dhn
                };
                for s in 0..len {
                    close(g.input[[row(s, b), j]], dxp(s), &format!("dx[{s},{b},{j}]"));
                    db[j] += dxp(s);
                }
                close(g.h0[b * hidden + j], dh0, &format!("dh0[{b},{j}]"));
            }
        }
        for (j, &want) in db.iter().enumerate() {
            close(g.weights.bias_ih[j], want, &format!("db[{j}]"));
            for k in 0..hidden {
                let want: f64 = (0..rows).map(|r| g.input[[r, j]] * x[[r, k]]).sum();
                close(g.weights.weight_ih[[j, k]], want, &format!("dW_ih[{j},{k}]"));
            }
        }
        assert!(g.weights.weight_hh.iter().all(|&v| v == 0.0));
        assert!(g.c0.is_empty());
    }

    #[test]
    fn equal_lengths_forwards_and_in_reverse() {
        check_closed_form(&[5, 5], false);
        check_closed_form(&[5, 5], true);
    }

    #[test]
    fn variable_lengths_forwards_and_in_reverse() {
        check_closed_form(&[6, 4, 4, 1], false);
        check_closed_form(&[6, 4, 4, 1], true);
        check_closed_form(&[1], true);
    }

    /// The inference pass gives the training pass's outputs and final states bit for bit, for
    /// every cell, variable lengths, both directions and several projection groups.
    #[test]
    fn inference_pass_matches_the_training_pass() {
        use crate::rnn::cells::{GruCell, LstmCell, Nonlinearity, RnnCell};
        let (input, hidden) = (3usize, 4usize);
        let val = |i: usize, salt: usize| (((i * 7919 + salt * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 0.8;
        fn run<C: Cell<f64>>(cell: &C, w: &LayerWeights<f64>, x: ArrayView2<f64>, p: &Packing, h0: &[f64], c0: &[f64]) {
            for reverse in [false, true] {
                let t = forward_sequence(cell, w, x, p, reverse, h0, c0).expect("forward");
                let o = infer_sequence(cell, w, None, x, p, reverse, h0, c0).expect("infer");
                let given = Transposed::of(w).expect("transpose");
                let o2 = infer_sequence(cell, w, Some(&given), x, p, reverse, h0, c0).expect("infer");
                assert_eq!((&o2.h, &o2.h_n, &o2.c_n), (&o.h, &o.h_n, &o.c_n), "given transposes");
                assert_eq!(o.h, t.h, "outputs, reverse {reverse}");
                assert_eq!(o.h_n, t.final_hidden(), "h_n, reverse {reverse}");
                assert_eq!(o.c_n, t.final_cell(), "c_n, reverse {reverse}");
            }
        }
        for lengths in [vec![7, 5, 5, 2, 1], vec![4, 4, 4], vec![1], vec![9]] {
            let packing = Packing::from_sorted_lengths(&lengths).expect("packing");
            let (rows, batch) = (packing.rows(), packing.batch());
            let x = Array2::from_shape_fn((rows, input), |(r, j)| val(r * input + j, 1) * 2.0);
            let h0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 2)).collect();
            let c0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 3)).collect();
            for gates in [1, 3, 4] {
                let gh = gates * hidden;
                let w_ih = Array2::from_shape_fn((gh, input), |(i, j)| val(i * input + j, 4));
                let w_hh = Array2::from_shape_fn((gh, hidden), |(i, j)| val(i * hidden + j, 5));
                let (b_ih, b_hh) = (Array1::from_shape_fn(gh, |i| val(i, 6)), Array1::from_shape_fn(gh, |i| val(i, 7)));
                let w = LayerWeights {
                    weight_ih: w_ih.view(),
                    weight_hh: w_hh.view(),
                    bias_ih: b_ih.view(),
                    bias_hh: b_hh.view(),
                };
                match gates {
                    1 => run(&RnnCell { nonlinearity: Nonlinearity::Tanh }, &w, x.view(), &packing, &h0, &[]),
                    3 => {
                        run(&GruCell { reset_after: true }, &w, x.view(), &packing, &h0, &[]);
                        run(&GruCell { reset_after: false }, &w, x.view(), &packing, &h0, &[]);
                    }
                    _ => run(&LstmCell, &w, x.view(), &packing, &h0, &c0),
                }
            }
        }
    }

    #[test]
    fn packing_rejects_unsorted_empty_and_zero_lengths() {
        assert!(Packing::from_sorted_lengths(&[2, 3]).is_err());
        assert!(Packing::from_sorted_lengths(&[]).is_err());
        let err = Packing::from_sorted_lengths(&[3, 0]).expect_err("zero length");
        assert!(err.to_string().contains("lengths[1]"), "{err}");
        let p = Packing::from_sorted_lengths(&[3, 2, 2]).expect("packing");
        assert_eq!((p.batch(), p.steps(), p.rows()), (3, 3, 7));
        assert_eq!((p.rows_at(2), p.offset(2), p.length(1)), (1, 6, 2));
    }

    #[test]
    fn input_rows_must_match_the_packing() {
        let w_ih = Array2::<f64>::zeros((1, 1));
        let b = Array1::zeros(1);
        let w = LayerWeights { weight_ih: w_ih.view(), weight_hh: w_ih.view(), bias_ih: b.view(), bias_hh: b.view() };
        let x = Array2::zeros((5, 1));
        let packing = Packing::uniform(2, 2).expect("packing");
        let err =
            forward_sequence(&Leaky, &w, x.view(), &packing, false, &[0.0, 0.0], &[]).expect_err("5 rows, 4 packed");
        assert!(matches!(err, CoreError::ShapeMismatch { .. }), "{err}");
    }

    /// Every packed row's starting state, as `prev_runs` gives it, is the one the forward pass
    /// started it from: the previous step's row of `h` for a sequence that carries on, else
    /// its initial state; every row is covered exactly once.
    #[test]
    fn prev_runs_give_each_row_the_state_it_started_from() {
        for reverse in [false, true] {
            for lengths in [vec![4usize, 4, 4], vec![5, 3, 3, 1], vec![2, 1], vec![1]] {
                let packing = Packing::from_sorted_lengths(&lengths).expect("packing");
                let (rows, batch) = (packing.rows(), lengths.len());
                let trace = Trace {
                    dims: Dims { batch, input: 1, hidden: 1 },
                    packing: packing.clone(),
                    reverse,
                    gates: Vec::new(),
                    h: (0..rows).map(|r| r as f64).collect(),
                    c: Vec::new(),
                    h0: (0..batch).map(|b| -(b as f64) - 1.0).collect(),
                    c0: Vec::new(),
                    extra: Vec::new(),
                };
                let mut want = vec![f64::NAN; rows];
                for p in 0..packing.steps() {
                    let t = packing.step(p, reverse);
                    let prev = (p > 0).then(|| packing.step(p - 1, reverse));
                    let from_prev = prev.map_or(0, |q| packing.rows_at(q).min(packing.rows_at(t)));
                    for i in 0..packing.rows_at(t) {
                        want[packing.offset(t) + i] = match prev {
                            Some(q) if i < from_prev => (packing.offset(q) + i) as f64,
                            _ => -(i as f64) - 1.0,
                        };
                    }
                }
                let mut got = vec![f64::NAN; rows];
                for (r0, len, from_h, src0) in trace.prev_runs() {
                    for i in 0..len {
                        assert!(got[r0 + i].is_nan(), "row {} twice ({lengths:?}, reverse {reverse})", r0 + i);
                        got[r0 + i] = if from_h { trace.h[src0 + i] } else { trace.h0[src0 + i] };
                    }
                }
                assert_eq!(got, want, "{lengths:?}, reverse {reverse}");
            }
        }
        // Equal lengths: one run from the initial state and one through h, in each direction.
        let packing = Packing::uniform(3, 5).expect("packing");
        for reverse in [false, true] {
            let zeros = vec![0.0f64; 15];
            let trace = Trace {
                dims: Dims { batch: 3, input: 1, hidden: 1 },
                packing: packing.clone(),
                reverse,
                gates: Vec::new(),
                h: zeros,
                c: Vec::new(),
                h0: vec![0.0; 3],
                c0: Vec::new(),
                extra: Vec::new(),
            };
            assert_eq!(trace.prev_runs().len(), 2, "reverse {reverse}");
        }
    }

    /// Lanes (training in a pool with threads) and row blocks (inference in one) give the bits
    /// of the single-threaded pass: outputs, states, every gradient, for every cell, variable
    /// lengths and both directions.
    #[test]
    fn lanes_and_row_blocks_give_the_bits_of_one_thread() {
        use crate::rnn::cells::{AnyCell, GruCell, LstmCell, Nonlinearity, RnnCell};
        let (input, hidden) = (5usize, 6usize);
        let val = |i: usize, salt: usize| (((i * 7919 + salt * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 0.8;
        type Out = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
        fn pass<C: Cell<f64>>(
            cell: &C,
            w: &LayerWeights<f64>,
            x: ArrayView2<f64>,
            p: &Packing,
            st: [&[f64]; 4],
            rev: bool,
        ) -> Out {
            let [h0, c0, d_out, d_hn] = st;
            let t = forward_sequence(cell, w, x, p, rev, h0, c0).expect("forward");
            let (h, c) = (t.h.clone(), t.c.clone());
            let g = backward_sequence(cell, w, x, t, d_out, d_hn, &[], true).expect("backward");
            let wg = g.weights;
            let flat = |a: &Array2<f64>| a.iter().copied().collect::<Vec<_>>();
            let mut weights = flat(&wg.weight_ih);
            weights.extend(flat(&wg.weight_hh));
            weights.extend(wg.bias_ih.iter().chain(wg.bias_hh.iter()));
            (h, c, g.h0, g.c0, flat(&g.input), weights)
        }
        let cells = [
            AnyCell::Lstm(LstmCell),
            AnyCell::Gru(GruCell { reset_after: true }),
            AnyCell::Gru(GruCell { reset_after: false }),
            AnyCell::Rnn(RnnCell { nonlinearity: Nonlinearity::Tanh }),
        ];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("pool");
        for lengths in [vec![9, 9, 8, 7, 7, 5, 5, 4, 3, 2, 2, 1, 1], vec![6; 12], vec![5; 8]] {
            let packing = Packing::from_sorted_lengths(&lengths).expect("packing");
            assert!(pool.install(|| lanes(&packing, 1)).len() > 2, "{lengths:?} runs in lanes");
            let (rows, batch) = (packing.rows(), packing.batch());
            let x = Array2::from_shape_fn((rows, input), |(r, j)| val(r * input + j, 1) * 2.0);
            let h0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 2)).collect();
            let c0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 3)).collect();
            let d_out: Vec<f64> = (0..rows * hidden).map(|i| val(i, 8)).collect();
            let d_hn: Vec<f64> = (0..batch * hidden).map(|i| val(i, 9)).collect();
            for cell in cells {
                let gh = Cell::<f64>::gates(&cell) * hidden;
                let w_ih = Array2::from_shape_fn((gh, input), |(i, j)| val(i * input + j, 4));
                let w_hh = Array2::from_shape_fn((gh, hidden), |(i, j)| val(i * hidden + j, 5));
                let (b_ih, b_hh) = (Array1::from_shape_fn(gh, |i| val(i, 6)), Array1::from_shape_fn(gh, |i| val(i, 7)));
                let w = LayerWeights {
                    weight_ih: w_ih.view(),
                    weight_hh: w_hh.view(),
                    bias_ih: b_ih.view(),
                    bias_hh: b_hh.view(),
                };
                let c0: &[f64] = if Cell::<f64>::has_cell_state(&cell) { &c0 } else { &[] };
                for rev in [false, true] {
                    let st = [&h0[..], c0, &d_out[..], &d_hn[..]];
                    let one = pass(&cell, &w, x.view(), &packing, st, rev);
                    let lanes = pool.install(|| pass(&cell, &w, x.view(), &packing, st, rev));
                    assert_eq!(one, lanes, "{cell:?}, {lengths:?}, reverse {rev}");
                    // Inference splits each step's rows over the pool instead: the same bits.
                    let infer = || infer_sequence(&cell, &w, None, x.view(), &packing, rev, &h0, c0).expect("infer");
                    let (a, b) = (infer(), pool.install(infer));
                    assert_eq!(
                        (&a.h, &a.h_n, &a.c_n),
                        (&b.h, &b.h_n, &b.c_n),
                        "inference, {cell:?}, {lengths:?}, reverse {rev}"
                    );
                    assert_eq!(one.0, b.h, "inference against training, {cell:?}");
                }
            }
        }
    }
}
