//! The per-step recurrent products, written for the shapes of the time loop and free of heap
//! allocation (a general matrix product packs its operands into freshly allocated buffers on
//! every call; at one call per step that cost and the allocation would sit inside the loop).
//!
//! Both kernels read PyTorch's `W_hh: [G·H, H]` in its own row-major layout:
//! - [`add_xwt`]: `out[b, r] += Σ_k x[b, k] · w[r, k]` — every output is a dot product of two
//!   contiguous rows;
//! - [`add_yw`]: `out[b, j] += Σ_r y[b, r] · w[r, j]` — a sum of scaled contiguous rows.
//!
//! Each output element is accumulated in one fixed order (lanes of 8, then a fixed reduction),
//! whatever the number of threads; batch rows are spread over the rayon pool when large.

use crate::real::Real;
use rayon::prelude::*;

/// Below this many multiply-adds a kernel runs on the calling thread.
const PARALLEL_MIN_FLOPS: usize = 1 << 16;
const LANES: usize = 8;

/// Fixed-order dot product of two equally long slices (8 independent lanes, so the compiler
/// can vectorize it, summed in a fixed tree at the end).
#[inline(always)]
fn dot<F: Real>(a: &[F], b: &[F]) -> F {
    let mut acc = [F::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: F = ca.remainder().iter().zip(cb.remainder()).fold(F::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] = acc[l] + x[l] * y[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

fn parallel(rows: usize, flops: usize) -> bool {
    rows > 1 && flops >= PARALLEL_MIN_FLOPS && rayon::current_num_threads() > 1
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
            *o = *o + dot(xr, wr);
        }
    };
    if parallel(x.len() / k, x.len() * r) {
        x.par_chunks_exact(k).zip(out.par_chunks_exact_mut(out_stride)).for_each(row);
    } else {
        x.chunks_exact(k).zip(out.chunks_exact_mut(out_stride)).for_each(row);
    }
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
    let row = |(yr, or): (&[F], &mut [F])| {
        if !accumulate {
            or.fill(F::zero());
        }
        let coeffs = &yr[c0..c0 + r];
        // Four rows of w at a time: one load and store of `or` per four scaled rows.
        let mut blocks = coeffs.chunks_exact(4).zip(w.chunks_exact(4 * j));
        for (s, wb) in &mut blocks {
            let (w0, rest) = wb.split_at(j);
            let (w1, rest) = rest.split_at(j);
            let (w2, w3) = rest.split_at(j);
            for (i, o) in or.iter_mut().enumerate() {
                *o = *o + (((s[0] * w0[i] + s[1] * w1[i]) + s[2] * w2[i]) + s[3] * w3[i]);
            }
        }
        let done = coeffs.len() / 4 * 4;
        for (s, wr) in coeffs[done..].iter().zip(w[done * j..].chunks_exact(j)) {
            for (o, &wv) in or.iter_mut().zip(wr) {
                *o = *o + *s * wv;
            }
        }
    };
    if parallel(y.len() / y_stride, out.len() * r) {
        y.par_chunks_exact(y_stride).zip(out.par_chunks_exact_mut(j)).for_each(row);
    } else {
        y.chunks_exact(y_stride).zip(out.chunks_exact_mut(j)).for_each(row);
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
            pool.install(|| {
                add_xwt(&x, k, &w, &mut out, r, 0);
                add_yw(&out, r, 0, &w, &mut back, k, false);
            });
            (out, back)
        };
        assert_eq!(run(1), run(2));
    }
}
