//! The floating-point types the kernels run on.

use ndarray::{LinalgScalar, ScalarOperand};
use std::fmt::{Debug, Display};
use std::iter::Sum;

/// A floating-point element type: `f32` (the working type) or `f64` (gradient checks).
pub trait Real:
    num_traits::Float + LinalgScalar + ScalarOperand + Send + Sync + Debug + Display + Sum + Default + 'static
{
    /// Converts a small constant (exactly representable in both types).
    fn lit(v: f64) -> Self;

    /// Whether [`Real::gemm_acc`] is the fast product (SIMD) rather than the portable loop.
    const FAST_GEMM: bool = false;

    /// `c[i·ldc + j] += Σ_p a[i·rsa + p·csa] · b[p·ldb + j]` for `i < m`, `j < n`, `p < k`, each
    /// element one chain over `p` in order (see [`crate::kernels::simd::gemm_acc`], the f32 version,
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
    ) {
        gemm_acc_portable(m, n, k, a, rsa, csa, b, ldb, c, ldc);
    }

    /// Dot product in a fixed order (8 lanes, then a fixed tree).
    fn dot(a: &[Self], b: &[Self]) -> Self {
        dot_portable(a, b)
    }

    /// One Adam update of `p` from `g` with moments `m`, `v` (PyTorch's arithmetic, element by
    /// element; `h = [weight_decay, beta1, beta2, √(1 − β2^t), eps, lr / (1 − β1^t)]`).
    fn adam_update(p: &mut [Self], g: &[Self], m: &mut [Self], v: &mut [Self], h: [Self; 6]) {
        adam_portable(p, g, m, v, h);
    }

    /// `x ← sigmoid(x)` element-wise.
    fn sigmoid_slice(x: &mut [Self]) {
        x.iter_mut().for_each(|v| *v = sigmoid(*v));
    }

    /// `x ← tanh(x)` element-wise.
    fn tanh_slice(x: &mut [Self]) {
        x.iter_mut().for_each(|v| *v = v.tanh());
    }

    /// The gate arithmetic of one LSTM row (PyTorch gate order `i, f, g, o`): `g: [4H]` holds
    /// the pre-activations without `b: [4H]` (`b_hh`), which is added first; then
    /// `i, f, o = σ(·)`, `g = tanh(·)` (written back into `g`), `c = f·c_prev + i·g` and
    /// `h = o·tanh(c)` (`c_prev`, `c`, `h`: `[H]`).
    fn lstm_row(g: &mut [Self], b: &[Self], c_prev: &[Self], c: &mut [Self], h: &mut [Self]) {
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
    ) {
        lstm_backward_row_portable(g, c_prev, tanh_c, dh, dc, dg, dc_prev);
    }

    /// The backward gate arithmetic of one GRU row (gate order `r, z, n`): from the kept
    /// gates `g: [3H]` (activated), `h_prev`, `extra` (reset-after: `h_prev·W_hnᵀ + b_hn`) and
    /// the gradient `dh` of the step's output (`[H]` each), the gates' pre-activation
    /// gradients `dg: [3H]` (`dr` is left 0 for reset-before, which needs a product first).
    fn gru_backward_row(g: &[Self], h_prev: &[Self], extra: &[Self], dh: &[Self], dg: &mut [Self], reset_after: bool) {
        gru_backward_row_portable(g, h_prev, extra, dh, dg, reset_after);
    }

    /// `out[j] += x[r·W + j]` for every row `r` of `x: [R, W]` in order (`W = out.len()`).
    fn add_rows(out: &mut [Self], x: &[Self]) {
        add_rows_portable(out, x);
    }

    /// `lanes[i] += x²` in f64 over `x`: first its last `len % 32` values (value `i` of them
    /// into lane `i`), then each group of 32 in order, value `i` into lane `i` (a square, then
    /// an addition: no fused multiply-add). The gradient norm's fixed order.
    fn square_sums(x: &[Self], lanes: &mut [f64; SQUARE_LANES]) {
        square_sums_portable(x, lanes);
    }

    /// `dst[p·ld + r] = src[r·k + p]` for `r < rows`, `p < k`: the row-major `[rows, k]`
    /// block `src` transposed into rows `ld` apart (`ld ≥ rows`; how [`crate::kernels::packed`] packs
    /// `Wᵀ`). Other values of `dst` are left alone.
    fn transpose(src: &[Self], rows: usize, k: usize, dst: &mut [Self], ld: usize) {
        transpose_portable(src, rows, k, dst, ld);
    }

    /// The gate arithmetic of one reset-after GRU row (gate order `r, z, n`): `g: [3H]` holds
    /// the pre-activations (`r`, `z` without their part of `b: [3H]` (`b_hh`); `n` the input
    /// part `x·W_inᵀ + b_in`), `rec: [H]` is `h_prev·W_hnᵀ + b_hn`. Then `r, z = σ(·)`,
    /// `n = tanh(g_n + r·rec)` (written back into `g`), `extra = rec` and
    /// `h = (1 − z)·n + z·h_prev` (`h_prev`, `extra`, `h`: `[H]`).
    fn gru_row(g: &mut [Self], b: &[Self], rec: &[Self], h_prev: &[Self], extra: &mut [Self], h: &mut [Self]) {
        gru_row_portable(g, b, rec, h_prev, extra, h);
    }
}

/// f32 runs on the SIMD kernels of [`crate::kernels::simd`] (chosen for the CPU at run time).
impl Real for f32 {
    #[inline(always)]
    fn lit(v: f64) -> Self {
        v as f32
    }

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
        crate::kernels::simd::gemm_acc(m, n, k, a, rsa, csa, b, ldb, c, ldc, next);
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        crate::kernels::simd::dot(a, b)
    }

    fn sigmoid_slice(x: &mut [f32]) {
        crate::kernels::simd::sigmoid_inplace(x);
    }

    fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: [f32; 6]) {
        crate::kernels::simd::adam(p, g, m, v, h);
    }

    fn tanh_slice(x: &mut [f32]) {
        crate::kernels::simd::tanh_inplace(x);
    }

    fn lstm_row(g: &mut [f32], b: &[f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
        crate::kernels::simd::lstm_row(g, b, c_prev, c, h);
    }

    fn gru_row(g: &mut [f32], b: &[f32], rec: &[f32], h_prev: &[f32], extra: &mut [f32], h: &mut [f32]) {
        crate::kernels::simd::gru_row(g, b, rec, h_prev, extra, h);
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
        crate::kernels::simd::lstm_backward_row(g, c_prev, tanh_c, dh, dc, dg, dc_prev);
    }

    fn gru_backward_row(g: &[f32], h_prev: &[f32], extra: &[f32], dh: &[f32], dg: &mut [f32], reset_after: bool) {
        crate::kernels::simd::gru_backward_row(g, h_prev, extra, dh, dg, reset_after);
    }

    fn add_rows(out: &mut [f32], x: &[f32]) {
        crate::kernels::simd::add_rows(out, x);
    }

    fn transpose(src: &[f32], rows: usize, k: usize, dst: &mut [f32], ld: usize) {
        crate::kernels::simd::transpose(src, rows, k, dst, ld);
    }

    fn square_sums(x: &[f32], lanes: &mut [f64; SQUARE_LANES]) {
        crate::kernels::simd::square_sums(x, lanes);
    }
}

impl Real for f64 {
    #[inline(always)]
    fn lit(v: f64) -> Self {
        v
    }
}

/// Logistic sigmoid, `1 / (1 + e^-x)`, written to stay finite for large `|x|`.
#[inline(always)]
pub fn sigmoid<F: Real>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}

/// The portable [`Real::lstm_row`] (the oracle of the f32 SIMD builds).
pub fn lstm_row_portable<F: Real>(g: &mut [F], b: &[F], c_prev: &[F], c: &mut [F], h: &mut [F]) {
    let hd = h.len();
    g.iter_mut().zip(b).for_each(|(x, &y)| *x = *x + y);
    g[..2 * hd].iter_mut().for_each(|v| *v = sigmoid(*v));
    g[2 * hd..3 * hd].iter_mut().for_each(|v| *v = v.tanh());
    g[3 * hd..].iter_mut().for_each(|v| *v = sigmoid(*v));
    let (i, f, n, o) = (&g[..hd], &g[hd..2 * hd], &g[2 * hd..3 * hd], &g[3 * hd..]);
    for j in 0..hd {
        c[j] = f[j] * c_prev[j] + i[j] * n[j];
        h[j] = o[j] * c[j].tanh();
    }
}

/// The portable [`Real::lstm_backward_row`], inlined into each SIMD build of it (plain IEEE
/// operations: every build gives the same bits).
#[inline(always)]
pub fn lstm_backward_row_portable<F: Real>(
    g: &[F],
    c_prev: &[F],
    tanh_c: &[F],
    dh: &[F],
    dc: &[F],
    dg: &mut [F],
    dc_prev: &mut [F],
) {
    let hd = dh.len();
    let one = F::one();
    let (gi, rest) = g.split_at(hd);
    let (gf, rest) = rest.split_at(hd);
    let (gn, go) = rest.split_at(hd);
    let (di, rest) = dg.split_at_mut(hd);
    let (df, rest) = rest.split_at_mut(hd);
    let (dn, d_o) = rest.split_at_mut(hd);
    let (c_prev, tanh_c, dc, dc_prev) = (&c_prev[..hd], &tanh_c[..hd], &dc[..hd], &mut dc_prev[..hd]);
    let (gi, gf, gn, go) = (&gi[..hd], &gf[..hd], &gn[..hd], &go[..hd]);
    let (df, dn, d_o) = (&mut df[..hd], &mut dn[..hd], &mut d_o[..hd]);
    for j in 0..hd {
        let (i, f, n, o) = (gi[j], gf[j], gn[j], go[j]);
        let tc = tanh_c[j];
        let dct = dc[j] + dh[j] * o * (one - tc * tc);
        di[j] = dct * n * i * (one - i);
        df[j] = dct * c_prev[j] * f * (one - f);
        dn[j] = dct * i * (one - n * n);
        d_o[j] = dh[j] * tc * o * (one - o);
        dc_prev[j] = dct * f;
    }
}

/// The portable [`Real::gru_backward_row`], inlined into each SIMD build of it.
#[inline(always)]
pub fn gru_backward_row_portable<F: Real>(
    g: &[F],
    h_prev: &[F],
    extra: &[F],
    dh: &[F],
    dg: &mut [F],
    reset_after: bool,
) {
    let hd = dh.len();
    let one = F::one();
    let (gr, rest) = g.split_at(hd);
    let (gz, gn) = rest.split_at(hd);
    let (dr, rest) = dg.split_at_mut(hd);
    let (dz, dn) = rest.split_at_mut(hd);
    let (gr, gz, gn, h_prev, dz, dn) = (&gr[..hd], &gz[..hd], &gn[..hd], &h_prev[..hd], &mut dz[..hd], &mut dn[..hd]);
    for j in 0..hd {
        let (z, n) = (gz[j], gn[j]);
        dn[j] = dh[j] * (one - z) * (one - n * n);
        dz[j] = dh[j] * (h_prev[j] - n) * z * (one - z);
    }
    if reset_after {
        let (extra, dn) = (&extra[..hd], &dn[..hd]);
        for j in 0..hd {
            let r = gr[j];
            dr[j] = dn[j] * extra[j] * r * (one - r);
        }
    } else {
        dr.fill(F::zero());
    }
}

/// The portable [`Real::add_rows`], inlined into each SIMD build of it.
#[inline(always)]
pub fn add_rows_portable<F: Real>(out: &mut [F], x: &[F]) {
    let w = out.len();
    if w == 0 {
        return;
    }
    for row in x.chunks_exact(w) {
        out.iter_mut().zip(row).for_each(|(a, &v)| *a = *a + v);
    }
}

/// The portable [`Real::gru_row`] (the oracle of the f32 SIMD builds).
pub fn gru_row_portable<F: Real>(g: &mut [F], b: &[F], rec: &[F], h_prev: &[F], extra: &mut [F], h: &mut [F]) {
    let hd = h.len();
    let one = F::one();
    for j in 0..2 * hd {
        g[j] = sigmoid(g[j] + b[j]);
    }
    for j in 0..hd {
        let (r, z) = (g[j], g[hd + j]);
        let n = (g[2 * hd + j] + r * rec[j]).tanh();
        g[2 * hd + j] = n;
        extra[j] = rec[j];
        h[j] = (one - z) * n + z * h_prev[j];
    }
}

/// The Adam arithmetic of [`Real::adam_update`], inlined into each SIMD build of it (plain
/// IEEE operations, no fused multiply-adds: every build gives the same bits).
#[inline(always)]
pub fn adam_portable<F: Real>(p: &mut [F], g: &[F], m: &mut [F], v: &mut [F], h: [F; 6]) {
    let [weight_decay, beta1, beta2, bias_correction2_sqrt, eps, step_size] = h;
    let one = F::one();
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let d = if weight_decay != F::zero() { g + weight_decay * *p } else { g };
        *m = beta1 * *m + (one - beta1) * d;
        *v = beta2 * *v + (one - beta2) * d * d;
        let denom = v.sqrt() / bias_correction2_sqrt + eps;
        *p = *p - step_size * (*m / denom);
    }
}

/// Lanes of [`Real::square_sums`]: 32 independent chains of additions (four AVX-512 vectors of
/// f64), so that the sum runs at the rate of the loads rather than of one addition's latency
/// per lane (8 lanes held batch-1 training's gradient norm to 2 values per cycle).
pub const SQUARE_LANES: usize = 32;

/// The portable [`Real::square_sums`], inlined into each SIMD build of it.
#[inline(always)]
pub fn square_sums_portable<F: Real>(x: &[F], lanes: &mut [f64; SQUARE_LANES]) {
    let chunks = x.chunks_exact(SQUARE_LANES);
    for (i, v) in chunks.remainder().iter().enumerate() {
        let v = v.to_f64().unwrap_or(f64::NAN);
        lanes[i] += v * v;
    }
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            let v = v.to_f64().unwrap_or(f64::NAN);
            *l += v * v;
        }
    }
}

/// The portable [`Real::transpose`] (bounds-checked: panics on undersized slices).
pub fn transpose_portable<F: Copy>(src: &[F], rows: usize, k: usize, dst: &mut [F], ld: usize) {
    for (r, row) in src.chunks_exact(k.max(1)).take(rows).enumerate() {
        for (p, &v) in row.iter().enumerate() {
            dst[p * ld + r] = v;
        }
    }
}

/// The portable [`Real::gemm_acc`]: each element one chain over `p` in order, multiply then add
/// (the fallback of the SIMD builds and the oracle they are tested against).
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc_portable<F: Real>(
    m: usize,
    n: usize,
    k: usize,
    a: &[F],
    rsa: usize,
    csa: usize,
    b: &[F],
    ldb: usize,
    c: &mut [F],
    ldc: usize,
) {
    for i in 0..m {
        let crow = &mut c[i * ldc..i * ldc + n];
        for p in 0..k {
            let s = a[i * rsa + p * csa];
            for (o, &w) in crow.iter_mut().zip(&b[p * ldb..p * ldb + n]) {
                *o = *o + s * w;
            }
        }
    }
}

/// The portable [`Real::dot`]: 8 independent lanes, summed in a fixed tree.
pub fn dot_portable<F: Real>(a: &[F], b: &[F]) -> F {
    const LANES: usize = 8;
    let mut acc = [F::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = ca.remainder().iter().zip(cb.remainder()).fold(F::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] = acc[l] + x[l] * y[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}
