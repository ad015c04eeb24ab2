//! The `simd128` products: the `c += a·b` tiles and their driver.
//!
//! A tile is 4 rows × 8 columns (two vectors; eight accumulators), kept in registers while a
//! strip of `b` streams past: WebAssembly engines on x86-64 map `v128` to the 16 SSE/AVX
//! registers, where 8 accumulators, the step's 2 vectors of `b`, a broadcast of `a` and the
//! product temporary fit without spills (a 4 × 16 tile's 16 accumulators do not); on AArch64
//! hosts (32 registers) the same tile is conservative. 8 columns divide the 64-column panels
//! of `kernels/packed.rs`. The shape was measured against 2 × 16, 4 × 16 and 6 × 8 in Node (V8)
//! on x86: `benchmark/gemm.md` ("In WebAssembly").
//!
//! There is no fused multiply-add: each element of `c` is `c + a·b` rounded twice per step, for
//! p = 0, 1, … in order — the portable code's chain, bit for bit, whatever the tiles and the
//! split of the output over threads.

use std::arch::wasm32::*;

/// `MR` rows × `NV` vectors of 4 columns of `c += a·b`, one step along `k` per iteration.
///
/// # Safety
/// Rows `0..MR` of `a` (`k` values each, `a[i·rsa + p·csa]`), rows `0..k` of `b` (`4·NV`
/// floats each, `ldb` apart) and rows `0..MR` of `c` (`4·NV` floats each, `ldc` apart) must be
/// readable, and those of `c` writable.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const MR: usize, const NV: usize>(
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
        let mut acc: [[v128; NV]; MR] =
            std::array::from_fn(|i| std::array::from_fn(|v| v128_load(c.add(i * ldc + 4 * v).cast())));
        let rows: [*const f32; MR] = std::array::from_fn(|i| a.add(i * rsa));
        let (mut bp, mut off) = (b, 0);
        for _ in 0..k {
            let bv: [v128; NV] = std::array::from_fn(|v| v128_load(bp.add(4 * v).cast()));
            for (row, &ar) in acc.iter_mut().zip(&rows) {
                let s = v128_load32_splat(ar.add(off).cast());
                for (x, &w) in row.iter_mut().zip(&bv) {
                    *x = f32x4_add(*x, f32x4_mul(s, w)); // x + s·w, rounded twice as the portable code
                }
            }
            (bp, off) = (bp.add(ldb), off + csa);
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                v128_store(c.add(i * ldc + 4 * v).cast(), x);
            }
        }
    }
}

/// Rows of a tile.
const MR: usize = 4;
/// Vectors (of 4 columns) of a tile.
const NV: usize = 2;

/// [`tile`] of `NV` vectors for `rows` rows (1 to [`MR`]).
///
/// # Safety
/// As [`tile`], for `rows` rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_tile<const V: usize>(
    rows: usize,
    k: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: the caller's bounds hold for `rows` rows.
    unsafe {
        match rows {
            4 => tile::<4, V>(k, a, rsa, csa, b, ldb, c, ldc),
            3 => tile::<3, V>(k, a, rsa, csa, b, ldb, c, ldc),
            2 => tile::<2, V>(k, a, rsa, csa, b, ldb, c, ldc),
            _ => tile::<1, V>(k, a, rsa, csa, b, ldb, c, ldc),
        }
    }
}

/// Depth of one pass over `k`: a `KC × 8` strip of `b` (8 KiB) stays in L1 while every row
/// tile streams past it.
const KC: usize = 256;

/// # Safety
/// As [`crate::kernels::dispatch::gemm_acc`]'s bounds, checked by it.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_acc_simd128(
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
    // Columns in strips of NV vectors (one vector at the edge); the strip's rows in tiles of MR.
    let full = n / 4 * 4;
    let mut p0 = 0;
    while p0 < k {
        let kc = (k - p0).min(KC);
        let mut j = 0;
        while j < full {
            let nv = ((full - j) / 4).min(NV);
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(MR);
                // SAFETY: rows i..i+rows, depth p0..p0+kc, columns j..j+4·nv are in bounds.
                unsafe {
                    let (a, b, c) = (a.add(i * rsa + p0 * csa), b.add(p0 * ldb + j), c.add(i * ldc + j));
                    if nv == NV {
                        row_tile::<NV>(rows, kc, a, rsa, csa, b, ldb, c, ldc)
                    } else {
                        row_tile::<1>(rows, kc, a, rsa, csa, b, ldb, c, ldc)
                    }
                }
                i += rows;
            }
            j += 4 * nv;
        }
        p0 += kc;
    }
    // Columns past the last full vector: the same chain, one element at a time.
    for i in 0..m {
        for j in full..n {
            // SAFETY: (i, j) and every p < k are inside the checked bounds.
            unsafe {
                let o = c.add(i * ldc + j);
                let mut s = *o;
                for p in 0..k {
                    s += *a.add(i * rsa + p * csa) * *b.add(p * ldb + j);
                }
                *o = s;
            }
        }
    }
}
