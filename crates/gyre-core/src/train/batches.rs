//! A dataset in memory and the batches cut from it: checks of its arrays against the model,
//! samples gathered or read in place, and the chunks of truncated backpropagation through time.

use super::fit::{invalid, LossKind};
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::model::{Inputs, Model, PackedBatch};
use ndarray::{Array2, Array3, Axis};

/// Targets of a dataset, batch-first, for all `S` samples.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a, F> {
    /// Class ids: `[S]` for a model that outputs one row per sequence, `[S, T]` per step.
    Classes(&'a [u32]),
    /// Values: `[S, O]`, or `[S, T, O]` per step.
    Values(&'a [F]),
}

/// A dataset held in memory: inputs `[S, T, I]` (or token ids `[S, T]`), optional lengths `[S]`
/// and targets.
#[derive(Clone, Copy, Debug)]
pub struct Dataset<'a, F> {
    /// The input sequences.
    pub inputs: Inputs<'a, F>,
    /// Each sequence's length (default: all `T`).
    pub lengths: Option<&'a [usize]>,
    /// The targets.
    pub targets: Targets<'a, F>,
    /// Each sample's weight in the loss, `[S]` (finite, non-negative): the loss is the
    /// weighted mean `Σ w·l / Σ w` over the counted rows (every step of a sequence weighs its
    /// sample's weight). `None`: every sample 1.
    pub weights: Option<&'a [F]>,
}

impl<F: Real> Dataset<'_, F> {
    /// Number of samples `S`.
    pub fn len(&self) -> usize {
        self.inputs.dims().0
    }

    /// Whether the dataset has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks that the dataset's arrays fit the model and each other; `set` names the dataset in
/// messages (`"train"`, `"validation"`, or `""`).
pub fn check_dataset<F: Real>(model: &Model<F>, data: &Dataset<F>, loss: LossKind, set: &str) -> Result<()> {
    let prefixed = if set.is_empty() { String::new() } else { format!("{set} ") };
    let what = prefixed.as_str();
    let (s, t) = data.inputs.dims();
    crate::kernels::tensor::positive(&format!("{what}samples"), s)?;
    if let Some(l) = data.lengths {
        if l.len() != s {
            return Err(CoreError::shape(format!("{what}lengths"), format!("[{s}]"), format!("[{}]", l.len())));
        }
        if let Some((i, &len)) = l.iter().enumerate().find(|(_, &len)| len == 0 || len > t) {
            return Err(invalid(&format!("{what}lengths[{i}]"), &format!("an integer in 1..={t}"), len));
        }
    }
    if let (Inputs::Tokens(x), crate::model::InputKind::Tokens { vocab_size }) = (data.inputs, model.config().input) {
        for (i, row) in x.rows().into_iter().enumerate() {
            let len = data.lengths.map_or(t, |l| l[i]);
            if let Some((step, &id)) = row.iter().take(len).enumerate().find(|(_, &id)| id as usize >= vocab_size) {
                return Err(invalid(
                    &format!("{what}x[{i}][{step}]"),
                    &format!("a token id below the vocabulary size {vocab_size}"),
                    id,
                ));
            }
        }
    }
    if let Some(w) = data.weights {
        if w.len() != s {
            return Err(CoreError::shape(format!("{what}sampleWeight"), format!("[{s}]"), format!("[{}]", w.len())));
        }
        if let Some((i, &v)) = w.iter().enumerate().find(|(_, &v)| !(v.is_finite() && v >= F::zero())) {
            return Err(invalid(&format!("{what}sampleWeight[{i}]"), "a finite non-negative number", v));
        }
    }
    let per = if model.outputs_sequence() { t } else { 1 };
    match (loss, data.targets) {
        (LossKind::CrossEntropy, Targets::Classes(y)) => {
            let want = s * per;
            if y.len() != want {
                let shape = if per > 1 { format!("[{s}, {t}]") } else { format!("[{s}]") };
                return Err(CoreError::shape(
                    format!("{what}y"),
                    format!("{shape} ({want} class ids)"),
                    format!("{} values", y.len()),
                ));
            }
            let classes = model.output_width();
            if let Some((i, &c)) = y.iter().enumerate().find(|(_, &c)| c as usize >= classes) {
                return Err(invalid(&format!("{what}y[{i}]"), &format!("a class id below {classes}"), c));
            }
            Ok(())
        }
        (LossKind::CrossEntropy, Targets::Values(_)) => {
            Err(invalid(&format!("{what}y"), "integer class ids for crossEntropy", "float values"))
        }
        (_, Targets::Values(y)) => {
            let want = s * per * model.output_width();
            if y.len() != want {
                let o = model.output_width();
                let shape = if per > 1 { format!("[{s}, {t}, {o}]") } else { format!("[{s}, {o}]") };
                return Err(CoreError::shape(
                    format!("{what}y"),
                    format!("{shape} ({want} values)"),
                    format!("{} values", y.len()),
                ));
            }
            Ok(())
        }
        (_, Targets::Classes(_)) => Err(invalid(&format!("{what}y"), "float targets for this loss", "class ids")),
    }
}

/// Owned inputs and targets of one batch, batch-first (the chunks of truncated BPTT).
pub(super) struct BatchData<F> {
    pub(super) features: Option<Array3<F>>,
    pub(super) tokens: Option<Array2<u32>>,
    pub(super) lengths: Vec<usize>,
    pub(super) classes: Vec<u32>,
    pub(super) values: Vec<F>,
    /// Each sequence's weight (empty: all 1).
    pub(super) weights: Vec<F>,
}

impl<F: Real> BatchData<F> {
    fn inputs(&self) -> Result<Inputs<'_, F>> {
        match (&self.features, &self.tokens) {
            (Some(f), _) => Ok(Inputs::Features(f.view())),
            (None, Some(t)) => Ok(Inputs::Tokens(t.view())),
            (None, None) => Err(invalid("x", "inputs", "none")),
        }
    }
}

/// One batch: samples of a dataset, read in place (packed straight from it), or a batch of
/// its own.
pub(super) enum Batch<'d, 'i, F> {
    Samples(Dataset<'d, F>, &'i [usize]),
    Own(BatchData<F>),
}

impl<F: Real> Batch<'_, '_, F> {
    pub(super) fn pack(&self, model: &Model<F>) -> Result<PackedBatch<F>> {
        match self {
            Batch::Samples(d, idx) => model.pack_samples(d.inputs, idx, d.lengths),
            Batch::Own(b) => model.pack(b.inputs()?, Some(&b.lengths)),
        }
    }

    /// The class ids and values of the targets, and which sequences of them the batch is
    /// (`None`: all, in order).
    pub(super) fn targets(&self) -> (&[u32], &[F], Option<&[usize]>) {
        match self {
            Batch::Samples(d, idx) => match d.targets {
                Targets::Classes(y) => (y, &[], Some(idx)),
                Targets::Values(y) => (&[], y, Some(idx)),
            },
            Batch::Own(b) => (&b.classes, &b.values, None),
        }
    }

    /// The sample weights the batch's sequences are taken from (indexed as the targets), if any.
    pub(super) fn sample_weights(&self) -> Option<&[F]> {
        match self {
            Batch::Samples(d, _) => d.weights,
            Batch::Own(b) => (!b.weights.is_empty()).then_some(b.weights.as_slice()),
        }
    }
}

/// Gathers samples `idx` of `data`.
pub(super) fn gather<F: Real>(data: &Dataset<F>, idx: &[usize], per: usize, out_width: usize) -> BatchData<F> {
    let (_, t) = data.inputs.dims();
    let (features, tokens) = match data.inputs {
        Inputs::Features(x) => (Some(x.select(Axis(0), idx)), None),
        Inputs::Tokens(x) => (None, Some(x.select(Axis(0), idx))),
    };
    let lengths = idx.iter().map(|&i| data.lengths.map_or(t, |l| l[i])).collect();
    let (mut classes, mut values) = (Vec::new(), Vec::new());
    match data.targets {
        Targets::Classes(y) => idx.iter().for_each(|&i| classes.extend_from_slice(&y[i * per..(i + 1) * per])),
        Targets::Values(y) => {
            let w = per * out_width;
            idx.iter().for_each(|&i| values.extend_from_slice(&y[i * w..(i + 1) * w]));
        }
    }
    let weights = data.weights.map(|w| idx.iter().map(|&i| w[i]).collect()).unwrap_or_default();
    BatchData { features, tokens, lengths, classes, values, weights }
}

/// One truncated-BPTT chunk of a batch sorted by decreasing length: its first `samples`
/// sequences (those still running), their lengths within the chunk, and its steps.
pub(super) struct Chunk {
    pub(super) samples: usize,
    pub(super) lengths: Vec<usize>,
    pub(super) steps: std::ops::Range<usize>,
}

/// Splits a batch (sorted by decreasing length) into truncated-BPTT chunks of `k` steps.
pub(super) fn chunks(lengths: &[usize], steps: usize, k: usize) -> Vec<Chunk> {
    (0..steps)
        .step_by(k)
        .map(|start| {
            let end = (start + k).min(steps);
            let lens: Vec<usize> =
                lengths.iter().map(|&l| l.saturating_sub(start).min(end - start)).take_while(|&l| l > 0).collect();
            Chunk { samples: lens.len(), lengths: lens, steps: start..end }
        })
        .filter(|c| c.samples > 0)
        .collect()
}

pub(super) fn slice_batch<F: Real>(
    data: &BatchData<F>,
    n: usize,
    lens: Vec<usize>,
    steps: std::ops::Range<usize>,
    per_step: bool,
    width: usize,
) -> BatchData<F> {
    let t_all = data.features.as_ref().map(|f| f.dim().1).or(data.tokens.as_ref().map(|t| t.dim().1)).unwrap_or(0);
    let (s0, s1) = (steps.start, steps.end);
    let features = data.features.as_ref().map(|f| f.slice(ndarray::s![..n, s0..s1, ..]).to_owned());
    let tokens = data.tokens.as_ref().map(|t| t.slice(ndarray::s![..n, s0..s1]).to_owned());
    let (mut classes, mut values) = (Vec::new(), Vec::new());
    if per_step {
        for b in 0..n {
            if !data.classes.is_empty() {
                classes.extend_from_slice(&data.classes[b * t_all + s0..b * t_all + s1]);
            }
            if !data.values.is_empty() {
                values.extend_from_slice(&data.values[(b * t_all + s0) * width..(b * t_all + s1) * width]);
            }
        }
    }
    let weights = data.weights.iter().take(n).copied().collect();
    BatchData { features, tokens, lengths: lens, classes, values, weights }
}
