//! The NEON products: the dot product, the `c += a·b` tiles and their driver, and a 4 × 4
//! transpose.
//!
//! The tile is 6 rows × 16 columns (four vectors), chosen from the register file and the
//! cores' published throughputs, not from a measurement (none was possible here):
//!
//! - registers: 24 accumulators, the step's 4 vectors of `b` and the broadcast values of `a`
//!   fit NEON's 32. Compiled (rustc 1.95, release), a step is 36 instructions: 24 `fmla`, 2
//!   `ldp` of `b`, 6 loads of `a` (`ld1r`, the last one an `ldr` feeding lane-indexed `fmla`s),
//!   3 integer operations and the branch, in 30 registers with no stack access;
//! - latency: 24 independent chains of fused multiply-adds cover what the cores need in flight
//!   (4 cycles of latency on 2 pipes for Cortex-A76/Neoverse N1, on 4 pipes for Neoverse V1/V2
//!   and Apple's cores: 8 to 16 chains);
//! - throughput: the step's 24 multiply-adds take 12 cycles on 2 pipes (6 on 4) against 8 load
//!   instructions on 2 load pipes (3 on those with 4 FMA pipes) and 36 instructions on 4- to
//!   8-wide cores, so the multiply-adds set the pace;
//! - shape: 16 columns divide the 64-column panels of `kernels/packed.rs` (four tiles each, no
//!   edge tile but in a last, partial panel) and 6 rows divide its 240-row blocks. The 8 × 12
//!   tile of BLIS and OpenBLAS for these cores needs `a` packed so that 8 rows of one step are
//!   contiguous (for lane-indexed multiply-adds), which gyre does not do for its per-step
//!   products, and 12 columns do not divide a panel.
//!
//! The loop runs one step per iteration: unrolled by four (as the AVX-512 tile), the compiler
//! loaded the next step's `b` early and spilled two accumulators to the stack (13 stack
//! accesses per 4 steps); with post-indexed loads the unrolling saves little anyway.
//!
//! A product of one or two rows (batch-1 training, short shards) runs 32 columns at a time
//! instead: 16 columns gave it only 4 or 8 chains, too few for the latency.
//!
//! Each element of `c` is one chain of fused multiply-adds over `k` in order, as on x86: the
//! same bits whatever the tiles and whatever the split of the output over threads.

use std::arch::aarch64::*;

/// `MR` rows × `NV` vectors of 4 columns of `c += a·b`, one step along `k` per iteration.
///
/// # Safety
/// Rows `0..MR` of `a` (`k` values each, `a[i·rsa + p·csa]`), rows `0..k` of `b` (`4·NV`
/// floats each, `ldb` apart) and rows `0..MR` of `c` (`4·NV` floats each, `ldc` apart) must be
/// readable, and those of `c` writable.
#[target_feature(enable = "neon")]
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
        let mut acc: [[float32x4_t; NV]; MR] =
            std::array::from_fn(|i| std::array::from_fn(|v| vld1q_f32(c.add(i * ldc + 4 * v))));
        // One pointer per row of `a` and the depth an offset from them, as in the AVX-512 tile
        // (no chain of row-stride additions beside the multiply-adds).
        let rows: [*const f32; MR] = std::array::from_fn(|i| a.add(i * rsa));
        let step = |acc: &mut [[float32x4_t; NV]; MR], off: usize, bp: *const f32| {
            let bv: [float32x4_t; NV] = std::array::from_fn(|v| vld1q_f32(bp.add(4 * v)));
            for (row, &ar) in acc.iter_mut().zip(&rows) {
                let s = vld1q_dup_f32(ar.add(off));
                for (x, &w) in row.iter_mut().zip(&bv) {
                    *x = vfmaq_f32(*x, s, w); // x + s·w, rounded once
                }
            }
        };
        let (mut bp, mut off) = (b, 0);
        for _ in 0..k {
            step(&mut acc, off, bp);
            (bp, off) = (bp.add(ldb), off + csa);
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                vst1q_f32(c.add(i * ldc + 4 * v), x);
            }
        }
    }
}

/// [`tile`] of `NV` vectors for `rows` rows (1 to 6).
///
/// # Safety
/// As [`tile`], for `rows` rows.
#[target_feature(enable = "neon")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_tile<const NV: usize>(
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
            6 => tile::<6, NV>(k, a, rsa, csa, b, ldb, c, ldc),
            5 => tile::<5, NV>(k, a, rsa, csa, b, ldb, c, ldc),
            4 => tile::<4, NV>(k, a, rsa, csa, b, ldb, c, ldc),
            3 => tile::<3, NV>(k, a, rsa, csa, b, ldb, c, ldc),
            2 => tile::<2, NV>(k, a, rsa, csa, b, ldb, c, ldc),
            _ => tile::<1, NV>(k, a, rsa, csa, b, ldb, c, ldc),
        }
    }
}

/// Depth of one pass over `k`: a `KC × 16` strip of `b` (16 KiB; 32 KiB for the 32-column
/// strips of one- or two-row products) stays in L1 while every row tile streams past it (the
/// packed products of `kernels/packed.rs` come in blocks of 128 deep already).
const KC: usize = 256;

/// # Safety
/// As [`crate::kernels::dispatch::gemm_acc`]'s bounds, checked by it.
#[target_feature(enable = "neon")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_acc_neon(
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
    // Columns in strips of four vectors, or eight for one or two rows; the strip's rows in
    // tiles of six.
    let wide = m <= 2;
    let full = n / 4 * 4;
    let mut p0 = 0;
    while p0 < k {
        let kc = (k - p0).min(KC);
        let mut j = 0;
        while j < full {
            let nv = if wide && full - j >= 32 { 8 } else { ((full - j) / 4).min(4) };
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(6);
                // SAFETY: rows i..i+rows, depth p0..p0+kc, columns j..j+4·nv are in bounds.
                unsafe {
                    let (a, b, c) = (a.add(i * rsa + p0 * csa), b.add(p0 * ldb + j), c.add(i * ldc + j));
                    match nv {
                        8 if rows == 2 => tile::<2, 8>(kc, a, rsa, csa, b, ldb, c, ldc),
                        8 => tile::<1, 8>(kc, a, rsa, csa, b, ldb, c, ldc),
                        4 => row_tile::<4>(rows, kc, a, rsa, csa, b, ldb, c, ldc),
                        3 => row_tile::<3>(rows, kc, a, rsa, csa, b, ldb, c, ldc),
                        2 => row_tile::<2>(rows, kc, a, rsa, csa, b, ldb, c, ldc),
                        _ => row_tile::<1>(rows, kc, a, rsa, csa, b, ldb, c, ldc),
                    }
                }
                i += rows;
            }
            j += 4 * nv;
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

/// `Σ a[i]·b[i]`: four vectors of fused multiply-adds, 16 values per iteration, summed in a
/// fixed tree, then the last `n mod 4` values in one scalar chain.
///
/// # Safety
/// `a` and `b` must each point to `n` readable floats.
#[target_feature(enable = "neon")]
pub unsafe fn dot_neon(a: *const f32, b: *const f32, n: usize) -> f32 {
    let mut s = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    let mut tail = 0f32;
    // SAFETY: every load reads values below `n`.
    unsafe {
        while i + 16 <= n {
            for (q, x) in s.iter_mut().enumerate() {
                *x = vfmaq_f32(*x, vld1q_f32(a.add(i + 4 * q)), vld1q_f32(b.add(i + 4 * q)));
            }
            i += 16;
        }
        while i + 4 <= n {
            s[0] = vfmaq_f32(s[0], vld1q_f32(a.add(i)), vld1q_f32(b.add(i)));
            i += 4;
        }
        while i < n {
            tail = (*a.add(i)).mul_add(*b.add(i), tail);
            i += 1;
        }
    }
    vaddvq_f32(vaddq_f32(vaddq_f32(s[0], s[1]), vaddq_f32(s[2], s[3]))) + tail
}

/// The 4 × 4 transpose of the rows `v` (row `i` out = column `i` in).
#[target_feature(enable = "neon")]
fn transpose4(v: [float32x4_t; 4]) -> [float32x4_t; 4] {
    // Pairs of rows interleaved by 32 bits ([a0 b0 a2 b2], [a1 b1 a3 b3], ...), then by 64.
    let (t0, t1) = (vtrn1q_f32(v[0], v[1]), vtrn2q_f32(v[0], v[1]));
    let (t2, t3) = (vtrn1q_f32(v[2], v[3]), vtrn2q_f32(v[2], v[3]));
    let (d, f) = (vreinterpretq_f64_f32, vreinterpretq_f32_f64);
    [f(vtrn1q_f64(d(t0), d(t2))), f(vtrn1q_f64(d(t1), d(t3))), f(vtrn2q_f64(d(t0), d(t2))), f(vtrn2q_f64(d(t1), d(t3)))]
}

/// `dst[p·ld + r] = src[r·k + p]`: 4 × 4 blocks through vector loads, shuffles and stores, the
/// edges value by value.
///
/// # Safety
/// `src` holds `rows·k` values, `dst` `(k − 1)·ld + rows`, `ld ≥ rows` (checked by the caller).
#[target_feature(enable = "neon")]
pub unsafe fn transpose_neon(src: *const f32, rows: usize, k: usize, dst: *mut f32, ld: usize) {
    let (r4, k4) = (rows / 4 * 4, k / 4 * 4);
    // SAFETY: every address is `r·k + p` with r < rows, p < k in `src`, and `p·ld + r` in `dst`.
    unsafe {
        for r0 in (0..r4).step_by(4) {
            for p0 in (0..k4).step_by(4) {
                let v = std::array::from_fn(|i| vld1q_f32(src.add((r0 + i) * k + p0)));
                for (i, x) in transpose4(v).into_iter().enumerate() {
                    vst1q_f32(dst.add((p0 + i) * ld + r0), x);
                }
            }
        }
        for r in 0..rows {
            for p in if r < r4 { k4 } else { 0 }..k {
                *dst.add(p * ld + r) = *src.add(r * k + p);
            }
        }
    }
}
