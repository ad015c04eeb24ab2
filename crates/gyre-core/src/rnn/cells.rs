//! The three recurrent cells: simple RNN (tanh or relu), LSTM and GRU (reset gate after or
//! before the recurrent product). Each does one time step; [`crate::rnn::sequence`] runs the loop.
//!
//! Every step starts with the recurrent product `h_prev · W_hhᵀ + b_hh` (one matrix product
//! for the whole batch) and then applies all gate nonlinearities in one fused pass.

use crate::error::Result;
use crate::kernels::linalg::{gemm, gemm_t_cols};
use crate::kernels::packed::{add_xw, add_xwt, add_yw};
use crate::kernels::portable::{gru_backward_row_by, lstm_backward_row_by};
use crate::kernels::real::Real;
use crate::rnn::cell::{BackwardStep, Cell, ForwardStep};
use std::ops::Range;

/// The recurrent weights of a forward step.
#[derive(Clone, Copy)]
struct Recurrent<'w, F> {
    hidden: usize,
    w_hh: &'w [F],
    w_hh_t: &'w [F],
    b_hh: &'w [F],
    /// The products' left operand is all zeros ([`ForwardStep::h_prev_zero`]): they add nothing.
    zero: bool,
}

impl<'w, F: Real> Recurrent<'w, F> {
    fn of(s: &ForwardStep<'_, 'w, F>) -> Self {
        Recurrent { hidden: s.dims.hidden, w_hh: s.w_hh, w_hh_t: s.w_hh_t, b_hh: s.b_hh, zero: s.h_prev_zero }
    }
}

/// `out[:, rows] += h_prev · W_hh[rows]ᵀ` for a range of gate rows of `W_hh`, into the same
/// columns of `out: [B, G·H]` (the bias is the caller's). Reads `W_hhᵀ` when the driver made it;
/// nothing to add when `h_prev` is all zeros.
fn recurrent_acc<F: Real>(s: Recurrent<'_, F>, h_prev: &[F], rows: Range<usize>, out: &mut [F]) {
    let (hidden, gh) = (s.hidden, s.b_hh.len());
    if s.zero {
        return;
    }
    if s.w_hh_t.is_empty() {
        add_xwt(h_prev, hidden, &s.w_hh[rows.start * hidden..rows.end * hidden], out, gh, rows.start);
    } else {
        add_xw(h_prev, hidden, s.w_hh_t, out, gh, rows.start, rows.len());
    }
}

/// `out[:, rows] = b_hh[rows] + h_prev · W_hh[rows]ᵀ` (the other columns untouched).
fn recurrent_product<F: Real>(s: Recurrent<'_, F>, h_prev: &[F], rows: Range<usize>, out: &mut [F]) {
    for row in out.chunks_exact_mut(s.b_hh.len()) {
        row[rows.clone()].copy_from_slice(&s.b_hh[rows.clone()]);
    }
    recurrent_acc(s, h_prev, rows, out);
}

/// `out (+)= dg[:, cols] · W_hh[cols]` (`[B, H]`): the gradient reaching `h_prev` through a
/// range of gate rows; `out` is overwritten unless `accumulate`.
fn recurrent_grad<F: Real>(w_hh: &[F], hidden: usize, dg: &[F], cols: Range<usize>, accumulate: bool, out: &mut [F]) {
    let gh = w_hh.len() / crate::kernels::packed::packed_len(1, hidden).max(1);
    add_yw(dg, gh, (cols.start, cols.start), cols.len(), w_hh, gh, out, hidden, accumulate);
}

/// Activation of the simple RNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `max(0, x)`.
    Relu,
}

/// The activation of the LSTM's `i, f, o` and the GRU's `r, z` gates ("recurrent activation"
/// in Keras and TensorFlow.js). The hard sigmoids are each library's exact arithmetic in the
/// float type, so that imported models compute what they computed there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GateActivation {
    /// `1 / (1 + e^−x)`: PyTorch, Keras 3's default, ONNX's default.
    #[default]
    Sigmoid,
    /// `clip(0.2·x + 0.5, 0, 1)`: TensorFlow.js `hardSigmoid` (the default recurrent activation
    /// of its `lstm` and `gru` layers) and Keras 2's `hard_sigmoid`; ONNX `HardSigmoid` with
    /// its default `alpha` 0.2, `beta` 0.5.
    HardSigmoidTfjs,
    /// `relu6(x + 3) / 6 = min(max(x + 3, 0), 6) / 6`: Keras 3's `hard_sigmoid`.
    HardSigmoidKeras3,
}

impl GateActivation {
    /// The name used in model configurations and options.
    pub fn name(self) -> &'static str {
        match self {
            GateActivation::Sigmoid => "sigmoid",
            GateActivation::HardSigmoidTfjs => "hardSigmoidTfjs",
            GateActivation::HardSigmoidKeras3 => "hardSigmoidKeras3",
        }
    }

    /// The activation named `name` (see [`GateActivation::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        [GateActivation::Sigmoid, GateActivation::HardSigmoidTfjs, GateActivation::HardSigmoidKeras3]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// One value (the hard sigmoids; the sigmoid as [`crate::kernels::real::Real`]'s scalar).
    fn apply<F: Real>(self, x: F) -> F {
        let (zero, one) = (F::zero(), F::one());
        match self {
            GateActivation::Sigmoid => crate::kernels::real::sigmoid(x),
            GateActivation::HardSigmoidTfjs => (F::lit(0.2) * x + F::lit(0.5)).max(zero).min(one),
            GateActivation::HardSigmoidKeras3 => (x + F::lit(3.0)).max(zero).min(F::lit(6.0)) / F::lit(6.0),
        }
    }

    /// `x ← act(x)` element-wise (the sigmoid on the SIMD kernels for f32).
    fn slice<F: Real>(self, x: &mut [F]) {
        match self {
            GateActivation::Sigmoid => F::sigmoid_slice(x),
            hard => x.iter_mut().for_each(|v| *v = hard.apply(*v)),
        }
    }

    /// `p` times the derivative at the input that gave `y = act(x)`: `p·y·(1 − y)` for the
    /// sigmoid (the SIMD backward rows' order); for a hard sigmoid `p` times its slope where
    /// `0 < y < 1`, else 0.
    fn times_grad<F: Real>(self, p: F, y: F) -> F {
        let (zero, one) = (F::zero(), F::one());
        let inside = y > zero && y < one;
        match self {
            GateActivation::Sigmoid => crate::kernels::portable::times_sigmoid_grad(p, y),
            GateActivation::HardSigmoidTfjs if inside => p * F::lit(0.2),
            GateActivation::HardSigmoidKeras3 if inside => p * (one / F::lit(6.0)),
            _ => zero,
        }
    }
}

/// Elman RNN: `h = act(x·W_ihᵀ + b_ih + h_prev·W_hhᵀ + b_hh)`. One gate block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RnnCell {
    /// The activation.
    pub nonlinearity: Nonlinearity,
}

impl<F: Real> Cell<F> for RnnCell {
    fn gates(&self) -> usize {
        1
    }

    fn forward_step(&self, s: ForwardStep<'_, '_, F>) -> Result<()> {
        // The product accumulates straight into the gates; b_hh is added with the activation.
        recurrent_acc(Recurrent::of(&s), s.h_prev, 0..s.dims.hidden, s.gates);
        for g in s.gates.chunks_exact_mut(s.dims.hidden) {
            g.iter_mut().zip(s.b_hh).for_each(|(x, &b)| *x = *x + b);
        }
        match self.nonlinearity {
            Nonlinearity::Tanh => F::tanh_slice(s.gates),
            Nonlinearity::Relu => s.gates.iter_mut().for_each(|g| *g = g.max(F::zero())),
        }
        s.h.copy_from_slice(s.gates);
        Ok(())
    }

    fn backward_step(&self, s: BackwardStep<'_, '_, F>) -> Result<()> {
        for ((d, &h), &dh) in s.dgx.iter_mut().zip(s.h.iter()).zip(s.dh.iter()) {
            *d = match self.nonlinearity {
                Nonlinearity::Tanh => dh * (F::one() - h * h),
                Nonlinearity::Relu if h > F::zero() => dh,
                Nonlinearity::Relu => F::zero(),
            };
        }
        recurrent_grad(s.w_hh, s.dims.hidden, s.dgx, 0..s.dims.hidden, false, s.dh_prev);
        Ok(())
    }
}

/// LSTM with PyTorch's gate order `i, f, g, o`:
/// `c = σ(f)·c_prev + σ(i)·tanh(g)`, `h = σ(o)·tanh(c)`, `σ` the gate activation. Four gate
/// blocks and a cell state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LstmCell {
    /// `σ` of the `i`, `f`, `o` gates.
    pub recurrent: GateActivation,
}

impl<F: Real> Cell<F> for LstmCell {
    fn gates(&self) -> usize {
        4
    }

    fn has_cell_state(&self) -> bool {
        true
    }

    fn forward_step(&self, s: ForwardStep<'_, '_, F>) -> Result<()> {
        let hd = s.dims.hidden;
        // The product accumulates straight into the gates; one fused pass per row adds b_hh,
        // applies the nonlinearities and updates the states (SIMD for f32).
        recurrent_acc(Recurrent::of(&s), s.h_prev, 0..4 * hd, s.gates);
        let states = s.c_prev.chunks_exact(hd).zip(s.c.chunks_exact_mut(hd)).zip(s.h.chunks_exact_mut(hd));
        for (g, ((c_prev, c), h)) in s.gates.chunks_exact_mut(4 * hd).zip(states) {
            match self.recurrent {
                GateActivation::Sigmoid => F::lstm_row(g, s.b_hh, c_prev, c, h),
                act => lstm_row_with(act, g, s.b_hh, c_prev, c, h),
            }
        }
        Ok(())
    }

    fn backward_step(&self, s: BackwardStep<'_, '_, F>) -> Result<()> {
        let hd = s.dims.hidden;
        let rows = s.gates.chunks_exact(4 * hd).zip(s.dgx.chunks_exact_mut(4 * hd));
        let grads = s.dh.chunks_exact(hd).zip(s.dc.chunks_exact(hd)).zip(s.dc_prev.chunks_exact_mut(hd));
        // tanh(c) for the whole batch, kept in the scratch rows (SIMD for f32).
        let tanh_c = &mut s.scratch[..s.c.len()];
        tanh_c.copy_from_slice(s.c);
        F::tanh_slice(tanh_c);
        let states = s.c_prev.chunks_exact(hd).zip(tanh_c.chunks_exact(hd));
        for (((g, dg), (c_prev, tanh_c)), ((dh, dc), dc_prev)) in rows.zip(states).zip(grads) {
            match self.recurrent {
                GateActivation::Sigmoid => F::lstm_backward_row(g, c_prev, tanh_c, dh, dc, dg, dc_prev),
                act => lstm_backward_row_by(g, c_prev, tanh_c, dh, dc, dg, dc_prev, |p, y| act.times_grad(p, y)),
            }
        }
        recurrent_grad(s.w_hh, s.dims.hidden, s.dgx, 0..4 * hd, false, s.dh_prev);
        Ok(())
    }
}

/// [`crate::kernels::Kernels::lstm_row`] with a hard sigmoid as the gate activation: the same
/// steps, the gates in plain scalar arithmetic and `tanh` on the float type's kernels (so every
/// SIMD level gives the same bits).
fn lstm_row_with<F: Real>(act: GateActivation, g: &mut [F], b: &[F], c_prev: &[F], c: &mut [F], h: &mut [F]) {
    let hd = h.len();
    g.iter_mut().zip(b).for_each(|(x, &y)| *x = *x + y);
    act.slice(&mut g[..2 * hd]);
    F::tanh_slice(&mut g[2 * hd..3 * hd]);
    act.slice(&mut g[3 * hd..]);
    let (i, f, n) = (&g[..hd], &g[hd..2 * hd], &g[2 * hd..3 * hd]);
    for j in 0..hd {
        c[j] = f[j] * c_prev[j] + i[j] * n[j];
    }
    h.copy_from_slice(c);
    F::tanh_slice(h);
    h.iter_mut().zip(&g[3 * hd..]).for_each(|(v, &o)| *v = o * *v);
}

/// GRU with PyTorch's gate order `r, z, n`: `r = σ(·)`, `z = σ(·)`, `h = (1 − z)·n + z·h_prev`,
/// where the candidate `n` is
/// - `reset_after` (PyTorch, Keras `reset_after=True`, ONNX `linear_before_reset=1`):
///   `n = tanh(x·W_inᵀ + b_in + r·(h_prev·W_hnᵀ + b_hn))`;
/// - otherwise (tfjs, Keras `reset_after=False`, ONNX `linear_before_reset=0`):
///   `n = tanh(x·W_inᵀ + b_in + (r·h_prev)·W_hnᵀ + b_hn)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GruCell {
    /// Apply the reset gate after the recurrent product (the default of PyTorch).
    pub reset_after: bool,
    /// `σ` of the `r`, `z` gates.
    pub recurrent: GateActivation,
}

impl<F: Real> Cell<F> for GruCell {
    fn gates(&self) -> usize {
        3
    }

    /// Reset-after keeps `h_prev·W_hnᵀ + b_hn`; reset-before keeps `r·h_prev`.
    fn extra(&self) -> usize {
        1
    }

    fn recurrent_grad_blocks(&self) -> usize {
        usize::from(self.reset_after)
    }

    fn forward_step(&self, s: ForwardStep<'_, '_, F>) -> Result<()> {
        let hd = s.dims.hidden;
        let one = F::one();
        let (w, scratch, extra) = (Recurrent::of(&s), s.scratch, s.extra);
        // The products read h_prev (through the recurrent dropout mask); z·h_prev the carry.
        let carry = if s.h_carry.is_empty() { s.h_prev } else { s.h_carry };
        // r and z: the product accumulates straight into the gates (b_hh added in the row pass).
        recurrent_acc(w, s.h_prev, 0..2 * hd, s.gates);
        if self.reset_after {
            // n = tanh(x·W_inᵀ + b_in + r·(h_prev·W_hnᵀ + b_hn)); the product is kept for
            // backward. One fused pass per row (SIMD for f32).
            recurrent_product(w, s.h_prev, 2 * hd..3 * hd, scratch);
            let rows = s.gates.chunks_exact_mut(3 * hd).zip(scratch.chunks_exact(3 * hd));
            let states = carry.chunks_exact(hd).zip(extra.chunks_exact_mut(hd)).zip(s.h.chunks_exact_mut(hd));
            for ((g, rec), ((hp, e), h)) in rows.zip(states) {
                match self.recurrent {
                    GateActivation::Sigmoid => F::gru_row(g, s.b_hh, &rec[2 * hd..], hp, e, h),
                    act => gru_row_with(act, g, s.b_hh, &rec[2 * hd..], hp, e, h),
                }
            }
            return Ok(());
        }
        // n = tanh(x·W_inᵀ + b_in + (r·h_prev)·W_hnᵀ + b_hn); r·h_prev is kept for backward.
        for ((g, hp), rh) in
            s.gates.chunks_exact_mut(3 * hd).zip(s.h_prev.chunks_exact(hd)).zip(extra.chunks_exact_mut(hd))
        {
            g[..2 * hd].iter_mut().zip(s.b_hh).for_each(|(x, &b)| *x = *x + b);
            self.recurrent.slice(&mut g[..2 * hd]);
            for j in 0..hd {
                rh[j] = g[j] * hp[j];
            }
        }
        // Not skipped from a zero h_prev: r·h_prev is NaN where r is (a NaN input weight), and
        // the product then carries it, as PyTorch's would.
        recurrent_product(Recurrent { zero: false, ..w }, extra, 2 * hd..3 * hd, scratch);
        let states = carry.chunks_exact(hd).zip(s.h.chunks_exact_mut(hd));
        for ((g, rec), (hp, h)) in s.gates.chunks_exact_mut(3 * hd).zip(scratch.chunks_exact(3 * hd)).zip(states) {
            for j in 2 * hd..3 * hd {
                g[j] = g[j] + rec[j];
            }
            F::tanh_slice(&mut g[2 * hd..]);
            for j in 0..hd {
                let (z, n) = (g[hd + j], g[2 * hd + j]);
                h[j] = (one - z) * n + z * hp[j];
            }
        }
        Ok(())
    }

    fn backward_step(&self, s: BackwardStep<'_, '_, F>) -> Result<()> {
        let hd = s.dims.hidden;
        let rows = s.gates.chunks_exact(3 * hd).zip(s.dgx.chunks_exact_mut(3 * hd));
        let carry = if s.h_carry.is_empty() { s.h_prev } else { s.h_carry };
        let states = carry.chunks_exact(hd).zip(s.extra.chunks_exact(hd)).zip(s.dh.chunks_exact(hd));
        // Reset-after: dr = dn·(h_prev·W_hnᵀ + b_hn). Reset-before needs dn·W_hn first.
        for ((g, dg), ((hp, e), dh)) in rows.zip(states) {
            match self.recurrent {
                GateActivation::Sigmoid => F::gru_backward_row(g, hp, e, dh, dg, self.reset_after),
                act => gru_backward_row_by(g, hp, e, dh, dg, self.reset_after, |p, y| act.times_grad(p, y)),
            }
        }
        // dh_prev = dh·z + (the gradient through the recurrent products), built in s.dh_prev.
        if self.reset_after {
            // The candidate's recurrent part is scaled by r: its gradient dn·r goes to dgh; r's
            // and z's recurrent gradients are dgx's. The product runs over dgx's r and z
            // columns, then dgh's (one chain per output element, as over [dr, dz, dn·r]).
            for ((dgh, dgx), g) in
                s.dgh.chunks_exact_mut(hd).zip(s.dgx.chunks_exact(3 * hd)).zip(s.gates.chunks_exact(3 * hd))
            {
                for j in 0..hd {
                    dgh[j] = dgx[2 * hd + j] * g[j];
                }
            }
            recurrent_grad(s.w_hh, s.dims.hidden, s.dgx, 0..2 * hd, false, s.dh_prev);
            let kw = 3 * hd;
            add_yw(s.dgh, hd, (0, 2 * hd), hd, s.w_hh, kw, s.dh_prev, hd, true);
        } else {
            // d(r·h_prev) = dn · W_hn, kept in the first H columns of the scratch rows.
            let d_rh = &mut s.scratch[..s.dims.batch * hd];
            recurrent_grad(s.w_hh, s.dims.hidden, s.dgx, 2 * hd..3 * hd, false, d_rh);
            for (((dg, g), hp), (d_rh, dh_prev)) in s
                .dgx
                .chunks_exact_mut(3 * hd)
                .zip(s.gates.chunks_exact(3 * hd))
                .zip(s.h_prev.chunks_exact(hd))
                .zip(d_rh.chunks_exact(hd).zip(s.dh_prev.chunks_exact_mut(hd)))
            {
                for j in 0..hd {
                    let r = g[j];
                    dg[j] = self.recurrent.times_grad(d_rh[j] * hp[j], r);
                    dh_prev[j] = d_rh[j] * r;
                }
            }
            recurrent_grad(s.w_hh, s.dims.hidden, s.dgx, 0..2 * hd, true, s.dh_prev);
        }
        // The carry's gradient dh·z: into dh_prev, or on its own when the carry read the
        // unmasked state.
        if s.h_carry.is_empty() {
            for ((dh_prev, dh), g) in
                s.dh_prev.chunks_exact_mut(hd).zip(s.dh.chunks_exact(hd)).zip(s.gates.chunks_exact(3 * hd))
            {
                for j in 0..hd {
                    dh_prev[j] = dh_prev[j] + dh[j] * g[hd + j];
                }
            }
        } else {
            for ((dh_carry, dh), g) in
                s.dh_carry.chunks_exact_mut(hd).zip(s.dh.chunks_exact(hd)).zip(s.gates.chunks_exact(3 * hd))
            {
                for j in 0..hd {
                    dh_carry[j] = dh[j] * g[hd + j];
                }
            }
        }
        Ok(())
    }

    fn weight_hh_grad(
        &self,
        dgx: ndarray::ArrayView2<F>,
        dgh: ndarray::ArrayView2<F>,
        h_prev: ndarray::ArrayView2<F>,
        extra: ndarray::ArrayView2<F>,
        mut d_weight_hh: ndarray::ArrayViewMut2<F>,
    ) -> Result<()> {
        let hd = h_prev.ncols();
        let (rz, n) = d_weight_hh.view_mut().split_at(ndarray::Axis(0), 2 * hd);
        gemm_t_cols(dgx, 0..2 * hd, h_prev, F::one(), rz);
        if self.reset_after {
            // The candidate's recurrent gradient dn·r, against h_prev.
            gemm(F::one(), dgh.t(), h_prev, F::one(), n);
        } else {
            // The candidate's product is (r·h_prev)·W_hnᵀ: its gradient dn against r·h_prev.
            gemm_t_cols(dgx, 2 * hd..3 * hd, extra, F::one(), n);
        }
        Ok(())
    }
}

/// [`crate::kernels::Kernels::gru_row`] with a hard sigmoid as the gate activation (scalar
/// gates, `tanh` on the float type's kernels).
fn gru_row_with<F: Real>(
    act: GateActivation,
    g: &mut [F],
    b: &[F],
    rec: &[F],
    h_prev: &[F],
    extra: &mut [F],
    h: &mut [F],
) {
    let hd = h.len();
    let one = F::one();
    for j in 0..2 * hd {
        g[j] = act.apply(g[j] + b[j]);
    }
    for j in 0..hd {
        g[2 * hd + j] = g[2 * hd + j] + g[j] * rec[j];
        extra[j] = rec[j];
    }
    F::tanh_slice(&mut g[2 * hd..]);
    for j in 0..hd {
        let (z, n) = (g[hd + j], g[2 * hd + j]);
        h[j] = (one - z) * n + z * h_prev[j];
    }
}

/// Any of the three cells, chosen at run time from a [`crate::CellKind`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum AnyCell {
    /// Elman RNN.
    Rnn(RnnCell),
    /// LSTM.
    Lstm(LstmCell),
    /// GRU.
    Gru(GruCell),
}

impl AnyCell {
    /// The cell for `kind`.
    pub(crate) fn new(kind: crate::CellKind) -> Self {
        match kind {
            crate::CellKind::Rnn(nonlinearity) => AnyCell::Rnn(RnnCell { nonlinearity }),
            crate::CellKind::Lstm { recurrent } => AnyCell::Lstm(LstmCell { recurrent }),
            crate::CellKind::Gru { reset_after, recurrent } => AnyCell::Gru(GruCell { reset_after, recurrent }),
        }
    }

    fn get<F: Real>(&self) -> &dyn Cell<F> {
        match self {
            AnyCell::Rnn(c) => c,
            AnyCell::Lstm(c) => c,
            AnyCell::Gru(c) => c,
        }
    }
}

impl<F: Real> Cell<F> for AnyCell {
    fn gates(&self) -> usize {
        self.get::<F>().gates()
    }
    fn has_cell_state(&self) -> bool {
        self.get::<F>().has_cell_state()
    }
    fn extra(&self) -> usize {
        self.get::<F>().extra()
    }
    fn recurrent_grad_blocks(&self) -> usize {
        self.get::<F>().recurrent_grad_blocks()
    }
    fn forward_step(&self, s: ForwardStep<'_, '_, F>) -> Result<()> {
        self.get::<F>().forward_step(s)
    }
    fn backward_step(&self, s: BackwardStep<'_, '_, F>) -> Result<()> {
        self.get::<F>().backward_step(s)
    }
    fn weight_hh_grad(
        &self,
        dgx: ndarray::ArrayView2<F>,
        dgh: ndarray::ArrayView2<F>,
        h_prev: ndarray::ArrayView2<F>,
        extra: ndarray::ArrayView2<F>,
        d_weight_hh: ndarray::ArrayViewMut2<F>,
    ) -> Result<()> {
        self.get::<F>().weight_hh_grad(dgx, dgh, h_prev, extra, d_weight_hh)
    }
}
