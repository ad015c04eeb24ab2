//! Matrix products and reductions used by the recurrent drivers.
//!
//! f32 products run on gyre's own SIMD kernel ([`crate::kernels::dispatch::gemm_acc`], AVX-512 or AVX2+FMA
//! chosen at run time; measured faster than matrixmultiply's on these shapes, see
//! `benchmark/gemm.md`); other types and layouts on ndarray's `general_mat_mul`
//! (matrixmultiply). Large products are split into blocks of output rows (or columns) over the
//! rayon pool. Every output element is still one reduction over the same `k` in the same
//! order, so a result does not depend on the number of threads.

use crate::kernels::packed::{gemm_acc_packed, pack};
use crate::kernels::real::Real;
use ndarray::parallel::prelude::*;
use ndarray::{linalg::general_mat_mul, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use rayon::slice::ParallelSliceMut;

/// Below this many multiply-adds (a few microseconds) a product runs on the calling thread:
/// waking a pool thread costs about as much (2 threads were 18% slower than 1 on batch-1
/// training with 1 << 18).
const PARALLEL_MIN_FLOPS: usize = 1 << 20;
/// Products with at most this many rows against a transposed `b` use dot products (no copy).
pub(crate) const DOT_FORM_MAX_ROWS: usize = 8;
/// Products with at least this many rows run on a packed copy of `b`.
const PACK_MIN_ROWS: usize = 64;
/// Smallest block of output rows or columns handed to one task.
const MIN_BLOCK: usize = 16;

/// `c = alpha · a · b + beta · c` for `a: [m, k]`, `b: [k, n]`, `c: [m, n]`; any strides
/// (pass `x.t()` for a transpose). Shapes are the caller's invariant: the drivers size every
/// buffer from validated dimensions.
pub(crate) fn gemm<F: Real>(alpha: F, a: ArrayView2<F>, b: ArrayView2<F>, beta: F, mut c: ArrayViewMut2<F>) {
    if F::FAST_GEMM
        && alpha == F::one()
        && (beta == F::zero() || beta == F::one())
        && fast_gemm(a, b, beta == F::zero(), c.view_mut())
    {
        return;
    }
    let (m, k) = a.dim();
    let n = b.ncols();
    let threads = rayon::current_num_threads();
    if threads <= 1 || crate::kernels::threads::kept_whole() || m * n * k < PARALLEL_MIN_FLOPS {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return;
    }
    if m >= n {
        let block = m.div_ceil(threads * 2).max(MIN_BLOCK);
        c.axis_chunks_iter_mut(Axis(0), block)
            .into_par_iter()
            .zip(a.axis_chunks_iter(Axis(0), block).into_par_iter())
            .for_each(|(mut c_blk, a_blk)| general_mat_mul(alpha, &a_blk, &b, beta, &mut c_blk));
    } else {
        let block = n.div_ceil(threads * 2).max(MIN_BLOCK);
        c.axis_chunks_iter_mut(Axis(1), block)
            .into_par_iter()
            .zip(b.axis_chunks_iter(Axis(1), block).into_par_iter())
            .for_each(|(mut c_blk, b_blk)| general_mat_mul(alpha, &a, &b_blk, beta, &mut c_blk));
    }
}

/// `c (=|+=) a · b` on [`crate::kernels::Kernels::gemm_acc`] when `c` is row-major and contiguous and `a` is
/// contiguous in either order (`b` is copied to row-major when it is not). Returns false, having
/// done nothing, for other layouts.
fn fast_gemm<F: Real>(a: ArrayView2<F>, b: ArrayView2<F>, overwrite: bool, c: ArrayViewMut2<F>) -> bool {
    let (sa0, sa1) = (a.strides()[0], a.strides()[1]);
    if sa0 < 0 || sa1 < 0 {
        return false;
    }
    let Some(a_mem) = a.as_slice_memory_order() else { return false };
    fast_gemm_mem(
        Strided { mem: a_mem, rows: a.nrows(), cols: a.ncols(), rs: sa0 as usize, cs: sa1 as usize },
        b,
        overwrite,
        c,
    )
}

/// A matrix read from memory with row stride `rs` and column stride `cs` (element `(i, j)` at
/// `mem[i·rs + j·cs]`; `mem` holds them all).
struct Strided<'a, F> {
    mem: &'a [F],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// `c (+)= a[:, cols]ᵀ · b` for `a: [N, W]` in standard layout, `b: [N, K]`, `c: [cols.len(), K]`
/// (`beta` 0 or 1 as in [`gemm`]): a block of columns of `a` read in place by gyre's kernel,
/// where [`gemm`] of `a.slice(s![.., cols]).t()` (not contiguous) would take the slower
/// general product.
pub(crate) fn gemm_t_cols<F: Real>(
    a: ArrayView2<F>,
    cols: std::ops::Range<usize>,
    b: ArrayView2<F>,
    beta: F,
    mut c: ArrayViewMut2<F>,
) {
    let (n_rows, width) = a.dim();
    if let (true, Some(mem)) = (F::FAST_GEMM && (beta == F::zero() || beta == F::one()), a.as_slice()) {
        let at = Strided { mem: &mem[cols.start.min(mem.len())..], rows: cols.len(), cols: n_rows, rs: 1, cs: width };
        if fast_gemm_mem(at, b, beta == F::zero(), c.view_mut()) {
            return;
        }
    }
    gemm(F::one(), a.slice(ndarray::s![.., cols]).t(), b, beta, c);
}

/// [`fast_gemm`] for an `a` given as strided memory.
fn fast_gemm_mem<F: Real>(a: Strided<'_, F>, b: ArrayView2<F>, overwrite: bool, mut c: ArrayViewMut2<F>) -> bool {
    let Strided { mem: a_mem, rows: m, cols: k, rs: rsa, cs: csa } = a;
    let n = b.ncols();
    // A few rows against a transposed b (`x · Wᵀ` with W row-major, as in a one-step call):
    // dot products of contiguous rows, without copying W.
    let bt = b.t();
    if m <= DOT_FORM_MAX_ROWS && csa == 1 && k > 0 {
        if let (Some(w), Some(c_mem)) = (bt.as_slice(), c.as_slice_mut()) {
            for (i, crow) in c_mem.chunks_exact_mut(n).enumerate() {
                let ar = &a_mem[i * rsa..i * rsa + k];
                for (o, wr) in crow.iter_mut().zip(w.chunks_exact(k)) {
                    let base = if overwrite { F::zero() } else { *o };
                    *o = base + F::dot(ar, wr);
                }
            }
            return true;
        }
    }
    let Some(c_mem) = c.as_slice_mut() else { return false };
    if m == 0 || n == 0 {
        return true;
    }
    // Many rows: b packed in column panels (kernels::pack), a copy the rows repay many times.
    let packed = (m >= PACK_MIN_ROWS && k > 0).then(|| pack(b));
    let b_std = packed.is_none().then(|| b.as_standard_layout());
    let b_mem = match (&packed, b_std.as_ref().and_then(|s| s.as_slice())) {
        (Some(p), _) => &p[..],
        (None, Some(mem)) => mem,
        (None, None) => return false,
    };
    let block = |i0: usize, cs: &mut [F]| {
        if overwrite {
            cs.fill(F::zero());
        }
        let (rows, a) = (cs.len() / n, &a_mem[i0 * rsa..]);
        if packed.is_some() {
            gemm_acc_packed(rows, k, a, rsa, csa, b_mem, k, 0, 0, n, cs, n);
        } else if k > 0 {
            F::gemm_acc(rows, n, k, a, rsa, csa, b_mem, n, cs, n, &[]);
        }
    };
    in_row_blocks(c_mem, (m, n, k), block);
    true
}

/// `c += a · b` for `a: [m, k]` and `c: [m, n]` in standard layout, with `b: [k, n]` given
/// packed ([`pack`], [`crate::kernels::packed::pack_transposed`]) once for many calls: the
/// product [`gemm`] runs (blocks of rows over the pool when large), without packing or copying
/// `b` at every call, the same bits. Returns false, having done nothing, where [`gemm`] would
/// not run gyre's kernel (f64, other layouts, `b` of another size).
pub(crate) fn gemm_acc_prepacked<F: Real>(a: ArrayView2<F>, b: &[F], mut c: ArrayViewMut2<F>) -> bool {
    let ((m, k), n) = (a.dim(), c.ncols());
    if !F::FAST_GEMM || c.nrows() != m || b.len() != crate::kernels::packed::packed_len(k, n) {
        return false;
    }
    let (Some(a_mem), Some(c_mem)) = (a.as_slice(), c.as_slice_mut()) else { return false };
    if m == 0 || n == 0 || k == 0 {
        return true;
    }
    let block =
        |i0: usize, cs: &mut [F]| gemm_acc_packed(cs.len() / n, k, &a_mem[i0 * k..], k, 1, b, k, 0, 0, n, cs, n);
    in_row_blocks(c_mem, (m, n, k), block);
    true
}

/// Runs `block(i0, rows)` over the rows of a row-major `c: [m, n]` (`rows` starting at row
/// `i0`) of a product of depth `k`: all at once on the calling thread when it is small, else in
/// blocks of rows over the pool (each row the same arithmetic in any block).
fn in_row_blocks<F: Send>(c_mem: &mut [F], (m, n, k): (usize, usize, usize), block: impl Fn(usize, &mut [F]) + Sync) {
    let threads = rayon::current_num_threads();
    if threads <= 1 || crate::kernels::threads::kept_whole() || m * n * k < PARALLEL_MIN_FLOPS || m < 8 {
        block(0, c_mem);
    } else {
        let rows = m.div_ceil(threads * 2).next_multiple_of(4);
        c_mem.par_chunks_mut(rows * n).enumerate().for_each(|(bi, cs)| block(bi * rows, cs));
    }
}

/// `out = Σ_rows x` for `x: [m, n]`, `out: [n]`; rows are summed in order.
pub(crate) fn column_sums<F: Real>(x: ArrayView2<F>, mut out: ArrayViewMut1<F>) {
    out.fill(F::zero());
    // Contiguous rows and output: plain slice loops (vectorized), the same order of additions.
    if let (Some(xs), Some(o)) = (x.as_slice(), out.as_slice_mut()) {
        F::add_rows(o, xs);
        return;
    }
    // Rows contiguous but apart (a block of columns): the same loop row by row.
    if let Some(o) = out.as_slice_mut() {
        if x.rows().into_iter().all(|r| r.as_slice().is_some()) {
            x.rows().into_iter().filter_map(|r| r.to_slice()).for_each(|r| F::add_rows(o, r));
            return;
        }
    }
    for row in x.rows() {
        out.zip_mut_with(&row, |o, &v| *o = *o + v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// A block of columns of `a`, transposed and read in place, gives the product of the copied
    /// block (f32: the kernel; f64: the portable path), overwriting or accumulating.
    #[test]
    fn gemm_t_cols_matches_the_copied_block() {
        let a = Array2::from_shape_fn((70, 9), |(i, j)| ((i * 9 + j) % 13) as f32 - 6.0);
        let b = Array2::from_shape_fn((70, 5), |(i, j)| ((i * 5 + j) % 7) as f32 - 3.0);
        for cols in [0..9, 2..6, 8..9] {
            for beta in [0.0f32, 1.0] {
                let block = a.slice(ndarray::s![.., cols.clone()]).t().to_owned();
                let mut want = Array2::from_elem((cols.len(), 5), 0.5f32);
                gemm(1.0, block.view(), b.view(), beta, want.view_mut());
                let mut got = Array2::from_elem((cols.len(), 5), 0.5f32);
                gemm_t_cols(a.view(), cols.clone(), b.view(), beta, got.view_mut());
                assert_eq!(got, want, "{cols:?}, beta {beta}");
                let a64 = a.mapv(f64::from);
                let mut got64 = Array2::from_elem((cols.len(), 5), 0.5f64);
                gemm_t_cols(a64.view(), cols.clone(), b.mapv(f64::from).view(), f64::from(beta), got64.view_mut());
                assert_eq!(got64.mapv(|v| v as f32), want, "f64, {cols:?}, beta {beta}");
            }
        }
        let mut sums = ndarray::Array1::zeros(4);
        column_sums(a.slice(ndarray::s![.., 3..7]), sums.view_mut());
        let want: Vec<f32> = (3..7).map(|j| a.column(j).sum()).collect();
        assert_eq!(sums.to_vec(), want);
    }

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let mut c = Array2::zeros((a.nrows(), b.ncols()));
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                c[[i, j]] = (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum();
            }
        }
        c
    }

    #[test]
    fn parallel_gemm_matches_naive_product_in_both_split_directions() {
        for &(m, k, n) in &[(300, 70, 40), (20, 90, 400), (3, 5, 7)] {
            let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
            let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 13) as f64 * 0.25);
            let mut c = Array2::from_elem((m, n), 1.0);
            gemm(2.0, a.view(), b.view(), 0.5, c.view_mut());
            let want = naive(&a, &b) * 2.0 + 0.5;
            assert_eq!(c, want);
        }
    }

    #[test]
    fn gemm_result_is_identical_on_one_and_several_threads() {
        let a = Array2::from_shape_fn((256, 96), |(i, j)| ((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5);
        let b = Array2::from_shape_fn((96, 200), |(i, j)| ((i * 13 + j * 7) % 89) as f32 / 89.0 - 0.5);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            let mut c = Array2::<f32>::zeros((256, 200));
            match pool {
                Ok(pool) => pool.install(|| gemm(1.0, a.view(), b.view(), 0.0, c.view_mut())),
                Err(e) => unreachable!("thread pool: {e}"),
            }
            c
        };
        assert_eq!(run(1), run(3));
    }
}
