//! What the layers compute outside the recurrent time loop: the embedding lookup, the dense
//! product and its activations, a recurrent layer's output from its top layer, and the rows
//! passed between layers.

use super::config::{Activation, Merge, RecurrentLayerSpec};
use super::init::{LayerInfo, Model};
use super::state::ModelState;
use crate::error::{CoreError, Result};
use crate::kernels::linalg::gemm;
use crate::kernels::real::{sigmoid, Real};
use crate::kernels::tensor::matrix;
use ndarray::{Array2, ArrayView2, Axis};

/// Rows between layers: a packed sequence `[N, width]` or one row per sequence `[B, width]`.
#[derive(Clone, Debug)]
pub(super) struct Act<F> {
    pub(super) data: Array2<F>,
    pub(super) sequence: bool,
}

impl<F: Real> Model<F> {
    /// `[rows, units]` the dense layer's pre-activation `b + x·Wᵀ` for `x: [rows, in]`.
    pub(super) fn dense(&self, info: &LayerInfo, units: usize, x: ArrayView2<F>) -> Result<Array2<F>> {
        let w = &self.tensors[info.first_tensor];
        let bias = &self.tensors[info.first_tensor + 1];
        let wm = matrix(&w.name, &w.data, units, info.input_width)?;
        let rows = x.nrows();
        let mut init = Vec::with_capacity(rows * units);
        for _ in 0..rows {
            init.extend_from_slice(&bias.data);
        }
        let mut pre = Array2::from_shape_vec((rows, units), init)
            .map_err(|e| CoreError::shape("dense output", format!("[{rows}, {units}]"), e.to_string()))?;
        gemm(F::one(), x, wm.t(), F::one(), pre.view_mut());
        Ok(pre)
    }

    /// `[N, dim]` the embedding rows of the packed token ids.
    pub(super) fn embed(&self, dim: usize, info: &LayerInfo, tokens: &[u32]) -> Array2<F> {
        let w = &self.tensors[info.first_tensor].data;
        let mut out = Array2::zeros((tokens.len(), dim));
        for (mut row, &id) in out.rows_mut().into_iter().zip(tokens) {
            let id = id as usize;
            row.assign(&ndarray::ArrayView1::from(&w[id * dim..(id + 1) * dim]));
        }
        out
    }
}

/// A recurrent layer's given starting states: `[l·D + d]` hidden states `[B, H]`, and cell
/// states when the state has them.
#[derive(Clone, Copy)]
pub(super) struct LayerState<'a, F> {
    hidden: &'a [Vec<F>],
    cell: Option<&'a [Vec<F>]>,
}

impl<'a, F> LayerState<'a, F> {
    /// The states of recurrent layer `index` in `state`, if given and present.
    pub(super) fn of(state: Option<&'a ModelState<F>>, index: usize) -> Option<Self> {
        let s = state?;
        Some(LayerState { hidden: s.hidden.get(index)?, cell: s.cell.get(index).map(|c| &c[..]) })
    }
}

/// The starting state `(h0, c0)` (`[B, H]` each; `c0` empty without a cell state) of stacked
/// layer and direction `k`: from `init` when given, else `zeros`.
pub(super) fn initial_state<'a, F: Real>(
    init: Option<LayerState<'a, F>>,
    k: usize,
    has_c: bool,
    zeros: &'a [F],
    b: usize,
    h: usize,
) -> Result<(&'a [F], &'a [F])> {
    let h0 = init.and_then(|s| s.hidden.get(k)).map_or(zeros, |v| &v[..]);
    let c0 = if has_c { init.and_then(|s| s.cell?.get(k)).map_or(zeros, |v| &v[..]) } else { &[] };
    if h0.len() != b * h || c0.len() != if has_c { b * h } else { 0 } {
        return Err(CoreError::shape("state", format!("[{b}, {h}]"), format!("{} values", h0.len())));
    }
    Ok((h0, c0))
}

/// A recurrent layer's output from its top layer's packed outputs `x: [N, D·H]` and the final
/// hidden states `hs` (`l·D + d` order): the sequence, or each sequence's final state; the two
/// directions concatenated or summed.
pub(super) fn recurrent_output<F: Real>(
    r: &RecurrentLayerSpec,
    b: usize,
    x: Array2<F>,
    hs: &[Vec<F>],
) -> Result<Act<F>> {
    let h = r.hidden_size;
    let dirs = r.directions();
    let merged = |a: Array2<F>| -> Array2<F> {
        if dirs == 2 && r.merge == Merge::Sum {
            let (f, bk) = a.view().split_at(Axis(1), h);
            &f + &bk
        } else {
            a
        }
    };
    if r.return_sequences {
        return Ok(Act { data: merged(x), sequence: true });
    }
    let top = &hs[(r.num_layers - 1) * dirs..];
    let mut finals = Array2::zeros((b, dirs * h));
    for (d, hd) in top.iter().enumerate() {
        finals.slice_mut(ndarray::s![.., d * h..(d + 1) * h]).assign(&matrix("h_n", hd, b, h)?);
    }
    Ok(Act { data: merged(finals), sequence: false })
}

/// Reverses each sequence's rows of the packed `x: [N, ·]` in time, within its length: the row
/// of step `t` trades places with the row of step `len − 1 − t` (a `go_backwards` layer's
/// output order; its own inverse, so also its gradient's).
pub(super) fn reverse_in_time<F: Real>(x: &mut Array2<F>, packing: &crate::rnn::Packing) {
    for s in 0..packing.batch() {
        let len = packing.length(s);
        for t in 0..len / 2 {
            let (a, b) = (packing.offset(t) + s, packing.offset(len - 1 - t) + s);
            for j in 0..x.ncols() {
                x.swap([a, j], [b, j]);
            }
        }
    }
}

/// Applies `activation` to each row of `x` in place.
pub fn activate<F: Real>(activation: Activation, x: &mut Array2<F>) {
    match activation {
        Activation::Linear => {}
        Activation::Relu => x.mapv_inplace(|v| v.max(F::zero())),
        Activation::Tanh => x.mapv_inplace(|v| v.tanh()),
        Activation::Sigmoid => x.mapv_inplace(sigmoid),
        Activation::Softmax => {
            for mut row in x.rows_mut() {
                let max = row.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
                row.mapv_inplace(|v| (v - max).exp());
                let sum = row.iter().fold(F::zero(), |s, &v| s + v);
                row.mapv_inplace(|v| v / sum);
            }
        }
    }
}

/// Turns `d` (gradient after the activation) into the gradient before it, given the
/// activation's output `y`.
pub(crate) fn activation_backward<F: Real>(activation: Activation, y: &Array2<F>, d: &mut Array2<F>) {
    match activation {
        Activation::Linear => {}
        Activation::Relu => d.zip_mut_with(y, |g, &v| *g = if v > F::zero() { *g } else { F::zero() }),
        Activation::Tanh => d.zip_mut_with(y, |g, &v| *g = *g * (F::one() - v * v)),
        Activation::Sigmoid => d.zip_mut_with(y, |g, &v| *g = *g * v * (F::one() - v)),
        Activation::Softmax => {
            for (mut g, yr) in d.rows_mut().into_iter().zip(y.rows()) {
                let dot = g.iter().zip(yr).fold(F::zero(), |s, (&a, &b)| s + a * b);
                g.zip_mut_with(&yr, |a, &b| *a = b * (*a - dot));
            }
        }
    }
}
