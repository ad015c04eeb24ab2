//! The per-step recurrent products, written for the shapes of the time loop and free of heap
//! allocation (a general matrix product packs its operands into freshly allocated buffers on
//! every call; at one call per step that cost and the allocation would sit inside the loop).
//! They run on [`Real::gemm_acc`] and [`Real::dot`], SIMD kernels chosen for the CPU at run
//! time for f32.
//!
//! - [`add_xw`]: `out[b, c0 + r] += Σ_k x[b, k] · wt[k, c0 + r]` with `wt = W_hhᵀ: [H, G·H]`
//!   (the driver transposes `W_hh` once per pass): a broadcast-FMA product, the fast form;
//! - [`add_xwt`]: the same product reading PyTorch's `W_hh: [G·H, H]` directly — every output a
//!   dot product of two contiguous rows (for one-step calls, where a transpose would not pay);
//! - [`add_yw`]: `out[b, j] += Σ_r y[b, r] · w[r, j]` over `W_hh`'s rows (the backward product).
//!
//! Each output element is accumulated in one fixed order. The kernels run on the calling thread:
//! the time-loop driver splits a step's batch rows over the pool (see `sequence.rs`).

use crate::real::Real;

/// `out[b, c0 + r] += Σ_k x[b, k] · wt[k, c0 + r]` for `x: [B, K]` contiguous, `wt: [K, W]`
/// contiguous (`W = wt_width`), `r < R`, `out` rows of length `out_stride` (`c0 + R ≤ out_stride`
/// and `c0 + R ≤ W`).
#[allow(clippy::too_many_arguments)]
pub fn add_xw<F: Real>(
    x: &[F],
    k: usize,
    wt: &[F],
    wt_width: usize,
    out: &mut [F],
    out_stride: usize,
    c0: usize,
    r: usize,
) {
    if k == 0 || out_stride == 0 || r == 0 {
        return;
    }
    let b = &wt[c0..];
    F::gemm_acc(x.len() / k, r, k, x, k, 1, b, wt_width, &mut out[c0..], out_stride);
}

/// `out[b, c0 + r] += Σ_k x[b, k] · w[r, k]` for `x: [B, K]`, `w: [R, K]` (both contiguous),
/// `out` rows of length `out_stride` (`c0 + R ≤ out_stride`).
pub fn add_xwt<F: Real>(x: &[F], k: usize, w: &[F], out: &mut [F], out_stride: usize, c0: usize) {
    if k == 0 || out_stride == 0 {
        return;
    }
    let r = w.len() / k;
    let row = |(xr, or): (&[F], &mut [F])| {
        for (o, wr) in or[c0..c0 + r].iter_mut().zip(w.chunks_exact(k)) {
            *o = *o + F::dot(xr, wr);
        }
    };
    x.chunks_exact(k).zip(out.chunks_exact_mut(out_stride)).for_each(row);
}

/// `out[b, j] (+)= Σ_r y[b, c0 + r] · w[r, j]` for `y` rows of length `y_stride`,
/// `w: [R, J]` contiguous and `out: [B, J]` with `J = out_width`; `out` is overwritten unless
/// `accumulate`.
pub fn add_yw<F: Real>(
    y: &[F],
    y_stride: usize,
    c0: usize,
    w: &[F],
    out: &mut [F],
    out_width: usize,
    accumulate: bool,
) {
    let j = out_width;
    if j == 0 || y_stride == 0 {
        return;
    }
    let r = w.len() / j;
    if !accumulate {
        out.fill(F::zero());
    }
    let rows = out.len() / j;
    if rows > 0 && r > 0 {
        F::gemm_acc(rows, j, r, &y[c0..], y_stride, 1, w, j, out, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(n: usize, seed: usize) -> Vec<f64> {
        (0..n).map(|i| (((i * 37 + seed * 11) % 23) as f64 - 11.0) / 7.0).collect()
    }

    #[test]
    fn add_xwt_matches_the_definition_on_a_column_range() {
        for &(b, k, r) in &[(3, 13, 5), (1, 8, 1), (64, 40, 70)] {
            let (x, w) = (fill(b * k, 1), fill(r * k, 2));
            let stride = r + 4;
            let mut out = fill(b * stride, 3);
            let before = out.clone();
            add_xwt(&x, k, &w, &mut out, stride, 2);
            for bi in 0..b {
                for c in 0..stride {
                    let mut want = before[bi * stride + c];
                    if (2..2 + r).contains(&c) {
                        want += (0..k).map(|kk| x[bi * k + kk] * w[(c - 2) * k + kk]).sum::<f64>();
                    }
                    assert!((out[bi * stride + c] - want).abs() < 1e-9, "({bi}, {c})");
                }
            }
        }
    }

    #[test]
    fn add_xw_matches_add_xwt_on_the_transposed_weights() {
        for &(b, k, r) in &[(3, 13, 5), (1, 8, 1), (64, 40, 70), (9, 33, 130)] {
            let (x, w) = (fill(b * k, 1), fill(r * k, 2));
            let width = r + 6;
            // wt: [k, width], the transpose of w in columns 2..2 + r (the output's columns).
            let mut wt = fill(k * width, 9);
            for rr in 0..r {
                for kk in 0..k {
                    wt[kk * width + 2 + rr] = w[rr * k + kk];
                }
            }
            let stride = r + 4;
            let mut out = fill(b * stride, 3);
            let mut want = out.clone();
            add_xw(&x, k, &wt, width, &mut out, stride, 2, r);
            add_xwt(&x, k, &w, &mut want, stride, 2);
            for (i, (o, w)) in out.iter().zip(&want).enumerate() {
                assert!((o - w).abs() < 1e-9, "b{b} k{k} r{r} at {i}: {o} vs {w}");
            }
        }
    }

    #[test]
    fn add_yw_matches_the_definition_with_and_without_accumulation() {
        for &(b, r, j, accumulate) in &[(3, 7, 5, true), (2, 4, 9, false), (64, 70, 40, true), (1, 1, 1, false)] {
            let stride = r + 3;
            let (y, w) = (fill(b * stride, 4), fill(r * j, 5));
            let mut out = fill(b * j, 6);
            let before = out.clone();
            add_yw(&y, stride, 1, &w, &mut out, j, accumulate);
            for bi in 0..b {
                for jj in 0..j {
                    let base = if accumulate { before[bi * j + jj] } else { 0.0 };
                    let want = base + (0..r).map(|rr| y[bi * stride + 1 + rr] * w[rr * j + jj]).sum::<f64>();
                    assert!((out[bi * j + jj] - want).abs() < 1e-9, "({bi}, {jj})");
                }
            }
        }
    }

    #[test]
    fn kernels_give_the_same_bits_on_one_and_two_threads() {
        let (b, k, r) = (48, 96, 128);
        let (x, w) = (
            fill(b * k, 7).iter().map(|&v| v as f32).collect::<Vec<_>>(),
            fill(r * k, 8).iter().map(|&v| v as f32 * 0.01).collect::<Vec<_>>(),
        );
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            let mut out = vec![0.5f32; b * r];
            let mut back = vec![0.0f32; b * k];
            let mut fast = vec![0.5f32; b * r];
            let wt: Vec<f32> = (0..k * r).map(|i| w[(i % r) * k + i / r]).collect();
            pool.install(|| {
                add_xwt(&x, k, &w, &mut out, r, 0);
                add_yw(&out, r, 0, &w, &mut back, k, false);
                add_xw(&x, k, &wt, r, &mut fast, r, 0, r);
            });
            (out, back, fast)
        };
        assert_eq!(run(1), run(2));
    }
}
