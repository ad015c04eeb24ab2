//! A model's forward pass over a packed batch: for training (dropout, and a trace of
//! everything backward needs) and for inference (outputs and final states only), and the
//! weights transposed once for many inference batches.
//!
//! Inside, a batch is sorted by decreasing length and packed time-major (see
//! [`crate::rnn::Packing`]): padded steps are never computed, outputs at padded steps are
//! zero and each sequence's final state is its state at its own last step, in both directions.

use super::batch::PackedBatch;
use super::config::{Activation, LayerConfig, RecurrentConfig};
use super::init::{LayerInfo, Model};
use super::layers::{activate, initial_state, recurrent_output, Act};
use super::state::ModelState;
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::kernels::tensor::matrix;
use crate::random::Rng;
use crate::rnn::cell::Cell;
use crate::rnn::cells::AnyCell;
use crate::rnn::sequence::{forward_sequence, infer_sequence};
use crate::rnn::{Packing, Trace, Transposed};
use ndarray::{Array2, ArrayView2};

pub(super) enum Cache<F> {
    Embedding {
        ids: Vec<u32>,
    },
    Recurrent {
        inputs: Vec<Array2<F>>,
        traces: Vec<Trace<F>>,
        masks: Vec<Vec<F>>,
    },
    /// `output`: the activated output, kept for a nonlinear activation's backward step.
    Dense {
        input: Array2<F>,
        output: Option<Array2<F>>,
    },
}

/// What a training forward pass keeps for [`Model::backward`].
pub struct ForwardTrace<F> {
    pub(super) caches: Vec<Cache<F>>,
    /// The batch it ran on.
    pub batch: PackedBatch<F>,
    /// `[rows, units]` output of the last layer before its activation, when that differs from
    /// the output (see [`ForwardTrace::logits`]).
    pub(super) logits: Option<Array2<F>>,
    /// `[rows, units]` output of the last layer (after its activation). Rows are packed steps
    /// of the sorted batch for a sequence output, sorted sequences otherwise.
    pub output: Array2<F>,
    /// Whether `output` is a packed sequence.
    pub sequence: bool,
    /// Final recurrent states, sorted order.
    pub state: ModelState<F>,
}

/// What an inference pass returns ([`Model::infer`]): outputs and states, nothing for backward.
pub struct Inference<F> {
    /// `[rows, units]` the last layer's output before its activation, when that differs from
    /// the output (see [`Inference::logits`]).
    logits: Option<Array2<F>>,
    /// `[rows, units]` output of the last layer (after its activation), rows as in
    /// [`ForwardTrace::output`].
    pub output: Array2<F>,
    /// Whether `output` is a packed sequence.
    pub sequence: bool,
    /// Final recurrent states, sorted order.
    pub state: ModelState<F>,
}

impl<F> ForwardTrace<F> {
    /// `[rows, units]` the last layer's output before its activation (the output itself when
    /// the last layer has none).
    pub fn logits(&self) -> &Array2<F> {
        self.logits.as_ref().unwrap_or(&self.output)
    }
}

impl<F> Inference<F> {
    /// `[rows, units]` the last layer's output before its activation (the output itself when
    /// the last layer has none).
    pub fn logits(&self) -> &Array2<F> {
        self.logits.as_ref().unwrap_or(&self.output)
    }
}

/// The recurrent weights of a model transposed once for many inference batches
/// ([`Model::prepare`]); valid until the parameters change.
pub struct PreparedWeights<F> {
    /// Indexed by the tensor index of each recurrent direction's `weight_ih`.
    transposed: Vec<Option<Transposed<F>>>,
}

impl<F: Real> Model<F> {
    /// Runs the model on a packed batch. `training` turns dropout on (drawing from `rng`);
    /// `initial` gives the recurrent layers' starting states (sorted order; zeros if `None`).
    pub fn forward(
        &self,
        batch: PackedBatch<F>,
        training: bool,
        rng: &mut Rng,
        initial: Option<&ModelState<F>>,
    ) -> Result<ForwardTrace<F>> {
        let packing = batch.packing.clone();
        let b = packing.batch();
        let mut caches = Vec::with_capacity(self.layers.len());
        let mut state = ModelState::default();
        // The packed features move into the first layer's input (backward reads them there).
        let mut batch = batch;
        let mut act = Act { data: std::mem::take(&mut batch.features), sequence: true };
        let mut logits = None;
        let mut rec_index = 0;
        for (i, info) in self.layers.iter().enumerate() {
            match info.config {
                LayerConfig::Embedding { dim } => {
                    let out = self.embed(dim, info, &batch.tokens);
                    caches.push(Cache::Embedding { ids: batch.tokens.clone() });
                    act = Act { data: out, sequence: true };
                }
                LayerConfig::Recurrent(r) => {
                    let init = initial.and_then(|s| Some((s.hidden.get(rec_index)?, s.cell.get(rec_index))));
                    let (out, cache, hs, cs) =
                        self.recurrent_forward(info, &r, act.data, &packing, training, rng, init)?;
                    state.hidden.push(hs);
                    state.cell.push(cs);
                    rec_index += 1;
                    caches.push(cache);
                    act = out;
                }
                LayerConfig::Dense { units, activation } => {
                    let pre = self.dense(info, units, act.data.view())?;
                    // A linear layer's output is its pre-activation, and its backward step needs
                    // neither: no copies. Otherwise the activated output is kept for backward.
                    let (out, kept) = if activation == Activation::Linear {
                        (pre, None)
                    } else {
                        let mut out = pre.clone();
                        activate(activation, &mut out);
                        if i + 1 == self.layers.len() {
                            logits = Some(pre);
                        }
                        let kept = out.clone();
                        (out, Some(kept))
                    };
                    caches.push(Cache::Dense { input: act.data, output: kept });
                    act = Act { data: out, sequence: act.sequence };
                }
            }
        }
        debug_assert!(act.sequence || act.data.nrows() == b);
        Ok(ForwardTrace { caches, batch, logits, output: act.data, sequence: act.sequence, state })
    }

    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn recurrent_forward(
        &self,
        info: &LayerInfo,
        r: &RecurrentConfig,
        input: Array2<F>,
        packing: &Packing,
        training: bool,
        rng: &mut Rng,
        init: Option<(&Vec<Vec<F>>, Option<&Vec<Vec<F>>>)>,
    ) -> Result<(Act<F>, Cache<F>, Vec<Vec<F>>, Vec<Vec<F>>)> {
        let cell = AnyCell::new(r.cell);
        let has_c = Cell::<F>::has_cell_state(&cell);
        let h = r.hidden_size;
        let dirs = if r.bidirectional { 2 } else { 1 };
        let b = packing.batch();
        let n = packing.rows();
        let zeros = vec![F::zero(); b * h];
        let mut inputs = Vec::with_capacity(r.num_layers);
        let mut traces = Vec::with_capacity(r.num_layers * dirs);
        let mut masks = Vec::new();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        let mut x = input;
        for l in 0..r.num_layers {
            let mut out = Array2::zeros((n, dirs * h));
            for d in 0..dirs {
                let k = l * dirs + d;
                let w = self.weights(info.first_tensor + 4 * k)?;
                let (h0, c0) = initial_state(init, k, has_c, &zeros, b, h)?;
                let trace = forward_sequence(&cell, &w, x.view(), packing, d == 1, h0, c0)?;
                out.slice_mut(ndarray::s![.., d * h..(d + 1) * h]).assign(&matrix("output", trace.outputs(), n, h)?);
                hs.push(trace.final_hidden());
                cs.push(trace.final_cell());
                traces.push(trace);
            }
            inputs.push(x);
            if l + 1 < r.num_layers && training && r.dropout > 0.0 {
                let keep = 1.0 - r.dropout;
                let mask: Vec<F> =
                    (0..out.len()).map(|_| if rng.uniform() < keep { F::lit(1.0 / keep) } else { F::zero() }).collect();
                out.iter_mut().zip(&mask).for_each(|(o, &m)| *o = *o * m);
                masks.push(mask);
            }
            x = out;
        }
        let act = recurrent_output(r, b, x, &hs)?;
        Ok((act, Cache::Recurrent { inputs, traces, masks }, hs, cs))
    }

    /// Runs the model on a packed batch for its outputs only: no dropout, nothing kept for
    /// backward (the recurrent layers run `rnn::sequence::infer_sequence`, which holds the gates of a few
    /// steps at a time). The outputs are [`Model::forward`]'s, bit for bit. `initial` gives the
    /// recurrent layers' starting states (sorted order; zeros if `None`).
    /// `prepared` (from [`Model::prepare`] on the current parameters) saves each pass its
    /// transposes of the weights; the results are the same without it.
    pub fn infer(
        &self,
        batch: &PackedBatch<F>,
        initial: Option<&ModelState<F>>,
        prepared: Option<&PreparedWeights<F>>,
    ) -> Result<Inference<F>> {
        let packing = &batch.packing;
        let mut state = ModelState::default();
        let mut act = ndarray::CowArray::from(batch.features.view());
        let mut sequence = true;
        let mut logits = None;
        let mut rec_index = 0;
        for (i, info) in self.layers.iter().enumerate() {
            match info.config {
                LayerConfig::Embedding { dim } => {
                    act = self.embed(dim, info, &batch.tokens).into();
                }
                LayerConfig::Recurrent(r) => {
                    let init = initial.and_then(|s| Some((s.hidden.get(rec_index)?, s.cell.get(rec_index))));
                    let (out, hs, cs) = self.recurrent_infer(info, &r, act.view(), packing, init, prepared)?;
                    state.hidden.push(hs);
                    state.cell.push(cs);
                    rec_index += 1;
                    act = out.data.into();
                    sequence = out.sequence;
                }
                LayerConfig::Dense { units, activation } => {
                    let pre = self.dense(info, units, act.view())?;
                    let mut out = if i + 1 == self.layers.len() && activation != Activation::Linear {
                        let activated = pre.clone();
                        logits = Some(pre);
                        activated
                    } else {
                        pre
                    };
                    activate(activation, &mut out);
                    act = out.into();
                }
            }
        }
        Ok(Inference { logits, output: act.into_owned(), sequence, state })
    }

    /// Transposes every recurrent weight matrix once, for [`Model::infer`] calls over many
    /// batches with these parameters.
    pub fn prepare(&self) -> Result<PreparedWeights<F>> {
        let mut transposed: Vec<Option<Transposed<F>>> = (0..self.tensors.len()).map(|_| None).collect();
        for info in &self.layers {
            if let LayerConfig::Recurrent(r) = info.config {
                for k in 0..r.num_layers * if r.bidirectional { 2 } else { 1 } {
                    let first = info.first_tensor + 4 * k;
                    transposed[first] = Some(Transposed::of(&self.weights(first)?)?);
                }
            }
        }
        Ok(PreparedWeights { transposed })
    }

    /// [`Model::recurrent_forward`] for inference: the layer's output and final states.
    #[allow(clippy::type_complexity)]
    fn recurrent_infer(
        &self,
        info: &LayerInfo,
        r: &RecurrentConfig,
        input: ArrayView2<F>,
        packing: &Packing,
        init: Option<(&Vec<Vec<F>>, Option<&Vec<Vec<F>>>)>,
        prepared: Option<&PreparedWeights<F>>,
    ) -> Result<(Act<F>, Vec<Vec<F>>, Vec<Vec<F>>)> {
        let cell = AnyCell::new(r.cell);
        let has_c = Cell::<F>::has_cell_state(&cell);
        let h = r.hidden_size;
        let dirs = if r.bidirectional { 2 } else { 1 };
        let b = packing.batch();
        let n = packing.rows();
        let zeros = vec![F::zero(); b * h];
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        let mut x = ndarray::CowArray::from(input);
        for l in 0..r.num_layers {
            let mut out = Array2::zeros((0, 0));
            for d in 0..dirs {
                let k = l * dirs + d;
                let w = self.weights(info.first_tensor + 4 * k)?;
                let (h0, c0) = initial_state(init, k, has_c, &zeros, b, h)?;
                let given = prepared.and_then(|p| p.transposed.get(info.first_tensor + 4 * k)?.as_ref());
                let o = infer_sequence(&cell, &w, given, x.view(), packing, d == 1, h0, c0)?;
                if dirs == 1 {
                    out = Array2::from_shape_vec((n, h), o.h)
                        .map_err(|e| CoreError::shape("output", format!("[{n}, {h}]"), e.to_string()))?;
                } else {
                    if d == 0 {
                        out = Array2::zeros((n, dirs * h));
                    }
                    out.slice_mut(ndarray::s![.., d * h..(d + 1) * h]).assign(&matrix("output", &o.h, n, h)?);
                }
                hs.push(o.h_n);
                cs.push(o.c_n);
            }
            x = out.into();
        }
        let act = recurrent_output(r, b, x.into_owned(), &hs)?;
        Ok((act, hs, cs))
    }
}
