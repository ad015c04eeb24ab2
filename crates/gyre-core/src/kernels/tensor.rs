//! Views of flat row-major buffers with errors that name the argument, and arrays back into flat
//! buffers.

use crate::error::{CoreError, Result};
use ndarray::{ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2};

fn count(dims: &[usize]) -> Result<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
        CoreError::invalid("the product of the dimensions", "representable in memory", format!("{dims:?}"))
    })
}

fn check_len(what: &str, dims: &[usize], len: usize) -> Result<()> {
    let want = count(dims)?;
    if want != len {
        return Err(CoreError::shape(what, format!("{dims:?} ({want} values)"), format!("{len} values")));
    }
    Ok(())
}

/// `data` as a `[rows, cols]` matrix, or a [`CoreError::ShapeMismatch`] naming `what`.
pub fn matrix<'a, F>(what: &str, data: &'a [F], rows: usize, cols: usize) -> Result<ArrayView2<'a, F>> {
    check_len(what, &[rows, cols], data.len())?;
    ArrayView2::from_shape((rows, cols), data).map_err(|e| internal(what, e))
}

/// `data` as a mutable `[rows, cols]` matrix, or a [`CoreError::ShapeMismatch`] naming `what`.
pub fn matrix_mut<'a, F>(what: &str, data: &'a mut [F], rows: usize, cols: usize) -> Result<ArrayViewMut2<'a, F>> {
    check_len(what, &[rows, cols], data.len())?;
    ArrayViewMut2::from_shape((rows, cols), data).map_err(|e| internal(what, e))
}

/// `data` as a `[len]` vector, or a [`CoreError::ShapeMismatch`] naming `what`.
pub fn vector<'a, F>(what: &str, data: &'a [F], len: usize) -> Result<ArrayView1<'a, F>> {
    check_len(what, &[len], data.len())?;
    Ok(ArrayView1::from(data))
}

/// `data` as a `[d0, d1, d2]` tensor, or a [`CoreError::ShapeMismatch`] naming `what`.
pub fn tensor3<'a, F>(what: &str, data: &'a [F], d0: usize, d1: usize, d2: usize) -> Result<ArrayView3<'a, F>> {
    check_len(what, &[d0, d1, d2], data.len())?;
    ArrayView3::from_shape((d0, d1, d2), data).map_err(|e| internal(what, e))
}

fn internal(what: &str, e: ndarray::ShapeError) -> CoreError {
    CoreError::shape(what, "a contiguous row-major layout", e.to_string())
}

/// Checks that a size is a positive integer.
pub fn positive(what: &str, value: usize) -> Result<usize> {
    if value == 0 {
        return Err(CoreError::invalid(what, "a positive integer", value));
    }
    Ok(value)
}

/// The elements of `a` in row-major order: its own buffer when it is in standard layout (no
/// copy), else a copy.
pub(crate) fn into_vec<F: Copy, D: ndarray::Dimension>(a: ndarray::Array<F, D>) -> Vec<F> {
    if a.is_standard_layout() {
        let n = a.len();
        let (v, offset) = a.into_raw_vec_and_offset();
        let off = offset.unwrap_or(0);
        if off == 0 && v.len() == n {
            return v;
        }
        return v.into_iter().skip(off).take(n).collect();
    }
    a.iter().copied().collect()
}

/// Adds the per-parameter values `g` into `sum` element by element (takes `g` when `sum` is
/// still empty): how shards' gradients are added up, in the order the caller gives them.
pub(crate) fn add_into_sum<F: Copy + std::ops::Add<Output = F>>(sum: &mut Option<Vec<Vec<F>>>, g: Vec<Vec<F>>) {
    match sum.as_mut() {
        None => *sum = Some(g),
        Some(acc) => {
            for (a, g) in acc.iter_mut().zip(g) {
                a.iter_mut().zip(g).for_each(|(x, y)| *x = *x + y);
            }
        }
    }
}
