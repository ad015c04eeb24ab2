//! Attention of a decoder's states over an encoder's outputs, forward and backward over whole
//! batches: Luong's `dot` and `general` scores (Luong, Pham & Manning 2015) and Bahdanau's
//! `additive` score (Bahdanau, Cho & Bengio 2015).
//!
//! For each sequence `b`, query step `i` (a decoder state `q_i`, `[Hq]`) and encoder step `j`
//! below the sequence's length `L_b` (an encoder output `k_j`, `[Hk]`, the memory), a score
//!
//! - `dot`: `s_ij = q_i · k_j` (`Hq = Hk`);
//! - `general`: `s_ij = q_i · (W k_j)`, `W: [Hq, Hk]`;
//! - `additive`: `s_ij = v · tanh(W_q q_i + W_k k_j + b)`, `W_q: [A, Hq]`, `W_k: [A, Hk]`,
//!   `b, v: [A]`;
//!
//! the weights `α_i = softmax_j(s_ij)` over the valid steps `j < L_b` (padded steps get exactly 0,
//! never NaN; a sequence of length 0 attends to nothing: weights and context 0), and the
//! context `c_i = Σ_j α_ij k_j`, `[Hk]`. Backward returns the gradients of
//! `L = Σ c·grad_context + Σ α·grad_weights` with respect to the queries, the memory and every
//! parameter.
//!
//! [`decoder_forward`] / [`decoder_backward`] run a recurrent decoder that attends at every step
//! (with Luong's input feeding as an option), through time; [`beam_search`] decodes with it one
//! token at a time (greedy decoding is its width-1 case).
//!
//! Sequences run side by side on the pool; each one's arithmetic is the same on any number of
//! threads, and the parameter gradients are summed over the sequences in order afterwards, so
//! results are the same bits on 1 or N threads.

mod beam;
#[cfg(test)]
#[path = "beam_tests.rs"]
mod beam_tests;
mod decoder;
#[cfg(test)]
#[path = "decoder_tests.rs"]
mod decoder_tests;
#[cfg(test)]
mod tests;

pub use beam::{beam_search, beam_search_ensemble, BeamOptions, Hypothesis, Member, TokenHead, MAX_BEAM_WIDTH};
pub use decoder::{
    decoder_backward, decoder_forward, decoder_forward_backward, decoder_step, DecoderGrads, DecoderOutput,
    DecoderOutputGrads, DecoderPrep, DecoderSpec, DecoderState, DecoderWeights, MemoryKeys,
};

use crate::error::{CoreError, Result};
use crate::kernels::linalg::gemm;
use crate::kernels::real::Real;
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

/// The score of an attention layer and its parameters.
#[derive(Clone, Copy, Debug)]
pub enum AttentionScore<'a, F> {
    /// `q · k` (Luong's dot); no parameters; queries and memory of one width.
    Dot,
    /// `q · (W k)` (Luong's general), `weight: [Hq, Hk]`.
    General {
        /// `W: [Hq, Hk]`.
        weight: ArrayView2<'a, F>,
    },
    /// `v · tanh(W_q q + W_k k + b)` (Bahdanau's additive), with `A` attention units.
    Additive {
        /// `W_q: [A, Hq]`.
        query_weight: ArrayView2<'a, F>,
        /// `W_k: [A, Hk]`.
        key_weight: ArrayView2<'a, F>,
        /// `b: [A]`.
        bias: ArrayView1<'a, F>,
        /// `v: [A]`.
        v: ArrayView1<'a, F>,
    },
}

impl<F> AttentionScore<'_, F> {
    /// The same score over views of the same parameters, borrowed for a shorter time (so that
    /// values borrowed from several places can sit in one struct).
    pub fn reborrow(&self) -> AttentionScore<'_, F> {
        match self {
            AttentionScore::Dot => AttentionScore::Dot,
            AttentionScore::General { weight } => AttentionScore::General { weight: weight.view() },
            AttentionScore::Additive { query_weight, key_weight, bias, v } => AttentionScore::Additive {
                query_weight: query_weight.view(),
                key_weight: key_weight.view(),
                bias: bias.view(),
                v: v.view(),
            },
        }
    }
}

impl<F: Real> AttentionScore<'_, F> {
    /// The parameter names, in the order [`AttentionGrads::params`] gives their gradients.
    pub fn param_names(&self) -> &'static [&'static str] {
        match self {
            AttentionScore::Dot => &[],
            AttentionScore::General { .. } => &["weight"],
            AttentionScore::Additive { .. } => &["query_weight", "key_weight", "bias", "v"],
        }
    }

    /// An error unless the parameters fit queries of width `hq` and memory of width `hk`.
    fn check(&self, hq: usize, hk: usize) -> Result<()> {
        match self {
            AttentionScore::Dot if hq != hk => Err(CoreError::shape(
                "memory",
                format!("the queries' width {hq} (a dot score multiplies them element by element)"),
                format!("width {hk}"),
            )),
            AttentionScore::Dot => Ok(()),
            AttentionScore::General { weight } => expect_dim("weight", weight.shape(), &[hq, hk]),
            AttentionScore::Additive { query_weight, key_weight, bias, v } => {
                let a = query_weight.nrows();
                if a == 0 {
                    return Err(CoreError::invalid("query_weight", "at least one attention unit (row)", "0 rows"));
                }
                expect_dim("query_weight", query_weight.shape(), &[a, hq])?;
                expect_dim("key_weight", key_weight.shape(), &[a, hk])?;
                expect_dim("bias", bias.shape(), &[a])?;
                expect_dim("v", v.shape(), &[a])
            }
        }
    }
}

fn expect_dim(what: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got == want {
        return Ok(());
    }
    Err(CoreError::shape(what, format!("{want:?}"), format!("{got:?}")))
}

/// What [`attention_forward`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Attention<F> {
    /// `[B, Tq, Hk]` the context of every query step.
    pub context: Array3<F>,
    /// `[B, Tq, Tk]` the attention weights; 0 at padded memory steps.
    pub weights: Array3<F>,
}

/// What [`attention_backward`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionGrads<F> {
    /// `[B, Tq, Hq]` the gradient of the queries.
    pub query: Array3<F>,
    /// `[B, Tk, Hk]` the gradient of the memory (0 at padded steps).
    pub memory: Array3<F>,
    /// The parameters' gradients by [`AttentionScore::param_names`], each in its parameter's
    /// shape (flat, row-major).
    pub params: Vec<(&'static str, Vec<F>)>,
}

/// Checks the shapes and lengths of one call; returns `(B, Tq, Hq, Tk, Hk)`.
fn check_call<F: Real>(
    score: &AttentionScore<'_, F>,
    query: &ArrayView3<F>,
    memory: &ArrayView3<F>,
    lengths: &[usize],
) -> Result<(usize, usize, usize, usize, usize)> {
    let (b, tq, hq) = query.dim();
    let (bm, tk, hk) = memory.dim();
    if bm != b {
        return Err(CoreError::shape("memory", format!("{b} sequences (as the queries)"), format!("{bm}")));
    }
    if lengths.len() != b {
        return Err(CoreError::shape(
            "lengths",
            format!("{b} values (one per sequence)"),
            format!("{}", lengths.len()),
        ));
    }
    if let Some((i, &l)) = lengths.iter().enumerate().find(|(_, &l)| l > tk) {
        return Err(CoreError::invalid(format!("lengths[{i}]"), format!("at most the memory's {tk} steps"), l));
    }
    score.check(hq, hk)?;
    Ok((b, tq, hq, tk, hk))
}

/// One sequence's scores `[Tq, L]` over its first `L` memory steps, and for the additive score
/// its `tanh` values `[Tq·L, A]` (kept for backward).
fn scores<F: Real>(score: &AttentionScore<'_, F>, q: ArrayView2<F>, k: ArrayView2<F>) -> (Array2<F>, Array2<F>) {
    let (tq, l) = (q.nrows(), k.nrows());
    let mut s = Array2::zeros((tq, l));
    match score {
        AttentionScore::Dot => gemm(F::one(), q, k.t(), F::zero(), s.view_mut()),
        AttentionScore::General { weight } => {
            // U = K Wᵀ, [L, Hq]; S = Q Uᵀ.
            let mut u = Array2::zeros((l, q.ncols()));
            gemm(F::one(), k, weight.t(), F::zero(), u.view_mut());
            gemm(F::one(), q, u.t(), F::zero(), s.view_mut());
        }
        AttentionScore::Additive { query_weight, key_weight, bias, v } => {
            let a = bias.len();
            let (aq, ak) = additive_projections(q, k, query_weight, key_weight, bias);
            let mut t = Array2::zeros((tq * l, a));
            for i in 0..tq {
                for j in 0..l {
                    let row = t.row_mut(i * l + j);
                    let mut acc = F::zero();
                    for (((tv, &x), &y), &vv) in row.into_iter().zip(aq.row(i)).zip(ak.row(j)).zip(v.iter()) {
                        *tv = (x + y).tanh();
                        acc = acc + vv * *tv;
                    }
                    s[[i, j]] = acc;
                }
            }
            return (s, t);
        }
    }
    (s, Array2::zeros((0, 0)))
}

/// `W_q q_i + b` for every query, `[Tq, A]`, and `W_k k_j` for every memory step, `[L, A]`.
fn additive_projections<F: Real>(
    q: ArrayView2<F>,
    k: ArrayView2<F>,
    query_weight: &ArrayView2<F>,
    key_weight: &ArrayView2<F>,
    bias: &ArrayView1<F>,
) -> (Array2<F>, Array2<F>) {
    let a = bias.len();
    let mut aq = Array2::from_shape_fn((q.nrows(), a), |(_, c)| bias[c]);
    gemm(F::one(), q, query_weight.t(), F::one(), aq.view_mut());
    let mut ak = Array2::zeros((k.nrows(), a));
    gemm(F::one(), k, key_weight.t(), F::zero(), ak.view_mut());
    (aq, ak)
}

/// Row-wise softmax of `s: [Tq, L]` in place (the largest score subtracted first).
fn softmax_rows<F: Real>(s: &mut Array2<F>) {
    for mut row in s.rows_mut() {
        let top = row.iter().copied().fold(F::neg_infinity(), F::max);
        let mut sum = F::zero();
        row.iter_mut().for_each(|v| {
            *v = (*v - top).exp();
            sum = sum + *v;
        });
        row.iter_mut().for_each(|v| *v = *v / sum);
    }
}

/// Attention of `query: [B, Tq, Hq]` over `memory: [B, Tk, Hk]`, sequence `b` over its first
/// `lengths[b]` memory steps: the contexts `[B, Tq, Hk]` and the weights `[B, Tq, Tk]`.
///
/// # Errors
/// When the shapes disagree (naming the array and both shapes), a length exceeds `Tk`, or the
/// parameters do not fit the widths.
pub fn attention_forward<F: Real>(
    score: &AttentionScore<'_, F>,
    query: ArrayView3<F>,
    memory: ArrayView3<F>,
    lengths: &[usize],
) -> Result<Attention<F>> {
    let (b, tq, _, tk, hk) = check_call(score, &query, &memory, lengths)?;
    let mut context = Array3::zeros((b, tq, hk));
    let mut weights = Array3::zeros((b, tq, tk));
    context.axis_iter_mut(Axis(0)).into_par_iter().zip(weights.axis_iter_mut(Axis(0))).enumerate().for_each(
        |(n, (mut c, mut w))| {
            let l = lengths[n];
            if l == 0 {
                return;
            }
            let (q, k) = (query.index_axis(Axis(0), n), memory.slice(s![n, ..l, ..]));
            let (mut alpha, _) = scores(score, q, k);
            softmax_rows(&mut alpha);
            gemm(F::one(), alpha.view(), k, F::zero(), c.view_mut());
            w.slice_mut(s![.., ..l]).assign(&alpha);
        },
    );
    Ok(Attention { context, weights })
}

/// One sequence's gradients: queries `[Tq, Hq]`, its valid memory steps `[L, Hk]`, parameters.
struct SequenceGrads<F> {
    query: Array2<F>,
    memory: Array2<F>,
    params: Vec<Vec<F>>,
}

/// Backpropagation through [`attention_forward`] (recomputed): the gradients of
/// `L = Σ context·grad_context + Σ weights·grad_weights` (`[B, Tq, Hk]` and `[B, Tq, Tk]`; `None`
/// stands for zeros) with respect to the queries, the memory and the parameters.
///
/// # Errors
/// As [`attention_forward`], and when a gradient's shape is not its output's.
pub fn attention_backward<F: Real>(
    score: &AttentionScore<'_, F>,
    query: ArrayView3<F>,
    memory: ArrayView3<F>,
    lengths: &[usize],
    grad_context: Option<ArrayView3<F>>,
    grad_weights: Option<ArrayView3<F>>,
) -> Result<AttentionGrads<F>> {
    let (b, tq, hq, tk, hk) = check_call(score, &query, &memory, lengths)?;
    for (what, g, want) in [("grad_context", &grad_context, (b, tq, hk)), ("grad_weights", &grad_weights, (b, tq, tk))]
    {
        if let Some(g) = g {
            if g.dim() != want {
                return Err(CoreError::shape(what, format!("{want:?}"), format!("{:?}", g.dim())));
            }
        }
    }
    let per: Vec<SequenceGrads<F>> = (0..b)
        .into_par_iter()
        .map(|n| {
            let l = lengths[n];
            let (q, k) = (query.index_axis(Axis(0), n), memory.slice(s![n, ..l, ..]));
            let gc = grad_context.as_ref().map(|g| g.index_axis(Axis(0), n));
            let gw = grad_weights.as_ref().map(|g| g.slice(s![n, .., ..l]));
            sequence_backward(score, q, k, gc, gw)
        })
        .collect();
    let mut grads = AttentionGrads {
        query: Array3::zeros((b, tq, hq)),
        memory: Array3::zeros((b, tk, hk)),
        params: score.param_names().iter().map(|&name| (name, Vec::new())).collect(),
    };
    for (n, g) in per.into_iter().enumerate() {
        grads.query.index_axis_mut(Axis(0), n).assign(&g.query);
        grads.memory.slice_mut(s![n, ..lengths[n], ..]).assign(&g.memory);
        for ((_, total), part) in grads.params.iter_mut().zip(g.params) {
            if total.is_empty() {
                *total = part;
            } else {
                total.iter_mut().zip(part).for_each(|(t, p)| *t = *t + p);
            }
        }
    }
    Ok(grads)
}

/// The backward pass of one sequence over its `L` valid memory steps `k: [L, Hk]`.
fn sequence_backward<F: Real>(
    score: &AttentionScore<'_, F>,
    q: ArrayView2<F>,
    k: ArrayView2<F>,
    grad_context: Option<ArrayView2<F>>,
    grad_weights: Option<ArrayView2<F>>,
) -> SequenceGrads<F> {
    let (tq, hq, l) = (q.nrows(), q.ncols(), k.nrows());
    let zeros_params = || match score {
        AttentionScore::Dot => vec![],
        AttentionScore::General { weight } => vec![vec![F::zero(); weight.len()]],
        AttentionScore::Additive { query_weight, key_weight, bias, v } => vec![
            vec![F::zero(); query_weight.len()],
            vec![F::zero(); key_weight.len()],
            vec![F::zero(); bias.len()],
            vec![F::zero(); v.len()],
        ],
    };
    let mut dq = Array2::zeros((tq, hq));
    let mut dk = Array2::zeros((l, k.ncols()));
    if l == 0 {
        return SequenceGrads { query: dq, memory: dk, params: zeros_params() };
    }
    let (mut alpha, tanh) = scores(score, q, k);
    softmax_rows(&mut alpha);
    // dα = dC Kᵀ (+ the weights' own gradient); the value path dK = αᵀ dC.
    let mut d_alpha = match grad_weights {
        Some(g) => g.to_owned(),
        None => Array2::zeros((tq, l)),
    };
    if let Some(gc) = grad_context {
        gemm(F::one(), gc, k.t(), F::one(), d_alpha.view_mut());
        gemm(F::one(), alpha.t(), gc, F::zero(), dk.view_mut());
    }
    // Through the softmax: dS_ij = α_ij (dα_ij − Σ_j' α_ij' dα_ij').
    let mut ds = d_alpha;
    for (mut d, a) in ds.rows_mut().into_iter().zip(alpha.rows()) {
        let dot = d.iter().zip(a.iter()).fold(F::zero(), |acc, (&x, &y)| acc + x * y);
        d.iter_mut().zip(a.iter()).for_each(|(x, &y)| *x = y * (*x - dot));
    }
    let params = match score {
        AttentionScore::Dot => {
            gemm(F::one(), ds.view(), k, F::zero(), dq.view_mut());
            gemm(F::one(), ds.t(), q, F::one(), dk.view_mut());
            vec![]
        }
        AttentionScore::General { weight } => {
            // S = Q Uᵀ with U = K Wᵀ: dQ = dS U, dU = dSᵀ Q, dW = dUᵀ K, dK += dU W.
            let mut u = Array2::zeros((l, hq));
            gemm(F::one(), k, weight.t(), F::zero(), u.view_mut());
            gemm(F::one(), ds.view(), u.view(), F::zero(), dq.view_mut());
            let mut du = Array2::zeros((l, hq));
            gemm(F::one(), ds.t(), q, F::zero(), du.view_mut());
            let mut dw = Array2::zeros(weight.dim());
            gemm(F::one(), du.t(), k, F::zero(), dw.view_mut());
            gemm(F::one(), du.view(), *weight, F::one(), dk.view_mut());
            vec![dw.into_raw_vec_and_offset().0]
        }
        AttentionScore::Additive { query_weight, key_weight, bias, v } => {
            // e_ij = v · t_ij, t_ij = tanh(a_i + c_j): g_ij = dS_ij · v ⊙ (1 − t_ij²).
            let a = bias.len();
            let mut daq = Array2::zeros((tq, a));
            let mut dak = Array2::zeros((l, a));
            let mut dv = Array1::zeros(a);
            for i in 0..tq {
                for j in 0..l {
                    let d = ds[[i, j]];
                    let t = tanh.row(i * l + j);
                    for c in 0..a {
                        let g = d * v[c] * (F::one() - t[c] * t[c]);
                        daq[[i, c]] = daq[[i, c]] + g;
                        dak[[j, c]] = dak[[j, c]] + g;
                        dv[c] = dv[c] + d * t[c];
                    }
                }
            }
            gemm(F::one(), daq.view(), *query_weight, F::zero(), dq.view_mut());
            gemm(F::one(), dak.view(), *key_weight, F::one(), dk.view_mut());
            let mut dwq = Array2::zeros(query_weight.dim());
            gemm(F::one(), daq.t(), q, F::zero(), dwq.view_mut());
            let mut dwk = Array2::zeros(key_weight.dim());
            gemm(F::one(), dak.t(), k, F::zero(), dwk.view_mut());
            let db = daq.sum_axis(Axis(0));
            vec![
                dwq.into_raw_vec_and_offset().0,
                dwk.into_raw_vec_and_offset().0,
                db.into_raw_vec_and_offset().0,
                dv.into_raw_vec_and_offset().0,
            ]
        }
    };
    SequenceGrads { query: dq, memory: dk, params }
}
