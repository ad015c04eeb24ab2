//! The f32 kernels' dispatch, chosen at run time: AVX-512, AVX2 + FMA, NEON on AArch64,
//! `simd128` in WebAssembly builds that enable it (chosen at build time: WebAssembly has no
//! run-time detection), or portable scalar code (the fallback on other CPUs, and the oracle the
//! SIMD paths are tested against). The shipped binary targets the baseline CPU of its triple; the wider x86 paths are
//! compiled with `#[target_feature]` and entered only after `is_x86_feature_detected!` says the
//! CPU has them. NEON is part of the AArch64 baseline: its kernels need no detection.
//!
//! - [`gemm_acc`]: `c += a · b` for row-major blocks — the per-step recurrent products. Every
//!   output element is one chain of fused multiply-adds over `k` in order, whatever the block
//!   it falls in, so splitting the output over threads never changes a bit.
//! - [`dot`]: a dot product (the per-step product for very short sequences).
//! - [`sigmoid_inplace`], [`tanh_inplace`]: the gate nonlinearities, from one vectorized `exp`
//!   (a degree-6 polynomial after range reduction, as in Cephes' `expf`), accurate to a few
//!   units in the last place of the result's magnitude.
//!
//! `GYRE_SIMD=scalar|avx2|avx512` caps the level (for tests and comparisons; `scalar` is the
//! one cap on AArch64); the default is the best the CPU supports.
#![allow(unsafe_code)] // SIMD intrinsics; every unsafe block states what makes it sound

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
use super::aarch64;
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
use super::wasm32;
#[cfg(target_arch = "x86_64")]
use super::x86;
use std::sync::OnceLock;

/// An instruction-set level. The order ranks each level against the portable one and the x86
/// levels against each other (NEON, `simd128` and the x86 levels never meet in one build).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Portable Rust (what the compiler makes of it for the baseline target).
    Scalar,
    /// AArch64 Advanced SIMD (NEON), which every AArch64 CPU has.
    Neon,
    /// WebAssembly 128-bit SIMD, in builds compiled with it (no fused multiply-add).
    Simd128,
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
    if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        return Level::Neon;
    }
    if cfg!(all(target_family = "wasm", target_feature = "simd128")) {
        return Level::Simd128;
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
/// it from L2 instead of waiting on L3. The x86 kernels spread the fetches over their row
/// tiles after the first (AVX-512 inside its tiles, AVX2 a share before each 16-column tile);
/// NEON and the portable code ignore `next`. It changes no result.
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
    gemm_acc_at(level(), m, n, k, a, rsa, csa, b, ldb, c, ldc, next);
}

/// [`gemm_acc`] at `at`, or at the CPU's best level below it (the tests run every level; the
/// WebAssembly build has one).
#[cfg(test)]
#[cfg_attr(target_family = "wasm", allow(dead_code))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_acc_on(
    at: Level,
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
) {
    gemm_acc_at(at, m, n, k, a, rsa, csa, b, ldb, c, ldc, &[]);
}

/// [`gemm_acc`] at `at`, or at the CPU's best level below it.
#[allow(clippy::too_many_arguments)]
fn gemm_acc_at(
    at: Level,
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
    #[cfg(not(target_arch = "x86_64"))]
    let _ = next; // only the x86 kernels fetch ahead
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let fits = a.len() > (m - 1) * rsa + (k - 1) * csa && b.len() >= (k - 1) * ldb + n && c.len() >= (m - 1) * ldc + n;
    if !fits || ldb < n || ldc < n {
        return crate::kernels::portable::gemm_acc_portable(m, n, k, a, rsa, csa, b, ldb, c, ldc);
    }
    match at.min(detect()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512 F (detected), and the bounds were checked above.
        Level::Avx512 => unsafe {
            x86::gemm_acc_avx512(m, n, k, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc, next)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (detected), and the bounds were checked above.
        Level::Avx2 => unsafe {
            x86::gemm_acc_avx2(m, n, k, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc, next)
        },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is in the target's baseline, and the bounds were checked above.
        Level::Neon => unsafe {
            aarch64::gemm_acc_neon(m, n, k, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc)
        },
        #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
        // SAFETY: the build has simd128, and the bounds were checked above.
        Level::Simd128 => unsafe {
            wasm32::gemm_acc_simd128(m, n, k, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc)
        },
        _ => crate::kernels::portable::gemm_acc_portable(m, n, k, a, rsa, csa, b, ldb, c, ldc),
    }
}

/// `Σ a[i]·b[i]` over equally long slices, in a fixed order (lanes, then a fixed tree).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_on(level(), a, b)
}

/// [`dot`] at `at`, or at the CPU's best level below it.
pub(crate) fn dot_on(at: Level, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    match at.min(detect()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the kernel reads `n` elements of each slice.
        Level::Avx512 => unsafe { x86::dot_avx512(a.as_ptr(), b.as_ptr(), n) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the kernel reads `n` elements of each slice.
        Level::Avx2 => unsafe { x86::dot_avx2(a.as_ptr(), b.as_ptr(), n) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is in the target's baseline; the kernel reads `n` elements of each slice.
        Level::Neon => unsafe { aarch64::dot_neon(a.as_ptr(), b.as_ptr(), n) },
        _ => crate::kernels::portable::dot_portable(&a[..n], &b[..n]),
    }
}

/// `out[r] += Σ_p x[p] · w[r·K + p]` for `w: [R, K]` row-major (`K = x.len()`, `R =
/// out.len()`), each row's sum exactly as [`dot`] forms it (several rows per pass, sharing the
/// loads of `x`).
pub(crate) fn add_dots(x: &[f32], w: &[f32], out: &mut [f32]) {
    add_dots_on(level(), x, w, out);
}

/// [`add_dots`] at `at`, or at the CPU's best level below it.
pub(crate) fn add_dots_on(at: Level, x: &[f32], w: &[f32], out: &mut [f32]) {
    let k = x.len();
    let rows = out.len().min(w.len().checked_div(k).unwrap_or(0));
    if k == 0 || rows == 0 {
        return;
    }
    match at.min(detect()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; `x` holds `k` floats, `w` at least `rows·k`, `out` `rows`.
        Level::Avx512 => unsafe { x86::dots_avx512(x.as_ptr(), w.as_ptr(), k, rows, out.as_mut_ptr()) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the same bounds.
        Level::Avx2 => unsafe { x86::dots_avx2(x.as_ptr(), w.as_ptr(), k, rows, out.as_mut_ptr()) },
        // NEON and the portable code: one dot product per row.
        other => {
            for (o, wr) in out.iter_mut().zip(w.chunks_exact(k)) {
                *o += dot_on(other, x, wr);
            }
        }
    }
}

/// Defines `fn $name` running the portable `$portable` (an `#[inline(always)]` function
/// of plain IEEE operations) compiled for the level in use, and `fn $on`, the same at a
/// given level (capped to what the CPU has; for tests). The compiler vectorizes the portable
/// code for each width, and every level gives the same bits (no fused multiply-adds are formed).
/// On AArch64 the portable build is already the NEON one (NEON is in the baseline), so the
/// `Neon` level runs it as it is.
macro_rules! per_level {
    ($(#[$meta:meta])* pub(crate) fn $name:ident, $on:ident($($arg:ident: $ty:ty),* $(,)?) = $portable:path;) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) {
            $on(level(), $($arg),*)
        }

        #[doc = concat!("[`", stringify!($name), "`] at `at`, or at the CPU's best level below it.")]
        #[allow(clippy::too_many_arguments)]
        #[cfg_attr(not(test), allow(dead_code))] // the tests run every level
        pub(crate) fn $on(at: Level, $($arg: $ty),*) {
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
    /// One Adam update (see [`crate::kernels::Kernels::adam_update`]): the portable arithmetic compiled for
    /// the CPU's vector width; the same bits on every level.
    pub(crate) fn adam, adam_on(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: crate::kernels::portable::AdamStep<f32>) = crate::kernels::portable::adam_portable;
}

per_level! {
    /// One LSTM backward row (see [`crate::kernels::Kernels::lstm_backward_row`]), compiled for the CPU's
    /// vector width; the same bits on every level.
    pub(crate) fn lstm_backward_row, lstm_backward_row_on(
        g: &[f32],
        c_prev: &[f32],
        tanh_c: &[f32],
        dh: &[f32],
        dc: &[f32],
        dg: &mut [f32],
        dc_prev: &mut [f32],
    ) = crate::kernels::portable::lstm_backward_row_portable;
}

per_level! {
    /// One GRU backward row (see [`crate::kernels::Kernels::gru_backward_row`]), compiled for the CPU's
    /// vector width; the same bits on every level.
    pub(crate) fn gru_backward_row, gru_backward_row_on(g: &[f32], h_prev: &[f32], extra: &[f32], dh: &[f32], dg: &mut [f32], reset_after: bool) =
        crate::kernels::portable::gru_backward_row_portable;
}

per_level! {
    /// The gradient norm's sums of squares (see [`crate::kernels::Kernels::square_sums`]), compiled for the
    /// CPU's vector width; the same bits on every level.
    pub(crate) fn square_sums, square_sums_on(x: &[f32], lanes: &mut [f64; crate::kernels::portable::SQUARE_LANES]) = crate::kernels::portable::square_sums_portable;
}

per_level! {
    /// `out += Σ rows of x` (see [`crate::kernels::Kernels::add_rows`]), compiled for the CPU's vector
    /// width; the same bits on every level.
    pub(crate) fn add_rows, add_rows_on(out: &mut [f32], x: &[f32]) = crate::kernels::portable::add_rows_portable;
}

/// [`crate::kernels::Kernels::transpose`] for f32: 16 × 16 blocks through AVX-512 shuffles, or 4 × 4
/// through NEON ones (one vector load and store per row of a block instead of a store per
/// value; packing `Wᵀ` was 10% of batch-1 training on x86), the edges and the other levels
/// value by value. Moves values only: the same result on every level.
pub(crate) fn transpose(src: &[f32], rows: usize, k: usize, dst: &mut [f32], ld: usize) {
    if rows == 0 || k == 0 {
        return;
    }
    let fits = src.len() >= rows * k && dst.len() > (k - 1) * ld + rows - 1 && ld >= rows;
    #[cfg(not(any(target_arch = "x86_64", all(target_arch = "aarch64", target_feature = "neon"))))]
    let _ = fits; // only the x86 and NEON transposes need it
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; `fits` bounds every address the kernel touches.
        Level::Avx512 if fits => unsafe { x86::transpose_avx512(src.as_ptr(), rows, k, dst.as_mut_ptr(), ld) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is in the target's baseline; `fits` bounds every address the kernel touches.
        Level::Neon if fits => unsafe { aarch64::transpose_neon(src.as_ptr(), rows, k, dst.as_mut_ptr(), ld) },
        _ => crate::kernels::portable::transpose_portable(src, rows, k, dst, ld),
    }
}

/// `x ← 1 / (1 + e^-x)` element-wise.
pub(crate) fn sigmoid_inplace(x: &mut [f32]) {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the kernel touches only `x`.
        Level::Avx512 => unsafe { x86::sigmoid_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the kernel touches only `x`.
        Level::Avx2 => unsafe { x86::sigmoid_avx2(x) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is in the target's baseline; the kernel touches only `x`.
        Level::Neon => unsafe { aarch64::sigmoid_neon(x) },
        #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
        Level::Simd128 => wasm32::sigmoid_simd128(x),
        _ => x.iter_mut().for_each(|v| *v = crate::kernels::real::sigmoid(*v)),
    }
}

/// `x ← tanh(x)` element-wise.
pub(crate) fn tanh_inplace(x: &mut [f32]) {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the kernel touches only `x`.
        Level::Avx512 => unsafe { x86::tanh_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the kernel touches only `x`.
        Level::Avx2 => unsafe { x86::tanh_avx2(x) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is in the target's baseline; the kernel touches only `x`.
        Level::Neon => unsafe { aarch64::tanh_neon(x) },
        #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
        Level::Simd128 => wasm32::tanh_simd128(x),
        _ => x.iter_mut().for_each(|v| *v = v.tanh()),
    }
}

/// One LSTM row (see [`crate::kernels::Kernels::lstm_row`]): `g: [4H]` pre-activations without `b_hh`,
/// `b: [4H]` `b_hh`, `c_prev: [H]`; out: `g` activated (`i, f, g, o`), `c: [H]`, `h: [H]`.
/// Every level computes the same IEEE operations in the same order (no fused multiply-adds),
/// so the SIMD paths give the bits of [`sigmoid_inplace`]/[`tanh_inplace`] plus the portable
/// state arithmetic.
pub(crate) fn lstm_row(g: &mut [f32], b: &[f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    lstm_row_on(level(), g, b, c_prev, c, h)
}

/// [`lstm_row`] at `at`, or at the CPU's best level below it.
#[cfg_attr(not(test), allow(dead_code))] // the tests run every level
pub(crate) fn lstm_row_on(at: Level, g: &mut [f32], b: &[f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    let hd = h.len();
    let sized = g.len() == 4 * hd && b.len() == 4 * hd && c_prev.len() == hd && c.len() == hd;
    match at.min(detect()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the sizes were checked, the kernel stays inside them.
        Level::Avx512 if sized => unsafe { x86::lstm_avx512(g, b, c_prev, c, h) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the sizes were checked, the kernel stays inside them.
        Level::Avx2 if sized => unsafe { x86::lstm_avx2(g, b, c_prev, c, h) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is in the target's baseline; the sizes were checked, the kernel stays inside them.
        Level::Neon if sized => unsafe { aarch64::lstm_neon(g, b, c_prev, c, h) },
        #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
        // SAFETY: the build has simd128; the sizes were checked, the kernel stays inside them.
        Level::Simd128 if sized => unsafe { wasm32::lstm_simd128(g, b, c_prev, c, h) },
        _ => crate::kernels::portable::lstm_row_portable(g, b, c_prev, c, h),
    }
}

/// One reset-after GRU row (see [`crate::kernels::Kernels::gru_row`]): `g: [3H]` pre-activations (`r` and
/// `z` without `b_hh`; `n` the input part only), `b: [3H]` `b_hh`, `rec: [H]`
/// `h_prev·W_hnᵀ + b_hn`, `h_prev: [H]`; out: `g` activated (`r, z, n`), `extra: [H]` a copy
/// of `rec`, `h: [H]`. The same operations on every level, as for [`lstm_row`].
pub(crate) fn gru_row(g: &mut [f32], b: &[f32], rec: &[f32], h_prev: &[f32], extra: &mut [f32], h: &mut [f32]) {
    gru_row_on(level(), g, b, rec, h_prev, extra, h)
}

/// [`gru_row`] at `at`, or at the CPU's best level below it.
#[cfg_attr(not(test), allow(dead_code))] // the tests run every level
pub(crate) fn gru_row_on(
    at: Level,
    g: &mut [f32],
    b: &[f32],
    rec: &[f32],
    h_prev: &[f32],
    extra: &mut [f32],
    h: &mut [f32],
) {
    let hd = h.len();
    let sized = g.len() == 3 * hd && b.len() == 3 * hd && rec.len() == hd && h_prev.len() == hd && extra.len() == hd;
    match at.min(detect()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F detected; the sizes were checked, the kernel stays inside them.
        Level::Avx512 if sized => unsafe { x86::gru_avx512(g, b, rec, h_prev, extra, h) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA detected; the sizes were checked, the kernel stays inside them.
        Level::Avx2 if sized => unsafe { x86::gru_avx2(g, b, rec, h_prev, extra, h) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is in the target's baseline; the sizes were checked, the kernel stays inside them.
        Level::Neon if sized => unsafe { aarch64::gru_neon(g, b, rec, h_prev, extra, h) },
        #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
        // SAFETY: the build has simd128; the sizes were checked, the kernel stays inside them.
        Level::Simd128 if sized => unsafe { wasm32::gru_simd128(g, b, rec, h_prev, extra, h) },
        _ => crate::kernels::portable::gru_row_portable(g, b, rec, h_prev, extra, h),
    }
}
