//! A model's forward pass over a packed batch, for training (dropout, and a cache of everything
//! backward needs) and for inference (outputs and final states only): a recurrent layer's
//! stacked layers and directions are one walk generic over its mode ([`LayerMode`]). And the
//! weights transposed once for many inference batches.
//!
//! Inside, a batch is sorted by decreasing length and packed time-major (see
//! [`crate::rnn::Packing`]): padded steps are never computed, outputs at padded steps are
//! zero and each sequence's final state is its state at its own last step, in both directions.

use super::batch::PackedBatch;
use super::config::{Activation, LayerSpec, RecurrentLayerSpec};
use super::init::{LayerInfo, Model};
use super::layers::{activate, initial_state, recurrent_output, reverse_in_time, Act, LayerState};
use super::state::ModelState;
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::kernels::tensor::matrix;
use crate::random::Rng;
use crate::rnn::cell::Cell;
use crate::rnn::cells::AnyCell;
use crate::rnn::sequence::{forward_with_noise, infer_with_noise, Outputs};
use crate::rnn::weights::LayerWeights;
use crate::rnn::Noise;
use crate::rnn::{Packing, Trace, Transposed};
use ndarray::{Array2, ArrayView2, CowArray, Ix2};

pub(super) enum Cache<F> {
    Embedding {
        ids: Vec<u32>,
    },
    Recurrent {
        inputs: Vec<Array2<F>>,
        traces: Vec<Trace<F>>,
        masks: Vec<Vec<F>>,
        /// The input dropout mask, `[B, I]` by sorted sequence, when it applied.
        input_mask: Option<Vec<F>>,
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

impl<F> ForwardTrace<F> {
    /// The input `[N, I]` the first stacked layer of layer `layer` read (after its input
    /// dropout), packed rows; `None` unless `layer` is a recurrent layer.
    pub fn layer_input(&self, layer: usize) -> Option<ArrayView2<'_, F>> {
        match self.caches.get(layer)? {
            Cache::Recurrent { inputs, .. } => inputs.first().map(|x| x.view()),
            _ => None,
        }
    }
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
                LayerSpec::Embedding { dim } => {
                    let out = self.embed(dim, info, &batch.tokens);
                    caches.push(Cache::Embedding { ids: batch.tokens.clone() });
                    act = Act { data: out, sequence: true };
                }
                LayerSpec::Recurrent(r) => {
                    let init = LayerState::of(initial, rec_index);
                    let mut mode = Train::new(&mut *rng, training, &r);
                    let out = self.recurrent(info, &r, act.data.into(), &packing, init, &mut mode)?;
                    state.hidden.push(out.hidden);
                    state.cell.push(out.cell);
                    rec_index += 1;
                    let Train { inputs, traces, masks, input_mask, .. } = mode;
                    caches.push(Cache::Recurrent { inputs, traces, masks, input_mask });
                    act = out.act;
                }
                LayerSpec::Dense { units, activation } => {
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
                LayerSpec::Embedding { dim } => {
                    act = self.embed(dim, info, &batch.tokens).into();
                }
                LayerSpec::Recurrent(r) => {
                    let init = LayerState::of(initial, rec_index);
                    let mut mode = Infer { prepared };
                    let out = self.recurrent(info, &r, act.view().into(), packing, init, &mut mode)?;
                    state.hidden.push(out.hidden);
                    state.cell.push(out.cell);
                    rec_index += 1;
                    act = out.act.data.into();
                    sequence = out.act.sequence;
                }
                LayerSpec::Dense { units, activation } => {
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
            if let LayerSpec::Recurrent(r) = info.config {
                for k in 0..r.num_layers * r.directions() {
                    let first = info.first_tensor + 4 * k;
                    transposed[first] = Some(Transposed::of(&self.weights(first)?)?);
                }
            }
        }
        Ok(PreparedWeights { transposed })
    }

    /// The one walk of a recurrent layer's stacked layers and directions, for training or
    /// inference (`mode`, see [`LayerMode`]): each direction's pass over the packed input
    /// `input: [N, I]`, the directions side by side as the next stacked layer's input (with
    /// dropout between them in training), and the layer's output and final states.
    fn recurrent<M: LayerMode<F>>(
        &self,
        info: &LayerInfo,
        r: &RecurrentLayerSpec,
        input: CowArray<'_, F, Ix2>,
        packing: &Packing,
        init: Option<LayerState<'_, F>>,
        mode: &mut M,
    ) -> Result<RecurrentOut<F>> {
        let cell = AnyCell::new(r.cell);
        let has_c = Cell::<F>::has_cell_state(&cell);
        let h = r.hidden_size;
        let dirs = r.directions();
        let b = packing.batch();
        let n = packing.rows();
        let zeros = vec![F::zero(); b * h];
        let (mut hidden, mut cell_states) = (Vec::new(), Vec::new());
        let mut x = mode.layer_input(input, r.input_dropout, packing);
        for l in 0..r.num_layers {
            let mut out = Array2::zeros((0, 0));
            for d in 0..dirs {
                let k = l * dirs + d;
                let first = info.first_tensor + 4 * k;
                let w = self.weights(first)?;
                let (h0, c0) = initial_state(init, k, has_c, &zeros, b, h)?;
                let reverse = d == 1 || r.go_backwards;
                let noise = (r.recurrent_dropout, r.zoneout);
                let mut pass = mode.pass(&cell, &w, first, x.view(), packing, reverse, (h0, c0), noise)?;
                // A single direction's outputs are the layer's (moved where the mode allows).
                match if dirs == 1 { M::take_outputs(&mut pass, n, h)? } else { None } {
                    Some(whole) => out = whole,
                    None => {
                        if d == 0 {
                            out = Array2::zeros((n, dirs * h));
                        }
                        let cols = ndarray::s![.., d * h..(d + 1) * h];
                        out.slice_mut(cols).assign(&matrix("output", M::outputs(&pass), n, h)?);
                    }
                }
                let (h_n, c_n) = M::final_states(&mut pass);
                hidden.push(h_n);
                cell_states.push(c_n);
                mode.keep_pass(pass);
            }
            mode.keep_input(x);
            if l + 1 < r.num_layers {
                mode.between_layers(&mut out, r.dropout);
            }
            x = out.into();
        }
        let mut top = x.into_owned();
        if r.go_backwards && r.return_sequences {
            // Keras' order: the outputs in the order the layer ran, last step first.
            reverse_in_time(&mut top, packing);
        }
        let act = recurrent_output(r, b, top, &hidden)?;
        Ok(RecurrentOut { act, hidden, cell: cell_states })
    }
}

/// A recurrent layer's output as the next layer reads it, and its final states (`l·D + d`
/// order, `[B, H]` each; cell states empty for cells without one).
struct RecurrentOut<F> {
    act: Act<F>,
    hidden: Vec<Vec<F>>,
    cell: Vec<Vec<F>>,
}

/// How [`Model::recurrent`] walks a layer: for training ([`Train`]) or inference ([`Infer`]).
/// The walk is compiled once per mode: no branch on the mode inside it.
trait LayerMode<F: Real> {
    /// What one direction's pass returns.
    type Pass;

    /// One direction's pass over `x: [N, I]` with the weights whose first tensor is `first`,
    /// from `init = (h0, c0)`, with the layer's `(recurrent dropout, zoneout)` probabilities.
    #[allow(clippy::too_many_arguments)]
    fn pass(
        &mut self,
        cell: &AnyCell,
        w: &LayerWeights<F>,
        first: usize,
        x: ArrayView2<F>,
        packing: &Packing,
        reverse: bool,
        init: (&[F], &[F]),
        noise: (f64, f64),
    ) -> Result<Self::Pass>;

    /// `[N, H]` the pass's outputs.
    fn outputs(pass: &Self::Pass) -> &[F];

    /// The pass's outputs as an `[N, H]` array of their own when the mode can give them away
    /// (no copy), else `None`.
    fn take_outputs(pass: &mut Self::Pass, n: usize, h: usize) -> Result<Option<Array2<F>>>;

    /// The pass's final hidden and cell states, `[B, H]` each.
    fn final_states(pass: &mut Self::Pass) -> (Vec<F>, Vec<F>);

    /// Keeps a pass once its outputs and states are read.
    fn keep_pass(&mut self, pass: Self::Pass);

    /// Keeps a stacked layer's input once its passes ran.
    fn keep_input(&mut self, x: CowArray<'_, F, Ix2>);

    /// Between two stacked layers, on the lower one's output `out: [N, D·H]`.
    fn between_layers(&mut self, out: &mut Array2<F>, dropout: f64);

    /// The layer's input `[N, I]` as its first stacked layer reads it: with the input dropout
    /// `p` applied in training.
    fn layer_input<'x>(&mut self, x: CowArray<'x, F, Ix2>, p: f64, packing: &Packing) -> CowArray<'x, F, Ix2>;
}

/// Training: each direction's [`Trace`], each stacked layer's input and dropout mask, kept for
/// [`Model::backward`]. Dropout applies when `training`, drawing from `rng`.
struct Train<'r, F> {
    rng: &'r mut Rng,
    training: bool,
    inputs: Vec<Array2<F>>,
    traces: Vec<Trace<F>>,
    masks: Vec<Vec<F>>,
    input_mask: Option<Vec<F>>,
}

impl<'r, F> Train<'r, F> {
    fn new(rng: &'r mut Rng, training: bool, r: &RecurrentLayerSpec) -> Self {
        let (inputs, traces) = (Vec::with_capacity(r.num_layers), Vec::with_capacity(r.num_layers * r.directions()));
        Train { rng, training, inputs, traces, masks: Vec::new(), input_mask: None }
    }
}

/// Multiplies each packed row of `x: [N, I]` by its sequence's row of `mask: [B, I]` (sorted
/// batch order): one mask per sequence, the same at every step.
pub(super) fn mask_by_sequence<F: Real>(x: &mut Array2<F>, mask: &[F], packing: &Packing) {
    let width = x.ncols();
    for t in 0..packing.steps() {
        for i in 0..packing.rows_at(t) {
            let m = &mask[i * width..(i + 1) * width];
            x.row_mut(packing.offset(t) + i).iter_mut().zip(m).for_each(|(v, &k)| *v = *v * k);
        }
    }
}

impl<F: Real> LayerMode<F> for Train<'_, F> {
    type Pass = Trace<F>;

    fn pass(
        &mut self,
        cell: &AnyCell,
        w: &LayerWeights<F>,
        _first: usize,
        x: ArrayView2<F>,
        packing: &Packing,
        reverse: bool,
        (h0, c0): (&[F], &[F]),
        (recurrent_dropout, zoneout): (f64, f64),
    ) -> Result<Trace<F>> {
        let units = w.weight_hh.ncols();
        let mut noise = Noise::none();
        if self.training && recurrent_dropout > 0.0 {
            let keep = 1.0 - recurrent_dropout;
            let rng = &mut *self.rng;
            noise.recurrent = (0..packing.batch() * units)
                .map(|_| if rng.uniform() < keep { F::lit(1.0 / keep) } else { F::zero() })
                .collect();
        }
        if zoneout > 0.0 {
            if self.training {
                let rng = &mut *self.rng;
                noise.zone = (0..packing.rows() * units)
                    .map(|_| if rng.uniform() < zoneout { F::one() } else { F::zero() })
                    .collect();
            } else {
                noise.zoneout = F::lit(zoneout);
            }
        }
        forward_with_noise(cell, w, x, packing, reverse, h0, c0, noise)
    }

    fn outputs(pass: &Trace<F>) -> &[F] {
        pass.outputs()
    }

    fn take_outputs(_pass: &mut Trace<F>, _n: usize, _h: usize) -> Result<Option<Array2<F>>> {
        // The trace keeps its outputs for backward.
        Ok(None)
    }

    fn final_states(pass: &mut Trace<F>) -> (Vec<F>, Vec<F>) {
        (pass.final_hidden(), pass.final_cell())
    }

    fn keep_pass(&mut self, pass: Trace<F>) {
        self.traces.push(pass);
    }

    fn keep_input(&mut self, x: CowArray<'_, F, Ix2>) {
        // Owned in training (the batch's features, then each layer's output): no copy.
        self.inputs.push(x.into_owned());
    }

    fn between_layers(&mut self, out: &mut Array2<F>, dropout: f64) {
        if self.training && dropout > 0.0 {
            let keep = 1.0 - dropout;
            let rng = &mut *self.rng;
            let mask: Vec<F> =
                (0..out.len()).map(|_| if rng.uniform() < keep { F::lit(1.0 / keep) } else { F::zero() }).collect();
            out.iter_mut().zip(&mask).for_each(|(o, &m)| *o = *o * m);
            self.masks.push(mask);
        }
    }

    fn layer_input<'x>(&mut self, x: CowArray<'x, F, Ix2>, p: f64, packing: &Packing) -> CowArray<'x, F, Ix2> {
        if !(self.training && p > 0.0) {
            return x;
        }
        let keep = 1.0 - p;
        let rng = &mut *self.rng;
        let mask: Vec<F> = (0..packing.batch() * x.ncols())
            .map(|_| if rng.uniform() < keep { F::lit(1.0 / keep) } else { F::zero() })
            .collect();
        let mut owned = x.into_owned();
        mask_by_sequence(&mut owned, &mask, packing);
        self.input_mask = Some(mask);
        owned.into()
    }
}

/// Inference: outputs and final states only; `prepared` saves each pass its transposes.
struct Infer<'p, F> {
    prepared: Option<&'p PreparedWeights<F>>,
}

impl<F: Real> LayerMode<F> for Infer<'_, F> {
    type Pass = Outputs<F>;

    fn pass(
        &mut self,
        cell: &AnyCell,
        w: &LayerWeights<F>,
        first: usize,
        x: ArrayView2<F>,
        packing: &Packing,
        reverse: bool,
        (h0, c0): (&[F], &[F]),
        (_, zoneout): (f64, f64),
    ) -> Result<Outputs<F>> {
        let given = self.prepared.and_then(|p| p.transposed.get(first)?.as_ref());
        // Recurrent dropout is off; zoneout runs its expectation.
        let noise = Noise::expected_zoneout(F::lit(zoneout));
        infer_with_noise(cell, w, given, x, packing, reverse, h0, c0, noise)
    }

    fn outputs(pass: &Outputs<F>) -> &[F] {
        &pass.h
    }

    fn take_outputs(pass: &mut Outputs<F>, n: usize, h: usize) -> Result<Option<Array2<F>>> {
        let whole = Array2::from_shape_vec((n, h), std::mem::take(&mut pass.h))
            .map_err(|e| CoreError::shape("output", format!("[{n}, {h}]"), e.to_string()))?;
        Ok(Some(whole))
    }

    fn final_states(pass: &mut Outputs<F>) -> (Vec<F>, Vec<F>) {
        (std::mem::take(&mut pass.h_n), std::mem::take(&mut pass.c_n))
    }

    fn keep_pass(&mut self, _pass: Outputs<F>) {}

    fn keep_input(&mut self, _x: CowArray<'_, F, Ix2>) {}

    fn between_layers(&mut self, _out: &mut Array2<F>, _dropout: f64) {}

    fn layer_input<'x>(&mut self, x: CowArray<'x, F, Ix2>, _p: f64, _packing: &Packing) -> CowArray<'x, F, Ix2> {
        x
    }
}
