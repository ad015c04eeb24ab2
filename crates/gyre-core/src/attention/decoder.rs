//! An attention decoder (Luong, Pham & Manning 2015): a recurrent cell that attends over an
//! encoder's outputs at every step, forward and backward through time over a batch.
//!
//! At step `t`, for every sequence of the batch (teacher forcing: the inputs `x_t` are given):
//!
//! 1. the cell reads `x_t`, or with input feeding `[x_t; h̃_{t−1}]` (`h̃_{−1} = 0`), from
//!    `(h_{t−1}, c_{t−1})`: `h_t` (and `c_t`);
//! 2. attention of `h_t` over the sequence's valid memory steps ([`super::AttentionScore`]):
//!    weights `α_t` and context `ctx_t = Σ_j α_tj k_j`;
//! 3. the attentional state `h̃_t = tanh(W_c [ctx_t; h_t] + b_c)`, `W_c: [H, Hk + H]`: the
//!    decoder's output at `t`.
//!
//! Every sequence runs all `Tq` steps (a loss over targets of several lengths ignores the steps
//! past each one's end; their gradients are then 0 and change nothing). The memory's keys are
//! projected once per call (`general`: `K Wᵀ`; `additive`: `K W_kᵀ`), not once per step; a
//! caller stepping one token at a time ([`decoder_step`]) keeps them ([`MemoryKeys`]).
//! Products over the batch run on the kernels' matrix products, so results are the same bits on
//! 1 or N threads.

use super::AttentionScore;
use crate::error::{CoreError, Result};
use crate::kernels::linalg::{gemm, gemm_acc_prepacked, DOT_FORM_MAX_ROWS};
use crate::kernels::packed::{pack, pack_transposed};
use crate::kernels::real::Real;
use crate::rnn::cell::{BackwardStep, Cell, Dims, ForwardStep};
use crate::rnn::cells::AnyCell;
use crate::rnn::weights::{LayerWeights, WeightGrads};
use crate::{CellKind, InitialState};
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};

/// The decoder's own weights besides the attention score's.
#[derive(Clone, Copy, Debug)]
pub struct DecoderWeights<'a, F> {
    /// The cell's, in PyTorch's layout: `weight_ih: [G·H, I]`, or `[G·H, I + H]` with input
    /// feeding (the input's columns first, then `h̃`'s); `weight_hh: [G·H, H]`; biases `[G·H]`.
    pub cell: LayerWeights<'a, F>,
    /// `W_c: [H, Hk + H]`, the context's columns first, then `h`'s.
    pub combine_weight: ArrayView2<'a, F>,
    /// `b_c: [H]`.
    pub combine_bias: ArrayView1<'a, F>,
}

/// A decoder call's configuration.
#[derive(Clone, Copy, Debug)]
pub struct DecoderSpec<'a, F> {
    /// The cell.
    pub cell: CellKind,
    /// The attention score and its parameters (queries are the cell's `h`, width `H`).
    pub score: AttentionScore<'a, F>,
    /// Feed `h̃_{t−1}` to the cell beside `x_t` (Luong's input feeding).
    pub input_feeding: bool,
}

impl<F> DecoderSpec<'_, F> {
    /// The same configuration, its views borrowed for a shorter time.
    pub fn reborrow(&self) -> DecoderSpec<'_, F> {
        DecoderSpec { cell: self.cell, score: self.score.reborrow(), input_feeding: self.input_feeding }
    }
}

impl<F> DecoderWeights<'_, F> {
    /// The same weights, their views borrowed for a shorter time.
    pub fn reborrow(&self) -> DecoderWeights<'_, F> {
        DecoderWeights {
            cell: self.cell.reborrow(),
            combine_weight: self.combine_weight.view(),
            combine_bias: self.combine_bias.view(),
        }
    }
}

/// What [`decoder_forward`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderOutput<F> {
    /// `[B, Tq, H]` the attentional states `h̃`.
    pub output: Array3<F>,
    /// `[B, Tq, Tk]` the attention weights of every step (0 at padded memory steps).
    pub weights: Array3<F>,
    /// `[B, H]` the cell's hidden state after the last step.
    pub hidden: Array2<F>,
    /// `[B, H]` its cell state (LSTM only).
    pub cell: Option<Array2<F>>,
}

/// Gradients of a loss with respect to [`DecoderOutput`]'s values; `None` stands for zeros.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecoderOutputGrads<'a, F> {
    /// `[B, Tq, H]`
    pub output: Option<ArrayView3<'a, F>>,
    /// `[B, Tq, Tk]`
    pub weights: Option<ArrayView3<'a, F>>,
    /// `[B, H]`
    pub hidden: Option<ArrayView2<'a, F>>,
    /// `[B, H]` (LSTM only)
    pub cell: Option<ArrayView2<'a, F>>,
}

/// What [`decoder_backward`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderGrads<F> {
    /// `[B, Tq, I]`
    pub input: Array3<F>,
    /// `[B, Tk, Hk]` (0 at padded steps)
    pub memory: Array3<F>,
    /// `[B, H]`
    pub h0: Array2<F>,
    /// `[B, H]` (LSTM only)
    pub c0: Option<Array2<F>>,
    /// The cell's weights.
    pub cell: WeightGrads<F>,
    /// The attention score's parameters, by [`AttentionScore::param_names`].
    pub attention: Vec<(&'static str, Vec<F>)>,
    /// `[H, Hk + H]`
    pub combine_weight: Array2<F>,
    /// `[H]`
    pub combine_bias: Array1<F>,
}

/// Sizes of one call.
#[derive(Clone, Copy)]
struct Sizes {
    b: usize,
    tq: usize,
    i: usize,
    h: usize,
    tk: usize,
    hk: usize,
    gh: usize,
    /// The cell's input width: `I`, or `I + H` with input feeding.
    cell_in: usize,
}

fn check<F: Real>(
    spec: &DecoderSpec<'_, F>,
    w: &DecoderWeights<'_, F>,
    x: &ArrayView3<F>,
    memory: &ArrayView3<F>,
    lengths: &[usize],
    init: &InitialState<'_, F>,
) -> Result<Sizes> {
    let (b, tq, i) = x.dim();
    let (bm, tk, hk) = memory.dim();
    let h = w.cell.weight_hh.ncols();
    let gh = spec.cell.gates() * h;
    let cell_in = if spec.input_feeding { i + h } else { i };
    let shape = |what: &str, got: &[usize], want: &[usize]| {
        if got == want {
            Ok(())
        } else {
            Err(CoreError::shape(what, format!("{want:?}"), format!("{got:?}")))
        }
    };
    if bm != b {
        return Err(CoreError::shape("memory", format!("{b} sequences (as the input)"), format!("{bm}")));
    }
    if lengths.len() != b {
        return Err(CoreError::shape(
            "lengths",
            format!("{b} values (one per sequence)"),
            format!("{}", lengths.len()),
        ));
    }
    if let Some((n, &l)) = lengths.iter().enumerate().find(|(_, &l)| l > tk) {
        return Err(CoreError::invalid(format!("lengths[{n}]"), format!("at most the memory's {tk} steps"), l));
    }
    shape("weight_ih", w.cell.weight_ih.shape(), &[gh, cell_in])?;
    shape("weight_hh", w.cell.weight_hh.shape(), &[gh, h])?;
    shape("bias_ih", w.cell.bias_ih.shape(), &[gh])?;
    shape("bias_hh", w.cell.bias_hh.shape(), &[gh])?;
    shape("combine_weight", w.combine_weight.shape(), &[h, hk + h])?;
    shape("combine_bias", w.combine_bias.shape(), &[h])?;
    spec.score.check(h, hk)?;
    if let Some(h0) = init.hidden {
        shape("h0", h0.shape(), &[b, h])?;
    }
    match (init.cell, spec.cell.has_cell_state()) {
        (Some(c0), true) => shape("c0", c0.shape(), &[b, h])?,
        (Some(_), false) => {
            return Err(CoreError::invalid("c0", "absent: only an LSTM has a cell state", "a tensor"));
        }
        _ => {}
    }
    Ok(Sizes { b, tq, i, h, tk, hk, gh, cell_in })
}

/// The decoder's weights in the forms its passes read them, made once per set of weights and
/// shared by every pass over those weights (the shards of a training batch; a beam search's
/// probe and search): `W_hh` row-major and its transpose packed, `W_ih`'s input columns and its
/// input-feeding columns transposed, `W_cᵀ`, the score's key weight transposed and, for
/// backward passes, `W_hh` packed and the input-feeding columns row-major. A pass reads the same
/// values whether it is given one or makes its own: the same bits.
#[derive(Clone, Debug)]
pub struct DecoderPrep<F> {
    /// `[G·H, H]`
    w_hh: Array2<F>,
    /// `W_hhᵀ: [H, G·H]` packed.
    w_hh_t: crate::kernels::packed::Packed<F>,
    /// `[G·H]`
    b_hh: Array1<F>,
    /// `W_ih`'s input columns transposed, `[I, G·H]`.
    w_x_t: Array2<F>,
    /// `W_ih`'s input-feeding columns transposed, `[H, G·H]` (empty without input feeding).
    w_feed_t: Array2<F>,
    /// `W_cᵀ: [Hk + H, H]`
    combine_t: Array2<F>,
    /// `w_feed_t` and `combine_t` packed, the operands of a decoding step's products (made once,
    /// where each step's product packed them again or copied `W_ih`'s strided input-feeding
    /// columns; empty for training and where the products do not run on gyre's kernel, f64).
    w_feed_packed: crate::kernels::packed::Packed<F>,
    combine_packed: crate::kernels::packed::Packed<F>,
    /// The score's weight on the keys transposed (`general`: `Wᵀ`, `additive`: `W_kᵀ`; empty
    /// for `dot`).
    key_t: Array2<F>,
    /// For backward passes (empty otherwise): `W_hh` packed as the `b` of `dG · W_hh`, and the
    /// input-feeding columns row-major `[G·H, H]`.
    w_hh_packed: crate::kernels::packed::Packed<F>,
    w_feed: Array2<F>,
    /// Whether this was made for backward passes too.
    backward: bool,
}

impl<F: Real> DecoderPrep<F> {
    /// The forms of `w` (the weights of `spec`'s decoder) that forward passes read and, with
    /// `backward`, those backward passes read too.
    ///
    /// Weights whose shapes do not fit `spec` are refused by the passes (naming them), not here.
    ///
    /// # Errors
    /// Never for weights of any shape (the `Result` is the packing's).
    pub fn new(spec: &DecoderSpec<'_, F>, w: &DecoderWeights<'_, F>, backward: bool) -> Result<Self> {
        let h = w.cell.weight_hh.ncols();
        let cell_in = w.cell.weight_ih.ncols();
        let i = cell_in.saturating_sub(if spec.input_feeding { h } else { 0 });
        let w_hh = w.cell.weight_hh.as_standard_layout().into_owned();
        let w_hh_t = pack_transposed(contiguous("weight_hh", w_hh.as_slice())?, h);
        let w_feed_cols = w.cell.weight_ih.slice(s![.., i..]);
        // `W_ihᵀ: [I (+ H), G·H]` in one transposition; its first `I` rows are the input
        // columns, the rest the input-feeding ones.
        let w_ih_t = transposed(w.cell.weight_ih);
        let (w_x_t, w_feed_t) = if spec.input_feeding {
            (w_ih_t.slice(s![..i, ..]).to_owned(), w_ih_t.slice(s![i.., ..]).to_owned())
        } else {
            (w_ih_t, Array2::zeros((0, 0)))
        };
        let key_t = match spec.score {
            AttentionScore::Dot => Array2::zeros((0, 0)),
            AttentionScore::General { weight } => transposed(weight),
            AttentionScore::Additive { key_weight, .. } => transposed(key_weight),
        };
        let combine_t = transposed(w.combine_weight);
        // Only for decoding: a training batch's steps run on shards of a few rows each, whose
        // products read the row-major transposes in place (packing them for every batch's new
        // weights cost training 4–12%).
        let packed = |t: &Array2<F>| {
            if F::FAST_GEMM && !backward && !t.is_empty() {
                pack(t.view())
            } else {
                Default::default()
            }
        };
        Ok(DecoderPrep {
            w_hh_t,
            b_hh: w.cell.bias_hh.as_standard_layout().into_owned(),
            w_x_t,
            w_feed_packed: packed(&w_feed_t),
            w_feed_t,
            combine_packed: packed(&combine_t),
            combine_t,
            key_t,
            w_hh_packed: if backward { pack(w.cell.weight_hh) } else { Default::default() },
            w_feed: if backward && spec.input_feeding {
                w_feed_cols.as_standard_layout().into_owned()
            } else {
                Array2::zeros((0, 0))
            },
            w_hh,
            backward,
        })
    }

    /// `given` (refused if `backward` passes need it and it was made for forward passes only), or
    /// one made here from `spec` and `w`.
    fn given_or_new<'a>(
        given: Option<&'a Self>,
        spec: &DecoderSpec<'_, F>,
        w: &DecoderWeights<'_, F>,
        backward: bool,
    ) -> Result<std::borrow::Cow<'a, Self>> {
        match given {
            Some(p) if backward && !p.backward => {
                Err(CoreError::invalid("prepared weights", "made for backward passes", "forward passes only"))
            }
            Some(p) => Ok(std::borrow::Cow::Borrowed(p)),
            None => Ok(std::borrow::Cow::Owned(Self::new(spec, w, backward)?)),
        }
    }
}

/// `wᵀ: [C, R]` of `w: [R, C]`, through the level's transposition kernel when `w` is row-major
/// (ndarray's copy of a transposed view reads it a column at a time: 1.3% of a CMUdict
/// training run when every batch's [`DecoderPrep`] made its copies that way).
fn transposed<F: Real>(w: ArrayView2<'_, F>) -> Array2<F> {
    let (rows, cols) = w.dim();
    match w.as_slice() {
        Some(src) if rows > 0 && cols > 0 => {
            let mut out = Array2::zeros((cols, rows));
            if let Some(dst) = out.as_slice_mut() {
                F::transpose(src, rows, cols, dst, rows);
            }
            out
        }
        _ => w.t().as_standard_layout().into_owned(),
    }
}

/// The memory's keys as a decoder's scores read them ([`project_memory`]), kept by a caller
/// that steps the decoder over one memory many times ([`decoder_step`]) instead of projected
/// again at every step: per sequence `[L, H]` (`general`), `[L, A]` (`additive`) or the keys
/// themselves `[L, Hk]` (`dot`), `L` its length.
#[derive(Clone, Debug)]
pub struct MemoryKeys<F>(Vec<Array2<F>>);

impl<F: Real> MemoryKeys<F> {
    /// The keys of `memory: [B, Tk, Hk]`, sequence `b` over its first `lengths[b]` steps, for
    /// the decoder `spec` whose weights `prep` was made from ([`DecoderPrep::new`]).
    ///
    /// # Errors
    /// When `lengths` is not one length per sequence of at most `Tk`, or `prep` is not of a decoder
    /// with `spec`'s score over keys of width `Hk`.
    pub fn new(
        spec: &DecoderSpec<'_, F>,
        prep: &DecoderPrep<F>,
        memory: ArrayView3<F>,
        lengths: &[usize],
    ) -> Result<Self> {
        let (b, tk, hk) = memory.dim();
        if lengths.len() != b || lengths.iter().any(|&l| l > tk) {
            return Err(CoreError::shape("lengths", format!("{b} lengths of at most {tk}"), format!("{lengths:?}")));
        }
        if !matches!(spec.score, AttentionScore::Dot) && prep.key_t.nrows() != hk {
            return Err(CoreError::shape("attention weights", format!("keys of width {hk}"), "another width"));
        }
        Ok(MemoryKeys(project_memory(&spec.score, prep, &memory, lengths)))
    }
}

/// The memory's keys as every step's scores read them, per sequence over its valid steps:
/// `dot`: `K`; `general`: `K Wᵀ` (`[L, H]`); `additive`: `K W_kᵀ` (`[L, A]`).
fn project_memory<F: Real>(
    score: &AttentionScore<'_, F>,
    prep: &DecoderPrep<F>,
    memory: &ArrayView3<F>,
    lengths: &[usize],
) -> Vec<Array2<F>> {
    lengths
        .iter()
        .enumerate()
        .map(|(n, &l)| {
            let k = memory.slice(s![n, ..l, ..]);
            // A few rows: dot products with the weight's rows in place (as `gemm` reads a
            // transposed row-major `b`); more: the transpose made once.
            let few = l <= DOT_FORM_MAX_ROWS;
            let weight_t = match score {
                AttentionScore::Dot => return k.to_owned(),
                AttentionScore::General { weight } if few => weight.t(),
                AttentionScore::Additive { key_weight, .. } if few => key_weight.t(),
                _ => prep.key_t.view(),
            };
            let mut u = Array2::zeros((l, weight_t.ncols()));
            gemm(F::one(), k, weight_t, F::zero(), u.view_mut());
            u
        })
        .collect()
}

/// `a · b` on the level's dot-product kernel when both are contiguous (every view of the
/// decoder's buffers is), else in order. A fold of `acc + x·y` is one chain of dependent
/// additions the compiler may not reorder: a score over 512 memory features waited on 512 of
/// them, and those folds were most of the decoder step's own time.
fn dot_of<F: Real>(a: ArrayView1<F>, b: ArrayView1<F>) -> F {
    match (a.as_slice(), b.as_slice()) {
        (Some(x), Some(y)) => F::dot(x, y),
        _ => a.iter().zip(b.iter()).fold(F::zero(), |acc, (&x, &y)| acc + x * y),
    }
}

/// `y += s · x` elementwise (on slices when both are contiguous, which the compiler vectorizes;
/// the same operations on each value either way).
fn add_scaled<F: Real>(mut y: ndarray::ArrayViewMut1<F>, s: F, x: ArrayView1<F>) {
    match (y.as_slice_mut(), x.as_slice()) {
        (Some(y), Some(x)) => y.iter_mut().zip(x).for_each(|(o, &v)| *o = *o + s * v),
        _ => y.iter_mut().zip(x.iter()).for_each(|(o, &v)| *o = *o + s * v),
    }
}

/// The attention weights `alpha: [L]` of query `q: [H]` over projected keys `u: [L, ·]`.
fn attend<F: Real>(score: &AttentionScore<'_, F>, q: ArrayView1<F>, u: ArrayView2<F>, alpha: &mut [F], aq: &mut [F]) {
    match score {
        AttentionScore::Dot | AttentionScore::General { .. } => {
            for (a, row) in alpha.iter_mut().zip(u.rows()) {
                *a = dot_of(row, q);
            }
        }
        AttentionScore::Additive { query_weight, bias, v, .. } => {
            for (o, (row, &bb)) in aq.iter_mut().zip(query_weight.rows().into_iter().zip(bias.iter())) {
                *o = bb + dot_of(row, q);
            }
            for (a, row) in alpha.iter_mut().zip(u.rows()) {
                *a = row
                    .iter()
                    .zip(aq.iter())
                    .zip(v.iter())
                    .fold(F::zero(), |acc, ((&k, &qq), &vv)| acc + vv * (qq + k).tanh());
            }
        }
    }
    let top = alpha.iter().copied().fold(F::neg_infinity(), F::max);
    let mut sum = F::zero();
    for a in alpha.iter_mut() {
        *a = (*a - top).exp();
        sum = sum + *a;
    }
    alpha.iter_mut().for_each(|a| *a = *a / sum);
}

/// Everything the forward pass keeps for backward, time-major.
struct Trace<F> {
    /// `[Tq, B, G·H]` the gates the cell kept.
    gates: Array3<F>,
    /// `[Tq, B, E·H]` the cell's extra values.
    extra: Array3<F>,
    /// `[Tq + 1, B, H]` `h_{t−1}` at row `t` (row 0 `h0`).
    h: Array3<F>,
    /// `[Tq + 1, B, H]` the same for `c` (LSTM; else `[Tq + 1, B, 0]`).
    c: Array3<F>,
    /// `[Tq + 1, B, H]` `h̃_{t−1}` at row `t` (row 0 zeros).
    h_tilde: Array3<F>,
    /// `[Tq, B, Hk]` the contexts.
    context: Array3<F>,
    /// `[Tq, B, Tk]` the attention weights.
    weights: Array3<F>,
    /// `[B·Tq, G·H]` `x W_xᵀ + b_ih`, rows batch-major.
    projected: Array2<F>,
    /// Per sequence, the keys as the scores read them ([`project_memory`]).
    keys: Vec<Array2<F>>,
}

/// The per-call pieces of a decoder step, and its workspaces for up to `rows` rows: one step of
/// rows that each belong to a sequence of the memory (a sequence of the batch in training, a
/// hypothesis of one in beam search).
pub(super) struct Stepper<'p, F: Real> {
    cell: AnyCell,
    has_c: bool,
    h: usize,
    hk: usize,
    gh: usize,
    cell_in: usize,
    prep: &'p DecoderPrep<F>,
    /// Per sequence, the keys as the scores read them ([`project_memory`]), the caller's or made
    /// here.
    keys: std::borrow::Cow<'p, [Array2<F>]>,
    scratch: Vec<F>,
    alpha: Vec<F>,
    aq: Vec<F>,
    joined: Array2<F>,
}

/// One step's buffers, `[R, ·]` each: the gates (in: the input's part; out: what the cell keeps),
/// the states before and after, the cell's extra values, the context, the attention weights
/// (`[R, Tk]`) and the attentional state `h̃`.
pub(super) struct StepRows<'a, F> {
    pub(super) gates: ndarray::ArrayViewMut2<'a, F>,
    pub(super) h_tilde_prev: ArrayView2<'a, F>,
    pub(super) h_prev: ArrayView2<'a, F>,
    pub(super) c_prev: ArrayView2<'a, F>,
    pub(super) extra: ndarray::ArrayViewMut2<'a, F>,
    pub(super) h: ndarray::ArrayViewMut2<'a, F>,
    pub(super) c: ndarray::ArrayViewMut2<'a, F>,
    pub(super) context: ndarray::ArrayViewMut2<'a, F>,
    pub(super) weights: ndarray::ArrayViewMut2<'a, F>,
    pub(super) h_tilde: ndarray::ArrayViewMut2<'a, F>,
}

fn contiguous<'a, F>(what: &str, s: Option<&'a [F]>) -> Result<&'a [F]> {
    s.ok_or_else(|| CoreError::shape(what, "a contiguous row-major layout", "a strided view"))
}

fn contiguous_mut<'a, F>(what: &str, s: Option<&'a mut [F]>) -> Result<&'a mut [F]> {
    s.ok_or_else(|| CoreError::shape(what, "a contiguous row-major layout", "a strided view"))
}

impl<'p, F: Real> Stepper<'p, F> {
    /// `prep` must be [`DecoderPrep::new`] of `spec` and `w`, and `keys`, when given,
    /// [`MemoryKeys::new`] of `memory` and `lengths` with them (projected here otherwise).
    pub(super) fn new(
        spec: &DecoderSpec<'_, F>,
        w: &DecoderWeights<'_, F>,
        prep: &'p DecoderPrep<F>,
        keys: Option<&'p MemoryKeys<F>>,
        memory: &ArrayView3<F>,
        lengths: &[usize],
        rows: usize,
    ) -> Result<Self> {
        let cell = AnyCell::new(spec.cell);
        let (h, hk) = (w.cell.weight_hh.ncols(), memory.dim().2);
        let gh = spec.cell.gates() * h;
        if prep.w_hh.dim() != w.cell.weight_hh.dim() || prep.combine_t.dim() != (hk + h, h) {
            return Err(CoreError::shape("prepared weights", "these weights' forms", "another decoder's"));
        }
        let units = match spec.score {
            AttentionScore::Additive { bias, .. } => bias.len(),
            _ => 0,
        };
        Ok(Stepper {
            cell,
            has_c: spec.cell.has_cell_state(),
            h,
            hk,
            gh,
            cell_in: w.cell.weight_ih.ncols(),
            prep,
            keys: match keys {
                Some(MemoryKeys(k)) => {
                    let width = match spec.score {
                        AttentionScore::Dot => hk,
                        _ => prep.key_t.ncols(),
                    };
                    if k.len() != lengths.len() || k.iter().zip(lengths).any(|(u, &l)| u.dim() != (l, width)) {
                        return Err(CoreError::shape(
                            "memory keys",
                            "the keys of this memory and these lengths",
                            "another memory's",
                        ));
                    }
                    std::borrow::Cow::Borrowed(k.as_slice())
                }
                None => std::borrow::Cow::Owned(project_memory(&spec.score, prep, memory, lengths)),
            },
            scratch: vec![F::zero(); rows * gh],
            alpha: vec![F::zero(); memory.dim().1],
            aq: vec![F::zero(); units],
            joined: Array2::zeros((rows, hk + h)),
        })
    }

    /// One step of `r` rows, row `k` attending over sequence `seq[k]`'s memory: the cell (its
    /// gates' input part given, input feeding added here), the attention and `h̃`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(
        &mut self,
        spec: &DecoderSpec<'_, F>,
        w: &DecoderWeights<'_, F>,
        memory: &ArrayView3<F>,
        lengths: &[usize],
        seq: &[usize],
        mut b: StepRows<'_, F>,
    ) -> Result<()> {
        let (r, h, hk) = (seq.len(), self.h, self.hk);
        let i = self.cell_in - if spec.input_feeding { h } else { 0 };
        // A few rows: dot products with W's rows in place; more: the row-major transposes.
        let few = r <= DOT_FORM_MAX_ROWS;
        if spec.input_feeding && !gemm_acc_prepacked(b.h_tilde_prev, &self.prep.w_feed_packed, b.gates.view_mut()) {
            let w_f = w.cell.weight_ih.slice(s![.., i..]);
            let w_f_t = if few { w_f.t() } else { self.prep.w_feed_t.view() };
            gemm(F::one(), b.h_tilde_prev, w_f_t, F::one(), b.gates.view_mut());
        }
        let fs = ForwardStep {
            dims: Dims { batch: r, input: self.cell_in, hidden: h },
            w_hh: contiguous("weight_hh", self.prep.w_hh.as_slice())?,
            w_hh_t: &self.prep.w_hh_t,
            b_hh: contiguous("bias_hh", self.prep.b_hh.as_slice())?,
            gates: contiguous_mut("gates", b.gates.as_slice_mut())?,
            h_prev: contiguous("h", b.h_prev.as_slice())?,
            h_prev_zero: false,
            h_carry: &[],
            c_prev: if self.has_c { contiguous("c", b.c_prev.as_slice())? } else { &[] },
            h: contiguous_mut("h", b.h.as_slice_mut())?,
            c: if self.has_c { contiguous_mut("c", b.c.as_slice_mut())? } else { &mut [] },
            extra: contiguous_mut("extra", b.extra.as_slice_mut())?,
            scratch: &mut self.scratch[..r * self.gh],
        };
        self.cell.forward_step(fs)?;
        // Attention of every row's h_t over its sequence's memory.
        for (k, &n) in seq.iter().enumerate() {
            let l = lengths[n];
            let mut ctx = b.context.row_mut(k);
            ctx.fill(F::zero());
            b.weights.row_mut(k).fill(F::zero());
            if l == 0 {
                continue;
            }
            attend(&spec.score, b.h.row(k), self.keys[n].view(), &mut self.alpha[..l], &mut self.aq);
            for (j, &a) in self.alpha[..l].iter().enumerate() {
                b.weights[[k, j]] = a;
                add_scaled(ctx.view_mut(), a, memory.slice(s![n, j, ..]));
            }
        }
        // h̃_t = tanh(W_c [ctx_t; h_t] + b_c).
        let mut joined = self.joined.slice_mut(s![..r, ..]);
        joined.slice_mut(s![.., ..hk]).assign(&b.context);
        joined.slice_mut(s![.., hk..]).assign(&b.h);
        for mut row in b.h_tilde.rows_mut() {
            row.assign(&w.combine_bias);
        }
        // (A few rows: dot products with W_c's rows, no packed operand needed.)
        if few || !gemm_acc_prepacked(joined.view(), &self.prep.combine_packed, b.h_tilde.view_mut()) {
            let combine_t = if few { w.combine_weight.t() } else { self.prep.combine_t.view() };
            gemm(F::one(), joined.view(), combine_t, F::one(), b.h_tilde.view_mut());
        }
        // The level's vectorized tanh (as the cells' gates use): libm's scalar `tanhf` (through
        // `expm1f`) took 3% of a CMUdict training run.
        F::tanh_slice(contiguous_mut("h_tilde", b.h_tilde.as_slice_mut())?);
        Ok(())
    }
}

fn run_forward<F: Real>(
    spec: &DecoderSpec<'_, F>,
    w: &DecoderWeights<'_, F>,
    prep: &DecoderPrep<F>,
    x: ArrayView3<F>,
    memory: ArrayView3<F>,
    lengths: &[usize],
    init: &InitialState<'_, F>,
) -> Result<(Sizes, Trace<F>)> {
    let z = check(spec, w, &x, &memory, lengths, init)?;
    let Sizes { b, tq, i, h, tk, hk, gh, .. } = z;
    let mut stepper = Stepper::new(spec, w, prep, None, &memory, lengths, b)?;
    let has_c = stepper.has_c;
    let width = Cell::<F>::extra(&stepper.cell) * h;
    // The input's part of every step's gates at once: [B·Tq, I] × [I, G·H].
    let x_rows = x
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((b * tq, i))
        .map_err(|e| CoreError::shape("input", "[B·Tq, I]", e.to_string()))?;
    let w_x = w.cell.weight_ih.slice(s![.., ..i]);
    let w_x_t = if b * tq <= DOT_FORM_MAX_ROWS { w_x.t() } else { prep.w_x_t.view() };
    let mut projected = Array2::from_shape_fn((b * tq, gh), |(_, c)| w.cell.bias_ih[c]);
    gemm(F::one(), x_rows.view(), w_x_t, F::one(), projected.view_mut());
    let mut t = Trace {
        gates: Array3::zeros((tq, b, gh)),
        extra: Array3::zeros((tq, b, width)),
        h: Array3::zeros((tq + 1, b, h)),
        c: Array3::zeros((tq + 1, b, if has_c { h } else { 0 })),
        h_tilde: Array3::zeros((tq + 1, b, h)),
        context: Array3::zeros((tq, b, hk)),
        weights: Array3::zeros((tq, b, tk)),
        projected,
        keys: Vec::new(),
    };
    if let Some(h0) = init.hidden {
        t.h.index_axis_mut(Axis(0), 0).assign(&h0);
    }
    if let (Some(c0), true) = (init.cell, has_c) {
        t.c.index_axis_mut(Axis(0), 0).assign(&c0);
    }
    let seq: Vec<usize> = (0..b).collect();
    for step in 0..tq {
        let Trace { gates, extra, h: hs, c: cs, h_tilde, context, weights, projected, .. } = &mut t;
        let mut gates = gates.index_axis_mut(Axis(0), step);
        for n in 0..b {
            gates.row_mut(n).assign(&projected.row(n * tq + step));
        }
        let (h_before, mut h_after) = hs.view_mut().split_at(Axis(0), step + 1);
        let (c_before, mut c_after) = cs.view_mut().split_at(Axis(0), step + 1);
        let (ht_before, mut ht_after) = h_tilde.view_mut().split_at(Axis(0), step + 1);
        let rows = StepRows {
            gates,
            h_tilde_prev: ht_before.index_axis(Axis(0), step),
            h_prev: h_before.index_axis(Axis(0), step),
            c_prev: c_before.index_axis(Axis(0), step),
            extra: extra.index_axis_mut(Axis(0), step),
            h: h_after.index_axis_mut(Axis(0), 0),
            c: c_after.index_axis_mut(Axis(0), 0),
            context: context.index_axis_mut(Axis(0), step),
            weights: weights.index_axis_mut(Axis(0), step),
            h_tilde: ht_after.index_axis_mut(Axis(0), 0),
        };
        stepper.step(spec, w, &memory, lengths, &seq, rows)?;
    }
    t.keys = stepper.keys.into_owned();
    Ok((z, t))
}

/// The attention decoder over `x: [B, Tq, I]` (teacher forcing) and the memory
/// `memory: [B, Tk, Hk]`, sequence `b` attending over its first `lengths[b]` steps, from
/// `init` (zeros when absent): `h̃ [B, Tq, H]`, the attention weights `[B, Tq, Tk]` and the
/// cell's final states.
///
/// `prep`, when given, must be [`DecoderPrep::new`] of `spec` and `w` (made here otherwise).
///
/// # Errors
/// When a shape disagrees (naming the array and both shapes), a length exceeds `Tk`, or the
/// score's parameters do not fit.
pub fn decoder_forward<F: Real>(
    spec: &DecoderSpec<'_, F>,
    w: &DecoderWeights<'_, F>,
    prep: Option<&DecoderPrep<F>>,
    x: ArrayView3<F>,
    memory: ArrayView3<F>,
    lengths: &[usize],
    init: &InitialState<'_, F>,
) -> Result<DecoderOutput<F>> {
    let prep = &*DecoderPrep::given_or_new(prep, spec, w, false)?;
    let (z, t) = run_forward(spec, w, prep, x, memory, lengths, init)?;
    Ok(output_of(spec, &z, &t))
}

/// What [`decoder_forward`] returns, from a pass's trace.
fn output_of<F: Real>(spec: &DecoderSpec<'_, F>, z: &Sizes, t: &Trace<F>) -> DecoderOutput<F> {
    let mut output = Array3::zeros((z.b, z.tq, z.h));
    for step in 0..z.tq {
        output.slice_mut(s![.., step, ..]).assign(&t.h_tilde.index_axis(Axis(0), step + 1));
    }
    let cell = spec.cell.has_cell_state().then(|| t.c.index_axis(Axis(0), z.tq).to_owned());
    let weights = t.weights.view().permuted_axes([1, 0, 2]).as_standard_layout().into_owned();
    DecoderOutput { output, weights, hidden: t.h.index_axis(Axis(0), z.tq).to_owned(), cell }
}

/// [`decoder_forward`] and [`decoder_backward`] in one pass (the forward is not run twice):
/// `grad` receives the forward's outputs and returns the gradient of the outputs `[B, Tq, H]`
/// (and anything else the caller wants back, such as the loss); the gradients are those of
/// `Σ output·grad_output`, as [`decoder_backward`] gives them. `prep`, when given, must be
/// [`DecoderPrep::new`] of `spec` and `w` made for backward passes (made here otherwise).
///
/// # Errors
/// As [`decoder_backward`], what `grad` returns, and a `prep` made for forward passes only.
#[allow(clippy::too_many_arguments)]
pub fn decoder_forward_backward<F: Real, T>(
    spec: &DecoderSpec<'_, F>,
    w: &DecoderWeights<'_, F>,
    prep: Option<&DecoderPrep<F>>,
    x: ArrayView3<F>,
    memory: ArrayView3<F>,
    lengths: &[usize],
    init: &InitialState<'_, F>,
    grad: impl FnOnce(&DecoderOutput<F>) -> Result<(Array3<F>, T)>,
) -> Result<(DecoderGrads<F>, T)> {
    let prep = &*DecoderPrep::given_or_new(prep, spec, w, true)?;
    let (z, t) = run_forward(spec, w, prep, x, memory, lengths, init)?;
    let (g_out, extra) = grad(&output_of(spec, &z, &t))?;
    let g = DecoderOutputGrads { output: Some(g_out.view()), ..Default::default() };
    Ok((backward_traced(spec, w, prep, x, memory, lengths, &g, z, t)?, extra))
}

/// A decoder's state between steps, `[B, H]` each: the cell's hidden state, its cell state (an
/// LSTM's; `[B, 0]` otherwise) and the last attentional state `h̃` (zeros before the first
/// step; read by input feeding).
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderState<F> {
    /// `[B, H]`
    pub hidden: Array2<F>,
    /// `[B, H]` (LSTM) or `[B, 0]`.
    pub cell: Array2<F>,
    /// `[B, H]`
    pub h_tilde: Array2<F>,
}

impl<F: Real> DecoderState<F> {
    /// The state before the first step: `init`'s states (zeros when absent) and `h̃ = 0`.
    ///
    /// # Errors
    /// When an initial state is not `[batch, hidden]`.
    pub fn start(spec: &DecoderSpec<'_, F>, batch: usize, hidden: usize, init: &InitialState<'_, F>) -> Result<Self> {
        let has_c = spec.cell.has_cell_state();
        let mut s = DecoderState {
            hidden: Array2::zeros((batch, hidden)),
            cell: Array2::zeros((batch, if has_c { hidden } else { 0 })),
            h_tilde: Array2::zeros((batch, hidden)),
        };
        if let Some(h0) = init.hidden {
            if h0.dim() != (batch, hidden) {
                return Err(CoreError::shape("h0", format!("[{batch}, {hidden}]"), format!("{:?}", h0.shape())));
            }
            s.hidden.assign(&h0);
        }
        if let (Some(c0), true) = (init.cell, has_c) {
            if c0.dim() != (batch, hidden) {
                return Err(CoreError::shape("c0", format!("[{batch}, {hidden}]"), format!("{:?}", c0.shape())));
            }
            s.cell.assign(&c0);
        }
        Ok(s)
    }
}

/// One step of the decoder for serving a token at a time: `x: [B, I]` the step's inputs,
/// `state` the state after the previous step ([`DecoderState::start`] before the first),
/// updated in place; returns the step's output `h̃: [B, H]` and attention weights `[B, Tk]`.
/// Stepping through a sequence gives [`decoder_forward`]'s outputs. `prep`, when given, must be
/// [`DecoderPrep::new`] of `spec` and `w` (made here otherwise): a caller that steps many times
/// makes it once; likewise `keys`, [`MemoryKeys::new`] of `memory` and `lengths` with those
/// weights (projected at every step otherwise).
///
/// # Errors
/// As [`decoder_forward`], and when the state or the keys do not fit (nothing is changed then).
#[allow(clippy::too_many_arguments)]
pub fn decoder_step<F: Real>(
    spec: &DecoderSpec<'_, F>,
    w: &DecoderWeights<'_, F>,
    prep: Option<&DecoderPrep<F>>,
    keys: Option<&MemoryKeys<F>>,
    x: ArrayView2<F>,
    memory: ArrayView3<F>,
    lengths: &[usize],
    state: &mut DecoderState<F>,
) -> Result<(Array2<F>, Array2<F>)> {
    let (b, i) = x.dim();
    let x3 = x.insert_axis(Axis(1));
    let init =
        InitialState { hidden: Some(state.hidden.view()), cell: spec.cell.has_cell_state().then(|| state.cell.view()) };
    let z = check(spec, w, &x3, &memory, lengths, &init)?;
    let h = z.h;
    if state.h_tilde.dim() != (b, h) || state.cell.nrows() != b {
        return Err(CoreError::shape("state", format!("the state of {b} sequences of width {h}"), "another shape"));
    }
    let prep = &*DecoderPrep::given_or_new(prep, spec, w, false)?;
    let mut stepper = Stepper::new(spec, w, prep, keys, &memory, lengths, b)?;
    let width = Cell::<F>::extra(&stepper.cell) * h;
    let mut gates = Array2::from_shape_fn((b, z.gh), |(_, c)| w.cell.bias_ih[c]);
    gemm(F::one(), x, w.cell.weight_ih.slice(s![.., ..i]).t(), F::one(), gates.view_mut());
    let (mut extra, mut h_new, mut c_new) =
        (Array2::zeros((b, width)), Array2::zeros((b, h)), Array2::zeros(state.cell.raw_dim()));
    let (mut context, mut weights, mut h_tilde) =
        (Array2::zeros((b, z.hk)), Array2::zeros((b, z.tk)), Array2::zeros((b, h)));
    let seq: Vec<usize> = (0..b).collect();
    let rows = StepRows {
        gates: gates.view_mut(),
        h_tilde_prev: state.h_tilde.view(),
        h_prev: state.hidden.view(),
        c_prev: state.cell.view(),
        extra: extra.view_mut(),
        h: h_new.view_mut(),
        c: c_new.view_mut(),
        context: context.view_mut(),
        weights: weights.view_mut(),
        h_tilde: h_tilde.view_mut(),
    };
    stepper.step(spec, w, &memory, lengths, &seq, rows)?;
    state.hidden = h_new;
    state.cell = c_new;
    state.h_tilde = h_tilde.clone();
    Ok((h_tilde, weights))
}

/// Backpropagation through time of [`decoder_forward`] (recomputed): the gradients of
/// `Σ output·g.output + Σ weights·g.weights + Σ hidden·g.hidden (+ Σ cell·g.cell)`.
///
/// # Errors
/// As [`decoder_forward`], and when a gradient's shape is not its output's.
pub fn decoder_backward<F: Real>(
    spec: &DecoderSpec<'_, F>,
    w: &DecoderWeights<'_, F>,
    x: ArrayView3<F>,
    memory: ArrayView3<F>,
    lengths: &[usize],
    init: &InitialState<'_, F>,
    g: &DecoderOutputGrads<'_, F>,
) -> Result<DecoderGrads<F>> {
    let prep = DecoderPrep::new(spec, w, true)?;
    let (z, t) = run_forward(spec, w, &prep, x, memory, lengths, init)?;
    backward_traced(spec, w, &prep, x, memory, lengths, g, z, t)
}

/// The backward pass of [`decoder_backward`] from a forward pass's sizes and trace.
#[allow(clippy::too_many_arguments)]
fn backward_traced<F: Real>(
    spec: &DecoderSpec<'_, F>,
    w: &DecoderWeights<'_, F>,
    prep: &DecoderPrep<F>,
    x: ArrayView3<F>,
    memory: ArrayView3<F>,
    lengths: &[usize],
    g: &DecoderOutputGrads<'_, F>,
    z: Sizes,
    t: Trace<F>,
) -> Result<DecoderGrads<F>> {
    let Sizes { b, tq, i, h, tk, hk, gh, cell_in } = z;
    let has_c = spec.cell.has_cell_state();
    for (what, got, want) in [
        ("grad_output", g.output.map(|a| a.shape().to_vec()), vec![b, tq, h]),
        ("grad_weights", g.weights.map(|a| a.shape().to_vec()), vec![b, tq, tk]),
        ("grad_hidden", g.hidden.map(|a| a.shape().to_vec()), vec![b, h]),
        ("grad_cell", g.cell.map(|a| a.shape().to_vec()), vec![b, h]),
    ] {
        if let Some(got) = got {
            if got != want {
                return Err(CoreError::shape(what, format!("{want:?}"), format!("{got:?}")));
            }
        }
    }
    if g.cell.is_some() && !has_c {
        return Err(CoreError::invalid("grad_cell", "absent: only an LSTM has a cell state", "a tensor"));
    }
    let cell = AnyCell::new(spec.cell);
    let width = Cell::<F>::extra(&cell) * h;
    let dgh_width = Cell::<F>::recurrent_grad_blocks(&cell) * h;
    // W_hh packed and W_ih's input-feeding columns in row-major order, made once per set of
    // weights (the step's products read them).
    let (w_hh_packed, w_feed) = (&prep.w_hh_packed, &prep.w_feed);
    let b_hh_s = contiguous("bias_hh", prep.b_hh.as_slice())?;
    let units = match spec.score {
        AttentionScore::Additive { bias, .. } => bias.len(),
        _ => 0,
    };

    let mut dgx_all = Array3::<F>::zeros((tq, b, gh));
    let mut dgh_all = Array3::<F>::zeros((tq, b, dgh_width));
    let mut d_memory = Array3::<F>::zeros((b, tk, hk));
    let mut d_keys: Vec<Array2<F>> = t.keys.iter().map(|k| Array2::zeros(k.dim())).collect();
    let mut d_wc = Array2::<F>::zeros((h, hk + h));
    let mut d_bc = Array1::<F>::zeros(h);
    let mut d_wq = Array2::<F>::zeros((units, h));
    let mut d_batt = Array1::<F>::zeros(units);
    let mut d_v = Array1::<F>::zeros(units);
    // Gradients flowing back into step t from later steps.
    let mut dh = match g.hidden {
        Some(gh0) => gh0.to_owned(),
        None => Array2::zeros((b, h)),
    };
    let mut dc = match (g.cell, has_c) {
        (Some(gc), _) => gc.to_owned(),
        (None, true) => Array2::zeros((b, h)),
        _ => Array2::zeros((b, 0)),
    };
    let mut d_htilde_next = Array2::<F>::zeros((b, h));
    let mut joined = Array2::<F>::zeros((b, hk + h));
    let mut dz = Array2::<F>::zeros((b, h));
    let mut d_joined = Array2::<F>::zeros((b, hk + h));
    let mut dh_prev = Array2::<F>::zeros((b, h));
    let mut dc_prev = Array2::<F>::zeros((b, if has_c { h } else { 0 }));
    let mut gates_copy = vec![F::zero(); b * gh];
    let mut scratch = vec![F::zero(); b * gh];
    let (mut alpha, mut d_alpha, mut aq) = (vec![F::zero(); tk], vec![F::zero(); tk], vec![F::zero(); units]);
    let mut daq = vec![F::zero(); units];
    for step in (0..tq).rev() {
        // h̃_t = tanh(W_c [ctx; h] + b_c): dz = dh̃ ⊙ (1 − h̃²).
        let ht = t.h_tilde.index_axis(Axis(0), step + 1);
        for n in 0..b {
            for j in 0..h {
                let mut d = d_htilde_next[[n, j]];
                if let Some(go) = g.output {
                    d = d + go[[n, step, j]];
                }
                let v = ht[[n, j]];
                dz[[n, j]] = d * (F::one() - v * v);
            }
        }
        let h_t = t.h.index_axis(Axis(0), step + 1);
        joined.slice_mut(s![.., ..hk]).assign(&t.context.index_axis(Axis(0), step));
        joined.slice_mut(s![.., hk..]).assign(&h_t);
        gemm(F::one(), dz.t(), joined.view(), F::one(), d_wc.view_mut());
        for row in dz.rows() {
            d_bc.iter_mut().zip(row).for_each(|(d, &v)| *d = *d + v);
        }
        gemm(F::one(), dz.view(), w.combine_weight, F::zero(), d_joined.view_mut());
        // dh_t: from later steps, from the combination, from the attention's query.
        for n in 0..b {
            for j in 0..h {
                dh[[n, j]] = dh[[n, j]] + d_joined[[n, hk + j]];
            }
        }
        for (n, &l) in lengths.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let q = h_t.row(n);
            let keys = t.keys[n].view();
            let k = memory.slice(s![n, ..l, ..]);
            alpha[..l].iter_mut().zip(t.weights.slice(s![step, n, ..l])).for_each(|(a, &w)| *a = w);
            let d_ctx = d_joined.slice(s![n, ..hk]);
            for j in 0..l {
                let mut d = dot_of(k.row(j), d_ctx);
                if let Some(gw) = g.weights {
                    d = d + gw[[n, step, j]];
                }
                d_alpha[j] = d;
                // The value path: dk_j += α_j dctx.
                let a = alpha[j];
                add_scaled(d_memory.slice_mut(s![n, j, ..]), a, d_ctx);
            }
            let dot = alpha[..l].iter().zip(&d_alpha[..l]).fold(F::zero(), |acc, (&a, &d)| acc + a * d);
            for j in 0..l {
                d_alpha[j] = alpha[j] * (d_alpha[j] - dot);
            }
            let ds = &d_alpha[..l];
            let mut dq = dh.row_mut(n);
            match spec.score {
                AttentionScore::Dot | AttentionScore::General { .. } => {
                    // s_j = u_j · q: dq += Σ ds_j u_j; du_j += ds_j q.
                    for (j, &d) in ds.iter().enumerate() {
                        add_scaled(dq.view_mut(), d, keys.row(j));
                        add_scaled(d_keys[n].row_mut(j), d, q);
                    }
                }
                AttentionScore::Additive { query_weight, bias, v, .. } => {
                    for (o, (row, &bb)) in aq.iter_mut().zip(query_weight.rows().into_iter().zip(bias.iter())) {
                        *o = bb + dot_of(row, q);
                    }
                    daq.fill(F::zero());
                    for (j, &d) in ds.iter().enumerate() {
                        for c in 0..units {
                            let tt = (aq[c] + keys[[j, c]]).tanh();
                            let gz = d * v[c] * (F::one() - tt * tt);
                            daq[c] = daq[c] + gz;
                            d_keys[n][[j, c]] = d_keys[n][[j, c]] + gz;
                            d_v[c] = d_v[c] + d * tt;
                        }
                    }
                    for c in 0..units {
                        d_batt[c] = d_batt[c] + daq[c];
                        for jj in 0..h {
                            d_wq[[c, jj]] = d_wq[[c, jj]] + daq[c] * q[jj];
                            dq[jj] = dq[jj] + daq[c] * query_weight[[c, jj]];
                        }
                    }
                }
            }
        }
        // The cell's step backward.
        {
            let gates = t.gates.index_axis(Axis(0), step);
            gates_copy
                .copy_from_slice(gates.as_slice().ok_or_else(|| CoreError::shape("gates", "contiguous", "strided"))?);
            let h_prev = t.h.index_axis(Axis(0), step);
            let c_views = has_c.then(|| (t.c.index_axis(Axis(0), step), t.c.index_axis(Axis(0), step + 1)));
            let c_prev = c_views.as_ref().and_then(|v| v.0.as_slice()).unwrap_or(&[]);
            let c_t = c_views.as_ref().and_then(|v| v.1.as_slice()).unwrap_or(&[]);
            let extra = t.extra.index_axis(Axis(0), step);
            let mut dgx = dgx_all.index_axis_mut(Axis(0), step);
            let mut dgh = dgh_all.index_axis_mut(Axis(0), step);
            let bs = BackwardStep {
                dims: Dims { batch: b, input: cell_in, hidden: h },
                w_hh: w_hh_packed,
                b_hh: b_hh_s,
                gates: &gates_copy,
                h_prev: h_prev.as_slice().unwrap_or(&[]),
                h_carry: &[],
                c_prev,
                h: h_t.as_slice().unwrap_or(&[]),
                c: c_t,
                extra: extra.as_slice().unwrap_or(&[]),
                dh: dh.as_slice().unwrap_or(&[]),
                dc: dc.as_slice().unwrap_or(&[]),
                dgx: dgx.as_slice_mut().ok_or_else(|| CoreError::shape("dgx", "contiguous", "strided"))?,
                dgh: dgh.as_slice_mut().unwrap_or(&mut []),
                dh_prev: dh_prev.as_slice_mut().ok_or_else(|| CoreError::shape("dh", "contiguous", "strided"))?,
                dh_carry: &mut [],
                dc_prev: dc_prev.as_slice_mut().unwrap_or(&mut []),
                scratch: &mut scratch,
            };
            cell.backward_step(bs)?;
        }
        // Input feeding: the gates read h̃_{t−1} through W_ih's last H columns.
        if spec.input_feeding {
            gemm(F::one(), dgx_all.index_axis(Axis(0), step), w_feed.view(), F::zero(), d_htilde_next.view_mut());
        } else {
            d_htilde_next.fill(F::zero());
        }
        std::mem::swap(&mut dh, &mut dh_prev);
        if has_c {
            std::mem::swap(&mut dc, &mut dc_prev);
        }
    }

    // Weight gradients over all steps (rows time-major: step t's batch rows).
    let n_rows = tq * b;
    let as2 = |a: &Array3<F>, rows: usize, cols: usize| -> Result<Array2<F>> {
        a.as_standard_layout()
            .into_owned()
            .into_shape_with_order((rows, cols))
            .map_err(|e| CoreError::shape("trace", format!("[{rows}, {cols}]"), e.to_string()))
    };
    let dgx2 = as2(&dgx_all, n_rows, gh)?;
    let dgh2 = as2(&dgh_all, n_rows, dgh_width)?;
    // The cell's input rows: [x_t; h̃_{t−1}] for every step, time-major.
    let mut cell_input = Array2::<F>::zeros((n_rows, cell_in));
    for step in 0..tq {
        for n in 0..b {
            let mut row = cell_input.row_mut(step * b + n);
            row.slice_mut(s![..i]).assign(&x.slice(s![n, step, ..]));
            if spec.input_feeding {
                row.slice_mut(s![i..]).assign(&t.h_tilde.slice(s![step, n, ..]));
            }
        }
    }
    let mut weight_ih = Array2::<F>::zeros((gh, cell_in));
    gemm(F::one(), dgx2.t(), cell_input.view(), F::zero(), weight_ih.view_mut());
    let h_prev_rows = as2(&t.h.slice(s![..tq, .., ..]).to_owned(), n_rows, h)?;
    let extra_rows = as2(&t.extra, n_rows, width)?;
    let mut weight_hh = Array2::<F>::zeros((gh, h));
    cell.weight_hh_grad(dgx2.view(), dgh2.view(), h_prev_rows.view(), extra_rows.view(), weight_hh.view_mut())?;
    let bias_ih = dgx2.sum_axis(Axis(0));
    let mut bias_hh = bias_ih.clone();
    if dgh_width > 0 {
        bias_hh.slice_mut(s![gh - dgh_width..]).assign(&dgh2.sum_axis(Axis(0)));
    }
    let mut d_input = Array3::<F>::zeros((b, tq, i));
    let mut dx_rows = Array2::<F>::zeros((n_rows, i));
    gemm(F::one(), dgx2.view(), w.cell.weight_ih.slice(s![.., ..i]), F::zero(), dx_rows.view_mut());
    for step in 0..tq {
        for n in 0..b {
            d_input.slice_mut(s![n, step, ..]).assign(&dx_rows.row(step * b + n));
        }
    }
    // The keys' projections back to the memory and the score's weights.
    let mut attention: Vec<(&'static str, Vec<F>)> = Vec::new();
    match spec.score {
        AttentionScore::Dot => {
            for (n, dk) in d_keys.iter().enumerate() {
                let l = lengths[n];
                d_memory.slice_mut(s![n, ..l, ..]).zip_mut_with(dk, |m, &d| *m = *m + d);
            }
        }
        AttentionScore::General { weight } => {
            let mut dw = Array2::<F>::zeros(weight.dim());
            for (n, du) in d_keys.iter().enumerate() {
                let l = lengths[n];
                let k = memory.slice(s![n, ..l, ..]);
                gemm(F::one(), du.t(), k, F::one(), dw.view_mut());
                gemm(F::one(), du.view(), weight, F::one(), d_memory.slice_mut(s![n, ..l, ..]));
            }
            attention.push(("weight", dw.into_raw_vec_and_offset().0));
        }
        AttentionScore::Additive { key_weight, .. } => {
            let mut dwk = Array2::<F>::zeros(key_weight.dim());
            for (n, da) in d_keys.iter().enumerate() {
                let l = lengths[n];
                let k = memory.slice(s![n, ..l, ..]);
                gemm(F::one(), da.t(), k, F::one(), dwk.view_mut());
                gemm(F::one(), da.view(), key_weight, F::one(), d_memory.slice_mut(s![n, ..l, ..]));
            }
            attention.push(("query_weight", d_wq.into_raw_vec_and_offset().0));
            attention.push(("key_weight", dwk.into_raw_vec_and_offset().0));
            attention.push(("bias", d_batt.into_raw_vec_and_offset().0));
            attention.push(("v", d_v.into_raw_vec_and_offset().0));
        }
    }
    Ok(DecoderGrads {
        input: d_input,
        memory: d_memory,
        h0: dh,
        c0: has_c.then_some(dc),
        cell: WeightGrads { weight_ih, weight_hh, bias_ih, bias_hh },
        attention,
        combine_weight: d_wc,
        combine_bias: d_bc,
    })
}
