//! A sequential model: an optional embedding, recurrent layers (stacked, bidirectional) and
//! dense layers, with its parameters under PyTorch-style names, a forward pass over a batch of
//! variable-length sequences and its backward pass.
//!
//! Inside, a batch is sorted by decreasing length and packed time-major (see
//! [`crate::rnn::sequence::Packing`]): padded steps are never computed, outputs at padded steps are
//! zero and each sequence's final state is its state at its own last step, in both directions.

use crate::error::{CoreError, Result};
use crate::kernels::linalg::{column_sums, gemm};
use crate::kernels::real::{sigmoid, Real};
use crate::kernels::tensor::{matrix, vector};
use crate::random::Rng;
use crate::rnn::cell::Cell;
use crate::rnn::cells::AnyCell;
use crate::rnn::functional::CellKind;
use crate::rnn::sequence::{backward_sequence, forward_sequence, infer_sequence, Packing, Trace, Transposed};
use crate::rnn::weights::LayerWeights;
use ndarray::{Array2, ArrayView2, ArrayView3, Axis};

/// What the model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `size` float features per step: input `[B, T, size]`.
    Features {
        /// Features per step.
        size: usize,
    },
    /// Token ids below `vocab_size` per step: input `[B, T]`; the first layer is an embedding.
    Tokens {
        /// Number of distinct tokens.
        vocab_size: usize,
    },
}

/// Activation of a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    Linear,
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Softmax over the units of each row.
    Softmax,
}

/// How a bidirectional layer combines its two directions in its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// `[forward, backward]` side by side: `2·H` features (PyTorch's layout).
    Concat,
    /// `forward + backward`: `H` features.
    Sum,
}

/// A recurrent layer: `num_layers` stacked cells, each in one or two directions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentConfig {
    /// The cell.
    pub cell: CellKind,
    /// Hidden size `H` of every stacked layer and direction.
    pub hidden_size: usize,
    /// Stacked layers (`weight_ih_l0`, `weight_ih_l1`, ...).
    pub num_layers: usize,
    /// Run a second cell from the last step to the first (`..._reverse` weights).
    pub bidirectional: bool,
    /// How the two directions combine in the layer's output (between stacked layers they are
    /// always concatenated, as in PyTorch).
    pub merge: Merge,
    /// Output the sequence `[B, T, ·]` (true) or the final states `[B, ·]` (false).
    pub return_sequences: bool,
    /// Dropout probability on the outputs of each stacked layer except the last, in training.
    pub dropout: f64,
}

/// One layer of a [`ModelConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerConfig {
    /// Token ids to vectors: `weight [vocab_size, dim]`.
    Embedding {
        /// Vector size.
        dim: usize,
    },
    /// RNN, LSTM or GRU.
    Recurrent(RecurrentConfig),
    /// `y = act(x·Wᵀ + b)`, `weight [units, in]`, `bias [units]`; applied at every step of a
    /// sequence.
    Dense {
        /// Output features.
        units: usize,
        /// Activation.
        activation: Activation,
    },
}

/// A model's architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// What the model reads.
    pub input: InputKind,
    /// The layers, first to last.
    pub layers: Vec<LayerConfig>,
}

/// One named parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<F> {
    /// PyTorch-style name: `{layer}.weight_ih_l0`, `{layer}.weight`, ...
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<F>,
    /// Whether weight decay applies (weights yes, biases no).
    pub decay: bool,
}

/// Resolved sizes of one layer.
#[derive(Clone, Debug, PartialEq)]
struct LayerInfo {
    config: LayerConfig,
    /// Features per row going in.
    input_width: usize,
    /// Features per row coming out.
    output_width: usize,
    /// Whether the output is a sequence (else one row per sequence).
    sequence_out: bool,
    /// First tensor of the layer in [`Model::tensors`].
    first_tensor: usize,
}

/// The state of the recurrent layers between calls (truncated BPTT, streaming): for each
/// recurrent layer, for each stacked layer and direction, `h: [B, H]` and `c: [B, H]` (LSTM).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelState<F> {
    /// `[layer][l·D + d]` hidden states `[B, H]`.
    pub hidden: Vec<Vec<Vec<F>>>,
    /// `[layer][l·D + d]` cell states `[B, H]` (empty for cells without one).
    pub cell: Vec<Vec<Vec<F>>>,
}

impl<F> Default for ModelState<F> {
    fn default() -> Self {
        ModelState { hidden: Vec::new(), cell: Vec::new() }
    }
}

/// A batch ready for the layers: sorted by decreasing length and packed.
#[derive(Clone, Debug)]
pub struct PackedBatch<F> {
    /// Row layout.
    pub packing: Packing,
    /// `order[i]` is the original index of the `i`-th sequence after sorting.
    pub order: Vec<usize>,
    /// `[N, I]` packed features (empty for token input).
    pub features: Array2<F>,
    /// `[N]` packed token ids (empty for feature input).
    pub tokens: Vec<u32>,
    /// Number of steps `T` of the padded input.
    pub steps: usize,
}

/// A batch of inputs, batch-first.
#[derive(Clone, Copy, Debug)]
pub enum Inputs<'a, F> {
    /// `[B, T, I]` features.
    Features(ArrayView3<'a, F>),
    /// `[B, T]` token ids.
    Tokens(ArrayView2<'a, u32>),
}

impl<F> Inputs<'_, F> {
    /// `(B, T)`.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Inputs::Features(x) => (x.dim().0, x.dim().1),
            Inputs::Tokens(x) => x.dim(),
        }
    }
}

/// Rows between layers: a packed sequence `[N, width]` or one row per sequence `[B, width]`.
#[derive(Clone, Debug)]
struct Act<F> {
    data: Array2<F>,
    sequence: bool,
}

enum Cache<F> {
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
    caches: Vec<Cache<F>>,
    /// The batch it ran on.
    pub batch: PackedBatch<F>,
    /// `[rows, units]` output of the last layer before its activation, when that differs from
    /// the output (see [`ForwardTrace::logits`]).
    logits: Option<Array2<F>>,
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

/// A sequential model with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Model<F> {
    config: ModelConfig,
    layers: Vec<LayerInfo>,
    /// The parameters, in layer order, under PyTorch-style names.
    pub tensors: Vec<Tensor<F>>,
    /// Epochs of training completed so far (across `fit` calls and save/load): numbers the
    /// next epoch, seeds its shuffle and dropout, and ticks the learning-rate schedule, so
    /// that training resumed later matches uninterrupted training.
    pub trained_epochs: usize,
}

/// The most parameter values a model may have (1 GiB of f32): larger requests are errors, not
/// allocations that could exhaust memory.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// The number of parameter values `config` needs, checked against [`MAX_PARAMETERS`] with
/// overflow-checked arithmetic, before anything is allocated.
fn parameter_budget(config: &ModelConfig) -> Result<usize> {
    let too_big =
        |n: String| invalid("model size", format!("at most {MAX_PARAMETERS} parameters (1 GiB); reduce the sizes"), n);
    let mul = |a: usize, b: usize| a.checked_mul(b).ok_or_else(|| too_big(format!("{a} × {b} parameters")));
    let mut width = match config.input {
        InputKind::Features { size } => size,
        InputKind::Tokens { vocab_size } => vocab_size,
    };
    let mut total = 0usize;
    for layer in &config.layers {
        let (n, out) = match *layer {
            LayerConfig::Embedding { dim } => (mul(width, dim)?, dim),
            LayerConfig::Dense { units, .. } => (mul(units, width)?.saturating_add(units), units),
            LayerConfig::Recurrent(r) => {
                let dirs = if r.bidirectional { 2 } else { 1 };
                let gh = mul(r.cell.gates(), r.hidden_size)?;
                let first = mul(gh, width)?.saturating_add(mul(gh, r.hidden_size)?).saturating_add(2 * gh);
                let later =
                    mul(gh, dirs * r.hidden_size)?.saturating_add(mul(gh, r.hidden_size)?).saturating_add(2 * gh);
                let per_dir = first.saturating_add(mul(later, r.num_layers.saturating_sub(1))?);
                let out = if r.bidirectional && r.merge == Merge::Concat { 2 * r.hidden_size } else { r.hidden_size };
                (mul(per_dir, dirs)?, out)
            }
        };
        total = total.saturating_add(n);
        width = out;
    }
    if total > MAX_PARAMETERS {
        return Err(too_big(format!("{total} parameters")));
    }
    Ok(total)
}

fn invalid(what: impl Into<String>, expected: impl Into<String>, got: impl ToString) -> CoreError {
    CoreError::InvalidArgument { what: what.into(), expected: expected.into(), got: got.to_string() }
}

fn suffix(d: usize) -> &'static str {
    if d == 0 {
        ""
    } else {
        "_reverse"
    }
}

impl<F: Real> Model<F> {
    /// Builds a model and initialises its parameters as PyTorch does, from `seed`: recurrent
    /// tensors and dense layers `U(-1/√fan, 1/√fan)` (fan = `H`, resp. the dense input width),
    /// embeddings `N(0, 1)`.
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] naming the layer and field for a size of zero, a dropout
    /// outside `[0, 1)`, an embedding that is not first or is missing for token input, or a
    /// recurrent layer after a layer that does not output a sequence.
    pub fn new(config: ModelConfig, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let (mut width, mut sequence) = match config.input {
            InputKind::Features { size } => (crate::kernels::tensor::positive("input size", size)?, true),
            InputKind::Tokens { vocab_size } => (crate::kernels::tensor::positive("vocabSize", vocab_size)?, true),
        };
        if config.layers.is_empty() {
            return Err(invalid("layers", "at least one layer", "none"));
        }
        parameter_budget(&config)?;
        let mut layers = Vec::new();
        let mut tensors: Vec<Tensor<F>> = Vec::new();
        for (i, layer) in config.layers.iter().enumerate() {
            let what = |field: &str| format!("layers[{i}].{field}");
            let first_tensor = tensors.len();
            let mut uniform = |name: String, shape: Vec<usize>, bound: f64, decay: bool, rng: &mut Rng| {
                let n = shape.iter().product();
                let data = (0..n).map(|_| F::lit(rng.range(-bound, bound))).collect();
                tensors.push(Tensor { name, shape, data, decay });
            };
            let (out_width, out_seq) = match *layer {
                LayerConfig::Embedding { dim } => {
                    crate::kernels::tensor::positive(&what("dim"), dim)?;
                    if i != 0 || !matches!(config.input, InputKind::Tokens { .. }) {
                        return Err(invalid(
                            what("type"),
                            "an embedding only as the first layer of a token model",
                            "embedding",
                        ));
                    }
                    let data = (0..width * dim).map(|_| F::lit(rng.normal())).collect();
                    tensors.push(Tensor { name: format!("{i}.weight"), shape: vec![width, dim], data, decay: true });
                    (dim, true)
                }
                LayerConfig::Recurrent(r) => {
                    crate::kernels::tensor::positive(&what("hiddenSize"), r.hidden_size)?;
                    crate::kernels::tensor::positive(&what("numLayers"), r.num_layers)?;
                    if !(0.0..1.0).contains(&r.dropout) {
                        return Err(invalid(what("dropout"), "in [0, 1)", r.dropout));
                    }
                    if !sequence {
                        return Err(invalid(what("type"), "a layer after one that outputs a sequence", "recurrent"));
                    }
                    let h = r.hidden_size;
                    let dirs = if r.bidirectional { 2 } else { 1 };
                    let gh = r.cell.gates() * h;
                    let bound = 1.0 / (h as f64).sqrt();
                    for l in 0..r.num_layers {
                        let input = if l == 0 { width } else { dirs * h };
                        for d in 0..dirs {
                            let s = suffix(d);
                            uniform(format!("{i}.weight_ih_l{l}{s}"), vec![gh, input], bound, true, &mut rng);
                            uniform(format!("{i}.weight_hh_l{l}{s}"), vec![gh, h], bound, true, &mut rng);
                            uniform(format!("{i}.bias_ih_l{l}{s}"), vec![gh], bound, false, &mut rng);
                            uniform(format!("{i}.bias_hh_l{l}{s}"), vec![gh], bound, false, &mut rng);
                        }
                    }
                    let out = if r.bidirectional && r.merge == Merge::Concat { 2 * h } else { h };
                    (out, r.return_sequences)
                }
                LayerConfig::Dense { units, .. } => {
                    crate::kernels::tensor::positive(&what("units"), units)?;
                    if i == 0 && matches!(config.input, InputKind::Tokens { .. }) {
                        return Err(invalid(what("type"), "an embedding first in a token model", "dense"));
                    }
                    let bound = 1.0 / (width as f64).sqrt();
                    uniform(format!("{i}.weight"), vec![units, width], bound, true, &mut rng);
                    uniform(format!("{i}.bias"), vec![units], bound, false, &mut rng);
                    (units, sequence)
                }
            };
            if matches!(config.input, InputKind::Tokens { .. })
                && i == 0
                && !matches!(layer, LayerConfig::Embedding { .. })
            {
                return Err(invalid(what("type"), "an embedding first in a token model", "another layer"));
            }
            layers.push(LayerInfo {
                config: *layer,
                input_width: width,
                output_width: out_width,
                sequence_out: out_seq,
                first_tensor,
            });
            width = out_width;
            sequence = out_seq;
        }
        Ok(Model { config, layers, tensors, trained_epochs: 0 })
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Features per row of the model's output.
    pub fn output_width(&self) -> usize {
        self.layers.last().map_or(0, |l| l.output_width)
    }

    /// Whether the model outputs a sequence `[B, T, ·]` (else `[B, ·]`).
    pub fn outputs_sequence(&self) -> bool {
        self.layers.last().is_some_and(|l| l.sequence_out)
    }

    /// Activation of the last layer, if it is dense.
    pub fn final_activation(&self) -> Option<Activation> {
        match self.layers.last().map(|l| l.config) {
            Some(LayerConfig::Dense { activation, .. }) => Some(activation),
            _ => None,
        }
    }

    /// Total number of parameter values.
    pub fn parameter_count(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
    }

    /// Sorts a batch by decreasing length and packs it. `lengths: [B]` (each in `1..=T`)
    /// defaults to `T` for every sequence.
    ///
    /// # Errors
    /// When the input width differs from the model's, a length is out of range or a token id
    /// is outside the vocabulary (naming the sequence and step).
    pub fn pack(&self, inputs: Inputs<F>, lengths: Option<&[usize]>) -> Result<PackedBatch<F>> {
        let all: Vec<usize> = (0..inputs.dims().0).collect();
        self.pack_samples(inputs, &all, lengths)
    }

    /// [`Model::pack`] of the batch made of the sequences `samples` of `inputs` (in that
    /// order), read in place. `lengths`, when given, has one entry per sequence of `inputs`.
    ///
    /// # Errors
    /// As [`Model::pack`] (naming sequences by their index in `inputs`), and when a sample
    /// index is out of range.
    pub fn pack_samples(
        &self,
        inputs: Inputs<F>,
        samples: &[usize],
        lengths: Option<&[usize]>,
    ) -> Result<PackedBatch<F>> {
        let (all, steps) = inputs.dims();
        let batch = samples.len();
        crate::kernels::tensor::positive("batch size", batch)?;
        crate::kernels::tensor::positive("steps", steps)?;
        if let Some(&s) = samples.iter().find(|&&s| s >= all) {
            return Err(invalid("sample index", format!("an index below {all}"), s));
        }
        let lengths: Vec<usize> = match lengths {
            Some(l) => {
                if l.len() != all {
                    return Err(CoreError::shape("lengths", format!("[{all}]"), format!("[{}]", l.len())));
                }
                if let Some(&s) = samples.iter().find(|&&s| l[s] == 0 || l[s] > steps) {
                    return Err(invalid(format!("lengths[{s}]"), format!("an integer in 1..={steps}"), l[s]));
                }
                samples.iter().map(|&s| l[s]).collect()
            }
            None => vec![steps; batch],
        };
        let mut order: Vec<usize> = (0..batch).collect();
        order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a])); // stable: ties keep their order
        let sorted: Vec<usize> = order.iter().map(|&i| lengths[i]).collect();
        let packing = Packing::from_sorted_lengths(&sorted)?;
        let (mut features, mut tokens) = (Array2::zeros((0, 0)), Vec::new());
        match (inputs, self.config.input) {
            (Inputs::Features(x), InputKind::Features { size }) => {
                if x.dim().2 != size {
                    return Err(CoreError::shape("x", format!("[{all}, {steps}, {size}]"), format!("{:?}", x.dim())));
                }
                let mut rows = Vec::with_capacity(packing.rows() * size);
                for t in 0..packing.steps() {
                    for &b in &order[..packing.rows_at(t)] {
                        let src = x.slice(ndarray::s![samples[b], t, ..]);
                        match src.as_slice() {
                            Some(v) => rows.extend_from_slice(v),
                            None => rows.extend(src.iter().copied()),
                        }
                    }
                }
                features = Array2::from_shape_vec((packing.rows(), size), rows)
                    .map_err(|e| CoreError::shape("x", format!("[{}, {size}]", packing.rows()), e.to_string()))?;
            }
            (Inputs::Tokens(x), InputKind::Tokens { vocab_size }) => {
                tokens = vec![0; packing.rows()];
                for t in 0..packing.steps() {
                    for i in 0..packing.rows_at(t) {
                        let sample = samples[order[i]];
                        let id = x[[sample, t]];
                        if id as usize >= vocab_size {
                            return Err(invalid(
                                format!("x[{sample}][{t}]"),
                                format!("a token id below the vocabulary size {vocab_size}"),
                                id,
                            ));
                        }
                        tokens[packing.offset(t) + i] = id;
                    }
                }
            }
            (Inputs::Features(_), InputKind::Tokens { .. }) => {
                return Err(invalid("x", "token ids (the model starts with an embedding)", "float features"))
            }
            (Inputs::Tokens(_), InputKind::Features { .. }) => {
                return Err(invalid("x", "float features (the model has no embedding)", "token ids"))
            }
        }
        Ok(PackedBatch { packing, order, features, tokens, steps })
    }

    fn weights(&self, first: usize) -> Result<LayerWeights<'_, F>> {
        let t = |k: usize| &self.tensors[first + k];
        let (wi, wh) = (t(0), t(1));
        Ok(LayerWeights {
            weight_ih: matrix(&wi.name, &wi.data, wi.shape[0], wi.shape[1])?,
            weight_hh: matrix(&wh.name, &wh.data, wh.shape[0], wh.shape[1])?,
            bias_ih: vector(&t(2).name, &t(2).data, t(2).shape[0])?,
            bias_hh: vector(&t(3).name, &t(3).data, t(3).shape[0])?,
        })
    }

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

    /// `[rows, units]` the dense layer's pre-activation `b + x·Wᵀ` for `x: [rows, in]`.
    fn dense(&self, info: &LayerInfo, units: usize, x: ArrayView2<F>) -> Result<Array2<F>> {
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

    /// Runs the model on a packed batch for its outputs only: no dropout, nothing kept for
    /// backward (the recurrent layers run [`infer_sequence`], which holds the gates of a few
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

    /// `[N, dim]` the embedding rows of the packed token ids.
    fn embed(&self, dim: usize, info: &LayerInfo, tokens: &[u32]) -> Array2<F> {
        let w = &self.tensors[info.first_tensor].data;
        let mut out = Array2::zeros((tokens.len(), dim));
        for (mut row, &id) in out.rows_mut().into_iter().zip(tokens) {
            let id = id as usize;
            row.assign(&ndarray::ArrayView1::from(&w[id * dim..(id + 1) * dim]));
        }
        out
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

    /// Gradients of every parameter (same order and sizes as [`Model::tensors`]) given the
    /// gradient of the loss with respect to the last layer's output: `d_logits` before its
    /// activation when `pre_activation` (softmax/sigmoid fused into the loss), else after.
    /// The trace is consumed: each layer's cache is freed once its gradients are computed
    /// (take [`ForwardTrace::state`] out first to keep it).
    pub fn backward(&self, trace: ForwardTrace<F>, d_last: Array2<F>, pre_activation: bool) -> Result<Vec<Vec<F>>> {
        // Every gradient is written whole by its layer, except the embedding's (accumulated).
        let mut grads: Vec<Vec<F>> = vec![Vec::new(); self.tensors.len()];
        let ForwardTrace { mut caches, batch, logits, output, sequence: _, state } = trace;
        drop((logits, output, state));
        let packing = &batch.packing;
        let mut d = d_last;
        for (i, info) in self.layers.iter().enumerate().rev() {
            let last = i + 1 == self.layers.len();
            let cache = caches.pop().ok_or_else(|| invalid("trace", "a trace of this model", "a shorter trace"))?;
            match (info.config, cache) {
                (LayerConfig::Dense { units, activation }, Cache::Dense { input, output }) => {
                    let mut d_pre = d;
                    if let (false, Some(output)) = (last && pre_activation, &output) {
                        activation_backward(activation, output, &mut d_pre);
                    }
                    let w = &self.tensors[info.first_tensor];
                    // Products accumulate into fresh zeros (β = 1): one pass of zeroing, not two.
                    let mut dw = Array2::zeros((units, info.input_width));
                    gemm(F::one(), d_pre.t(), input.view(), F::one(), dw.view_mut());
                    grads[info.first_tensor] = into_vec(dw);
                    let mut db = ndarray::Array1::zeros(units);
                    column_sums(d_pre.view(), db.view_mut());
                    grads[info.first_tensor + 1] = db.to_vec();
                    if i == 0 {
                        break;
                    }
                    let wm = matrix(&w.name, &w.data, units, info.input_width)?;
                    let mut dx = Array2::zeros((input.nrows(), info.input_width));
                    gemm(F::one(), d_pre.view(), wm, F::one(), dx.view_mut());
                    d = dx;
                }
                (LayerConfig::Recurrent(r), Cache::Recurrent { inputs, traces, masks }) => {
                    d = self.recurrent_backward(info, &r, inputs, traces, &masks, d, packing, &mut grads, i > 0)?;
                    if i == 0 {
                        break;
                    }
                }
                (LayerConfig::Embedding { dim }, Cache::Embedding { ids }) => {
                    let g = &mut grads[info.first_tensor];
                    g.resize(self.tensors[info.first_tensor].data.len(), F::zero());
                    for (row, &id) in d.rows().into_iter().zip(&ids) {
                        let dst = &mut g[id as usize * dim..(id as usize + 1) * dim];
                        dst.iter_mut().zip(row).for_each(|(a, &v)| *a = *a + v);
                    }
                }
                _ => return Err(invalid("trace", "a trace of this model", "a trace of another model")),
            }
        }
        Ok(grads)
    }

    #[allow(clippy::too_many_arguments)]
    fn recurrent_backward(
        &self,
        info: &LayerInfo,
        r: &RecurrentConfig,
        mut inputs: Vec<Array2<F>>,
        mut traces: Vec<Trace<F>>,
        masks: &[Vec<F>],
        d_out: Array2<F>,
        packing: &Packing,
        grads: &mut [Vec<F>],
        input_grad: bool,
    ) -> Result<Array2<F>> {
        let cell = AnyCell::new(r.cell);
        let h = r.hidden_size;
        let dirs = if r.bidirectional { 2 } else { 1 };
        let n = packing.rows();
        // Per direction of the top layer: the gradient of its packed outputs or final states.
        let split = |a: &Array2<F>, d: usize| -> Vec<F> {
            let cols = if dirs == 2 && r.merge == Merge::Sum { 0..h } else { d * h..(d + 1) * h };
            a.slice(ndarray::s![.., cols]).iter().copied().collect()
        };
        let mut d_seq: Vec<Vec<F>> = vec![Vec::new(); dirs];
        let mut d_fin: Vec<Vec<F>> = vec![Vec::new(); dirs];
        let target = if r.return_sequences { &mut d_seq } else { &mut d_fin };
        if dirs == 1 {
            // One direction: the gradient is the layer's whole output gradient (no copy).
            target[0] = into_vec(d_out);
        } else {
            for (d, t) in target.iter_mut().enumerate() {
                *t = split(&d_out, d);
            }
            drop(d_out);
        }
        let mut dx = Array2::zeros((0, 0));
        for l in (0..r.num_layers).rev() {
            let x = inputs.pop().ok_or_else(|| invalid("trace", "a trace of this model", "a shorter trace"))?;
            // The model's own input needs no gradient (nothing before it learns).
            let need_dx = l > 0 || input_grad;
            dx = if need_dx { Array2::zeros(x.dim()) } else { Array2::zeros((0, x.ncols())) };
            let layer_traces = traces.split_off(l * dirs);
            for (d, trace) in layer_traces.into_iter().enumerate() {
                let k = l * dirs + d;
                let first = info.first_tensor + 4 * k;
                let w = self.weights(first)?;
                let g = backward_sequence(&cell, &w, x.view(), trace, &d_seq[d], &d_fin[d], &[], need_dx)?;
                if need_dx {
                    dx.zip_mut_with(&g.input, |a, &v| *a = *a + v);
                }
                grads[first] = into_vec(g.weights.weight_ih);
                grads[first + 1] = into_vec(g.weights.weight_hh);
                grads[first + 2] = g.weights.bias_ih.to_vec();
                grads[first + 3] = g.weights.bias_hh.to_vec();
            }
            if l > 0 {
                if let Some(mask) = masks.get(l - 1) {
                    dx.iter_mut().zip(mask).for_each(|(v, &m)| *v = *v * m);
                }
                for d in 0..dirs {
                    d_seq[d] = dx.slice(ndarray::s![.., d * h..(d + 1) * h]).iter().copied().collect();
                    d_fin[d] = Vec::new();
                }
            }
        }
        debug_assert!(dx.nrows() == n || !input_grad);
        Ok(dx)
    }

    /// Unpacks a packed `[N, W]` sequence output of `batch` to batch-first `[B, T, W]` in the
    /// original order, zeros at padded steps; or reorders a `[B, W]` output.
    pub fn unpack(&self, batch: &PackedBatch<F>, rows: ArrayView2<F>, sequence: bool) -> Vec<F> {
        let per = if sequence { batch.steps } else { 1 } * rows.ncols();
        let mut out = vec![F::zero(); batch.packing.batch() * per];
        self.unpack_into(batch, rows, sequence, &mut out);
        out
    }

    /// [`Model::unpack`] into `out: [B, T, W]` (or `[B, W]`), which must hold zeros at the
    /// padded steps (they are not written).
    pub fn unpack_into(&self, batch: &PackedBatch<F>, rows: ArrayView2<F>, sequence: bool, out: &mut [F]) {
        let w = rows.ncols();
        let p = &batch.packing;
        let copy = |dst: &mut [F], src: ndarray::ArrayView1<F>| match src.as_slice() {
            Some(v) => dst.copy_from_slice(v),
            None => dst.iter_mut().zip(src).for_each(|(o, &v)| *o = v),
        };
        if sequence {
            for t in 0..p.steps() {
                for i in 0..p.rows_at(t) {
                    let dst = (batch.order[i] * batch.steps + t) * w;
                    copy(&mut out[dst..dst + w], rows.row(p.offset(t) + i));
                }
            }
        } else {
            for (i, &orig) in batch.order.iter().enumerate() {
                copy(&mut out[orig * w..(orig + 1) * w], rows.row(i));
            }
        }
    }

    /// Packs batch-first per-sequence or per-step values (`[B, W]` or `[B, T, W]`, original
    /// order) into the row order of `batch` (`[B, W]` sorted, or `[N, W]` packed).
    pub fn pack_rows<T: Copy + Default>(
        &self,
        batch: &PackedBatch<F>,
        values: &[T],
        width: usize,
        sequence: bool,
    ) -> Vec<T> {
        self.pack_rows_of(batch, values, None, width, sequence)
    }

    /// As [`Model::pack_rows`], for a batch made of the sequences `samples` of a larger set
    /// (`values` holds all of them; [`Model::pack_samples`]); `None`: `values` is the batch's.
    pub fn pack_rows_of<T: Copy + Default>(
        &self,
        batch: &PackedBatch<F>,
        values: &[T],
        samples: Option<&[usize]>,
        width: usize,
        sequence: bool,
    ) -> Vec<T> {
        let p = &batch.packing;
        let sample = |j: usize| samples.map_or(j, |s| s[j]);
        if sequence {
            let mut out = vec![T::default(); p.rows() * width];
            for t in 0..p.steps() {
                for i in 0..p.rows_at(t) {
                    let src = (sample(batch.order[i]) * batch.steps + t) * width;
                    let dst = (p.offset(t) + i) * width;
                    out[dst..dst + width].copy_from_slice(&values[src..src + width]);
                }
            }
            out
        } else {
            let rows = batch.order.iter().map(|&o| sample(o));
            rows.flat_map(|o| values[o * width..(o + 1) * width].iter().copied()).collect()
        }
    }

    /// The zero state of the recurrent layers for `batch` sequences (the starting state of
    /// [`Model::forward`]'s; [`Model::stream_state`] for streams).
    pub fn zero_state(&self, batch: usize) -> ModelState<F> {
        self.try_zero_state(batch).unwrap_or_default()
    }

    /// [`Model::zero_state`], refusing (instead of allocating) more than [`MAX_PARAMETERS`] values.
    pub fn try_zero_state(&self, batch: usize) -> Result<ModelState<F>> {
        let per: usize = self
            .layers
            .iter()
            .filter_map(|l| match l.config {
                LayerConfig::Recurrent(r) => {
                    let n = r.num_layers * if r.bidirectional { 2 } else { 1 };
                    Some(n * r.hidden_size * if r.cell.has_cell_state() { 2 } else { 1 })
                }
                _ => None,
            })
            .sum();
        if batch.checked_mul(per).is_none_or(|n| n > MAX_PARAMETERS) {
            return Err(invalid(
                "batch",
                format!("at most {} streams for this model", MAX_PARAMETERS / per.max(1)),
                batch,
            ));
        }
        Ok(self.zero_state_unchecked(batch))
    }

    /// Lengths of the vectors of a state of `batch` streams, hidden states then cell states, in
    /// [`ModelState`]'s order — what [`Model::step`] checks a state against without building one.
    fn state_lengths(&self, batch: usize) -> Vec<usize> {
        let recurrent = || {
            self.layers.iter().filter_map(|l| match l.config {
                LayerConfig::Recurrent(r) => Some((r.num_layers * if r.bidirectional { 2 } else { 1 }, r)),
                _ => None,
            })
        };
        let hidden = recurrent().flat_map(|(n, r)| std::iter::repeat_n(batch * r.hidden_size, n));
        let cell = recurrent()
            .flat_map(|(n, r)| std::iter::repeat_n(if r.cell.has_cell_state() { batch * r.hidden_size } else { 0 }, n));
        hidden.chain(cell).collect()
    }

    fn zero_state_unchecked(&self, batch: usize) -> ModelState<F> {
        let mut state = ModelState::default();
        for info in &self.layers {
            if let LayerConfig::Recurrent(r) = info.config {
                let n = r.num_layers * if r.bidirectional { 2 } else { 1 };
                let lstm = r.cell.has_cell_state();
                state.hidden.push(vec![vec![F::zero(); batch * r.hidden_size]; n]);
                state.cell.push(vec![if lstm { vec![F::zero(); batch * r.hidden_size] } else { Vec::new() }; n]);
            }
        }
        state
    }

    /// Refuses a model with a bidirectional recurrent layer as a stream: a stream runs one step
    /// at a time, and a backward direction needs the whole sequence (its first output depends
    /// on the last step).
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] naming the first bidirectional layer.
    pub fn check_streamable(&self) -> Result<()> {
        for (i, info) in self.layers.iter().enumerate() {
            if let LayerConfig::Recurrent(RecurrentConfig { bidirectional: true, .. }) = info.config {
                return Err(invalid(
                    format!("layers[{i}].bidirectional"),
                    format!(
                        "false for a stream (a stream runs one step at a time and cannot run layer {i}'s backward \
                         direction, which needs the whole sequence; use predict)"
                    ),
                    true,
                ));
            }
        }
        Ok(())
    }

    /// The zero state of `batch` independent streams, for [`Model::step`].
    ///
    /// # Errors
    /// As [`Model::check_streamable`] and [`Model::try_zero_state`].
    pub fn stream_state(&self, batch: usize) -> Result<ModelState<F>> {
        self.check_streamable()?;
        self.try_zero_state(batch)
    }

    /// One time step for `B` independent streams: `inputs` is `[B, 1, I]` (or `[B, 1]` token
    /// ids), `state` the streams' state (from [`Model::stream_state`] or an earlier step),
    /// updated in place. Returns the model's output at this step, `[B, O]`.
    ///
    /// # Errors
    /// When the model has a bidirectional layer ([`Model::check_streamable`]), or the input or
    /// the state does not fit the model (nothing is changed then).
    pub fn step(&self, inputs: Inputs<F>, state: &mut ModelState<F>) -> Result<Vec<F>> {
        self.check_streamable()?;
        let (b, t) = inputs.dims();
        if t != 1 {
            return Err(invalid("x", "one step per stream", format!("{t} steps")));
        }
        let lens: Vec<usize> = state.hidden.iter().chain(&state.cell).flatten().map(Vec::len).collect();
        if lens != self.state_lengths(b) {
            return Err(CoreError::shape("state", format!("the state of {b} streams of this model"), "another shape"));
        }
        if let (Inputs::Tokens(x), InputKind::Tokens { vocab_size }) = (inputs, self.config.input) {
            if let Some((b, &id)) = x.iter().enumerate().find(|(_, &id)| id as usize >= vocab_size) {
                return Err(invalid(
                    format!("input[{b}]"),
                    format!("a token id below the vocabulary size {vocab_size}"),
                    id,
                ));
            }
        }
        let batch = self.pack(inputs, None)?;
        let inferred = self.infer(&batch, Some(state), None)?;
        if inferred.state.hidden.len() != state.hidden.len() {
            return Err(CoreError::shape("state", "one entry per recurrent layer", "another count"));
        }
        *state = inferred.state;
        Ok(into_vec(inferred.output))
    }

    /// Replaces every parameter's values (same order and sizes as [`Model::tensors`]).
    pub fn set_parameters(&mut self, values: Vec<Vec<F>>) -> Result<()> {
        if values.len() != self.tensors.len() {
            return Err(CoreError::shape(
                "parameters",
                format!("{} tensors", self.tensors.len()),
                values.len().to_string(),
            ));
        }
        for (t, v) in self.tensors.iter().zip(&values) {
            if t.data.len() != v.len() {
                return Err(CoreError::shape(
                    &t.name,
                    format!("{} values", t.data.len()),
                    format!("{} values", v.len()),
                ));
            }
        }
        for (t, v) in self.tensors.iter_mut().zip(values) {
            t.data = v;
        }
        Ok(())
    }
}

/// The starting state `(h0, c0)` (`[B, H]` each; `c0` empty without a cell state) of stacked
/// layer and direction `k`: from `init` when given, else `zeros`.
#[allow(clippy::type_complexity)]
fn initial_state<'a, F: Real>(
    init: Option<(&'a Vec<Vec<F>>, Option<&'a Vec<Vec<F>>>)>,
    k: usize,
    has_c: bool,
    zeros: &'a [F],
    b: usize,
    h: usize,
) -> Result<(&'a [F], &'a [F])> {
    let h0 = init.and_then(|(hh, _)| hh.get(k)).map_or(zeros, |v| &v[..]);
    let c0 = if has_c { init.and_then(|(_, c)| c?.get(k)).map_or(zeros, |v| &v[..]) } else { &[] };
    if h0.len() != b * h || c0.len() != if has_c { b * h } else { 0 } {
        return Err(CoreError::shape("state", format!("[{b}, {h}]"), format!("{} values", h0.len())));
    }
    Ok((h0, c0))
}

/// A recurrent layer's output from its top layer's packed outputs `x: [N, D·H]` and the final
/// hidden states `hs` (`l·D + d` order): the sequence, or each sequence's final state; the two
/// directions concatenated or summed.
fn recurrent_output<F: Real>(r: &RecurrentConfig, b: usize, x: Array2<F>, hs: &[Vec<F>]) -> Result<Act<F>> {
    let h = r.hidden_size;
    let dirs = if r.bidirectional { 2 } else { 1 };
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
fn activation_backward<F: Real>(activation: Activation, y: &Array2<F>, d: &mut Array2<F>) {
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

/// The elements of `a` in row-major order: its own buffer when it is in standard layout (no
/// copy), else a copy.
fn into_vec<F: Real>(a: Array2<F>) -> Vec<F> {
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
