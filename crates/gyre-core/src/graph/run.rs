//! A [`Graph`]'s data, its forward pass over a batch, the backward pass (in reverse node order,
//! each value's gradient summed over the nodes that read it), the losses, an epoch of optimizer
//! steps and prediction.
//!
//! A batch keeps each input's steps only up to its longest sequence in that batch; outputs are
//! returned at the data's full steps, zeros past each sequence's length.

use super::{Graph, Layer, Shape};
use crate::attention::{attention_backward, attention_forward};
use crate::error::{CoreError, Result};
use crate::kernels::linalg::{column_sums, gemm};
use crate::kernels::real::Real;
use crate::model::layers::activation_backward;
use crate::model::{activate, Activation};
use crate::optim::{check_and_clip, matrix_decay_params, Optimizer};
use crate::random::Rng;
use crate::rnn::functional::{backward_sequences, forward_sequences, InitialState, OutputGrads, SequenceOptions};
use crate::rnn::weights::LayerWeights;
use crate::seq2seq::ScoreConfig;
use crate::AttentionScore;
use ndarray::{concatenate, s, Array2, Array3, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

/// A shard's loss terms per output (sum, count) and its gradient by parameter.
type ShardSums<F> = (Vec<(f64, usize)>, Vec<Vec<F>>);

/// Samples per shard of a training batch (see [`Graph::loss_and_gradient`]).
const GRAPH_SHARD: usize = 32;

/// One input's data for `N` samples.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphInput<F> {
    /// `T`, the steps of every sample (padded).
    pub steps: usize,
    /// `[N]` each sample's steps, 1 … `T`.
    pub lengths: Vec<usize>,
    /// The values.
    pub values: GraphValues<F>,
}

/// An input's values.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphValues<F> {
    /// `[N, T, features]`, row-major.
    Floats(Vec<F>),
    /// `[N, T]` token ids.
    Tokens(Vec<u32>),
}

/// One output's targets for `N` samples.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphTarget<F> {
    /// Class ids: `[N, T]` for a sequence output (steps past a length are ignored), `[N]` for a
    /// vector; for the cross-entropy loss.
    Classes(Vec<u32>),
    /// `[N, T, W]` or `[N, W]` values, for the squared error.
    Values(Vec<F>),
}

/// A graph's data: every input (in the graph's order) and, for training, every output's targets.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphData<F> {
    /// `N`.
    pub samples: usize,
    /// One per graph input.
    pub inputs: Vec<GraphInput<F>>,
    /// One per graph output (empty for prediction).
    pub targets: Vec<GraphTarget<F>>,
}

/// An output's loss, PyTorch's mean reduction over the valid steps (and units).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphLoss {
    /// `mean((y − t)²)` over valid steps × units.
    Mse,
    /// `−mean(log p[t])` over valid steps; the output must be a dense layer with `softmax`.
    CrossEntropy,
}

/// Options of [`Graph::train_epoch`].
#[derive(Clone, Debug)]
pub struct GraphEpochOptions {
    /// Samples per optimizer step.
    pub batch_size: usize,
    /// The learning rate of this epoch.
    pub lr: f64,
    /// Clip the gradient's global L2 norm (PyTorch's `clip_grad_norm_`).
    pub clip_norm: Option<f64>,
    /// One per output; the loss is their sum.
    pub losses: Vec<GraphLoss>,
    /// Seeds the order of the samples (none: in order).
    pub shuffle: Option<u64>,
    /// Seeds the dropout masks (each batch its own, from this seed).
    pub dropout_seed: u64,
    /// 1-based, for the error of a non-finite loss.
    pub epoch: usize,
}

/// What [`Graph::predict`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphPrediction<F> {
    /// Per output: its shape (`[N, T, W]` or `[N, W]`) and values.
    pub outputs: Vec<(Vec<usize>, Vec<F>)>,
    /// Per attention node: its name, shape `[N, Tq, Tk]` and weights.
    pub attention: Vec<(String, Vec<usize>, Vec<F>)>,
}

/// A value between nodes.
#[derive(Clone, Debug)]
pub(super) enum Val<F> {
    Tokens(Array2<usize>),
    Seq(Array3<F>),
    Vector(Array2<F>),
}

pub(super) enum Cache<F> {
    None,
    /// Each stacked layer's input and final states (`[B, H·dirs]`).
    Recurrent {
        inputs: Vec<Array3<F>>,
        states: Vec<(Array2<F>, Option<Array2<F>>)>,
    },
    /// The output after the activation, `[rows, units]`.
    Dense {
        out: Array2<F>,
    },
    Attention {
        weights: Array3<F>,
    },
    /// The mask (0 or `1/(1 − rate)`) the input was multiplied by, in training.
    Dropout {
        mask: Val<F>,
    },
}

/// A forward pass over one batch.
pub(super) struct Pass<F> {
    vals: Vec<Val<F>>,
    /// Per input: the batch's lengths.
    lengths: Vec<Vec<usize>>,
    pub(super) caches: Vec<Cache<F>>,
}

/// Gradients of a value: a sequence's or vector's, or none.
type Grad<F> = Option<Val<F>>;

/// The gradients of one stacked layer's final states: hidden and cell, `[B, H·dirs]` each.
type StateGrad<F> = (Option<Array2<F>>, Option<Array2<F>>);

fn add_into<F: Real>(slot: &mut Grad<F>, g: Val<F>) {
    match (slot.as_mut(), g) {
        (None, g) => *slot = Some(g),
        (Some(Val::Seq(a)), Val::Seq(b)) => a.zip_mut_with(&b, |x, &y| *x = *x + y),
        (Some(Val::Vector(a)), Val::Vector(b)) => a.zip_mut_with(&b, |x, &y| *x = *x + y),
        _ => {}
    }
}

/// Zeros the steps of `x: [B, T, W]` past each sequence's length.
fn zero_padded<F: Real>(x: &mut Array3<F>, lengths: &[usize]) {
    for (b, &l) in lengths.iter().enumerate() {
        if l < x.dim().1 {
            x.slice_mut(s![b, l.., ..]).fill(F::zero());
        }
    }
}

fn flat3<F: Real>(x: &Array3<F>) -> Result<Array2<F>> {
    let (b, t, w) = x.dim();
    x.as_standard_layout()
        .into_owned()
        .into_shape_with_order((b * t, w))
        .map_err(|e| CoreError::shape("a sequence", format!("[{b}, {t}, {w}]"), e.to_string()))
}

fn unflat3<F: Real>(x: Array2<F>, b: usize, t: usize) -> Result<Array3<F>> {
    let w = x.ncols();
    x.as_standard_layout()
        .into_owned()
        .into_shape_with_order((b, t, w))
        .map_err(|e| CoreError::shape("a sequence", format!("[{b}, {t}, {w}]"), e.to_string()))
}

impl<F: Real> Graph<F> {
    fn mat(&self, i: usize) -> Result<ArrayView2<'_, F>> {
        let s = &self.shapes[i];
        ArrayView2::from_shape((s[0], s[1]), &self.values[i])
            .map_err(|e| CoreError::shape(self.names[i].clone(), format!("{s:?}"), e.to_string()))
    }

    fn vec1(&self, i: usize) -> ArrayView1<'_, F> {
        ArrayView1::from(&self.values[i][..])
    }

    pub(super) fn rnn_weights(&self, first: usize) -> Result<LayerWeights<'_, F>> {
        Ok(LayerWeights {
            weight_ih: self.mat(first)?,
            weight_hh: self.mat(first + 1)?,
            bias_ih: self.vec1(first + 2),
            bias_hh: self.vec1(first + 3),
        })
    }

    fn score(&self, score: ScoreConfig, first: usize) -> Result<AttentionScore<'_, F>> {
        Ok(match score {
            ScoreConfig::Dot => AttentionScore::Dot,
            ScoreConfig::General => AttentionScore::General { weight: self.mat(first)? },
            ScoreConfig::Additive { .. } => AttentionScore::Additive {
                query_weight: self.mat(first)?,
                key_weight: self.mat(first + 1)?,
                bias: self.vec1(first + 2),
                v: self.vec1(first + 3),
            },
        })
    }

    /// An error unless `data` fits the graph: one entry per input (and per output when
    /// `targets`), `N` samples each, lengths in `1..=T`, token ids below the vocabulary, floats
    /// finite, class ids below the output's width.
    ///
    /// # Errors
    /// [`CoreError`] naming the input or output and the value at fault.
    pub fn check_data(&self, data: &GraphData<F>, targets: Option<&[GraphLoss]>) -> Result<()> {
        let n = data.samples;
        if n == 0 {
            return Err(CoreError::invalid("samples", "at least one sample", 0));
        }
        if data.inputs.len() != self.spec.inputs.len() {
            return Err(CoreError::invalid(
                "inputs",
                format!("{} inputs ({})", self.spec.inputs.len(), self.input_names()),
                data.inputs.len(),
            ));
        }
        for (input, spec) in data.inputs.iter().zip(&self.spec.inputs) {
            let what = format!("inputs.{}", spec.name);
            let t = input.steps;
            if t == 0 {
                return Err(CoreError::invalid(format!("{what}.steps"), "a positive integer", 0));
            }
            if input.lengths.len() != n {
                return Err(CoreError::shape(
                    format!("{what}.lengths"),
                    format!("[{n}] (one per sample)"),
                    format!("{} values", input.lengths.len()),
                ));
            }
            if let Some((k, &l)) = input.lengths.iter().enumerate().find(|(_, &l)| l == 0 || l > t) {
                return Err(CoreError::invalid(format!("{what}.lengths[{k}]"), format!("an integer in 1..={t}"), l));
            }
            match (&input.values, spec.kind) {
                (GraphValues::Floats(v), super::InputKind::Floats(f)) => {
                    if v.len() != n * t * f {
                        return Err(CoreError::shape(
                            what,
                            format!("[{n}, {t}, {f}] ({} values)", n * t * f),
                            format!("{} values", v.len()),
                        ));
                    }
                    if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                        return Err(CoreError::invalid(
                            format!("{what}[{k}]"),
                            "a finite number",
                            v[k].to_f64().unwrap_or(f64::NAN),
                        ));
                    }
                }
                (GraphValues::Tokens(v), super::InputKind::Tokens(vocab)) => {
                    if v.len() != n * t {
                        return Err(CoreError::shape(
                            what,
                            format!("[{n}, {t}] ({} ids)", n * t),
                            format!("{} ids", v.len()),
                        ));
                    }
                    for (k, &id) in v.iter().enumerate() {
                        if id as usize >= vocab && (k % t) < input.lengths[k / t] {
                            return Err(CoreError::invalid(
                                format!("{what}[{}][{}]", k / t, k % t),
                                format!("a token id below vocabSize {vocab}"),
                                id,
                            ));
                        }
                    }
                }
                (GraphValues::Floats(_), _) => {
                    return Err(CoreError::invalid(what, "token ids (the input has a vocabSize)", "floats"))
                }
                (GraphValues::Tokens(_), _) => {
                    return Err(CoreError::invalid(what, "floats (the input has features)", "token ids"))
                }
            }
        }
        let Some(losses) = targets else { return Ok(()) };
        if losses.len() != self.outputs.len() {
            return Err(CoreError::invalid(
                "losses",
                format!("{} losses, one per output", self.outputs.len()),
                losses.len(),
            ));
        }
        if data.targets.len() != self.outputs.len() {
            return Err(CoreError::invalid(
                "targets",
                format!("{} targets, one per output ({})", self.outputs.len(), self.spec.outputs.join(", ")),
                data.targets.len(),
            ));
        }
        for (k, (target, loss)) in data.targets.iter().zip(losses).enumerate() {
            let name = &self.spec.outputs[k];
            let what = format!("targets.{name}");
            let (sequence, width) = self.output_shape(k).unwrap_or((false, 0));
            let source = match self.value_shape(self.outputs[k]) {
                Shape::Seq { source, .. } => Some(source),
                _ => None,
            };
            let steps = source.map_or(1, |s| data.inputs[s].steps);
            match (target, loss) {
                (GraphTarget::Classes(ids), GraphLoss::CrossEntropy) => {
                    let node = self.outputs[k] - self.spec.inputs.len();
                    if !matches!(self.spec.nodes[node].layer, Layer::Dense { activation: Activation::Softmax, .. }) {
                        return Err(CoreError::invalid(format!("losses[{k}]"), format!("'mse' (crossEntropy needs output {name:?} to be a dense layer with activation 'softmax')"), "'crossEntropy'"));
                    }
                    if ids.len() != n * steps {
                        let want = if sequence { format!("[{n}, {steps}]") } else { format!("[{n}]") };
                        return Err(CoreError::shape(what, format!("{want} class ids"), format!("{} ids", ids.len())));
                    }
                    for (j, &id) in ids.iter().enumerate() {
                        let valid = source.is_none_or(|s| j % steps < data.inputs[s].lengths[j / steps]);
                        if valid && id as usize >= width {
                            return Err(CoreError::invalid(
                                format!("{what}[{j}]"),
                                format!("a class id below the output's {width} units"),
                                id,
                            ));
                        }
                    }
                }
                (GraphTarget::Values(v), GraphLoss::Mse) => {
                    if v.len() != n * steps * width {
                        let want =
                            if sequence { format!("[{n}, {steps}, {width}]") } else { format!("[{n}, {width}]") };
                        return Err(CoreError::shape(what, want, format!("{} values", v.len())));
                    }
                    if let Some(j) = v.iter().position(|x| !x.is_finite()) {
                        return Err(CoreError::invalid(
                            format!("{what}[{j}]"),
                            "a finite number",
                            v[j].to_f64().unwrap_or(f64::NAN),
                        ));
                    }
                }
                (GraphTarget::Classes(_), GraphLoss::Mse) => {
                    return Err(CoreError::invalid(what, "values (the loss is 'mse')", "class ids"))
                }
                (GraphTarget::Values(_), GraphLoss::CrossEntropy) => {
                    return Err(CoreError::invalid(what, "class ids (the loss is 'crossEntropy')", "values"))
                }
            }
        }
        Ok(())
    }

    fn input_names(&self) -> String {
        self.spec.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// The inputs of samples `idx`, each cut to its longest sequence among them.
    pub(super) fn batch_inputs(&self, data: &GraphData<F>, idx: &[usize]) -> (Vec<Val<F>>, Vec<Vec<usize>>) {
        let mut vals = Vec::with_capacity(data.inputs.len());
        let mut lengths = Vec::with_capacity(data.inputs.len());
        for input in &data.inputs {
            let lens: Vec<usize> = idx.iter().map(|&i| input.lengths[i]).collect();
            let tb = lens.iter().copied().max().unwrap_or(1);
            let t = input.steps;
            match &input.values {
                GraphValues::Floats(v) => {
                    let f = v.len() / (data.samples * t).max(1);
                    let mut x = Array3::zeros((idx.len(), tb, f));
                    for (b, &i) in idx.iter().enumerate() {
                        for k in 0..lens[b] {
                            let at = (i * t + k) * f;
                            x.slice_mut(s![b, k, ..]).assign(&ArrayView1::from(&v[at..at + f]));
                        }
                    }
                    vals.push(Val::Seq(x));
                }
                GraphValues::Tokens(v) => {
                    let mut x = Array2::zeros((idx.len(), tb));
                    for (b, &i) in idx.iter().enumerate() {
                        for k in 0..lens[b] {
                            x[[b, k]] = v[i * t + k] as usize;
                        }
                    }
                    vals.push(Val::Tokens(x));
                }
            }
            lengths.push(lens);
        }
        (vals, lengths)
    }

    fn seq_lengths<'p>(&self, pass: &'p Pass<F>, v: usize) -> Option<&'p [usize]> {
        match self.value_shape(v) {
            Shape::Seq { source, .. } | Shape::Tokens { source, .. } => Some(&pass.lengths[source]),
            Shape::Vector { .. } => None,
        }
    }

    /// The forward pass over a batch's inputs; in training (`dropout` seeds the masks) dropout
    /// nodes drop, outside it they are the identity.
    pub(super) fn forward(&self, vals: Vec<Val<F>>, lengths: Vec<Vec<usize>>, dropout: Option<u64>) -> Result<Pass<F>> {
        let mut pass = Pass { vals, lengths, caches: Vec::with_capacity(self.wired.len()) };
        for (k, node) in self.spec.nodes.iter().enumerate() {
            let seed = dropout.map(|s| s ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (val, cache) = self.forward_node(&pass, k, &node.layer, seed)?;
            pass.vals.push(val);
            pass.caches.push(cache);
        }
        Ok(pass)
    }

    fn forward_node(&self, pass: &Pass<F>, k: usize, layer: &Layer, seed: Option<u64>) -> Result<(Val<F>, Cache<F>)> {
        let w = &self.wired[k];
        let input = &pass.vals[w.inputs[0]];
        let lengths = self.seq_lengths(pass, w.inputs[0]);
        match *layer {
            Layer::Embedding { dim } => {
                let Val::Tokens(ids) = input else { return Err(internal("an embedding's input")) };
                let table = self.mat(w.first_param)?;
                let (b, t) = ids.dim();
                let lens = lengths.unwrap_or(&[]);
                let mut out = Array3::zeros((b, t, dim));
                for n in 0..b {
                    for step in 0..lens.get(n).copied().unwrap_or(t) {
                        out.slice_mut(s![n, step, ..]).assign(&table.row(ids[[n, step]]));
                    }
                }
                Ok((Val::Seq(out), Cache::None))
            }
            Layer::Recurrent(r) => {
                let Val::Seq(x0) = input else { return Err(internal("a recurrent layer's input")) };
                let lens = lengths.unwrap_or(&[]);
                let init_states = match w.state_from {
                    Some(from) => match &pass.caches[from] {
                        Cache::Recurrent { states, .. } => Some(states),
                        _ => return Err(internal("an initial state's source")),
                    },
                    None => None,
                };
                let h = r.hidden;
                let mut x = x0.clone();
                let mut inputs = Vec::with_capacity(r.layers);
                let mut states = Vec::with_capacity(r.layers);
                for l in 0..r.layers {
                    let mut outs = Vec::with_capacity(r.directions());
                    let (mut hs, mut cs) = (Vec::new(), Vec::new());
                    for d in 0..r.directions() {
                        let weights = self.rnn_weights(w.first_param + 4 * (l * r.directions() + d))?;
                        let cols = s![.., d * h..(d + 1) * h];
                        let init = match init_states {
                            Some(st) => InitialState {
                                hidden: Some(st[l].0.slice(cols)),
                                cell: st[l].1.as_ref().map(|c| c.slice(cols)),
                            },
                            None => InitialState::default(),
                        };
                        let o = forward_sequences(
                            r.kind,
                            &weights,
                            x.view(),
                            &init,
                            &SequenceOptions { lengths: Some(lens), reverse: d == 1 },
                        )?;
                        outs.push(o.output);
                        hs.push(o.state.hidden);
                        if let Some(c) = o.state.cell {
                            cs.push(c);
                        }
                    }
                    let next = cat3(&outs)?;
                    let hcat = cat2(&hs)?;
                    let ccat = if cs.is_empty() { None } else { Some(cat2(&cs)?) };
                    inputs.push(std::mem::replace(&mut x, next));
                    states.push((hcat, ccat));
                }
                let out = if r.return_sequences {
                    Val::Seq(x)
                } else {
                    Val::Vector(
                        states.last().map(|s| s.0.clone()).ok_or_else(|| internal("a recurrent layer's states"))?,
                    )
                };
                Ok((out, Cache::Recurrent { inputs, states }))
            }
            Layer::Dense { units, activation } => {
                let weight = self.mat(w.first_param)?;
                let bias = self.vec1(w.first_param + 1);
                let (x, dims) = match input {
                    Val::Seq(x) => (flat3(x)?, Some(x.dim())),
                    Val::Vector(x) => (x.clone(), None),
                    Val::Tokens(_) => return Err(internal("a dense layer's input")),
                };
                let mut y = Array2::from_shape_fn((x.nrows(), units), |(_, c)| bias[c]);
                gemm(F::one(), x.view(), weight.t(), F::one(), y.view_mut());
                activate(activation, &mut y);
                match dims {
                    Some((b, t, _)) => {
                        let mut y3 = unflat3(y, b, t)?;
                        zero_padded(&mut y3, lengths.unwrap_or(&[]));
                        let out = flat3(&y3)?;
                        Ok((Val::Seq(y3), Cache::Dense { out }))
                    }
                    None => Ok((Val::Vector(y.clone()), Cache::Dense { out: y })),
                }
            }
            Layer::Dropout { rate } => {
                let Some(seed) = seed.filter(|_| rate > 0.0) else { return Ok((input.clone(), Cache::None)) };
                let mut rng = Rng::new(seed);
                let keep = F::lit(1.0 / (1.0 - rate));
                let mut draw = |_: &F| if rng.uniform() < rate { F::zero() } else { keep };
                let (out, mask) = match input {
                    Val::Seq(x) => {
                        let m = x.map(&mut draw);
                        (Val::Seq(&m * x), Val::Seq(m))
                    }
                    Val::Vector(x) => {
                        let m = x.map(&mut draw);
                        (Val::Vector(&m * x), Val::Vector(m))
                    }
                    Val::Tokens(_) => return Err(internal("a dropout layer's input")),
                };
                Ok((out, Cache::Dropout { mask }))
            }
            Layer::Concatenate => {
                let parts: Vec<&Val<F>> = w.inputs.iter().map(|&v| &pass.vals[v]).collect();
                match parts[0] {
                    Val::Seq(_) => {
                        let views: Vec<Array3<F>> = parts
                            .iter()
                            .map(|p| match p {
                                Val::Seq(x) => Ok(x.clone()),
                                _ => Err(internal("a concatenation's inputs")),
                            })
                            .collect::<Result<_>>()?;
                        Ok((Val::Seq(cat3(&views)?), Cache::None))
                    }
                    _ => {
                        let views: Vec<Array2<F>> = parts
                            .iter()
                            .map(|p| match p {
                                Val::Vector(x) => Ok(x.clone()),
                                _ => Err(internal("a concatenation's inputs")),
                            })
                            .collect::<Result<_>>()?;
                        Ok((Val::Vector(cat2(&views)?), Cache::None))
                    }
                }
            }
            Layer::Attention(score) => {
                let (Val::Seq(q), Val::Seq(m)) = (input, &pass.vals[w.inputs[1]]) else {
                    return Err(internal("an attention layer's inputs"));
                };
                let mem_lengths = self.seq_lengths(pass, w.inputs[1]).unwrap_or(&[]);
                let a = attention_forward(&self.score(score, w.first_param)?, q.view(), m.view(), mem_lengths)?;
                let mut context = a.context;
                zero_padded(&mut context, lengths.unwrap_or(&[]));
                let mut weights = a.weights;
                zero_padded(&mut weights, lengths.unwrap_or(&[]));
                Ok((Val::Seq(context), Cache::Attention { weights }))
            }
        }
    }

    /// The gradients of every parameter given each output's gradient (`outs[k]`, after its
    /// activation) and, for softmax outputs under cross-entropy, the gradient of its logits.
    fn backward(&self, pass: &Pass<F>, outs: Vec<Grad<F>>, logits: Vec<Option<Array2<F>>>) -> Result<Vec<Vec<F>>> {
        let n_in = self.spec.inputs.len();
        let mut grads: Vec<Grad<F>> = (0..pass.vals.len()).map(|_| None).collect();
        let mut logit_grads: Vec<Option<Array2<F>>> = (0..self.wired.len()).map(|_| None).collect();
        for ((&v, g), lg) in self.outputs.iter().zip(outs).zip(logits) {
            if let Some(g) = g {
                add_into(&mut grads[v], g);
            }
            logit_grads[v - n_in] = lg;
        }
        let mut state_grads: Vec<Vec<StateGrad<F>>> = self.wired.iter().map(|_| Vec::new()).collect();
        let mut pgrads: Vec<Vec<F>> = self.values.iter().map(|v| vec![F::zero(); v.len()]).collect();
        for k in (0..self.wired.len()).rev() {
            let w = &self.wired[k];
            let g = grads[n_in + k].take();
            let lengths = self.seq_lengths(pass, w.inputs[0]);
            match self.spec.nodes[k].layer {
                Layer::Embedding { .. } => {
                    let (Some(Val::Seq(g)), Val::Tokens(ids)) = (g, &pass.vals[w.inputs[0]]) else { continue };
                    let dim = g.dim().2;
                    let lens = lengths.unwrap_or(&[]);
                    let table = &mut pgrads[w.first_param];
                    for (n, &len) in lens.iter().enumerate() {
                        for step in 0..len {
                            let row = &mut table[ids[[n, step]] * dim..(ids[[n, step]] + 1) * dim];
                            row.iter_mut().zip(g.slice(s![n, step, ..])).for_each(|(a, &b)| *a = *a + b);
                        }
                    }
                }
                Layer::Recurrent(r) => {
                    let Cache::Recurrent { inputs, states } = &pass.caches[k] else {
                        return Err(internal("a recurrent cache"));
                    };
                    let mine = std::mem::take(&mut state_grads[k]);
                    let lens = lengths.unwrap_or(&[]);
                    let (b, width) = states[0].0.dim();
                    let mut top_h: Option<Array2<F>> = None;
                    let mut gx: Option<Array3<F>> = match g {
                        Some(Val::Seq(g)) => Some(g),
                        Some(Val::Vector(g)) => {
                            top_h = Some(g);
                            None
                        }
                        _ => None,
                    };
                    if gx.is_none() && top_h.is_none() && mine.is_empty() {
                        continue;
                    }
                    let init_states = match w.state_from {
                        Some(from) => match &pass.caches[from] {
                            Cache::Recurrent { states, .. } => Some(states),
                            _ => return Err(internal("an initial state's source")),
                        },
                        None => None,
                    };
                    let h = r.hidden;
                    for l in (0..r.layers).rev() {
                        let mut gh = mine.get(l).and_then(|s| s.0.clone());
                        let gc = mine.get(l).and_then(|s| s.1.clone());
                        if l + 1 == r.layers {
                            if let Some(t) = top_h.take() {
                                match gh.as_mut() {
                                    Some(a) => a.zip_mut_with(&t, |x, &y| *x = *x + y),
                                    None => gh = Some(t),
                                }
                            }
                        }
                        let x = &inputs[l];
                        let mut g_in = Array3::zeros(x.dim());
                        for d in 0..r.directions() {
                            let first = w.first_param + 4 * (l * r.directions() + d);
                            let weights = self.rnn_weights(first)?;
                            let cols = s![.., d * h..(d + 1) * h];
                            let init = match init_states {
                                Some(st) => InitialState {
                                    hidden: Some(st[l].0.slice(cols)),
                                    cell: st[l].1.as_ref().map(|c| c.slice(cols)),
                                },
                                None => InitialState::default(),
                            };
                            let og = OutputGrads {
                                output: gx.as_ref().map(|g| g.slice(s![.., .., d * h..(d + 1) * h])),
                                hidden: gh.as_ref().map(|g| g.slice(cols)),
                                cell: gc.as_ref().map(|g| g.slice(cols)),
                            };
                            let gr = backward_sequences(
                                r.kind,
                                &weights,
                                x.view(),
                                &init,
                                &og,
                                &SequenceOptions { lengths: Some(lens), reverse: d == 1 },
                            )?;
                            g_in.zip_mut_with(&gr.input, |x, &y| *x = *x + y);
                            let parts: [(usize, Vec<F>); 4] = [
                                (first, gr.weights.weight_ih.iter().copied().collect()),
                                (first + 1, gr.weights.weight_hh.iter().copied().collect()),
                                (first + 2, gr.weights.bias_ih.to_vec()),
                                (first + 3, gr.weights.bias_hh.to_vec()),
                            ];
                            for (slot, src) in parts {
                                pgrads[slot].iter_mut().zip(src).for_each(|(a, b)| *a = *a + b);
                            }
                            if let Some(from) = w.state_from {
                                let slots = &mut state_grads[from];
                                if slots.len() < r.layers {
                                    slots.resize_with(r.layers, || (None, None));
                                }
                                let (sh, sc) = &mut slots[l];
                                sh.get_or_insert_with(|| Array2::zeros((b, width)))
                                    .slice_mut(cols)
                                    .zip_mut_with(&gr.initial.hidden, |a, &v| *a = *a + v);
                                if let Some(c) = &gr.initial.cell {
                                    sc.get_or_insert_with(|| Array2::zeros((b, width)))
                                        .slice_mut(cols)
                                        .zip_mut_with(c, |a, &v| *a = *a + v);
                                }
                            }
                        }
                        gx = Some(g_in);
                    }
                    if let Some(g) = gx {
                        add_into(&mut grads[w.inputs[0]], Val::Seq(g));
                    }
                }
                Layer::Dense { activation, .. } => {
                    let Cache::Dense { out } = &pass.caches[k] else { return Err(internal("a dense cache")) };
                    let lg = logit_grads[k].take();
                    if g.is_none() && lg.is_none() {
                        continue;
                    }
                    let seq_dims = match &pass.vals[w.inputs[0]] {
                        Val::Seq(x) => Some(x.dim()),
                        _ => None,
                    };
                    let mut d = match g {
                        Some(Val::Seq(g)) => flat3(&g)?,
                        Some(Val::Vector(g)) => g,
                        _ => Array2::zeros(out.dim()),
                    };
                    activation_backward(activation, out, &mut d);
                    if let Some(lg) = lg {
                        d.zip_mut_with(&lg, |x, &y| *x = *x + y);
                    }
                    if let (Some((b, t, _)), Some(lens)) = (seq_dims, lengths) {
                        let mut d3 = unflat3(d, b, t)?;
                        zero_padded(&mut d3, lens);
                        d = flat3(&d3)?;
                    }
                    let x = match &pass.vals[w.inputs[0]] {
                        Val::Seq(x) => flat3(x)?,
                        Val::Vector(x) => x.clone(),
                        Val::Tokens(_) => return Err(internal("a dense layer's input")),
                    };
                    let (units, width) = (d.ncols(), x.ncols());
                    {
                        let gw = ndarray::ArrayViewMut2::from_shape((units, width), &mut pgrads[w.first_param][..])
                            .map_err(|e| {
                                CoreError::shape("a dense gradient", format!("[{units}, {width}]"), e.to_string())
                            })?;
                        gemm(F::one(), d.t(), x.view(), F::one(), gw);
                    }
                    let mut gb = ndarray::Array1::zeros(units);
                    column_sums(d.view(), gb.view_mut());
                    pgrads[w.first_param + 1].iter_mut().zip(gb.iter()).for_each(|(a, &b)| *a = *a + b);
                    let mut dx = Array2::zeros((d.nrows(), width));
                    gemm(F::one(), d.view(), self.mat(w.first_param)?, F::zero(), dx.view_mut());
                    let gin = match seq_dims {
                        Some((b, t, _)) => Val::Seq(unflat3(dx, b, t)?),
                        None => Val::Vector(dx),
                    };
                    add_into(&mut grads[w.inputs[0]], gin);
                }
                Layer::Dropout { .. } => {
                    let Some(g) = g else { continue };
                    let g = match (g, &pass.caches[k]) {
                        (Val::Seq(g), Cache::Dropout { mask: Val::Seq(m) }) => Val::Seq(&g * m),
                        (Val::Vector(g), Cache::Dropout { mask: Val::Vector(m) }) => Val::Vector(&g * m),
                        (g, _) => g,
                    };
                    add_into(&mut grads[w.inputs[0]], g);
                }
                Layer::Concatenate => {
                    let Some(g) = g else { continue };
                    let mut at = 0;
                    for &v in &w.inputs {
                        let part = match (&g, &pass.vals[v]) {
                            (Val::Seq(g), Val::Seq(x)) => {
                                let wd = x.dim().2;
                                Val::Seq(g.slice(s![.., .., at..at + wd]).to_owned())
                            }
                            (Val::Vector(g), Val::Vector(x)) => {
                                let wd = x.ncols();
                                Val::Vector(g.slice(s![.., at..at + wd]).to_owned())
                            }
                            _ => return Err(internal("a concatenation's gradient")),
                        };
                        at += match &part {
                            Val::Seq(p) => p.dim().2,
                            Val::Vector(p) => p.ncols(),
                            Val::Tokens(_) => 0,
                        };
                        add_into(&mut grads[v], part);
                    }
                }
                Layer::Attention(score) => {
                    let Some(Val::Seq(mut gc)) = g else { continue };
                    zero_padded(&mut gc, lengths.unwrap_or(&[]));
                    let (Val::Seq(q), Val::Seq(m)) = (&pass.vals[w.inputs[0]], &pass.vals[w.inputs[1]]) else {
                        return Err(internal("an attention layer's inputs"));
                    };
                    let mem_lengths = self.seq_lengths(pass, w.inputs[1]).unwrap_or(&[]);
                    let sc = self.score(score, w.first_param)?;
                    let ag = attention_backward(&sc, q.view(), m.view(), mem_lengths, Some(gc.view()), None)?;
                    for (j, (_, pg)) in ag.params.iter().enumerate() {
                        pgrads[w.first_param + j].iter_mut().zip(pg).for_each(|(a, &b)| *a = *a + b);
                    }
                    add_into(&mut grads[w.inputs[0]], Val::Seq(ag.query));
                    add_into(&mut grads[w.inputs[1]], Val::Seq(ag.memory));
                }
            }
        }
        Ok(pgrads)
    }

    /// The losses of the outputs of `pass` against targets `idx` of `data` (per output: the sum
    /// and the number of terms its mean divides by), and when `grads`, the gradient of the sum
    /// of the outputs' means: each output's (and the logits' of softmax outputs).
    #[allow(clippy::type_complexity)]
    /// Per output: its loss summed over the valid rows of samples `idx` with their count, and
    /// with `rows` (the batch's valid rows per output, when `idx` is a shard of it) the gradient
    /// of the batch's mean.
    fn loss(
        &self,
        pass: &Pass<F>,
        data: &GraphData<F>,
        idx: &[usize],
        losses: &[GraphLoss],
        rows: Option<&[usize]>,
    ) -> Result<(Vec<(f64, usize)>, Vec<Grad<F>>, Vec<Option<Array2<F>>>)> {
        let grads = rows.is_some();
        let mut terms = Vec::with_capacity(self.outputs.len());
        let mut outs = Vec::with_capacity(self.outputs.len());
        let mut logits = Vec::with_capacity(self.outputs.len());
        for (k, &v) in self.outputs.iter().enumerate() {
            let (lens, full_t) = match self.value_shape(v) {
                Shape::Seq { source, .. } => (Some(&pass.lengths[source]), data.inputs[source].steps),
                _ => (None, 1),
            };
            let (y, dims) = match &pass.vals[v] {
                Val::Seq(y) => (flat3(y)?, Some(y.dim())),
                Val::Vector(y) => (y.clone(), None),
                Val::Tokens(_) => return Err(internal("an output")),
            };
            let width = y.ncols();
            let tb = dims.map_or(1, |d| d.1);
            // Valid rows and where their targets are.
            let mut valid: Vec<(usize, usize)> = Vec::new();
            for (b, &i) in idx.iter().enumerate() {
                let len = lens.map_or(1, |l| l[b]);
                for t in 0..len {
                    valid.push((b * tb + t, i * full_t + t));
                }
            }
            let count = F::lit(rows.and_then(|r| r.get(k).copied()).unwrap_or(valid.len()).max(1) as f64);
            let mut g = Array2::zeros((y.nrows(), width));
            match (&data.targets[k], losses[k]) {
                (GraphTarget::Classes(ids), GraphLoss::CrossEntropy) => {
                    let mut sum = 0.0;
                    for &(r, at) in &valid {
                        let c = ids[at] as usize;
                        let p = y[[r, c]].to_f64().unwrap_or(0.0).max(f64::MIN_POSITIVE);
                        sum -= p.ln();
                        if grads {
                            g.row_mut(r).zip_mut_with(&y.row(r), |a, &pv| *a = pv / count);
                            g[[r, c]] = g[[r, c]] - F::one() / count;
                        }
                    }
                    terms.push((sum, valid.len()));
                    outs.push(None);
                    logits.push(grads.then_some(g));
                }
                (GraphTarget::Values(t), GraphLoss::Mse) => {
                    let mut sum = 0.0;
                    for &(r, at) in &valid {
                        for c in 0..width {
                            let diff = y[[r, c]] - t[at * width + c];
                            sum += (diff * diff).to_f64().unwrap_or(f64::NAN);
                            if grads {
                                g[[r, c]] = F::lit(2.0) * diff / (count * F::lit(width as f64));
                            }
                        }
                    }
                    terms.push((sum, valid.len() * width));
                    let gv = match dims {
                        Some((b, t, _)) => Val::Seq(unflat3(g, b, t)?),
                        None => Val::Vector(g),
                    };
                    outs.push(grads.then_some(gv));
                    logits.push(None);
                }
                _ => return Err(CoreError::invalid(format!("losses[{k}]"), "a loss that fits the targets", "another")),
            }
        }
        Ok((terms, outs, logits))
    }

    /// The loss over samples `idx` of `data` (checked with [`Graph::check_data`] first) and its
    /// gradient by parameter, in [`Graph::params`]'s order; `dropout` seeds the dropout nodes'
    /// masks (training), `None` runs them as the identity.
    ///
    /// # Errors
    /// As [`Graph::check_data`].
    pub fn loss_and_gradient(
        &self,
        data: &GraphData<F>,
        idx: &[usize],
        losses: &[GraphLoss],
        dropout: Option<u64>,
    ) -> Result<(f64, Vec<Vec<F>>)> {
        // The batch's valid rows per output: every shard's gradient is of the batch's mean.
        let rows: Vec<usize> = self
            .outputs
            .iter()
            .map(|&v| match self.value_shape(v) {
                Shape::Seq { source, .. } => idx.iter().map(|&i| data.inputs[source].lengths[i]).sum(),
                _ => idx.len(),
            })
            .collect();
        // Shards of a fixed number of samples run side by side on the pool and their sums are
        // added in shard order: the same bits on any number of threads. The first shard's
        // dropout seed is the batch's (a batch of one shard draws the masks it drew unsharded).
        let parts: Vec<Result<ShardSums<F>>> = idx
            .par_chunks(GRAPH_SHARD)
            .enumerate()
            .map(|(s, chunk)| {
                let seed = dropout.map(|d| d ^ (s as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
                let (vals, lengths) = self.batch_inputs(data, chunk);
                let pass = self.forward(vals, lengths, seed)?;
                let (terms, outs, logits) = self.loss(&pass, data, chunk, losses, Some(&rows))?;
                Ok((terms, self.backward(&pass, outs, logits)?))
            })
            .collect();
        let mut terms = vec![(0.0, 0usize); self.outputs.len()];
        let mut sum: Option<Vec<Vec<F>>> = None;
        for part in parts {
            let (t, g) = part?;
            for (acc, (s, c)) in terms.iter_mut().zip(t) {
                acc.0 += s;
                acc.1 += c;
            }
            crate::kernels::tensor::add_into_sum(&mut sum, g);
        }
        Ok((mean_sum(&terms), sum.unwrap_or_else(|| self.values.iter().map(|v| vec![F::zero(); v.len()]).collect())))
    }

    /// The loss over all of `data`: per output, the mean over every valid step (and unit) of
    /// every sample, summed over the outputs; the same for any `batch_size` (up to rounding).
    ///
    /// # Errors
    /// As [`Graph::check_data`].
    pub fn evaluate(&self, data: &GraphData<F>, losses: &[GraphLoss], batch_size: usize) -> Result<f64> {
        self.check_data(data, Some(losses))?;
        let order: Vec<usize> = (0..data.samples).collect();
        let mut terms = vec![(0.0, 0usize); self.outputs.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let (vals, lengths) = self.batch_inputs(data, chunk);
            let pass = self.forward(vals, lengths, None)?;
            for (t, (sum, count)) in terms.iter_mut().zip(self.loss(&pass, data, chunk, losses, None)?.0) {
                t.0 += sum;
                t.1 += count;
            }
        }
        Ok(mean_sum(&terms))
    }

    /// One epoch of optimizer steps over `data`, each on the sum of the outputs' batch means;
    /// returns the mean of the batches' losses, weighted by their samples (as Keras reports it). The parameters are untouched by a batch whose loss or
    /// gradient is not finite (the error names the epoch and batch).
    ///
    /// # Errors
    /// As [`Graph::check_data`]; [`CoreError::NonFinite`].
    pub fn train_epoch(
        &mut self,
        optimizer: &mut Optimizer<F>,
        data: &GraphData<F>,
        opts: &GraphEpochOptions,
    ) -> Result<f64> {
        self.check_data(data, Some(&opts.losses))?;
        if opts.batch_size == 0 {
            return Err(CoreError::invalid("batchSize", "a positive integer", 0));
        }
        if optimizer.sizes() != self.sizes().as_slice() {
            return Err(CoreError::invalid("optimizer", "one made for this graph's parameters", "another model's"));
        }
        let mut order: Vec<usize> = (0..data.samples).collect();
        if let Some(seed) = opts.shuffle {
            Rng::new(seed).shuffle(&mut order);
        }
        let mut total = 0.0;
        for (batch, chunk) in order.chunks(opts.batch_size).enumerate() {
            let seed = opts.dropout_seed ^ (batch as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
            let (loss, mut grads) = self.loss_and_gradient(data, chunk, &opts.losses, Some(seed))?;
            let mut refs: Vec<&mut [F]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
            check_and_clip(&mut refs, loss, opts.clip_norm, None, opts.epoch, batch + 1)?;
            optimizer.step(&mut matrix_decay_params(&mut self.values, &grads, &self.shapes), F::lit(opts.lr))?;
            total += loss * chunk.len() as f64;
        }
        Ok(total / data.samples as f64)
    }

    /// The outputs for every sample of `data` (targets ignored) at the data's full steps, and
    /// every attention node's weights, in batches of `batch_size`.
    ///
    /// # Errors
    /// As [`Graph::check_data`].
    pub fn predict(&self, data: &GraphData<F>, batch_size: usize) -> Result<GraphPrediction<F>> {
        self.check_data(data, None)?;
        let n = data.samples;
        let full = |v: usize| -> Option<usize> {
            match self.value_shape(v) {
                Shape::Seq { source, .. } => Some(data.inputs[source].steps),
                _ => None,
            }
        };
        let mut outputs: Vec<(Vec<usize>, Vec<F>)> = self
            .outputs
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let (_, w) = self.output_shape(k).unwrap_or((false, 0));
                match full(v) {
                    Some(t) => (vec![n, t, w], vec![F::zero(); n * t * w]),
                    None => (vec![n, w], vec![F::zero(); n * w]),
                }
            })
            .collect();
        let attn_nodes: Vec<usize> =
            (0..self.wired.len()).filter(|&k| matches!(self.spec.nodes[k].layer, Layer::Attention(_))).collect();
        let mut attention: Vec<(String, Vec<usize>, Vec<F>)> = attn_nodes
            .iter()
            .map(|&k| {
                let w = &self.wired[k];
                let tq = full(w.inputs[0]).unwrap_or(1);
                let tk = full(w.inputs[1]).unwrap_or(1);
                (self.spec.nodes[k].name.clone(), vec![n, tq, tk], vec![F::zero(); n * tq * tk])
            })
            .collect();
        let order: Vec<usize> = (0..n).collect();
        for chunk in order.chunks(batch_size.max(1)) {
            let (vals, lengths) = self.batch_inputs(data, chunk);
            let pass = self.forward(vals, lengths, None)?;
            for (k, &v) in self.outputs.iter().enumerate() {
                let (shape, buf) = &mut outputs[k];
                match &pass.vals[v] {
                    Val::Seq(y) => {
                        let (t, w) = (shape[1], shape[2]);
                        for (b, &i) in chunk.iter().enumerate() {
                            for step in 0..y.dim().1 {
                                let at = (i * t + step) * w;
                                buf[at..at + w].iter_mut().zip(y.slice(s![b, step, ..])).for_each(|(a, &v)| *a = v);
                            }
                        }
                    }
                    Val::Vector(y) => {
                        let w = shape[1];
                        for (b, &i) in chunk.iter().enumerate() {
                            buf[i * w..(i + 1) * w].iter_mut().zip(y.row(b)).for_each(|(a, &v)| *a = v);
                        }
                    }
                    Val::Tokens(_) => return Err(internal("an output")),
                }
            }
            for (j, &k) in attn_nodes.iter().enumerate() {
                let Cache::Attention { weights } = &pass.caches[k] else { continue };
                let (_, shape, buf) = &mut attention[j];
                let (tq, tk) = (shape[1], shape[2]);
                for (b, &i) in chunk.iter().enumerate() {
                    for q in 0..weights.dim().1 {
                        for m in 0..weights.dim().2 {
                            buf[(i * tq + q) * tk + m] = weights[[b, q, m]];
                        }
                    }
                }
            }
        }
        Ok(GraphPrediction { outputs, attention })
    }
}

/// `Σ sum / count` over the outputs.
fn mean_sum(terms: &[(f64, usize)]) -> f64 {
    terms.iter().map(|&(sum, count)| sum / count.max(1) as f64).sum()
}

fn internal(what: &str) -> CoreError {
    CoreError::invalid(what, "the value the graph's wiring gives it", "another (an internal error)")
}

fn cat3<F: Real>(parts: &[Array3<F>]) -> Result<Array3<F>> {
    if parts.len() == 1 {
        return Ok(parts[0].clone());
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    concatenate(Axis(2), &views)
        .map_err(|e| CoreError::shape("a concatenation", "sequences of the same steps", e.to_string()))
}

fn cat2<F: Real>(parts: &[Array2<F>]) -> Result<Array2<F>> {
    if parts.len() == 1 {
        return Ok(parts[0].clone());
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    concatenate(Axis(1), &views)
        .map_err(|e| CoreError::shape("a concatenation", "vectors of the same batch", e.to_string()))
}
