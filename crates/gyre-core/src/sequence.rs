//! The time-loop driver: runs any [`Cell`] over a whole sequence, forward and backward.
//!
//! Time-major internally: row `t·B + b` of every `[T·B, ·]` buffer is time step `t` of
//! sequence `b`. The input projection of all steps is one product `[T·B, I] × [I, G·H]`; only
//! the recurrent product runs per step; the weight gradients are products over all steps at
//! the end. Every buffer is allocated before the loop starts.

use crate::cell::{BackwardStep, Cell, Dims, ForwardStep};
use crate::error::{CoreError, Result};
use crate::linalg::{column_sums, gemm};
use crate::real::Real;
use crate::tensor::{matrix, matrix_mut};
use crate::weights::{LayerWeights, WeightGrads};
use ndarray::{Array1, Array2, ArrayView2};

/// Everything the forward pass of one sequence batch keeps for backpropagation.
#[derive(Clone, Debug)]
pub struct Trace<F> {
    /// Sizes.
    pub dims: Dims,
    /// Number of time steps `T`.
    pub steps: usize,
    /// `[T·B, G·H]` what the cell kept of its gates at each step.
    pub gates: Vec<F>,
    /// `[(T+1)·B, H]` hidden states: block 0 is `h0`, block `t+1` the output of step `t`.
    pub hidden: Vec<F>,
    /// `[(T+1)·B, H]` cell states laid out like `hidden` (empty for cells without one).
    pub cell: Vec<F>,
    /// `[T·B, E·H]` the cell's extra values.
    pub extra: Vec<F>,
}

impl<F: Real> Trace<F> {
    /// `[T·B, H]` the hidden state after every step (the layer's output, time-major).
    pub fn outputs(&self) -> &[F] {
        &self.hidden[self.dims.batch * self.dims.hidden..]
    }

    /// `[B, H]` hidden state after the last step.
    pub fn final_hidden(&self) -> &[F] {
        &self.hidden[self.steps * self.dims.batch * self.dims.hidden..]
    }

    /// `[B, H]` cell state after the last step (empty for cells without one).
    pub fn final_cell(&self) -> &[F] {
        if self.cell.is_empty() {
            return &[];
        }
        &self.cell[self.steps * self.dims.batch * self.dims.hidden..]
    }
}

/// Gradients of one sequence batch.
#[derive(Clone, Debug)]
pub struct SequenceGrads<F> {
    /// `[T·B, I]` gradient of the input, time-major.
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
    vec![F::zero(); len]
}

/// Runs `cell` over `x: [T·B, I]` (time-major) from `h0: [B, H]` and `c0: [B, H]` (empty for
/// cells without a cell state). The weights must have been checked against the cell.
pub fn forward_sequence<F: Real, C: Cell<F>>(
    cell: &C,
    weights: &LayerWeights<F>,
    x: ArrayView2<F>,
    batch: usize,
    h0: &[F],
    c0: &[F],
) -> Result<Trace<F>> {
    let (rows, input) = x.dim();
    let hidden = weights.weight_hh.ncols();
    let gh = cell.gates() * hidden;
    if batch == 0 || rows % batch != 0 {
        return Err(CoreError::invalid("batch", format!("a positive divisor of the {rows} input rows"), batch));
    }
    let steps = rows / batch;
    let dims = Dims { batch, input, hidden };
    let bh = batch * hidden;
    let width = cell.extra() * hidden;

    let mut gates = zeros(rows * gh);
    {
        let mut proj = matrix_mut("input projection", &mut gates, rows, gh)?;
        for mut row in proj.rows_mut() {
            row.assign(&weights.bias_ih);
        }
        gemm(F::one(), x, weights.weight_ih.t(), F::one(), proj);
    }
    let mut hidden_states = zeros((steps + 1) * bh);
    hidden_states[..bh].copy_from_slice(h0);
    let mut cell_states = if cell.has_cell_state() { zeros((steps + 1) * bh) } else { Vec::new() };
    if cell.has_cell_state() {
        cell_states[..bh].copy_from_slice(c0);
    }
    let mut extra = zeros(rows * width);
    let mut scratch = zeros(batch * gh);
    let (w_hh, b_hh) = (weights.weight_hh.as_standard_layout(), weights.bias_hh.as_standard_layout());
    let (w_hh, b_hh) = (contiguous("weight_hh", w_hh.as_slice())?, contiguous("bias_hh", b_hh.as_slice())?);

    for t in 0..steps {
        let (h_done, h_rest) = hidden_states.split_at_mut((t + 1) * bh);
        let (c_prev, c): (&[F], &mut [F]) = if cell_states.is_empty() {
            (&[], &mut [])
        } else {
            let (done, rest) = cell_states.split_at_mut((t + 1) * bh);
            (&done[t * bh..], &mut rest[..bh])
        };
        cell.forward_step(ForwardStep {
            dims,
            w_hh,
            b_hh,
            gates: &mut gates[t * batch * gh..(t + 1) * batch * gh],
            h_prev: &h_done[t * bh..],
            c_prev,
            h: &mut h_rest[..bh],
            c,
            extra: &mut extra[t * batch * width..(t + 1) * batch * width],
            scratch: &mut scratch,
        })?;
    }
    Ok(Trace { dims, steps, gates, hidden: hidden_states, cell: cell_states, extra })
}

/// Backpropagation through time over a [`Trace`] of `x: [T·B, I]`. `d_output: [T·B, H]` is the
/// gradient of the outputs (time-major), `d_hn`/`d_cn: [B, H]` those of the final states; an
/// empty slice stands for zeros.
pub fn backward_sequence<F: Real, C: Cell<F>>(
    cell: &C,
    weights: &LayerWeights<F>,
    x: ArrayView2<F>,
    trace: &Trace<F>,
    d_output: &[F],
    d_hn: &[F],
    d_cn: &[F],
) -> Result<SequenceGrads<F>> {
    let Dims { batch, input, hidden } = trace.dims;
    let steps = trace.steps;
    let rows = steps * batch;
    let gh = cell.gates() * hidden;
    let bh = batch * hidden;
    let width = cell.extra() * hidden;
    let has_c = cell.has_cell_state();

    let mut dgx = zeros(rows * gh);
    let mut dgh = if cell.separate_recurrent_grad() { zeros(rows * gh) } else { Vec::new() };
    let mut dh = if d_hn.is_empty() { zeros(bh) } else { d_hn.to_vec() };
    let mut dc = match (has_c, d_cn.is_empty()) {
        (false, _) => Vec::new(),
        (true, true) => zeros(bh),
        (true, false) => d_cn.to_vec(),
    };
    let mut dh_prev = zeros(bh);
    let mut dc_prev = if has_c { zeros(bh) } else { Vec::new() };
    let mut scratch = zeros(batch * gh);
    let (w_hh, b_hh) = (weights.weight_hh.as_standard_layout(), weights.bias_hh.as_standard_layout());
    let (w_hh, b_hh) = (contiguous("weight_hh", w_hh.as_slice())?, contiguous("bias_hh", b_hh.as_slice())?);

    for t in (0..steps).rev() {
        if !d_output.is_empty() {
            for (d, &g) in dh.iter_mut().zip(&d_output[t * bh..(t + 1) * bh]) {
                *d = *d + g;
            }
        }
        let (c_prev, c): (&[F], &[F]) = if has_c {
            (&trace.cell[t * bh..(t + 1) * bh], &trace.cell[(t + 1) * bh..(t + 2) * bh])
        } else {
            (&[], &[])
        };
        let dgh_t: &mut [F] = if dgh.is_empty() { &mut [] } else { &mut dgh[t * batch * gh..(t + 1) * batch * gh] };
        cell.backward_step(BackwardStep {
            dims: trace.dims,
            w_hh,
            b_hh,
            gates: &trace.gates[t * batch * gh..(t + 1) * batch * gh],
            h_prev: &trace.hidden[t * bh..(t + 1) * bh],
            c_prev,
            h: &trace.hidden[(t + 1) * bh..(t + 2) * bh],
            c,
            extra: &trace.extra[t * batch * width..(t + 1) * batch * width],
            dh: &dh,
            dc: &dc,
            dgx: &mut dgx[t * batch * gh..(t + 1) * batch * gh],
            dgh: dgh_t,
            dh_prev: &mut dh_prev,
            dc_prev: &mut dc_prev,
            scratch: &mut scratch,
        })?;
        std::mem::swap(&mut dh, &mut dh_prev);
        std::mem::swap(&mut dc, &mut dc_prev);
    }

    let dgx_m = matrix("dgx", &dgx, rows, gh)?;
    let dgh_m = if dgh.is_empty() { dgx_m } else { matrix("dgh", &dgh, rows, gh)? };
    let mut weight_ih = Array2::zeros((gh, input));
    gemm(F::one(), dgx_m.t(), x, F::zero(), weight_ih.view_mut());
    let mut weight_hh = Array2::zeros((gh, hidden));
    let h_prev = matrix("h_prev", &trace.hidden[..rows * hidden], rows, hidden)?;
    let extra = matrix("extra", &trace.extra, rows, width)?;
    cell.weight_hh_grad(dgh_m, h_prev, extra, weight_hh.view_mut())?;
    let mut bias_ih = Array1::zeros(gh);
    column_sums(dgx_m, bias_ih.view_mut());
    let mut bias_hh = Array1::zeros(gh);
    column_sums(dgh_m, bias_hh.view_mut());
    let mut d_input = Array2::zeros((rows, input));
    gemm(F::one(), dgx_m, weights.weight_ih, F::zero(), d_input.view_mut());

    Ok(SequenceGrads {
        input: d_input,
        h0: dh,
        c0: dc,
        weights: WeightGrads { weight_ih, weight_hh, bias_ih, bias_hh },
    })
}

#[cfg(test)]
mod tests {
    //! The driver with a trivial cell, `h_t = a·h_{t-1} + x_t·W_ihᵀ + b_ih`, whose outputs and
    //! gradients have closed forms: time-order, state-carry and accumulation bugs show here
    //! without any gate math in the way.
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
            mut d: ndarray::ArrayViewMut2<f64>,
        ) -> Result<()> {
            d.fill(0.0);
            Ok(())
        }
    }

    #[test]
    fn driver_outputs_and_gradients_have_the_closed_form_of_a_leaky_sum() {
        let (batch, steps, hidden) = (2usize, 5usize, 3usize);
        // W_ih = identity, so the projection of x_t is x_t + b.
        let w_ih = Array2::from_shape_fn((hidden, hidden), |(i, j)| if i == j { 1.0 } else { 0.0 });
        let w_hh = Array2::zeros((hidden, hidden));
        let b_ih = Array1::from(vec![0.25, -0.5, 1.0]);
        let b_hh = Array1::zeros(hidden);
        let w =
            LayerWeights { weight_ih: w_ih.view(), weight_hh: w_hh.view(), bias_ih: b_ih.view(), bias_hh: b_hh.view() };
        // x[t, b, j] distinct for every step so that a reversed or shifted loop shows.
        let x = Array2::from_shape_fn((steps * batch, hidden), |(r, j)| (r * 10 + j) as f64 * 0.1 - 1.0);
        let h0: Vec<f64> = (0..batch * hidden).map(|i| i as f64 - 2.0).collect();
        let trace = forward_sequence(&Leaky, &w, x.view(), batch, &h0, &[]).expect("forward");

        let xp = |t: usize, b: usize, j: usize| x[[t * batch + b, j]] + b_ih[j];
        for t in 0..steps {
            for b in 0..batch {
                for j in 0..hidden {
                    // h_t = a^(t+1)·h0 + Σ_{s≤t} a^(t−s)·xp_s
                    let want = A.powi(t as i32 + 1) * h0[b * hidden + j]
                        + (0..=t).map(|s| A.powi((t - s) as i32) * xp(s, b, j)).sum::<f64>();
                    let got = trace.outputs()[(t * batch + b) * hidden + j];
                    assert!((got - want).abs() < 1e-12, "h[{t},{b},{j}] = {got}, want {want}");
                }
            }
        }
        assert_eq!(trace.final_hidden(), &trace.outputs()[(steps - 1) * batch * hidden..]);

        let d_out: Vec<f64> = (0..steps * batch * hidden).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
        let d_hn: Vec<f64> = (0..batch * hidden).map(|i| i as f64 * 0.5).collect();
        let g = backward_sequence(&Leaky, &w, x.view(), &trace, &d_out, &d_hn, &[]).expect("backward");
        let dout = |t: usize, b: usize, j: usize| d_out[(t * batch + b) * hidden + j];
        // dL/dxp_s = Σ_{t≥s} a^(t−s)·dout_t + a^(T−1−s)·d_hn
        let dxp = |s: usize, b: usize, j: usize| {
            (s..steps).map(|t| A.powi((t - s) as i32) * dout(t, b, j)).sum::<f64>()
                + A.powi((steps - 1 - s) as i32) * d_hn[b * hidden + j]
        };
        for s in 0..steps {
            for b in 0..batch {
                for j in 0..hidden {
                    let got = g.input[[s * batch + b, j]];
                    assert!((got - dxp(s, b, j)).abs() < 1e-12, "dx[{s},{b},{j}]");
                }
            }
        }
        for b in 0..batch {
            for j in 0..hidden {
                let want = A * dxp(0, b, j);
                assert!((g.h0[b * hidden + j] - want).abs() < 1e-12, "dh0[{b},{j}]");
                let db: f64 = (0..steps).flat_map(|s| (0..batch).map(move |b| (s, b))).map(|(s, b)| dxp(s, b, j)).sum();
                assert!((g.weights.bias_ih[j] - db).abs() < 1e-12, "db[{j}]");
                // dW_ih[j, k] = Σ dxp[.., j]·x[.., k]
                for k in 0..hidden {
                    let want: f64 = (0..steps * batch).map(|r| dxp(r / batch, r % batch, j) * x[[r, k]]).sum();
                    assert!((g.weights.weight_ih[[j, k]] - want).abs() < 1e-10, "dW_ih[{j},{k}]");
                }
            }
        }
        assert!(g.weights.weight_hh.iter().all(|&v| v == 0.0));
        assert!(g.c0.is_empty());
    }

    #[test]
    fn batch_that_does_not_divide_the_rows_is_rejected() {
        let w_ih = Array2::<f64>::zeros((1, 1));
        let b = Array1::zeros(1);
        let w = LayerWeights { weight_ih: w_ih.view(), weight_hh: w_ih.view(), bias_ih: b.view(), bias_hh: b.view() };
        let x = Array2::zeros((5, 1));
        let err = forward_sequence(&Leaky, &w, x.view(), 2, &[0.0, 0.0], &[]).expect_err("5 rows, batch 2");
        assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err}");
    }
}
