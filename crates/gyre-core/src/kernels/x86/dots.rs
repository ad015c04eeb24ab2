//! Dot products of one row against several: `out[r] += x · w[r]` for the rows of a row-major
//! `w` — the one-step products that read PyTorch's `W: [R, K]` directly (a stream step, a
//! batch-1 step). Four rows at a time share each load of `x` and keep eight independent chains
//! in flight, where one [`super::products::dot_avx512`] per row loaded `x` again for every row and
//! waited on its own two chains. Each row's sum is formed exactly as that single dot product forms
//! it (the same lanes, the same order along `k`, the same tree at the end): the same bits.

use std::arch::x86_64::*;

use super::products::{hsum256, hsum512};

/// `out[r] += Σ_p x[p] · w[r·k + p]` for `r < rows`, each sum as [`super::products::dot_avx512`].
///
/// # Safety
/// `x` must point to `k` readable floats, `w` to `rows·k`, `out` to `rows` writable ones.
#[target_feature(enable = "avx512f")]
pub unsafe fn dots_avx512(x: *const f32, w: *const f32, k: usize, rows: usize, out: *mut f32) {
    let mut r = 0;
    // SAFETY: rows r..r+4 (or r) are below `rows`; every load reads lanes below `k` of a row
    // (the tail through a mask); `out` is written at indices below `rows`.
    unsafe {
        while r + 4 <= rows {
            let wr = [w.add(r * k), w.add((r + 1) * k), w.add((r + 2) * k), w.add((r + 3) * k)];
            let mut s0 = [_mm512_setzero_ps(); 4];
            let mut s1 = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            while i + 32 <= k {
                let (x0, x1) = (_mm512_loadu_ps(x.add(i)), _mm512_loadu_ps(x.add(i + 16)));
                for j in 0..4 {
                    s0[j] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(wr[j].add(i)), s0[j]);
                    s1[j] = _mm512_fmadd_ps(x1, _mm512_loadu_ps(wr[j].add(i + 16)), s1[j]);
                }
                i += 32;
            }
            while i < k {
                let left = (k - i).min(16);
                let mask: __mmask16 = (1u32 << left).wrapping_sub(1) as __mmask16;
                let x0 = _mm512_maskz_loadu_ps(mask, x.add(i));
                for j in 0..4 {
                    s0[j] = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(mask, wr[j].add(i)), s0[j]);
                }
                i += left;
            }
            for j in 0..4 {
                *out.add(r + j) += hsum512(_mm512_add_ps(s0[j], s1[j]));
            }
            r += 4;
        }
        while r < rows {
            *out.add(r) += super::products::dot_avx512(x, w.add(r * k), k);
            r += 1;
        }
    }
}

/// `out[r] += Σ_p x[p] · w[r·k + p]` for `r < rows`, each sum as [`super::products::dot_avx2`].
///
/// # Safety
/// `x` must point to `k` readable floats, `w` to `rows·k`, `out` to `rows` writable ones.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dots_avx2(x: *const f32, w: *const f32, k: usize, rows: usize, out: *mut f32) {
    let mut r = 0;
    // SAFETY: rows r..r+4 (or r) are below `rows`; every load reads lanes below `k` of a row;
    // `out` is written at indices below `rows`.
    unsafe {
        while r + 4 <= rows {
            let wr = [w.add(r * k), w.add((r + 1) * k), w.add((r + 2) * k), w.add((r + 3) * k)];
            let mut s0 = [_mm256_setzero_ps(); 4];
            let mut s1 = [_mm256_setzero_ps(); 4];
            let mut tail = [0f32; 4];
            let mut i = 0;
            while i + 16 <= k {
                let (x0, x1) = (_mm256_loadu_ps(x.add(i)), _mm256_loadu_ps(x.add(i + 8)));
                for j in 0..4 {
                    s0[j] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(wr[j].add(i)), s0[j]);
                    s1[j] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(wr[j].add(i + 8)), s1[j]);
                }
                i += 16;
            }
            while i + 8 <= k {
                let x0 = _mm256_loadu_ps(x.add(i));
                for j in 0..4 {
                    s0[j] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(wr[j].add(i)), s0[j]);
                }
                i += 8;
            }
            while i < k {
                for j in 0..4 {
                    tail[j] = (*x.add(i)).mul_add(*wr[j].add(i), tail[j]);
                }
                i += 1;
            }
            for j in 0..4 {
                *out.add(r + j) += hsum256(_mm256_add_ps(s0[j], s1[j])) + tail[j];
            }
            r += 4;
        }
        while r < rows {
            *out.add(r) += super::products::dot_avx2(x, w.add(r * k), k);
            r += 1;
        }
    }
}
