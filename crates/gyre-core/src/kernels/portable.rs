//! The portable bodies of the kernels: plain IEEE arithmetic in a fixed order, generic over the
//! float type. They are what `f64` runs, the fallback of the f32 SIMD dispatch, the bodies its
//! per-level builds compile (`#[inline(always)]`), and the oracle the SIMD paths are tested
//! against.

use super::real::{sigmoid, Real};

/// The portable [`crate::kernels::Kernels::lstm_row`] (the oracle of the f32 SIMD builds).
pub(crate) fn lstm_row_portable<F: Real>(g: &mut [F], b: &[F], c_prev: &[F], c: &mut [F], h: &mut [F]) {
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

/// `p · σ'` for the logistic sigmoid from its output `y`: `p·y·(1 − y)`, in that order.
#[inline(always)]
pub(crate) fn times_sigmoid_grad<F: Real>(p: F, y: F) -> F {
    p * y * (F::one() - y)
}

/// The portable [`crate::kernels::Kernels::lstm_backward_row`], inlined into each SIMD build of it (plain IEEE
/// operations: every build gives the same bits).
#[inline(always)]
pub(crate) fn lstm_backward_row_portable<F: Real>(
    g: &[F],
    c_prev: &[F],
    tanh_c: &[F],
    dh: &[F],
    dc: &[F],
    dg: &mut [F],
    dc_prev: &mut [F],
) {
    lstm_backward_row_by(g, c_prev, tanh_c, dh, dc, dg, dc_prev, times_sigmoid_grad);
}

/// [`lstm_backward_row_portable`] for any gate activation: `times_grad(p, y)` is `p` times the
/// activation's derivative at the input that gave the gate value `y`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn lstm_backward_row_by<F: Real>(
    g: &[F],
    c_prev: &[F],
    tanh_c: &[F],
    dh: &[F],
    dc: &[F],
    dg: &mut [F],
    dc_prev: &mut [F],
    times_grad: impl Fn(F, F) -> F,
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
        di[j] = times_grad(dct * n, i);
        df[j] = times_grad(dct * c_prev[j], f);
        dn[j] = dct * i * (one - n * n);
        d_o[j] = times_grad(dh[j] * tc, o);
        dc_prev[j] = dct * f;
    }
}

/// The portable [`crate::kernels::Kernels::gru_backward_row`], inlined into each SIMD build of it.
#[inline(always)]
pub(crate) fn gru_backward_row_portable<F: Real>(
    g: &[F],
    h_prev: &[F],
    extra: &[F],
    dh: &[F],
    dg: &mut [F],
    reset_after: bool,
) {
    gru_backward_row_by(g, h_prev, extra, dh, dg, reset_after, times_sigmoid_grad);
}

/// [`gru_backward_row_portable`] for any gate activation (`times_grad` as for
/// [`lstm_backward_row_by`]).
#[inline(always)]
pub(crate) fn gru_backward_row_by<F: Real>(
    g: &[F],
    h_prev: &[F],
    extra: &[F],
    dh: &[F],
    dg: &mut [F],
    reset_after: bool,
    times_grad: impl Fn(F, F) -> F,
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
        dz[j] = times_grad(dh[j] * (h_prev[j] - n), z);
    }
    if reset_after {
        let (extra, dn) = (&extra[..hd], &dn[..hd]);
        for j in 0..hd {
            let r = gr[j];
            dr[j] = times_grad(dn[j] * extra[j], r);
        }
    } else {
        dr.fill(F::zero());
    }
}

/// The portable [`crate::kernels::Kernels::add_rows`], inlined into each SIMD build of it.
#[inline(always)]
pub(crate) fn add_rows_portable<F: Real>(out: &mut [F], x: &[F]) {
    let w = out.len();
    if w == 0 {
        return;
    }
    for row in x.chunks_exact(w) {
        out.iter_mut().zip(row).for_each(|(a, &v)| *a = *a + v);
    }
}

/// The portable [`crate::kernels::Kernels::gru_row`] (the oracle of the f32 SIMD builds).
pub(crate) fn gru_row_portable<F: Real>(g: &mut [F], b: &[F], rec: &[F], h_prev: &[F], extra: &mut [F], h: &mut [F]) {
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

/// The hyper-parameters of one Adam step as the element-wise update reads them (PyTorch's
/// arithmetic; the bias corrections computed once per step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep<F> {
    /// L2 penalty added to the gradient (0 for AdamW, whose decay is applied apart).
    pub weight_decay: F,
    /// β1, the first moment's decay.
    pub beta1: F,
    /// β2, the second moment's decay.
    pub beta2: F,
    /// `√(1 − β2^t)`.
    pub bias_correction2_sqrt: F,
    /// ε, added to the denominator.
    pub eps: F,
    /// `lr / (1 − β1^t)`.
    pub step_size: F,
}

/// The Adam arithmetic of [`crate::kernels::Kernels::adam_update`], inlined into each SIMD build of it (plain
/// IEEE operations, no fused multiply-adds: every build gives the same bits).
#[inline(always)]
pub(crate) fn adam_portable<F: Real>(p: &mut [F], g: &[F], m: &mut [F], v: &mut [F], h: AdamStep<F>) {
    let AdamStep { weight_decay, beta1, beta2, bias_correction2_sqrt, eps, step_size } = h;
    let one = F::one();
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let d = if weight_decay != F::zero() { g + weight_decay * *p } else { g };
        *m = beta1 * *m + (one - beta1) * d;
        *v = beta2 * *v + (one - beta2) * d * d;
        let denom = v.sqrt() / bias_correction2_sqrt + eps;
        *p = *p - step_size * (*m / denom);
    }
}

/// Lanes of [`crate::kernels::Kernels::square_sums`]: 32 independent chains of additions (four AVX-512 vectors of
/// f64), so that the sum runs at the rate of the loads rather than of one addition's latency
/// per lane (8 lanes held batch-1 training's gradient norm to 2 values per cycle).
pub(crate) const SQUARE_LANES: usize = 32;

/// The portable [`crate::kernels::Kernels::square_sums`], inlined into each SIMD build of it.
#[inline(always)]
pub(crate) fn square_sums_portable<F: Real>(x: &[F], lanes: &mut [f64; SQUARE_LANES]) {
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

/// The portable [`crate::kernels::Kernels::transpose`] (bounds-checked: panics on undersized slices).
pub(crate) fn transpose_portable<F: Copy>(src: &[F], rows: usize, k: usize, dst: &mut [F], ld: usize) {
    for (r, row) in src.chunks_exact(k.max(1)).take(rows).enumerate() {
        for (p, &v) in row.iter().enumerate() {
            dst[p * ld + r] = v;
        }
    }
}

/// The portable [`crate::kernels::Kernels::gemm_acc`]: each element one chain over `p` in order, multiply then add
/// (the fallback of the SIMD builds and the oracle they are tested against).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_acc_portable<F: Real>(
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

// The SIMD kernels' `exp(x) = 2^n · e^r` (Cephes' `expf`): `n = round(x / ln 2)` (ties to
// even), `r = x − n·ln 2` in two parts, `e^r` by a degree-6 polynomial; inputs clamped to
// `[EXP_LO, EXP_HI]` so that `2^n` stays a normal number. Every SIMD level computes it with
// these constants and the operations of `exp_fused`.
pub(crate) const EXP_HI: f32 = 88.0;
pub(crate) const EXP_LO: f32 = -87.0;
pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
pub(crate) const EXP_POLY: [f32; 6] =
    [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

/// The SIMD kernels' `exp`, one value at a time with the same operations (fused multiply-adds
/// where they fuse): the model the tests hold every SIMD level's sigmoid and tanh to, bit for
/// bit (for inputs other than NaN, which x86's clamp turns into a number).
#[cfg(test)]
pub(crate) fn exp_fused(x: f32) -> f32 {
    let x = x.clamp(EXP_LO, EXP_HI);
    let n = (x * LOG2E).round_ties_even();
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    let p = EXP_POLY[1..].iter().fold(EXP_POLY[0], |p, &c| p.mul_add(r, c));
    let y = p.mul_add(r * r, r) + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// [`exp_fused`] with every multiply-add unfused (multiply, round, add, round): the model the
/// tests hold the WebAssembly `simd128` sigmoid and tanh to, bit for bit (that level has no
/// fused multiply-add).
#[cfg(test)]
#[cfg_attr(not(all(target_family = "wasm", target_feature = "simd128")), allow(dead_code))]
pub(crate) fn exp_unfused(x: f32) -> f32 {
    let x = x.clamp(EXP_LO, EXP_HI);
    let n = (x * LOG2E).round_ties_even();
    let r = x - n * LN2_HI;
    let r = r - n * LN2_LO;
    let p = EXP_POLY[1..].iter().fold(EXP_POLY[0], |p, &c| p * r + c);
    let y = (p * (r * r) + r) + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The portable [`crate::kernels::Kernels::dot`]: 8 independent lanes, summed in a fixed tree.
pub(crate) fn dot_portable<F: Real>(a: &[F], b: &[F]) -> F {
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
