//! f32 SIMD kernels chosen at run time: AVX-512, AVX2 + FMA, or portable scalar code (the
//! fallback on other CPUs, and the oracle the SIMD paths are tested against). The shipped
//! binary targets the baseline CPU of its triple; the wider paths are compiled with
//! `#[target_feature]` and entered only after `is_x86_feature_detected!` says the CPU has them.
//!
//! - [`gemm_acc`]: `c += a · b` for row-major blocks — the per-step recurrent products. Every
//!   output element is one chain of fused multiply-adds over `k` in order, whatever the block
//!   it falls in, so splitting the output over threads never changes a bit.
//! - [`dot`]: a dot product (the per-step product for very short sequences).
//! - [`sigmoid_inplace`], [`tanh_inplace`]: the gate nonlinearities, from one vectorized `exp`
//!   (a degree-6 polynomial after range reduction, as in Cephes' `expf`), accurate to a few
//!   units in the last place of the result's magnitude.
//!
//! `GYRE_SIMD=scalar|avx2|avx512` caps the level (for tests and comparisons); the default is
//! the best the CPU supports.
#![allow(unsafe_code)] // SIMD intrinsics; every unsafe block states what makes it sound

use std::sync::OnceLock;

/// An instruction-set level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Portable Rust (what the compiler makes of it for the baseline target).
    Scalar,
    /// AVX2 with FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F (x86-64-v4).
    Avx512,
}

fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Level::Avx2;
        }
    }
    Level::Scalar
}

/// The level in use: the CPU's best, capped by `GYRE_SIMD` when set.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let best = detect();
        let cap = match std::env::var("GYRE_SIMD").as_deref() {
            Ok("scalar") => Level::Scalar,
            Ok("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        best.min(cap)
    })
}

/// `c[i·ldc + j] += Σ_p a[i·rsa + p·csa] · b[p·ldb + j]` for `i < m`, `j < n`, `p < k`: `a`
/// row-major (`csa = 1`) or transposed (`rsa = 1`), `b` and `c` row-major.
///
/// Each `c` element accumulates its products in order `p = 0, 1, …` (fused multiply-adds on
/// the SIMD paths; the sum is carried through `c` between blocks of `k`, which changes no bit),
/// so any split of the output over threads gives the same result. Undersized slices (a caller
/// bug: the callers size every buffer from validated dimensions) take the bounds-checked
/// portable path, which panics on them.
///
/// `next` (may be empty) is fetched into L2 while the product runs: the caller's next block of
/// `b` (see [`crate::kernels::packed::gemm_acc_packed`]), so that the next call's first row tile reads
/// it from L2 instead of waiting on L3. The AVX-512 kernel spreads the fetches over its row
/// tiles after the first; the other levels ignore `next`. It changes no result.
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc(
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
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let fits = a.len() > (m - 1) * rsa + (k - 1) * csa && b.len() >= (k - 1) * ldb + n && c.len() >= (m - 1) * ldc + n;
    if !fits || ldb < n || ldc < n {
        return crate::kernels::real::gemm_acc_portable(m, n, k, a, rsa, csa, b, ldb, c, ldc);
    }
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512 F (detected), and the bounds were checked above.
        Level::Avx512 => unsafe {
            x86::gemm_acc_avx512(m, n, k, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc, next)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (detected), and the bounds were checked above.
        Level::Avx2 => unsafe {
            x86::gemm_acc_avx2(m, n, k, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc)
        },
        _ => crate::kernels::real::gemm_acc_portable(m, n, k, a, rsa, csa, b, ldb, c, ldc),
    }
}

/// `Σ a[i]·b[i]` over equally long slices, in a fixed order (lanes, then a fixed tree).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the kernel reads `n` elements of each slice.
        Level::Avx512 => unsafe { x86::dot_avx512(a.as_ptr(), b.as_ptr(), n) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the kernel reads `n` elements of each slice.
        Level::Avx2 => unsafe { x86::dot_avx2(a.as_ptr(), b.as_ptr(), n) },
        _ => crate::kernels::real::dot_portable(&a[..n], &b[..n]),
    }
}

/// Defines `pub fn $name` running the portable `$portable` (an `#[inline(always)]` function
/// of plain IEEE operations) compiled for the level in use, and `pub fn $on`, the same at a
/// given level (capped to what the CPU has; for tests). The compiler vectorizes the portable
/// code for each width, and every level gives the same bits (no fused multiply-adds are formed).
macro_rules! per_level {
    ($(#[$meta:meta])* pub fn $name:ident, $on:ident($($arg:ident: $ty:ty),* $(,)?) = $portable:path;) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $ty),*) {
            $on(level(), $($arg),*)
        }

        #[doc = concat!("[`", stringify!($name), "`] at `at`, or at the CPU's best level below it.")]
        #[allow(clippy::too_many_arguments)]
        pub fn $on(at: Level, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            fn avx512($($arg: $ty),*) {
                $portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx2($($arg: $ty),*) {
                $portable($($arg),*)
            }
            match at.min(detect()) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512 F detected; the function is safe Rust otherwise.
                Level::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 and FMA detected; the function is safe Rust otherwise.
                Level::Avx2 => unsafe { avx2($($arg),*) },
                _ => $portable($($arg),*),
            }
        }
    };
}

per_level! {
    /// One Adam update (see [`crate::Real::adam_update`]): the portable arithmetic compiled for
    /// the CPU's vector width; the same bits on every level.
    pub fn adam, adam_on(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: [f32; 6]) = crate::kernels::real::adam_portable;
}

per_level! {
    /// One LSTM backward row (see [`crate::Real::lstm_backward_row`]), compiled for the CPU's
    /// vector width; the same bits on every level.
    pub fn lstm_backward_row, lstm_backward_row_on(
        g: &[f32],
        c_prev: &[f32],
        tanh_c: &[f32],
        dh: &[f32],
        dc: &[f32],
        dg: &mut [f32],
        dc_prev: &mut [f32],
    ) = crate::kernels::real::lstm_backward_row_portable;
}

per_level! {
    /// One GRU backward row (see [`crate::Real::gru_backward_row`]), compiled for the CPU's
    /// vector width; the same bits on every level.
    pub fn gru_backward_row, gru_backward_row_on(g: &[f32], h_prev: &[f32], extra: &[f32], dh: &[f32], dg: &mut [f32], reset_after: bool) =
        crate::kernels::real::gru_backward_row_portable;
}

per_level! {
    /// The gradient norm's sums of squares (see [`crate::Real::square_sums`]), compiled for the
    /// CPU's vector width; the same bits on every level.
    pub fn square_sums, square_sums_on(x: &[f32], lanes: &mut [f64; crate::kernels::real::SQUARE_LANES]) = crate::kernels::real::square_sums_portable;
}

per_level! {
    /// `out += Σ rows of x` (see [`crate::Real::add_rows`]), compiled for the CPU's vector
    /// width; the same bits on every level.
    pub fn add_rows, add_rows_on(out: &mut [f32], x: &[f32]) = crate::kernels::real::add_rows_portable;
}

/// [`crate::Real::transpose`] for f32: 16 × 16 blocks through AVX-512 shuffles (one vector
/// load and store per row of a block instead of a store per value; packing `Wᵀ` was 10% of
/// batch-1 training), the edges and the other levels value by value. Moves values only: the
/// same result on every level.
pub fn transpose(src: &[f32], rows: usize, k: usize, dst: &mut [f32], ld: usize) {
    if rows == 0 || k == 0 {
        return;
    }
    let fits = src.len() >= rows * k && dst.len() > (k - 1) * ld + rows - 1 && ld >= rows;
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; `fits` bounds every address the kernel touches.
        Level::Avx512 if fits => unsafe { x86::transpose_avx512(src.as_ptr(), rows, k, dst.as_mut_ptr(), ld) },
        _ => crate::kernels::real::transpose_portable(src, rows, k, dst, ld),
    }
}

/// `x ← 1 / (1 + e^-x)` element-wise.
pub fn sigmoid_inplace(x: &mut [f32]) {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the kernel touches only `x`.
        Level::Avx512 => unsafe { x86::sigmoid_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the kernel touches only `x`.
        Level::Avx2 => unsafe { x86::sigmoid_avx2(x) },
        _ => x.iter_mut().for_each(|v| *v = crate::kernels::real::sigmoid(*v)),
    }
}

/// `x ← tanh(x)` element-wise.
pub fn tanh_inplace(x: &mut [f32]) {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the kernel touches only `x`.
        Level::Avx512 => unsafe { x86::tanh_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the kernel touches only `x`.
        Level::Avx2 => unsafe { x86::tanh_avx2(x) },
        _ => x.iter_mut().for_each(|v| *v = v.tanh()),
    }
}

/// One LSTM row (see [`crate::Real::lstm_row`]): `g: [4H]` pre-activations without `b_hh`,
/// `b: [4H]` `b_hh`, `c_prev: [H]`; out: `g` activated (`i, f, g, o`), `c: [H]`, `h: [H]`.
/// Every level computes the same IEEE operations in the same order (no fused multiply-adds),
/// so the SIMD paths give the bits of [`sigmoid_inplace`]/[`tanh_inplace`] plus the portable
/// state arithmetic.
pub fn lstm_row(g: &mut [f32], b: &[f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    let hd = h.len();
    let sized = g.len() == 4 * hd && b.len() == 4 * hd && c_prev.len() == hd && c.len() == hd;
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the sizes were checked, the kernel stays inside them.
        Level::Avx512 if sized => unsafe { x86::lstm_avx512(g, b, c_prev, c, h) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the sizes were checked, the kernel stays inside them.
        Level::Avx2 if sized => unsafe { x86::lstm_avx2(g, b, c_prev, c, h) },
        _ => crate::kernels::real::lstm_row_portable(g, b, c_prev, c, h),
    }
}

/// One reset-after GRU row (see [`crate::Real::gru_row`]): `g: [3H]` pre-activations (`r` and
/// `z` without `b_hh`; `n` the input part only), `b: [3H]` `b_hh`, `rec: [H]`
/// `h_prev·W_hnᵀ + b_hn`, `h_prev: [H]`; out: `g` activated (`r, z, n`), `extra: [H]` a copy
/// of `rec`, `h: [H]`. The same operations on every level, as for [`lstm_row`].
pub fn gru_row(g: &mut [f32], b: &[f32], rec: &[f32], h_prev: &[f32], extra: &mut [f32], h: &mut [f32]) {
    let hd = h.len();
    let sized = g.len() == 3 * hd && b.len() == 3 * hd && rec.len() == hd && h_prev.len() == hd && extra.len() == hd;
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the sizes were checked, the kernel stays inside them.
        Level::Avx512 if sized => unsafe { x86::gru_avx512(g, b, rec, h_prev, extra, h) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the sizes were checked, the kernel stays inside them.
        Level::Avx2 if sized => unsafe { x86::gru_avx2(g, b, rec, h_prev, extra, h) },
        _ => crate::kernels::real::gru_row_portable(g, b, rec, h_prev, extra, h),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    // exp(x) = 2^n · e^r, n = round(x / ln 2), r = x − n·ln 2 (in two parts), e^r by Cephes'
    // polynomial. Inputs are clamped so 2^n stays a normal number.
    const EXP_HI: f32 = 88.0;
    const EXP_LO: f32 = -87.0;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

    #[target_feature(enable = "avx512f")]
    fn exp512(x: __m512) -> __m512 {
        let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
            x,
            _mm512_set1_ps(LOG2E),
        ));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let r2 = _mm512_mul_ps(r, r);
        let y = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
        _mm512_scalef_ps(y, n)
    }

    #[target_feature(enable = "avx512f")]
    fn sigmoid512(x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_div_ps(one, _mm512_add_ps(one, e))
    }

    #[target_feature(enable = "avx512f")]
    fn tanh512(x: __m512) -> __m512 {
        // tanh|x| = (1 − e^{−2|x|}) / (1 + e^{−2|x|}), then the sign of x back.
        let sign = _mm512_set1_epi32(i32::MIN);
        let bits = _mm512_castps_si512(x);
        let ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, bits));
        let one = _mm512_set1_ps(1.0);
        let e = exp512(_mm512_mul_ps(ax, _mm512_set1_ps(-2.0)));
        let t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
        _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(bits, sign)))
    }

    /// An element-wise kernel over a slice, 16 lanes at a time (the tail through a mask).
    macro_rules! map512 {
        ($name:ident, $f:ident) => {
            #[target_feature(enable = "avx512f")]
            pub fn $name(x: &mut [f32]) {
                let mut chunks = x.chunks_exact_mut(16);
                for ch in &mut chunks {
                    // SAFETY: `ch` holds exactly 16 floats.
                    unsafe { _mm512_storeu_ps(ch.as_mut_ptr(), $f(_mm512_loadu_ps(ch.as_ptr()))) };
                }
                let rest = chunks.into_remainder();
                if !rest.is_empty() {
                    let mask: __mmask16 = (1u32 << rest.len()).wrapping_sub(1) as __mmask16;
                    // SAFETY: the mask covers exactly the `rest.len()` < 16 floats of `rest`.
                    unsafe {
                        let v = _mm512_maskz_loadu_ps(mask, rest.as_ptr());
                        _mm512_mask_storeu_ps(rest.as_mut_ptr(), mask, $f(v));
                    }
                }
            }
        };
    }
    map512!(sigmoid_avx512, sigmoid512);
    map512!(tanh_avx512, tanh512);

    #[target_feature(enable = "avx2,fma")]
    fn exp256(x: __m256) -> __m256 {
        let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
            x,
            _mm256_set1_ps(LOG2E),
        ));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        let y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        // 2^n from the exponent bits (n is in [-126, 127] after the clamp).
        let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        )));
        _mm256_mul_ps(y, pow2)
    }

    #[target_feature(enable = "avx2,fma")]
    fn sigmoid256(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_div_ps(one, _mm256_add_ps(one, e))
    }

    #[target_feature(enable = "avx2,fma")]
    fn tanh256(x: __m256) -> __m256 {
        let sign = _mm256_set1_ps(-0.0);
        let ax = _mm256_andnot_ps(sign, x);
        let one = _mm256_set1_ps(1.0);
        let e = exp256(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0)));
        let t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
        _mm256_or_ps(t, _mm256_and_ps(x, sign))
    }

    /// An element-wise kernel over a slice, 8 lanes at a time (the tail through a padded copy).
    macro_rules! map256 {
        ($name:ident, $f:ident) => {
            #[target_feature(enable = "avx2,fma")]
            pub fn $name(x: &mut [f32]) {
                let mut chunks = x.chunks_exact_mut(8);
                for ch in &mut chunks {
                    // SAFETY: `ch` holds exactly 8 floats.
                    unsafe { _mm256_storeu_ps(ch.as_mut_ptr(), $f(_mm256_loadu_ps(ch.as_ptr()))) };
                }
                let rest = chunks.into_remainder();
                if !rest.is_empty() {
                    let mut buf = [0f32; 8];
                    buf[..rest.len()].copy_from_slice(rest);
                    // SAFETY: `buf` holds 8 floats.
                    unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), $f(_mm256_loadu_ps(buf.as_ptr()))) };
                    let n = rest.len();
                    rest.copy_from_slice(&buf[..n]);
                }
            }
        };
    }
    map256!(sigmoid_avx2, sigmoid256);
    map256!(tanh_avx2, tanh256);

    /// The fused gate arithmetic of one row, written once over a vector type: `$v` lanes of
    /// `$t`, `$ld(mask, ptr)` / `$st(ptr, mask, v)` masked loads and stores, `$sig`/`$tanh` the
    /// nonlinearities and `$add`/`$sub`/`$mul` plain IEEE arithmetic.
    macro_rules! gate_rows {
        ($feat:literal, $lstm:ident, $gru:ident, $lanes:literal, $mask:ty, $mk:ident, $ld:ident, $st:ident,
         $set1:ident, $add:ident, $sub:ident, $mul:ident, $sig:ident, $tanh:ident) => {
            /// # Safety
            /// `g`, `b`: `4·H` floats, `c_prev`, `c`: `H` (checked by the caller).
            #[target_feature(enable = $feat)]
            pub unsafe fn $lstm(g: &mut [f32], b: &[f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
                let hd = h.len();
                let (gp, bp) = (g.as_mut_ptr(), b.as_ptr());
                // The gates first, one block at a time (every vector independent of the
                // others, so the core overlaps their long chains), then the states from the
                // stored gates: 1.85 → 1.55 ns per unit on H = 256 against one pass doing both
                // (whose every vector waited on its gates before its tanh(c)). The same
                // operations on each value either way.
                for (q, tanh) in [(0, false), (1, false), (2, true), (3, false)] {
                    let mut j = 0;
                    while j < hd {
                        let m = $mk(hd - j);
                        // SAFETY: `m` covers only lanes below `hd - j`; every block is `hd` long.
                        unsafe {
                            let at = gp.add(q * hd + j);
                            let x = $add($ld(m, at), $ld(m, bp.add(q * hd + j)));
                            $st(at, m, if tanh { $tanh(x) } else { $sig(x) });
                        }
                        j += $lanes;
                    }
                }
                let mut j = 0;
                while j < hd {
                    let m = $mk(hd - j);
                    // SAFETY: as above.
                    unsafe {
                        let gate = |q: usize| $ld(m, gp.add(q * hd + j));
                        let ct = $add($mul(gate(1), $ld(m, c_prev.as_ptr().add(j))), $mul(gate(0), gate(2)));
                        $st(c.as_mut_ptr().add(j), m, ct);
                        $st(h.as_mut_ptr().add(j), m, $mul(gate(3), $tanh(ct)));
                    }
                    j += $lanes;
                }
            }

            /// # Safety
            /// `g`, `b`: `3·H` floats, `rec`, `h_prev`, `extra`: `H` (checked by the caller).
            #[target_feature(enable = $feat)]
            pub unsafe fn $gru(
                g: &mut [f32],
                b: &[f32],
                rec: &[f32],
                h_prev: &[f32],
                extra: &mut [f32],
                h: &mut [f32],
            ) {
                let hd = h.len();
                let (gp, bp) = (g.as_mut_ptr(), b.as_ptr());
                let one = $set1(1.0);
                // r and z first (independent vectors, as in the LSTM row), then n and h.
                let mut j = 0;
                while j < 2 * hd {
                    let m = $mk(2 * hd - j);
                    // SAFETY: `m` covers only lanes below `2·hd - j`; `g` and `b` are `3·hd` long.
                    unsafe {
                        let at = gp.add(j);
                        $st(at, m, $sig($add($ld(m, at), $ld(m, bp.add(j)))));
                    }
                    j += $lanes;
                }
                let mut j = 0;
                while j < hd {
                    let m = $mk(hd - j);
                    // SAFETY: `m` covers only lanes below `hd - j`; every block is `hd` long.
                    unsafe {
                        let (r, z) = ($ld(m, gp.add(j)), $ld(m, gp.add(hd + j)));
                        let e = $ld(m, rec.as_ptr().add(j));
                        let n = $tanh($add($ld(m, gp.add(2 * hd + j)), $mul(r, e)));
                        $st(gp.add(2 * hd + j), m, n);
                        $st(extra.as_mut_ptr().add(j), m, e);
                        let hv = $add($mul($sub(one, z), n), $mul(z, $ld(m, h_prev.as_ptr().add(j))));
                        $st(h.as_mut_ptr().add(j), m, hv);
                    }
                    j += $lanes;
                }
            }
        };
    }

    #[inline(always)]
    fn mask16(left: usize) -> __mmask16 {
        if left >= 16 {
            0xFFFF
        } else {
            ((1u32 << left) - 1) as __mmask16
        }
    }

    /// Lane mask for 8-lane AVX2 loads and stores: all ones in the first `min(left, 8)` lanes.
    #[target_feature(enable = "avx2,fma")]
    fn mask8(left: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(left.min(8) as i32), idx)
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn ld512(m: __mmask16, p: *const f32) -> __m512 {
        // SAFETY: the caller's mask covers readable lanes only.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn st512(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: the caller's mask covers writable lanes only.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn ld256(m: __m256i, p: *const f32) -> __m256 {
        // SAFETY: the caller's mask covers readable lanes only (masked-off lanes are not read).
        unsafe { _mm256_maskload_ps(p, m) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn st256(p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: the caller's mask covers writable lanes only (masked-off lanes are not written).
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }

    gate_rows!(
        "avx512f",
        lstm_avx512,
        gru_avx512,
        16,
        __mmask16,
        mask16,
        ld512,
        st512,
        _mm512_set1_ps,
        _mm512_add_ps,
        _mm512_sub_ps,
        _mm512_mul_ps,
        sigmoid512,
        tanh512
    );
    gate_rows!(
        "avx2,fma",
        lstm_avx2,
        gru_avx2,
        8,
        __m256i,
        mask8,
        ld256,
        st256,
        _mm256_set1_ps,
        _mm256_add_ps,
        _mm256_sub_ps,
        _mm256_mul_ps,
        sigmoid256,
        tanh256
    );

    /// Horizontal sum of 16 lanes in a fixed tree.
    #[target_feature(enable = "avx512f")]
    fn hsum512(v: __m512) -> f32 {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        hsum256(_mm256_add_ps(lo, hi))
    }

    #[target_feature(enable = "avx")]
    fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// `a` and `b` must each point to `n` readable floats.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(a: *const f32, b: *const f32, n: usize) -> f32 {
        let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads lanes below `n` (the tail through a mask).
        unsafe {
            while i + 32 <= n {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), s0);
                s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i + 16)), _mm512_loadu_ps(b.add(i + 16)), s1);
                i += 32;
            }
            while i < n {
                let left = (n - i).min(16);
                let mask: __mmask16 = (1u32 << left).wrapping_sub(1) as __mmask16;
                s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a.add(i)), _mm512_maskz_loadu_ps(mask, b.add(i)), s0);
                i += left;
            }
        }
        hsum512(_mm512_add_ps(s0, s1))
    }

    /// # Safety
    /// `a` and `b` must each point to `n` readable floats.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: *const f32, b: *const f32, n: usize) -> f32 {
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        let mut tail = 0f32;
        // SAFETY: every load reads lanes below `n`.
        unsafe {
            while i + 16 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i + 8)), _mm256_loadu_ps(b.add(i + 8)), s1);
                i += 16;
            }
            while i + 8 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), s0);
                i += 8;
            }
            while i < n {
                tail = (*a.add(i)).mul_add(*b.add(i), tail);
                i += 1;
            }
        }
        hsum256(_mm256_add_ps(s0, s1)) + tail
    }

    /// `MR` rows × `NV` vectors of 16 columns of `c += a·b`; `last` masks the last vector.
    ///
    /// # Safety
    /// Rows `0..MR` of `a` (`k` floats each, stride `lda`), rows `0..k` of `b` and rows `0..MR`
    /// of `c` (the columns the vectors and mask cover) must be readable (and `c` writable).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile512<const MR: usize, const NV: usize>(
        k: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        last: __mmask16,
    ) {
        let mask = |v: usize| if v + 1 == NV { last } else { 0xFFFF };
        // SAFETY: the caller guarantees every address below is inside its slice.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NV]; MR];
            for (i, row) in acc.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm512_maskz_loadu_ps(mask(v), c.add(i * ldc + 16 * v));
                }
            }
            for p in 0..k {
                let mut bv = [_mm512_setzero_ps(); NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm512_maskz_loadu_ps(mask(v), b.add(p * ldb + 16 * v));
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let s = _mm512_set1_ps(*a.add(i * rsa + p * csa));
                    for (x, &w) in row.iter_mut().zip(&bv) {
                        *x = _mm512_fmadd_ps(s, w, *x);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    _mm512_mask_storeu_ps(c.add(i * ldc + 16 * v), mask(v), x);
                }
            }
        }
    }

    /// Cache lines a row tile fetches ahead into L2 ([`gemm_acc_avx512`]'s `next`): from `.0`
    /// up to `.1`, one at the steps `p` along `k` with `p & .2 == 0` (null pointers: none).
    type Ahead = (*const f32, *const f32, usize);

    /// The 16 × 16 transpose of the rows `v` (row `i` out = column `i` in).
    #[target_feature(enable = "avx512f")]
    fn transpose16(v: [__m512; 16]) -> [__m512; 16] {
        let pd = _mm512_castps_pd;
        let ps = _mm512_castpd_ps;
        // Pairs of rows interleaved by 32 bits, then by 64 bits: within each 128-bit lane,
        // four rows' elements in order.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let (a, b) = (4 * g, 4 * g + 2);
            u[4 * g] = ps(_mm512_unpacklo_pd(pd(t[a]), pd(t[b])));
            u[4 * g + 1] = ps(_mm512_unpackhi_pd(pd(t[a]), pd(t[b])));
            u[4 * g + 2] = ps(_mm512_unpacklo_pd(pd(t[a + 1]), pd(t[b + 1])));
            u[4 * g + 3] = ps(_mm512_unpackhi_pd(pd(t[a + 1]), pd(t[b + 1])));
        }
        // Then the 128-bit lanes: u[4g + j] holds, in lane l, elements 4l + j of rows 4g..4g+4.
        let mut w = [_mm512_setzero_ps(); 16];
        for j in 0..4 {
            w[j] = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
            w[4 + j] = _mm512_shuffle_f32x4::<0xdd>(u[j], u[4 + j]);
            w[8 + j] = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
            w[12 + j] = _mm512_shuffle_f32x4::<0xdd>(u[8 + j], u[12 + j]);
        }
        let mut out = [_mm512_setzero_ps(); 16];
        for j in 0..8 {
            out[j] = _mm512_shuffle_f32x4::<0x88>(w[j], w[8 + j]);
            out[8 + j] = _mm512_shuffle_f32x4::<0xdd>(w[j], w[8 + j]);
        }
        out
    }

    /// # Safety
    /// `src` holds `rows·k` values, `dst` `(k − 1)·ld + rows`, `ld ≥ rows` (checked by the caller).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transpose_avx512(src: *const f32, rows: usize, k: usize, dst: *mut f32, ld: usize) {
        let (r16, k16) = (rows / 16 * 16, k / 16 * 16);
        // SAFETY: every address is `r·k + p` with r < rows, p < k in `src`, and `p·ld + r` in `dst`.
        unsafe {
            for r0 in (0..r16).step_by(16) {
                for p0 in (0..k16).step_by(16) {
                    let mut v = [_mm512_setzero_ps(); 16];
                    for (i, x) in v.iter_mut().enumerate() {
                        *x = _mm512_loadu_ps(src.add((r0 + i) * k + p0));
                    }
                    for (i, x) in transpose16(v).into_iter().enumerate() {
                        _mm512_storeu_ps(dst.add((p0 + i) * ld + r0), x);
                    }
                }
            }
            for r in 0..rows {
                for p in if r < r16 { k16 } else { 0 }..k {
                    *dst.add(p * ld + r) = *src.add(r * k + p);
                }
            }
        }
    }

    /// The full-width tile: `MR` rows × 64 columns, no masks, one pointer per row of `a` and the
    /// depth an offset from them.
    ///
    /// # Safety
    /// As [`tile512`], for 64 columns. The lines of `ahead` are only prefetched (never read).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile512_full<const MR: usize, const FETCH: bool>(
        k: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        (mut ahead, ahead_end, skip): Ahead,
    ) {
        // SAFETY: the caller guarantees every address below is inside its slice.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 4]; MR];
            for (i, row) in acc.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(c.add(i * ldc + 16 * v));
                }
            }
            // One pointer per row of `a`, the depth an offset from them, four steps per iteration
            // (the loop walked one pointer down the rows at every step: a chain of row-stride
            // additions beside the 24 multiply-adds): +2–5% on the products alone (32×256×1024,
            // 512×128×1024, 1024³; A/B alternating in one process), +0–3% on the workloads.
            let rows: [*const f32; MR] = std::array::from_fn(|i| a.add(i * rsa));
            let step = |acc: &mut [[__m512; 4]; MR], off: usize, bp: *const f32| {
                let bv = [
                    _mm512_loadu_ps(bp),
                    _mm512_loadu_ps(bp.add(16)),
                    _mm512_loadu_ps(bp.add(32)),
                    _mm512_loadu_ps(bp.add(48)),
                ];
                for (row, &ar) in acc.iter_mut().zip(&rows) {
                    let s = _mm512_set1_ps(*ar.add(off));
                    for (x, &w) in row.iter_mut().zip(&bv) {
                        *x = _mm512_fmadd_ps(s, w, *x);
                    }
                }
            };
            let (mut bp, mut off, mut p) = (b, 0, 0);
            if FETCH {
                // First the steps that fetch a line (each step, or every other one with
                // `skip` 1), two per iteration, then the rest without a fetch. One loop per
                // `skip`, with no branch inside: fetches behind a branch in the loop made the
                // compiler spill accumulators (lstm-l −19%).
                let lines = (ahead_end as usize).saturating_sub(ahead as usize).div_ceil(64);
                let fetching = (lines << skip).min(k);
                if skip == 0 {
                    while p + 2 <= fetching {
                        _mm_prefetch::<_MM_HINT_T1>(ahead as *const i8);
                        step(&mut acc, off, bp);
                        _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(16) as *const i8);
                        step(&mut acc, off + csa, bp.add(ldb));
                        ahead = ahead.wrapping_add(32);
                        (bp, off, p) = (bp.add(2 * ldb), off + 2 * csa, p + 2);
                    }
                } else {
                    while p + 2 <= fetching {
                        _mm_prefetch::<_MM_HINT_T1>(ahead as *const i8);
                        step(&mut acc, off, bp);
                        step(&mut acc, off + csa, bp.add(ldb));
                        ahead = ahead.wrapping_add(16);
                        (bp, off, p) = (bp.add(2 * ldb), off + 2 * csa, p + 2);
                    }
                }
                if p < fetching {
                    _mm_prefetch::<_MM_HINT_T1>(ahead as *const i8);
                    step(&mut acc, off, bp);
                    (bp, off, p) = (bp.add(ldb), off + csa, p + 1);
                }
            }
            while p + 4 <= k {
                step(&mut acc, off, bp);
                step(&mut acc, off + csa, bp.add(ldb));
                step(&mut acc, off + 2 * csa, bp.add(2 * ldb));
                step(&mut acc, off + 3 * csa, bp.add(3 * ldb));
                (bp, off, p) = (bp.add(4 * ldb), off + 4 * csa, p + 4);
            }
            while p < k {
                step(&mut acc, off, bp);
                (bp, off, p) = (bp.add(ldb), off + csa, p + 1);
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    _mm512_storeu_ps(c.add(i * ldc + 16 * v), x);
                }
            }
        }
    }

    /// [`tile512_full`] for `rows` (1 to 6) rows, fetching `pf` ahead when `FETCH`.
    ///
    /// # Safety
    /// As [`tile512_full`].
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn full_tile<const FETCH: bool>(
        rows: usize,
        k: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        pf: Ahead,
    ) {
        // SAFETY: the caller's bounds hold for `rows` rows.
        unsafe {
            match rows {
                6 => tile512_full::<6, FETCH>(k, a, rsa, csa, b, ldb, c, ldc, pf),
                5 => tile512_full::<5, FETCH>(k, a, rsa, csa, b, ldb, c, ldc, pf),
                4 => tile512_full::<4, FETCH>(k, a, rsa, csa, b, ldb, c, ldc, pf),
                3 => tile512_full::<3, FETCH>(k, a, rsa, csa, b, ldb, c, ldc, pf),
                2 => tile512_full::<2, FETCH>(k, a, rsa, csa, b, ldb, c, ldc, pf),
                _ => tile512_full::<1, FETCH>(k, a, rsa, csa, b, ldb, c, ldc, pf),
            }
        }
    }

    /// Depth of one pass over `k`: a `KC × 64` panel of `b` (64 KiB) stays in L2 while every
    /// row block of `a` streams past it.
    const KC: usize = 256;
    /// Elements of `c` (1 MiB of f32) beyond which [`gemm_acc_avx512`] prefetches its rows.
    const LARGE_C: usize = 1 << 18;

    /// # Safety
    /// As [`super::gemm_acc`]'s bounds, checked by it.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_acc_avx512(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        next: &[f32],
    ) {
        const NR: usize = 64;
        let large_c = m * ldc > LARGE_C;
        // `next` goes to L2 over the full-width row tiles after the first (the first streams
        // this call's block of `b` in from L3 at ~40% of the tiles' rate and is left alone),
        // one line every two steps along `k`, or every step when there are few tiles.
        // 64 × 512 × 2048 packed (the lstm-l step): +7%, 6400 × 512 × 2048: +5%.
        let (mut fetch, fetch_end) = (next.as_ptr(), next.as_ptr().wrapping_add(next.len()));
        let later_tiles = m.div_ceil(6).saturating_sub(1);
        let skip = usize::from(later_tiles * k.min(KC).div_ceil(2) >= next.len().div_ceil(16));
        let mut p0 = 0;
        while p0 < k {
            let kc = (k - p0).min(KC);
            let mut j = 0;
            while j < n {
                let cols = (n - j).min(NR);
                let nv = cols.div_ceil(16);
                let last: __mmask16 = (1u32 << (cols - 16 * (nv - 1))).wrapping_sub(1) as __mmask16;
                let mut i = 0;
                while i < m {
                    let rows = (m - i).min(if cols == NR { 6 } else { 4 });
                    // The next tile's rows of a large `c` (beyond L2) start on their way to L1
                    // while this one runs: each tile would otherwise stall on its first loads
                    // (+20% on a 6400 × 512 × 2048 product, measured in `gemm_compare`).
                    let ahead = if large_c { (i + 2 * rows).min(m) } else { 0 };
                    for r in i + rows..ahead {
                        let row = c.wrapping_add(r * ldc + j);
                        for v in 0..nv {
                            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(16 * v) as *const i8);
                        }
                    }
                    let fetching = i > 0 && cols == NR && fetch < fetch_end;
                    let pf: Ahead = if fetching {
                        let from = fetch;
                        fetch = fetch.wrapping_add(16 * kc.div_ceil(skip + 1)).min(fetch_end);
                        (from, fetch, skip)
                    } else {
                        (std::ptr::null(), std::ptr::null(), skip)
                    };
                    // SAFETY: rows i..i+rows, depth p0..p0+kc, columns j..j+cols are in bounds.
                    unsafe {
                        let (a, b, c) = (a.add(i * rsa + p0 * csa), b.add(p0 * ldb + j), c.add(i * ldc + j));
                        match (rows, nv) {
                            (_, _) if cols == NR && fetching => {
                                full_tile::<true>(rows, kc, a, rsa, csa, b, ldb, c, ldc, pf)
                            }
                            (_, _) if cols == NR => full_tile::<false>(rows, kc, a, rsa, csa, b, ldb, c, ldc, pf),
                            (4, 4) => tile512::<4, 4>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (4, 3) => tile512::<4, 3>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (4, 2) => tile512::<4, 2>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (4, _) => tile512::<4, 1>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (3, 4) => tile512::<3, 4>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (3, 3) => tile512::<3, 3>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (3, 2) => tile512::<3, 2>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (3, _) => tile512::<3, 1>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (2, 4) => tile512::<2, 4>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (2, 3) => tile512::<2, 3>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (2, 2) => tile512::<2, 2>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (2, _) => tile512::<2, 1>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (_, 4) => tile512::<1, 4>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (_, 3) => tile512::<1, 3>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (_, 2) => tile512::<1, 2>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                            (_, _) => tile512::<1, 1>(kc, a, rsa, csa, b, ldb, c, ldc, last),
                        }
                    }
                    i += rows;
                }
                j += cols;
            }
            p0 += kc;
        }
    }

    /// `MR` rows × `NV` vectors of 8 columns of `c += a·b` (full vectors only).
    ///
    /// # Safety
    /// As [`tile512`], for `8·NV` columns.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile256<const MR: usize, const NV: usize>(
        k: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        // SAFETY: the caller guarantees every address below is inside its slice.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); NV]; MR];
            for (i, row) in acc.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm256_loadu_ps(c.add(i * ldc + 8 * v));
                }
            }
            for p in 0..k {
                let mut bv = [_mm256_setzero_ps(); NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm256_loadu_ps(b.add(p * ldb + 8 * v));
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let s = _mm256_set1_ps(*a.add(i * rsa + p * csa));
                    for (x, &w) in row.iter_mut().zip(&bv) {
                        *x = _mm256_fmadd_ps(s, w, *x);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    _mm256_storeu_ps(c.add(i * ldc + 8 * v), x);
                }
            }
        }
    }

    /// # Safety
    /// As [`super::gemm_acc`]'s bounds, checked by it.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_acc_avx2(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        const NR: usize = 24;
        let full = n / 8 * 8;
        let mut p0 = 0;
        while p0 < k {
            let kc = (k - p0).min(KC);
            let mut j = 0;
            while j < full {
                let nv = ((full - j) / 8).min(NR / 8);
                let mut i = 0;
                while i < m {
                    let rows = (m - i).min(4);
                    // SAFETY: rows i..i+rows, depth p0..p0+kc, columns j..j+8·nv are in bounds.
                    unsafe {
                        let (a, b, c) = (a.add(i * rsa + p0 * csa), b.add(p0 * ldb + j), c.add(i * ldc + j));
                        match (rows, nv) {
                            (4, 3) => tile256::<4, 3>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (4, 2) => tile256::<4, 2>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (4, _) => tile256::<4, 1>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (3, 3) => tile256::<3, 3>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (3, 2) => tile256::<3, 2>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (3, _) => tile256::<3, 1>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (2, 3) => tile256::<2, 3>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (2, 2) => tile256::<2, 2>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (2, _) => tile256::<2, 1>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (_, 3) => tile256::<1, 3>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (_, 2) => tile256::<1, 2>(kc, a, rsa, csa, b, ldb, c, ldc),
                            (_, _) => tile256::<1, 1>(kc, a, rsa, csa, b, ldb, c, ldc),
                        }
                    }
                    i += rows;
                }
                j += 8 * nv;
            }
            p0 += kc;
        }
        // Columns past the last full vector: the same fused chain, one element at a time.
        for i in 0..m {
            for j in full..n {
                // SAFETY: (i, j) and every p < k are inside the checked bounds.
                unsafe {
                    let o = c.add(i * ldc + j);
                    let mut s = *o;
                    for p in 0..k {
                        s = (*a.add(i * rsa + p * csa)).mul_add(*b.add(p * ldb + j), s);
                    }
                    *o = s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn gemm_acc_matches_f64_arithmetic_on_every_shape_edge() {
        for &(m, n, k) in &[(1, 1, 1), (3, 17, 5), (4, 64, 33), (5, 65, 64), (9, 130, 7), (32, 1024, 256), (2, 200, 1)]
        {
            let (lda, ldb, ldc) = (k + 3, n + 5, n + 2);
            let a = fill(m * lda, 1);
            let b = fill(k * ldb, 2);
            let c0 = fill(m * ldc, 3);
            let mut c = c0.clone();
            gemm_acc(m, n, k, &a, lda, 1, &b, ldb, &mut c, ldc, &[]);
            for i in 0..m {
                for j in 0..ldc {
                    let want = if j < n {
                        c0[i * ldc + j] as f64
                            + (0..k).map(|p| a[i * lda + p] as f64 * b[p * ldb + j] as f64).sum::<f64>()
                    } else {
                        c0[i * ldc + j] as f64 // padding columns untouched
                    };
                    let tol = 1e-5 * (1.0 + k as f64).sqrt() * 4.0;
                    assert!(
                        (c[i * ldc + j] as f64 - want).abs() <= tol,
                        "m{m} n{n} k{k} ({i},{j}): {} vs {want}",
                        c[i * ldc + j]
                    );
                }
            }
        }
    }

    #[test]
    fn gemm_acc_gives_the_same_bits_for_any_split_of_the_output() {
        let (m, n, k) = (13, 150, 40);
        let a = fill(m * k, 4);
        let b = fill(k * n, 5);
        let mut whole = vec![0f32; m * n];
        gemm_acc(m, n, k, &a, k, 1, &b, n, &mut whole, n, &[]);
        let mut parts = vec![0f32; m * n];
        for (i0, i1) in [(0, 5), (5, 6), (6, 13)] {
            for (j0, j1) in [(0, 37), (37, 101), (101, 150)] {
                gemm_acc(i1 - i0, j1 - j0, k, &a[i0 * k..], k, 1, &b[j0..], n, &mut parts[i0 * n + j0..], n, &[]);
            }
        }
        let diff: Vec<usize> = (0..m * n).filter(|&q| whole[q] != parts[q]).collect();
        assert!(
            diff.is_empty(),
            "differ at (row, col) {:?}",
            diff.iter().take(12).map(|&q| (q / n, q % n)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn transpose_matches_the_portable_loop_on_every_edge() {
        for &(rows, k, pad) in
            &[(16, 16, 0), (64, 64, 0), (33, 47, 3), (5, 70, 1), (70, 5, 0), (1, 1, 0), (48, 128, 16)]
        {
            let src: Vec<f32> = (0..rows * k).map(|i| i as f32 + 0.5).collect();
            let ld = rows + pad;
            let mut got = vec![-1.0f32; (k - 1) * ld + rows + 5];
            let mut want = got.clone();
            transpose(&src, rows, k, &mut got, ld);
            crate::kernels::real::transpose_portable(&src, rows, k, &mut want, ld);
            assert_eq!(got, want, "rows {rows}, k {k}, ld {ld}");
        }
    }

    #[test]
    fn gemm_acc_reads_a_transposed_a_exactly_as_a_copied_one() {
        let (m, n, k) = (7, 90, 600);
        let at = fill(k * m, 8); // a stored transposed: a[i, p] = at[p·m + i]
        let a: Vec<f32> = (0..m * k).map(|q| at[(q % k) * m + q / k]).collect();
        let b = fill(k * n, 9);
        let (mut c1, mut c2) = (vec![0.25f32; m * n], vec![0.25f32; m * n]);
        gemm_acc(m, n, k, &at, 1, m, &b, n, &mut c1, n, &[]);
        gemm_acc(m, n, k, &a, k, 1, &b, n, &mut c2, n, &[]);
        assert_eq!(c1, c2);
    }

    /// Every level (each runs at the CPU's best below it).
    const LEVELS: [Level; 3] = [Level::Scalar, Level::Avx2, Level::Avx512];

    #[test]
    fn gru_backward_row_and_add_rows_give_the_portable_bits_on_every_level() {
        for hd in [1, 7, 16, 100] {
            let g: Vec<f32> = fill(3 * hd, 40).iter().map(|x| 0.5 + 0.4 * x).collect();
            let (hp, e, dh) = (fill(hd, 41), fill(hd, 42), fill(hd, 43));
            for reset_after in [true, false] {
                let mut want = vec![f32::NAN; 3 * hd];
                crate::kernels::real::gru_backward_row_portable(&g, &hp, &e, &dh, &mut want, reset_after);
                assert!(want.iter().all(|x| x.is_finite()));
                for at in LEVELS {
                    let mut got = vec![f32::NAN; 3 * hd];
                    gru_backward_row_on(at, &g, &hp, &e, &dh, &mut got, reset_after);
                    assert_eq!(got, want, "{at:?}, H {hd}, reset_after {reset_after}");
                }
            }
            let x = fill(37 * hd, 44);
            let mut want = fill(hd, 45);
            let start = want.clone();
            crate::kernels::real::add_rows_portable(&mut want, &x);
            for at in LEVELS {
                let mut got = start.clone();
                add_rows_on(at, &mut got, &x);
                assert_eq!(got, want, "{at:?}, W {hd}");
            }
        }
    }

    #[test]
    fn square_sums_give_the_portable_bits_on_every_level() {
        for len in [0, 5, 8, 13, 32, 77, 1000, 1037] {
            // Magnitudes far apart, so that a different order or a fused multiply-add shows.
            let x: Vec<f32> =
                fill(len, 46).iter().enumerate().map(|(i, v)| v * 10f32.powi((i % 9) as i32 - 4)).collect();
            let mut want = [0.125f64; crate::kernels::real::SQUARE_LANES];
            crate::kernels::real::square_sums_portable(&x, &mut want);
            for at in LEVELS {
                let mut got = [0.125f64; crate::kernels::real::SQUARE_LANES];
                square_sums_on(at, &x, &mut got);
                assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{at:?}, {len} values");
            }
        }
    }

    #[test]
    fn adam_gives_the_portable_bits_on_every_level() {
        let n = 1037;
        let (p0, g) = (fill(n, 10), fill(n, 11));
        let (m0, v0) = (fill(n, 12), fill(n, 13).iter().map(|x| x.abs()).collect::<Vec<_>>());
        let h = [0.01, 0.9, 0.999, 0.3, 1e-8, 0.002];
        type Update<'a> = &'a dyn Fn(&mut [f32], &[f32], &mut [f32], &mut [f32], [f32; 6]);
        let run = |f: Update| {
            let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
            f(&mut p, &g, &mut m, &mut v, h);
            (p, m, v)
        };
        let want = run(&|p, g, m, v, h| crate::kernels::real::adam_portable(p, g, m, v, h));
        assert_eq!(run(&|p, g, m, v, h| adam(p, g, m, v, h)), want);
        for at in LEVELS {
            assert_eq!(run(&|p, g, m, v, h| adam_on(at, p, g, m, v, h)), want, "{at:?}");
        }
    }

    /// The fused gate rows give the bits of the unfused arithmetic: `sigmoid_inplace` /
    /// `tanh_inplace` (the level's nonlinearities) and the portable state update, for widths
    /// with and without a partial last vector.
    #[test]
    fn fused_gate_rows_match_the_unfused_arithmetic() {
        for hd in [1, 5, 8, 16, 23, 64, 100] {
            let (g0, b) = (fill(4 * hd, 20).iter().map(|x| 4.0 * x).collect::<Vec<_>>(), fill(4 * hd, 21));
            let c_prev = fill(hd, 22);
            // LSTM.
            let (mut g, mut c, mut h) = (g0.clone(), vec![0f32; hd], vec![0f32; hd]);
            lstm_row(&mut g, &b, &c_prev, &mut c, &mut h);
            let mut w: Vec<f32> = g0.iter().zip(&b).map(|(x, y)| x + y).collect();
            sigmoid_inplace(&mut w[..2 * hd]);
            tanh_inplace(&mut w[2 * hd..3 * hd]);
            sigmoid_inplace(&mut w[3 * hd..]);
            let wc: Vec<f32> = (0..hd).map(|j| w[hd + j] * c_prev[j] + w[j] * w[2 * hd + j]).collect();
            let mut wh = wc.clone();
            tanh_inplace(&mut wh);
            wh.iter_mut().zip(&w[3 * hd..]).for_each(|(x, &o)| *x *= o);
            assert_eq!((&g, &c, &h), (&w, &wc, &wh), "lstm hd {hd}");
            // GRU (reset after).
            let (rec, hp) = (fill(hd, 23), fill(hd, 24));
            let (mut g, mut e, mut h) = (g0[..3 * hd].to_vec(), vec![0f32; hd], vec![0f32; hd]);
            gru_row(&mut g, &b[..3 * hd], &rec, &hp, &mut e, &mut h);
            let mut w: Vec<f32> = (0..2 * hd).map(|j| g0[j] + b[j]).collect();
            sigmoid_inplace(&mut w);
            let mut n: Vec<f32> = (0..hd).map(|j| g0[2 * hd + j] + w[j] * rec[j]).collect();
            tanh_inplace(&mut n);
            let wh: Vec<f32> = (0..hd).map(|j| (1.0 - w[hd + j]) * n[j] + w[hd + j] * hp[j]).collect();
            w.extend(&n);
            assert_eq!((&g, &e, &h), (&w, &rec, &wh), "gru hd {hd}");
        }
    }

    #[test]
    fn lstm_backward_row_gives_the_portable_bits_on_every_level() {
        for hd in [1, 7, 16, 100] {
            let g: Vec<f32> = fill(4 * hd, 30).iter().map(|x| 0.5 + 0.4 * x).collect();
            let (cp, tc, dh, dc) = (fill(hd, 31), fill(hd, 32), fill(hd, 33), fill(hd, 34));
            type Row<'a> = &'a dyn Fn(&mut [f32], &mut [f32]);
            let run = |f: Row| {
                let (mut dg, mut dcp) = (vec![0f32; 4 * hd], vec![0f32; hd]);
                f(&mut dg, &mut dcp);
                (dg, dcp)
            };
            let want =
                run(&|dg, dcp| crate::kernels::real::lstm_backward_row_portable(&g, &cp, &tc, &dh, &dc, dg, dcp));
            assert_eq!(run(&|dg, dcp| lstm_backward_row(&g, &cp, &tc, &dh, &dc, dg, dcp)), want);
            for at in LEVELS {
                let got = run(&|dg, dcp| lstm_backward_row_on(at, &g, &cp, &tc, &dh, &dc, dg, dcp));
                assert_eq!(got, want, "{at:?}");
            }
        }
    }

    #[test]
    fn dot_matches_f64_arithmetic() {
        for n in [0, 1, 7, 16, 31, 32, 33, 100, 256] {
            let (a, b) = (fill(n, 6), fill(n, 7));
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-5 * (1.0 + n as f64), "n {n}");
            assert!(
                (crate::kernels::real::dot_portable(&a, &b) as f64 - want).abs() < 1e-5 * (1.0 + n as f64),
                "n {n}"
            );
        }
    }

    #[test]
    fn nonlinearities_match_the_scalar_oracle() {
        let mut xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.01).collect();
        xs.extend([-100.0, -88.5, -87.5, -30.0, -1e-6, 0.0, 1e-6, 1e-30, 30.0, 87.5, 88.5, 100.0]);
        let mut s = xs.clone();
        sigmoid_inplace(&mut s);
        let mut t = xs.clone();
        tanh_inplace(&mut t);
        for ((&x, &sv), &tv) in xs.iter().zip(&s).zip(&t) {
            let (ws, wt) = (1.0 / (1.0 + (-(x as f64)).exp()), (x as f64).tanh());
            assert!((sv as f64 - ws).abs() <= 2e-7 + 4e-7 * ws, "sigmoid({x}) = {sv}, want {ws}");
            assert!((tv as f64 - wt).abs() <= 3e-7, "tanh({x}) = {tv}, want {wt}");
            assert!(sv.is_finite() && tv.is_finite() && (0.0..=1.0).contains(&sv) && (-1.0..=1.0).contains(&tv));
        }
    }
}
