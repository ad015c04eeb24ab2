//! The per-type kernel table: what each float type runs for the hot operations. `f32` runs the
//! SIMD kernels of [`crate::kernels::dispatch`] (chosen for the CPU at run time); `f64` (gradient
//! checks) runs the portable bodies of [`crate::kernels::portable`], the oracle of the SIMD
//! builds. The time loop calls these through its [`Real`] bound (`F::lstm_row(..)`), with no
//! run-time cost: each type's table is resolved at compile time.

use super::portable::{
    adam_portable, add_rows_portable, dot_portable, gemm_acc_portable, gru_backward_row_portable, gru_row_portable,
    lstm_backward_row_portable, lstm_row_portable, square_sums_portable, transpose_portable, AdamStep, SQUARE_LANES,
};
use super::real::{sigmoid, Real};

/// The kernels of one float type (a supertrait of [`Real`]: every `F: Real` has them). The
/// defaults are the portable bodies; `f32` overrides each with its SIMD dispatch.
pub trait Kernels: Sized {
    /// Whether [`Kernels::gemm_acc`] is the fast product (SIMD) rather than the portable loop.
    const FAST_GEMM: bool = false;

    /// `c[i·ldc + j] += Σ_p a[i·rsa + p·csa] · b[p·ldb + j]` for `i < m`, `j < n`, `p < k`, each
    /// element one chain over `p` in order (see [`crate::kernels::dispatch::gemm_acc`], the f32 version,
    /// which also fetches `next`, the caller's next block of `b`, toward the core; it may be
    /// empty and never changes the result).
    #[allow(clippy::too_many_arguments)]
    fn gemm_acc(
        m: usize,
        n: usize,
        k: usize,
        a: &[Self],
        rsa: usize,
        csa: usize,
        b: &[Self],
        ldb: usize,
        c: &mut [Self],
        ldc: usize,
        _next: &[Self],
    ) where
        Self: Real,
    {
        gemm_acc_portable(m, n, k, a, rsa, csa, b, ldb, c, ldc);
    }

    /// Dot product in a fixed order (8 lanes, then a fixed tree).
    fn dot(a: &[Self], b: &[Self]) -> Self
    where
        Self: Real,
    {
        dot_portable(a, b)
    }

    /// `out[r] += x · w[r]` for the rows of `w: [R, K]` (`K = x.len()`, `R = out.len()`), each
    /// sum exactly as [`Kernels::dot`] forms it.
    fn add_dots(x: &[Self], w: &[Self], out: &mut [Self])
    where
        Self: Real,
    {
        if let Some(k) = std::num::NonZeroUsize::new(x.len()) {
            for (o, wr) in out.iter_mut().zip(w.chunks_exact(k.get())) {
                *o = *o + Self::dot(x, wr);
            }
        }
    }

    /// One Adam update of `p` from `g` with moments `m`, `v` (PyTorch's arithmetic, element by
    /// element; `h` the step's hyper-parameters).
    fn adam_update(p: &mut [Self], g: &[Self], m: &mut [Self], v: &mut [Self], h: AdamStep<Self>)
    where
        Self: Real,
    {
        adam_portable(p, g, m, v, h);
    }

    /// `x ← sigmoid(x)` element-wise.
    fn sigmoid_slice(x: &mut [Self])
    where
        Self: Real,
    {
        x.iter_mut().for_each(|v| *v = sigmoid(*v));
    }

    /// `x ← tanh(x)` element-wise.
    fn tanh_slice(x: &mut [Self])
    where
        Self: Real,
    {
        x.iter_mut().for_each(|v| *v = v.tanh());
    }

    /// The gate arithmetic of one LSTM row (PyTorch gate order `i, f, g, o`): `g: [4H]` holds
    /// the pre-activations without `b: [4H]` (`b_hh`), which is added first; then
    /// `i, f, o = σ(·)`, `g = tanh(·)` (written back into `g`), `c = f·c_prev + i·g` and
    /// `h = o·tanh(c)` (`c_prev`, `c`, `h`: `[H]`).
    fn lstm_row(g: &mut [Self], b: &[Self], c_prev: &[Self], c: &mut [Self], h: &mut [Self])
    where
        Self: Real,
    {
        lstm_row_portable(g, b, c_prev, c, h);
    }

    /// The backward gate arithmetic of one LSTM row: from the kept gates `g: [4H]` (activated),
    /// `c_prev`, `tanh(c)`, and the gradients `dh`, `dc` of the step's outputs (`[H]` each),
    /// the gates' pre-activation gradients `dg: [4H]` and `dc_prev: [H]`.
    #[allow(clippy::too_many_arguments)]
    fn lstm_backward_row(
        g: &[Self],
        c_prev: &[Self],
        tanh_c: &[Self],
        dh: &[Self],
        dc: &[Self],
        dg: &mut [Self],
        dc_prev: &mut [Self],
    ) where
        Self: Real,
    {
        lstm_backward_row_portable(g, c_prev, tanh_c, dh, dc, dg, dc_prev);
    }

    /// The backward gate arithmetic of one GRU row (gate order `r, z, n`): from the kept
    /// gates `g: [3H]` (activated), `h_prev`, `extra` (reset-after: `h_prev·W_hnᵀ + b_hn`) and
    /// the gradient `dh` of the step's output (`[H]` each), the gates' pre-activation
    /// gradients `dg: [3H]` (`dr` is left 0 for reset-before, which needs a product first).
    fn gru_backward_row(g: &[Self], h_prev: &[Self], extra: &[Self], dh: &[Self], dg: &mut [Self], reset_after: bool)
    where
        Self: Real,
    {
        gru_backward_row_portable(g, h_prev, extra, dh, dg, reset_after);
    }

    /// `out[j] += x[r·W + j]` for every row `r` of `x: [R, W]` in order (`W = out.len()`).
    fn add_rows(out: &mut [Self], x: &[Self])
    where
        Self: Real,
    {
        add_rows_portable(out, x);
    }

    /// `lanes[i] += x²` in f64 over `x`: first its last `len % 32` values (value `i` of them
    /// into lane `i`), then each group of 32 in order, value `i` into lane `i` (a square, then
    /// an addition: no fused multiply-add). The gradient norm's fixed order.
    fn square_sums(x: &[Self], lanes: &mut [f64; SQUARE_LANES])
    where
        Self: Real,
    {
        square_sums_portable(x, lanes);
    }

    /// `dst[p·ld + r] = src[r·k + p]` for `r < rows`, `p < k`: the row-major `[rows, k]`
    /// block `src` transposed into rows `ld` apart (`ld ≥ rows`; how `kernels::packed` packs
    /// `Wᵀ`). Other values of `dst` are left alone.
    fn transpose(src: &[Self], rows: usize, k: usize, dst: &mut [Self], ld: usize)
    where
        Self: Real,
    {
        transpose_portable(src, rows, k, dst, ld);
    }

    /// The gate arithmetic of one reset-after GRU row (gate order `r, z, n`): `g: [3H]` holds
    /// the pre-activations (`r`, `z` without their part of `b: [3H]` (`b_hh`); `n` the input
    /// part `x·W_inᵀ + b_in`), `rec: [H]` is `h_prev·W_hnᵀ + b_hn`. Then `r, z = σ(·)`,
    /// `n = tanh(g_n + r·rec)` (written back into `g`), `extra = rec` and
    /// `h = (1 − z)·n + z·h_prev` (`h_prev`, `extra`, `h`: `[H]`).
    fn gru_row(g: &mut [Self], b: &[Self], rec: &[Self], h_prev: &[Self], extra: &mut [Self], h: &mut [Self])
    where
        Self: Real,
    {
        gru_row_portable(g, b, rec, h_prev, extra, h);
    }
}

/// f32 runs on the SIMD kernels of `kernels::dispatch` (chosen for the CPU at run time).
impl Kernels for f32 {
    const FAST_GEMM: bool = true;

    fn gemm_acc(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        rsa: usize,
        csa: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        next: &[f32],
    ) {
        super::dispatch::gemm_acc(m, n, k, a, rsa, csa, b, ldb, c, ldc, next);
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::dispatch::dot(a, b)
    }

    fn add_dots(x: &[f32], w: &[f32], out: &mut [f32]) {
        super::dispatch::add_dots(x, w, out);
    }

    fn sigmoid_slice(x: &mut [f32]) {
        super::dispatch::sigmoid_inplace(x);
    }

    fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: AdamStep<f32>) {
        super::dispatch::adam(p, g, m, v, h);
    }

    fn tanh_slice(x: &mut [f32]) {
        super::dispatch::tanh_inplace(x);
    }

    fn lstm_row(g: &mut [f32], b: &[f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
        super::dispatch::lstm_row(g, b, c_prev, c, h);
    }

    fn gru_row(g: &mut [f32], b: &[f32], rec: &[f32], h_prev: &[f32], extra: &mut [f32], h: &mut [f32]) {
        super::dispatch::gru_row(g, b, rec, h_prev, extra, h);
    }

    fn lstm_backward_row(
        g: &[f32],
        c_prev: &[f32],
        tanh_c: &[f32],
        dh: &[f32],
        dc: &[f32],
        dg: &mut [f32],
        dc_prev: &mut [f32],
    ) {
        super::dispatch::lstm_backward_row(g, c_prev, tanh_c, dh, dc, dg, dc_prev);
    }

    fn gru_backward_row(g: &[f32], h_prev: &[f32], extra: &[f32], dh: &[f32], dg: &mut [f32], reset_after: bool) {
        super::dispatch::gru_backward_row(g, h_prev, extra, dh, dg, reset_after);
    }

    fn add_rows(out: &mut [f32], x: &[f32]) {
        super::dispatch::add_rows(out, x);
    }

    fn transpose(src: &[f32], rows: usize, k: usize, dst: &mut [f32], ld: usize) {
        super::dispatch::transpose(src, rows, k, dst, ld);
    }

    fn square_sums(x: &[f32], lanes: &mut [f64; SQUARE_LANES]) {
        super::dispatch::square_sums(x, lanes);
    }
}

/// f64 runs the portable bodies.
impl Kernels for f64 {}
