//! The x86 products: dot products, the `c += a·b` tiles and their drivers for AVX-512 F
//! (full-width tiles with L2 fetches of the next block) and AVX2 + FMA, and the AVX-512 16 × 16
//! transpose. Kept in one file: the tiles and their drivers share their bounds arguments (each
//! driver's `# Safety` rests on the tiles' and the other way round), and the AVX2 kernel
//! follows the AVX-512 one's structure (a row tile sweeps a 64-column panel block, the
//! unrolled loop with one pointer per row of `a`) with tiles shaped for 16 registers of 8 lanes.

use std::arch::x86_64::*;

/// Horizontal sum of 16 lanes in a fixed tree.
#[target_feature(enable = "avx512f")]
pub(super) fn hsum512(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    hsum256(_mm256_add_ps(lo, hi))
}

#[target_feature(enable = "avx")]
pub(super) fn hsum256(v: __m256) -> f32 {
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
/// As [`crate::kernels::dispatch::gemm_acc`]'s bounds, checked by it.
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

/// The AVX2 tile: `MR` rows × `NV` vectors of 8 columns, no masks, one pointer per row of `a`
/// and the depth an offset from them, four steps per iteration.
///
/// # Safety
/// Rows `0..MR` of `a` (`k` steps, strides `rsa`, `csa`), rows `0..k` of `b` (`8·NV` columns,
/// stride `ldb`) and rows `0..MR` of `c` (`8·NV` columns, stride `ldc`) must be inside their
/// slices (`c` writable).
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
        let rows: [*const f32; MR] = std::array::from_fn(|i| a.add(i * rsa));
        let step = |acc: &mut [[__m256; NV]; MR], off: usize, bp: *const f32| {
            let bv: [__m256; NV] = std::array::from_fn(|v| _mm256_loadu_ps(bp.add(8 * v)));
            for (row, &ar) in acc.iter_mut().zip(&rows) {
                let s = _mm256_set1_ps(*ar.add(off));
                for (x, &w) in row.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(s, w, *x);
                }
            }
        };
        let (mut bp, mut off, mut p) = (b, 0, 0);
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
                _mm256_storeu_ps(c.add(i * ldc + 8 * v), x);
            }
        }
    }
}

/// The 6 × 16 [`tile256`] for rows of `a` contiguous along `k` (`csa` 1), its loop in assembly:
/// rows 0–2 read from one pointer and rows 3–5 from another at `+ {0, 1, 2}·rsa` (one scaled
/// index register, as MLAS' `SgemmKernelFma3` reads them), both moved once per four steps. The
/// compiled loop walks one register down the six rows and back at every step (seven dependent
/// additions per 12 multiply-adds, on the ports the multiply-adds use). The same multiply-adds
/// in the same order: the same bits.
///
/// # Safety
/// As [`tile256`] with `MR` 6, `NV` 2 and `csa` 1.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256_6x2_rows(k: usize, a: *const f32, rsa: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize) {
    // SAFETY: the caller guarantees every address below is inside its slice; the assembly
    // reads rows 0..6 of `a` (steps 0..4·(k / 4)) and rows 0..4·(k / 4) of `b`, and writes only
    // the registers it names.
    unsafe {
        let ld = |i: usize, v: usize| _mm256_loadu_ps(c.add(i * ldc + 8 * v));
        let (mut c0, mut c1, mut c2, mut c3, mut c4, mut c5) =
            (ld(0, 0), ld(0, 1), ld(1, 0), ld(1, 1), ld(2, 0), ld(2, 1));
        let (mut c6, mut c7, mut c8, mut c9, mut c10, mut c11) =
            (ld(3, 0), ld(3, 1), ld(4, 0), ld(4, 1), ld(5, 0), ld(5, 1));
        let quads = k / 4;
        let (mut a0, a3, mut bp) = (a, a.add(3 * rsa), b);
        if quads > 0 {
            std::arch::asm!(
                "2:",
                "vmovups {b0}, [{bp}]",
                "vmovups {b1}, [{bp} + 32]",
                "vbroadcastss {t}, [{a0}]",
                "vfmadd231ps {c0}, {t}, {b0}",
                "vfmadd231ps {c1}, {t}, {b1}",
                "vbroadcastss {u}, [{a0} + {rs}]",
                "vfmadd231ps {c2}, {u}, {b0}",
                "vfmadd231ps {c3}, {u}, {b1}",
                "vbroadcastss {t}, [{a0} + {rs}*2]",
                "vfmadd231ps {c4}, {t}, {b0}",
                "vfmadd231ps {c5}, {t}, {b1}",
                "vbroadcastss {u}, [{a3}]",
                "vfmadd231ps {c6}, {u}, {b0}",
                "vfmadd231ps {c7}, {u}, {b1}",
                "vbroadcastss {t}, [{a3} + {rs}]",
                "vfmadd231ps {c8}, {t}, {b0}",
                "vfmadd231ps {c9}, {t}, {b1}",
                "vbroadcastss {u}, [{a3} + {rs}*2]",
                "vfmadd231ps {c10}, {u}, {b0}",
                "vfmadd231ps {c11}, {u}, {b1}",
                "add {bp}, {ldb}",
                "vmovups {b0}, [{bp}]",
                "vmovups {b1}, [{bp} + 32]",
                "vbroadcastss {t}, [{a0} + 4]",
                "vfmadd231ps {c0}, {t}, {b0}",
                "vfmadd231ps {c1}, {t}, {b1}",
                "vbroadcastss {u}, [{a0} + {rs} + 4]",
                "vfmadd231ps {c2}, {u}, {b0}",
                "vfmadd231ps {c3}, {u}, {b1}",
                "vbroadcastss {t}, [{a0} + {rs}*2 + 4]",
                "vfmadd231ps {c4}, {t}, {b0}",
                "vfmadd231ps {c5}, {t}, {b1}",
                "vbroadcastss {u}, [{a3} + 4]",
                "vfmadd231ps {c6}, {u}, {b0}",
                "vfmadd231ps {c7}, {u}, {b1}",
                "vbroadcastss {t}, [{a3} + {rs} + 4]",
                "vfmadd231ps {c8}, {t}, {b0}",
                "vfmadd231ps {c9}, {t}, {b1}",
                "vbroadcastss {u}, [{a3} + {rs}*2 + 4]",
                "vfmadd231ps {c10}, {u}, {b0}",
                "vfmadd231ps {c11}, {u}, {b1}",
                "add {bp}, {ldb}",
                "vmovups {b0}, [{bp}]",
                "vmovups {b1}, [{bp} + 32]",
                "vbroadcastss {t}, [{a0} + 8]",
                "vfmadd231ps {c0}, {t}, {b0}",
                "vfmadd231ps {c1}, {t}, {b1}",
                "vbroadcastss {u}, [{a0} + {rs} + 8]",
                "vfmadd231ps {c2}, {u}, {b0}",
                "vfmadd231ps {c3}, {u}, {b1}",
                "vbroadcastss {t}, [{a0} + {rs}*2 + 8]",
                "vfmadd231ps {c4}, {t}, {b0}",
                "vfmadd231ps {c5}, {t}, {b1}",
                "vbroadcastss {u}, [{a3} + 8]",
                "vfmadd231ps {c6}, {u}, {b0}",
                "vfmadd231ps {c7}, {u}, {b1}",
                "vbroadcastss {t}, [{a3} + {rs} + 8]",
                "vfmadd231ps {c8}, {t}, {b0}",
                "vfmadd231ps {c9}, {t}, {b1}",
                "vbroadcastss {u}, [{a3} + {rs}*2 + 8]",
                "vfmadd231ps {c10}, {u}, {b0}",
                "vfmadd231ps {c11}, {u}, {b1}",
                "add {bp}, {ldb}",
                "vmovups {b0}, [{bp}]",
                "vmovups {b1}, [{bp} + 32]",
                "vbroadcastss {t}, [{a0} + 12]",
                "vfmadd231ps {c0}, {t}, {b0}",
                "vfmadd231ps {c1}, {t}, {b1}",
                "vbroadcastss {u}, [{a0} + {rs} + 12]",
                "vfmadd231ps {c2}, {u}, {b0}",
                "vfmadd231ps {c3}, {u}, {b1}",
                "vbroadcastss {t}, [{a0} + {rs}*2 + 12]",
                "vfmadd231ps {c4}, {t}, {b0}",
                "vfmadd231ps {c5}, {t}, {b1}",
                "vbroadcastss {u}, [{a3} + 12]",
                "vfmadd231ps {c6}, {u}, {b0}",
                "vfmadd231ps {c7}, {u}, {b1}",
                "vbroadcastss {t}, [{a3} + {rs} + 12]",
                "vfmadd231ps {c8}, {t}, {b0}",
                "vfmadd231ps {c9}, {t}, {b1}",
                "vbroadcastss {u}, [{a3} + {rs}*2 + 12]",
                "vfmadd231ps {c10}, {u}, {b0}",
                "vfmadd231ps {c11}, {u}, {b1}",
                "add {bp}, {ldb}",
                "add {a0}, 16",
                "add {a3}, 16",
                "dec {n}",
                "jnz 2b",
                a0 = inout(reg) a0,
                a3 = inout(reg) a3 => _,
                bp = inout(reg) bp,
                n = inout(reg) quads => _,
                rs = in(reg) rsa * 4,
                ldb = in(reg) ldb * 4,
                b0 = out(ymm_reg) _,
                b1 = out(ymm_reg) _,
                t = out(ymm_reg) _,
                u = out(ymm_reg) _,
                c0 = inout(ymm_reg) c0,
                c1 = inout(ymm_reg) c1,
                c2 = inout(ymm_reg) c2,
                c3 = inout(ymm_reg) c3,
                c4 = inout(ymm_reg) c4,
                c5 = inout(ymm_reg) c5,
                c6 = inout(ymm_reg) c6,
                c7 = inout(ymm_reg) c7,
                c8 = inout(ymm_reg) c8,
                c9 = inout(ymm_reg) c9,
                c10 = inout(ymm_reg) c10,
                c11 = inout(ymm_reg) c11,
                options(nostack, readonly),
            );
        }
        for (i, row) in [[c0, c1], [c2, c3], [c4, c5], [c6, c7], [c8, c9], [c10, c11]].iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                _mm256_storeu_ps(c.add(i * ldc + 8 * v), x);
            }
        }
        // The last `k % 4` steps on the compiled tile, the sums carried through `c` (no bit
        // changes).
        if !k.is_multiple_of(4) {
            tile256::<6, 2>(k % 4, a0, rsa, 1, bp, ldb, c, ldc);
        }
    }
}

/// [`tile256`] with the last vector's lanes masked by `last` (the right edge of an unpadded `b`
/// and of `c`).
///
/// # Safety
/// As [`tile256`], for the columns the vectors and the mask cover.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile256_edge<const MR: usize, const NV: usize>(
    k: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    last: __m256i,
) {
    let all = _mm256_set1_epi32(-1);
    let mask = |v: usize| if v + 1 == NV { last } else { all };
    // SAFETY: the caller guarantees every address below is inside its slice (the masked
    // lanes are neither read nor written).
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        for (i, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm256_maskload_ps(c.add(i * ldc + 8 * v), mask(v));
            }
        }
        let rows: [*const f32; MR] = std::array::from_fn(|i| a.add(i * rsa));
        let (mut bp, mut off) = (b, 0);
        for _ in 0..k {
            let bv: [__m256; NV] = std::array::from_fn(|v| _mm256_maskload_ps(bp.add(8 * v), mask(v)));
            for (row, &ar) in acc.iter_mut().zip(&rows) {
                let s = _mm256_set1_ps(*ar.add(off));
                for (x, &w) in row.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(s, w, *x);
                }
            }
            (bp, off) = (bp.add(ldb), off + csa);
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                _mm256_maskstore_ps(c.add(i * ldc + 8 * v), mask(v), x);
            }
        }
    }
}

/// `MR` rows × `cols` columns: tiles of `8·NV` columns, then of 16, then one masked tile.
/// Before each full tile, a share of the lines of `ahead` (`(from, lines)`, 64 bytes each) is
/// fetched into L2.
///
/// # Safety
/// As [`tile256_edge`], for `MR` rows and `cols` columns. The lines of `ahead` are only
/// prefetched (never read).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn strip256<const MR: usize, const NV: usize>(
    cols: usize,
    k: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    (ahead, lines): (*const f32, usize),
) {
    // SAFETY: every tile covers columns j.. of the caller's `cols` columns.
    unsafe {
        let per_tile = lines.div_ceil((cols / (8 * NV)).max(1));
        let mut fetched = 0;
        let mut j = 0;
        while j + 8 * NV <= cols {
            while fetched < lines.min(per_tile * (j / (8 * NV) + 1)) {
                _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(16 * fetched) as *const i8);
                fetched += 1;
            }
            if MR == 6 && NV == 2 && csa == 1 {
                tile256_6x2_rows(k, a, rsa, b.add(j), ldb, c.add(j), ldc);
            } else {
                tile256::<MR, NV>(k, a, rsa, csa, b.add(j), ldb, c.add(j), ldc);
            }
            j += 8 * NV;
        }
        while j + 16 <= cols {
            tile256::<MR, 2>(k, a, rsa, csa, b.add(j), ldb, c.add(j), ldc);
            j += 16;
        }
        if j < cols {
            let left = (cols - j) as i32;
            let last =
                _mm256_cmpgt_epi32(_mm256_set1_epi32((left - 1) % 8 + 1), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            if left > 8 {
                tile256_edge::<MR, 2>(k, a, rsa, csa, b.add(j), ldb, c.add(j), ldc, last);
            } else {
                tile256_edge::<MR, 1>(k, a, rsa, csa, b.add(j), ldb, c.add(j), ldc, last);
            }
        }
    }
}

/// Depth of one pass of [`gemm_acc_avx2`] over `k` (a `[256, 64]` block of `b`, 64 KiB, in
/// L2; a row tile's `a`, 6 KiB, in L1).
const KC256: usize = 256;
/// Columns of `b` one row tile sweeps before the next row tile starts (a packed panel).
const NC256: usize = 64;

/// The AVX2 + FMA product. For each depth block and each 64-column block (a packed panel), each
/// row tile sweeps the block's columns in tiles of 6 × 16: two vectors, 12 accumulators of the
/// 16 registers, two loads of `b` and six broadcasts of `a` per 12 multiply-adds. Tiles of
/// fewer rows are wider, so that each keeps at least 8 chains of multiply-adds in flight (two
/// FMA units × 4 cycles of latency): 4 and 3 rows × 24, 2 × 32, 1 × 64. A last row tile of 1
/// or 2 rows then runs near the others' rate (7 rows as 6 + 1 and 8 as 6 + 2 measured 2–5%
/// faster than as 4 + 3 and 4 + 4). The row tile's `a` stays in L1 while it sweeps the block;
/// the next tile's rows of `c` are fetched meanwhile, and `next` (the caller's next block of a
/// packed `b` too large for L2, as for the AVX-512 kernel) into L2, a share before each
/// 16-column tile of the row tiles after the first: 64 × 512 × 2048 (the lstm-l step) +12%,
/// lstm-l inference +6% on 1 thread and +9% on 2 (`GYRE_SIMD=avx2` on the Xeon).
///
/// It replaced 4 × 24 tiles that swept each 24-column strip down all the rows, reading `a` at
/// an address recomputed at every step (24 does not divide a 64-column panel: each ran as
/// 24 + 24 + 16, the last tile with 8 accumulators): see `benchmark/gemm.md`.
///
/// # Safety
/// As [`crate::kernels::dispatch::gemm_acc`]'s bounds, checked by it.
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
    next: &[f32],
) {
    // `next` goes to L2 over the row tiles after the first, a share before each tile.
    let (mut fetch, lines) = (0, next.len().div_ceil(16));
    let later_tiles = m.div_ceil(6).saturating_sub(1).max(1);
    let mut p0 = 0;
    while p0 < k {
        let kc = (k - p0).min(KC256);
        let mut j = 0;
        while j < n {
            let cols = (n - j).min(NC256);
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(6);
                let share = if i > 0 && fetch < lines { lines.div_ceil(later_tiles).min(lines - fetch) } else { 0 };
                let ahead = (next.as_ptr().wrapping_add(16 * fetch), share);
                fetch += share;
                // The next row tile's rows of `c` start on their way to L1 while this one runs,
                // whatever the size of `c` (the packed products call with blocks of 240 rows, so
                // `c` is not known to be large here: 2048 × 128 × 1024 +15–30%, the others ±2%).
                for r in i + rows..(i + 2 * rows).min(m) {
                    let row = c.wrapping_add(r * ldc + j);
                    for v in (0..cols).step_by(16) {
                        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(v) as *const i8);
                    }
                }
                // SAFETY: rows i..i+rows, depth p0..p0+kc, columns j..j+cols are in bounds.
                unsafe {
                    let (a, b, c) = (a.add(i * rsa + p0 * csa), b.add(p0 * ldb + j), c.add(i * ldc + j));
                    match rows {
                        6 => strip256::<6, 2>(cols, kc, a, rsa, csa, b, ldb, c, ldc, ahead),
                        5 => strip256::<5, 2>(cols, kc, a, rsa, csa, b, ldb, c, ldc, ahead),
                        4 => strip256::<4, 3>(cols, kc, a, rsa, csa, b, ldb, c, ldc, ahead),
                        3 => strip256::<3, 3>(cols, kc, a, rsa, csa, b, ldb, c, ldc, ahead),
                        2 => strip256::<2, 4>(cols, kc, a, rsa, csa, b, ldb, c, ldc, ahead),
                        _ => strip256::<1, 8>(cols, kc, a, rsa, csa, b, ldb, c, ldc, ahead),
                    }
                }
                i += rows;
            }
            j += cols;
        }
        p0 += kc;
    }
}
