//! The per-step recurrent products, written for the shapes of the time loop and free of heap
//! allocation (a general matrix product packs its operands into freshly allocated buffers on
//! every call; at one call per step that cost and the allocation would sit inside the loop).
//! They run on [`crate::kernels::Kernels::gemm_acc`] and [`crate::kernels::Kernels::dot`], SIMD kernels chosen for the CPU at run
//! time for f32.
//!
//! - [`add_xw`]: `out[b, c0 + r] += Σ_k x[b, k] · wt[k, c0 + r]` with `wt = W_hhᵀ: [H, G·H]`
//!   packed in column panels ([`pack_transposed`])
//!   (the driver transposes `W_hh` once per pass): a broadcast-FMA product, the fast form;
//! - [`add_xwt`]: the same product reading PyTorch's `W_hh: [G·H, H]` directly — every output a
//!   dot product of two contiguous rows (for one-step calls, where a transpose would not pay);
//! - [`add_yw`]: `out[b, j] += Σ_r y[b, r] · w[r, j]` over `W_hh`'s rows, packed (the backward
//!   product).
//!
//! Each output element is accumulated in one fixed order. The kernels run on the calling thread:
//! the time-loop driver splits a step's batch rows over the pool (see `rnn/lanes.rs`).

use crate::kernels::real::Real;

/// Width of the column panels of a packed right-hand operand (four AVX-512 vectors).
pub(crate) const PANEL: usize = 64;

/// A packed operand ([`pack`], [`pack_transposed`]): its values as a slice whose first element
/// sits on a 64-byte boundary. The allocator gives large buffers 16 bytes past one, and then
/// every other 32-byte load of a 6 × 16 AVX2 tile (and every 64-byte load of an AVX-512 one)
/// straddled two cache lines: the AVX2 product ran 4–5% slower (32 × 256 × 1024: 114 against
/// 120 GFLOP/s, 2048 × 128 × 1024: 115 against 118).
#[derive(Clone, Debug, Default)]
pub struct Packed<F> {
    buf: Vec<F>,
    at: usize,
    len: usize,
}

impl<F: Real> Packed<F> {
    /// `len` zeros, the first on a 64-byte boundary (when the allocator's alignment allows it).
    fn zeros(len: usize) -> Self {
        let slack = 64 / std::mem::size_of::<F>();
        let buf = vec![F::zero(); len + slack];
        let at = buf.as_ptr().align_offset(64).min(slack);
        Packed { buf, at, len }
    }
}

impl<F> std::ops::Deref for Packed<F> {
    type Target = [F];
    fn deref(&self) -> &[F] {
        &self.buf[self.at..self.at + self.len]
    }
}

impl<F> std::ops::DerefMut for Packed<F> {
    fn deref_mut(&mut self) -> &mut [F] {
        &mut self.buf[self.at..self.at + self.len]
    }
}

/// Number of values of a `[K, N]` operand packed by [`pack`] or [`pack_transposed`].
pub(crate) fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(PANEL) * PANEL * k
}

/// Packs `b: [K, N]` (any strides) in column panels: panel `q` holds columns
/// `q·PANEL .. (q+1)·PANEL` as a contiguous `[K, PANEL]` block (the last one zero-padded).
/// A product then streams each panel from memory in order, instead of touching a new page of
/// `b` at every step along `K` (measured: +25–40% on the products of the benchmark workloads).
pub fn pack<F: Real>(b: ndarray::ArrayView2<F>) -> Packed<F> {
    let (k, n) = b.dim();
    let mut out = Packed::zeros(packed_len(k, n));
    let mem = b.as_slice();
    let panel = |(q, panel): (usize, &mut [F])| {
        let (c0, c1) = (q * PANEL, (q * PANEL + PANEL).min(n));
        match mem {
            // A row-major `b` (weights, inputs, gradients): each panel row is a run of a row.
            Some(mem) => {
                for (row, src) in panel.chunks_exact_mut(PANEL).zip(mem.chunks_exact(n)) {
                    // A whole panel's run as a fixed-size copy (inlined vector moves, where a
                    // call to memmove per 64 values cost a fifth of the packing).
                    match (<&mut [F; PANEL]>::try_from(&mut *row), <&[F; PANEL]>::try_from(&src[c0..c1])) {
                        (Ok(d), Ok(s)) => *d = *s,
                        _ => row[..c1 - c0].copy_from_slice(&src[c0..c1]),
                    }
                }
            }
            None => {
                let cols = b.slice(ndarray::s![.., c0..c1]);
                for (row, src) in panel.chunks_exact_mut(PANEL).zip(cols.rows()) {
                    row.iter_mut().zip(src).for_each(|(o, &v)| *o = v);
                }
            }
        }
    };
    if k == 0 {
        return out;
    }
    // Large operands (the weight gradients' `[N, I]` inputs) are packed panel by panel on the pool.
    if out.len() >= 1 << 20 && crate::kernels::threads::can_split() {
        use rayon::prelude::*;
        out.par_chunks_exact_mut(PANEL * k).enumerate().for_each(panel);
    } else {
        out.chunks_exact_mut(PANEL * k).enumerate().for_each(panel);
    }
    out
}

/// [`pack`] of `wᵀ: [K, R]` for a row-major `w: [R, K]` (the weights' PyTorch layout).
pub(crate) fn pack_transposed<F: Real>(w: &[F], k: usize) -> Packed<F> {
    let r = w.len().checked_div(k).unwrap_or(0);
    let mut out = Packed::zeros(packed_len(k, r));
    if k == 0 {
        return out;
    }
    let panel = |(q, panel): (usize, &mut [F])| {
        let rows = (r - q * PANEL).min(PANEL);
        F::transpose(&w[q * PANEL * k..(q * PANEL + rows) * k], rows, k, panel, PANEL);
    };
    if out.len() >= 1 << 20 && crate::kernels::threads::can_split() {
        use rayon::prelude::*;
        out.par_chunks_exact_mut(PANEL * k).enumerate().for_each(panel);
    } else {
        out.chunks_exact_mut(PANEL * k).enumerate().for_each(panel);
    }
    out
}

/// `c[i, j] += Σ_p a[i, p] · b[p0 + p, j]` for `i < m`, `p < k` and the columns
/// `j ∈ c0 .. c0 + cols`, where `b: [K_b, N]` is packed ([`pack`], `K_b = kb` rows) and `c` has
/// row stride `ldc` (columns indexed as in `b`); `a` as in [`crate::kernels::Kernels::gemm_acc`]. Each element is
/// the same chain of multiply-adds as with the unpacked `b`: the same bits.
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc_packed<F: Real>(
    m: usize,
    k: usize,
    a: &[F],
    rsa: usize,
    csa: usize,
    bp: &[F],
    kb: usize,
    p0: usize,
    c0: usize,
    cols: usize,
    c: &mut [F],
    ldc: usize,
) {
    packed_product(depth_block(m, cols), m, k, a, rsa, csa, bp, kb, p0, c0, cols, c, ldc);
}

/// [`gemm_acc_packed`] in blocks `depth` deep.
#[allow(clippy::too_many_arguments)]
fn packed_product<F: Real>(
    depth: usize,
    m: usize,
    k: usize,
    a: &[F],
    rsa: usize,
    csa: usize,
    bp: &[F],
    kb: usize,
    p0: usize,
    c0: usize,
    cols: usize,
    c: &mut [F],
    ldc: usize,
) {
    if m == 0 || k == 0 || cols == 0 || depth == 0 {
        return;
    }
    // Blocks of `depth` (KC, or KC_DEEP) and of MC rows: a block of `a` (≤ 120 KiB; 240 KiB at
    // KC_DEEP) stays in L2 while every panel's matching `[depth, PANEL]` block (32 KiB, held in
    // L1 for all the block's rows; 64 KiB at KC_DEEP, from L2) streams past it. The sums
    // run through `c` from one depth block to the next, in order: the same bits as one pass,
    // whatever the depth. Each call fetches the block of `b` the next call reads toward the
    // core when `b` is too large to stay in L2.
    let (q0, q1) = (c0 / PANEL, (c0 + cols).div_ceil(PANEL));
    let fetch = std::mem::size_of_val(bp) >= FETCH_MIN_BYTES;
    // The `[depth, PANEL]` block of panel q at depth pk.
    let block = |pk: usize, q: usize| {
        let kc = (k - pk).min(depth);
        let at = q * PANEL * kb + (p0 + pk) * PANEL;
        &bp[at..at + kc * PANEL]
    };
    // A transposed `a` (`rsa` 1: each step along `k` a row of memory, e.g. the gates' gradient
    // in a weight gradient `dGᵀ·X`) is read through a copy of each block whose rows are
    // `stride` apart: with the memory's own row length (often a multiple of 4 KiB) every step
    // of a tile fell in the same L1 set and a new page (1024 × 2048 × 128: 116 → 160 GFLOP/s).
    let transposed = rsa == 1 && csa > 1;
    let stride = {
        let s = m.min(MC).next_multiple_of(16);
        // An odd number of cache lines: consecutive rows start in different L1 sets.
        if (s / 16).is_multiple_of(2) {
            s + 16
        } else {
            s
        }
    };
    let mut copy = if transposed { vec![F::zero(); stride * k.min(depth)] } else { Vec::new() };
    for pk in (0..k).step_by(depth) {
        let kc = (k - pk).min(depth);
        for i0 in (0..m).step_by(MC) {
            let mc = (m - i0).min(MC);
            let (a, rsa, csa) = if transposed {
                for (p, row) in copy.chunks_exact_mut(stride).take(kc).enumerate() {
                    let at = i0 + (pk + p) * csa;
                    row[..mc].copy_from_slice(&a[at..at + mc]);
                }
                (&copy[..], 1, stride)
            } else {
                (&a[i0 * rsa + pk * csa..], rsa, csa)
            };
            for q in q0..q1 {
                let (lo, hi) = ((q * PANEL).max(c0), ((q + 1) * PANEL).min(c0 + cols));
                let b = &block(pk, q)[lo - q * PANEL..];
                let next = if !fetch {
                    &[]
                } else if q + 1 < q1 {
                    block(pk, q + 1)
                } else if i0 + MC < m {
                    block(pk, q0)
                } else if pk + depth < k {
                    block(pk + depth, q0)
                } else {
                    &[]
                };
                F::gemm_acc(mc, hi - lo, kc, a, rsa, csa, b, PANEL, &mut c[i0 * ldc + lo..], ldc, next);
            }
        }
    }
}

/// Depth of one block of a packed product (measured against 192 and 256 on the workloads'
/// shapes: +7–10% on the recurrent steps, where a `[256, 64]` block no longer fits L1).
const KC: usize = 128;
/// [`KC`] for products with a large `c` ([`DEEP_C_MIN`]) on the x86 levels: twice as deep halves
/// the passes of `c` through the tiles' loads and stores where `c` lives beyond L2 (AVX2, whose
/// 6 × 16 tiles sweep a 64-column panel block four times per row tile: 6400 × 512 × 2048 +9%,
/// 1024³ +2%; AVX-512: +9% and +3%, 2048 × 6400 × 512 with `a` transposed +2%). Products with a
/// smaller `c` (the recurrent steps, most weight gradients) keep [`KC`]: their row tiles reread
/// a `[KC, PANEL]` block that a depth of 256 no longer holds in L1 (AVX2 with every product at
/// 256: 7 × 256 × 1024 −4%, 1024 × 2048 × 128 with `a` transposed −3%).
const KC_DEEP: usize = 256;
/// Elements of `c` (2 MiB of f32) from which products run [`KC_DEEP`] deep.
const DEEP_C_MIN: usize = 1 << 19;

/// The depth of the blocks of a product into `rows × cols` values of `c` at the level in use.
fn depth_block(rows: usize, cols: usize) -> usize {
    use crate::kernels::Level;
    match crate::kernels::level() {
        Level::Avx2 | Level::Avx512 if rows * cols >= DEEP_C_MIN => KC_DEEP,
        _ => KC,
    }
}

/// Rows of one block of a packed product (a multiple of the kernels' 6- and 4-row tiles).
const MC: usize = 240;
/// Size of a packed operand from which each call fetches its next block ahead
/// ([`crate::kernels::Kernels::gemm_acc`]'s `next`): an operand of the L2's size cannot stay there from one pass over
/// it to the next; a smaller one mostly does, and fetching it again only costs load slots
/// (measured: −3 to −10% on 1 MiB operands, +3 to +7% on 4 MiB ones).
const FETCH_MIN_BYTES: usize = 2 << 20;

/// `out[b, c0 + r] += Σ_k x[b, k] · wt[k, c0 + r]` for `x: [B, K]` contiguous, `wt: [K, W]`
/// packed ([`pack_transposed`] of `W: [W, K]`), `r < R`, `out` rows of length `out_stride`
/// (`c0 + R ≤ out_stride` and `c0 + R ≤ W`).
pub(crate) fn add_xw<F: Real>(x: &[F], k: usize, wt: &[F], out: &mut [F], out_stride: usize, c0: usize, r: usize) {
    if k == 0 || out_stride == 0 || r == 0 {
        return;
    }
    gemm_acc_packed(x.len() / k, k, x, k, 1, wt, k, 0, c0, r, out, out_stride);
}

/// `out[b, c0 + r] += Σ_k x[b, k] · w[r, k]` for `x: [B, K]`, `w: [R, K]` (both contiguous),
/// `out` rows of length `out_stride` (`c0 + R ≤ out_stride`).
pub(crate) fn add_xwt<F: Real>(x: &[F], k: usize, w: &[F], out: &mut [F], out_stride: usize, c0: usize) {
    if k == 0 || out_stride == 0 {
        return;
    }
    let r = w.len() / k;
    let row = |(xr, or): (&[F], &mut [F])| F::add_dots(xr, w, &mut or[c0..c0 + r]);
    x.chunks_exact(k).zip(out.chunks_exact_mut(out_stride)).for_each(row);
}

/// `out[b, j] (+)= Σ_r y[b, y0 + r] · w[w0 + r, j]` for `r < R`, `y` rows of length
/// `y_stride`, `w: [K_w, J]` packed ([`pack`], `K_w = kw` rows) and `out: [B, J]` with
/// `J = out_width`; `out` is overwritten unless `accumulate`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_yw<F: Real>(
    y: &[F],
    y_stride: usize,
    (y0, w0): (usize, usize),
    r: usize,
    w: &[F],
    kw: usize,
    out: &mut [F],
    out_width: usize,
    accumulate: bool,
) {
    let j = out_width;
    if j == 0 || y_stride == 0 {
        return;
    }
    if !accumulate {
        out.fill(F::zero());
    }
    let rows = out.len() / j;
    if rows > 0 && r > 0 {
        gemm_acc_packed(rows, r, &y[y0..], y_stride, 1, w, kw, w0, 0, j, out, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Kernels;

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
            let packed = pack(ndarray::ArrayView2::from_shape((k, width), &wt).expect("shape"));
            let stride = r + 4;
            let mut out = fill(b * stride, 3);
            let mut want = out.clone();
            add_xw(&x, k, &packed, &mut out, stride, 2, r);
            add_xwt(&x, k, &w, &mut want, stride, 2);
            for (i, (o, w)) in out.iter().zip(&want).enumerate() {
                assert!((o - w).abs() < 1e-9, "b{b} k{k} r{r} at {i}: {o} vs {w}");
            }
        }
    }

    #[test]
    fn packing_keeps_every_value_and_the_product_bits() {
        for &(k, n) in &[(1, 1), (5, 64), (7, 65), (3, 200)] {
            let w = fill(n * k, 4);
            let wt: Vec<f64> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            let (a, b) = (pack_transposed(&w, k), pack(ndarray::ArrayView2::from_shape((k, n), &wt).expect("shape")));
            assert_eq!(a[..], b[..], "k{k} n{n}");
            // A strided `b` (a transposed view of `w: [N, K]`) packs to the same values.
            let strided = pack(ndarray::ArrayView2::from_shape((n, k), &w).expect("shape").t());
            assert_eq!(strided[..], b[..], "k{k} n{n}");
            // The first value on a cache line's boundary, for both element types.
            assert_eq!(a.as_ptr() as usize % 64, 0, "k{k} n{n}");
            let bf: Vec<f32> = wt.iter().map(|&v| v as f32).collect();
            assert_eq!(pack(ndarray::ArrayView2::from_shape((k, n), &bf).expect("shape")).as_ptr() as usize % 64, 0);
            assert_eq!(a.len(), packed_len(k, n));
            for p in 0..k {
                for j in 0..n {
                    assert_eq!(a[(j / PANEL) * PANEL * k + p * PANEL + j % PANEL], wt[p * n + j]);
                }
            }
            // A product over rows 1.. of a column range: the unpacked product's bits.
            let x: Vec<f32> = fill(3 * k, 5).iter().map(|&v| v as f32).collect();
            let (bf, pf): (Vec<f32>, Vec<f32>) =
                (wt.iter().map(|&v| v as f32).collect(), b.iter().map(|&v| v as f32).collect());
            let (c0, cols) = (n / 3, n - n / 3);
            let (mut got, mut want) = (vec![0.5f32; 3 * n], vec![0.5f32; 3 * n]);
            if k > 1 {
                gemm_acc_packed(3, k - 1, &x, k, 1, &pf, k, 1, c0, cols, &mut got, n);
                f32::gemm_acc(3, cols, k - 1, &x, k, 1, &bf[n + c0..], n, &mut want[c0..], n, &[]);
                assert_eq!(got, want, "k{k} n{n}");
            }
        }
    }

    #[test]
    fn a_product_fetching_its_next_blocks_ahead_gives_the_unpacked_bits() {
        // 2.3 MiB packed (≥ FETCH_MIN_BYTES): two row blocks, three depth blocks (the last
        // short; two at KC_DEEP), a column range that starts and ends inside panels.
        let (m, k, n) = (250, 300, 2000);
        assert!(packed_len(k, n) * 4 >= FETCH_MIN_BYTES);
        let a: Vec<f32> = fill(m * k, 7).iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = fill(k * n, 8).iter().map(|&v| v as f32).collect();
        let bp = pack(ndarray::ArrayView2::from_shape((k, n), &b).expect("shape"));
        let (c0, cols) = (70, 1830);
        let mut want = vec![0.25f32; m * n];
        f32::gemm_acc(m, cols, k, &a, k, 1, &b[c0..], n, &mut want[c0..], n, &[]);
        for depth in [KC, KC_DEEP] {
            let mut got = vec![0.25f32; m * n];
            packed_product(depth, m, k, &a, k, 1, &bp, k, 0, c0, cols, &mut got, n);
            assert_eq!(got, want, "depth {depth}");
        }
    }

    #[test]
    fn a_transposed_a_is_read_through_its_block_copies_with_the_same_bits() {
        // a: [m, k] read from `mem: [k, w]` (rsa 1, csa w) at column offset 3, as the weight
        // gradients read the gates' gradient; two row blocks (the second short), three depth
        // blocks (two at KC_DEEP); f32 (the kernel) and f64 (the portable path).
        let (m, k, n, w) = (250, 300, 70, 256);
        let mem = fill(k * w, 9);
        let b = fill(k * n, 10);
        let bp = pack(ndarray::ArrayView2::from_shape((k, n), &b).expect("shape"));
        let f = |v: &[f64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };
        let (mem32, b32) = (f(&mem), f(&b));
        let bp32 = pack(ndarray::ArrayView2::from_shape((k, n), &b32).expect("shape"));
        let mut want = vec![0.5; m * n];
        crate::kernels::portable::gemm_acc_portable(m, n, k, &mem[3..], 1, w, &b, n, &mut want, n);
        let mut want32 = vec![0.5f32; m * n];
        f32::gemm_acc(m, n, k, &mem32[3..], 1, w, &b32, n, &mut want32, n, &[]);
        for depth in [KC, KC_DEEP] {
            let mut got = vec![0.5; m * n];
            packed_product(depth, m, k, &mem[3..], 1, w, &bp, k, 0, 0, n, &mut got, n);
            assert_eq!(got, want, "f64, depth {depth}");
            let mut got = vec![0.5f32; m * n];
            packed_product(depth, m, k, &mem32[3..], 1, w, &bp32, k, 0, 0, n, &mut got, n);
            assert_eq!(got, want32, "f32, depth {depth}");
        }
    }

    #[test]
    fn add_yw_matches_the_definition_with_and_without_accumulation() {
        for &(b, r, j, accumulate) in &[(3, 7, 5, true), (2, 4, 9, false), (64, 70, 40, true), (1, 1, 1, false)] {
            let stride = r + 3;
            let (y, w) = (fill(b * stride, 4), fill(r * j, 5));
            let mut out = fill(b * j, 6);
            let before = out.clone();
            // w as rows 1..1 + r of a packed [1 + r, j] matrix (row c of it pairs with y's column c).
            let mut full = vec![0.0; j];
            full.extend(&w);
            let wp = pack(ndarray::ArrayView2::from_shape((1 + r, j), &full).expect("shape"));
            add_yw(&y, stride, (1, 1), r, &wp, 1 + r, &mut out, j, accumulate);
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
            let wt = pack_transposed(&w, k);
            let wp = pack(ndarray::ArrayView2::from_shape((r, k), &w[..]).expect("shape"));
            pool.install(|| {
                add_xwt(&x, k, &w, &mut out, r, 0);
                add_yw(&out, r, (0, 0), r, &wp, r, &mut back, k, false);
                add_xw(&x, k, &wt, &mut fast, r, 0, r);
            });
            (out, back, fast)
        };
        assert_eq!(run(1), run(2));
    }
}
